"""uvicorn's protocol as our servers run it, on a real socket: when an answer leaves."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from serving.protocol import ServerProtocol

ADDRESS = "127.0.0.57"


class BlockingAfterAnswer:
    """Answers, then blocks its event loop until the client says it has the answer (or 5 s pass):
    only bytes already written by then can reach the client."""

    def __init__(self) -> None:
        self.client_has_answer = threading.Event()
        self.seen_before_returning: list[bool] = []
        self.returned = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        self.seen_before_returning.append(self.client_has_answer.wait(5))
        self.returned.set()


@pytest.fixture
def served() -> Iterator[tuple[BlockingAfterAnswer, int]]:
    app = BlockingAfterAnswer()
    server = uvicorn.Server(uvicorn.Config(app, host=ADDRESS, port=0, http=ServerProtocol, lifespan="off", log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):  # at most 5 s
        if server.started:
            break
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield app, port
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_complete_answer_leaves_before_the_app_returns(served: tuple[BlockingAfterAnswer, int]) -> None:
    app, port = served
    with socket.create_connection((ADDRESS, port), timeout=10) as client:
        client.sendall(f"GET / HTTP/1.1\r\nHost: {ADDRESS}\r\n\r\n".encode())
        answer = b""
        while not answer.endswith(b"\r\n\r\nok"):
            answer += client.recv(4096)
        app.client_has_answer.set()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 2\r\n" in answer
    assert app.returned.wait(10) and app.seen_before_returning == [True]
