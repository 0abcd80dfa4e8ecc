"""The orchestrator: REST API, flow engine, routing, blobs, built-ins, run store, plugins."""
