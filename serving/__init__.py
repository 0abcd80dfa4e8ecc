"""How our ASGI apps are served: what the runtime and the component server share on top of uvicorn."""
