"""A small programmable HTTP/1.1 server on loopback, for faults the fake WeChat cannot produce.

Each test passes a handler that gets the parsed request and the raw stream, and writes what it
likes: a gzip body, a huge header, one byte at a time, or nothing at all.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

TOKEN_ANSWER = {"access_token": "TOKEN-from-wire-server", "expires_in": 7200}
OK = {"errcode": 0, "errmsg": "ok", "delivery_resultcode": 0, "delivery_resultmsg": ""}


@attrs.define
class Req:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int  # which connection (1-based) carried it
    header_lines: list[tuple[str, str]] = attrs.Factory(list)  # as sent: order, case, repeats

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Handler = Callable[[Req, SocketStream], Awaitable[bool]]
"""Answers one request; returns False to close the connection afterwards."""


@attrs.define
class Server:
    url: str
    requests: list[Req] = attrs.Factory(list)
    connections: int = 0


def answer(
    status: int = 200,
    body: bytes | dict[str, Any] = b"",
    headers: dict[str, str] | None = None,
    *,
    close: bool = False,
) -> bytes:
    """The bytes of a complete HTTP/1.1 response."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    head = {"content-type": "application/json", "content-length": str(len(data))}
    head.update(headers or {})
    if close:
        head["connection"] = "close"
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in head.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


def default_answer(req: Req) -> dict[str, Any]:
    """A token for token paths, else errcode 0."""
    return TOKEN_ANSWER if "token" in req.path else OK


async def ok_handler(req: Req, stream: SocketStream) -> bool:
    await stream.send(answer(body=default_answer(req)))
    return True


@asynccontextmanager
async def wire_server(handler: Handler = ok_handler) -> AsyncIterator[Server]:
    """Serve ``handler`` on a free loopback port until the block ends."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = Server(url=f"http://127.0.0.1:{port}")

    async def connection(stream: SocketStream) -> None:
        server.connections += 1
        number = server.connections
        reader = BufferedByteReceiveStream(stream)
        async with stream:
            while True:
                try:
                    head = await reader.receive_until(b"\r\n\r\n", 1 << 20)
                except Exception:
                    return
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                header_lines = []
                for line in lines:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
                    header_lines.append((key.strip(), value.strip()))
                length = int(headers.get("content-length", "0"))
                try:
                    body = await reader.receive_exactly(length) if length else b""
                except Exception:
                    return
                req = Req(method, target, headers, body, number, header_lines)
                server.requests.append(req)
                try:
                    keep = await handler(req, stream)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    return
                if not keep:
                    return

    accepted: list[SocketStream] = []

    async def accept_loop() -> None:
        while True:
            stream = await listener.listeners[0].accept()
            accepted.append(stream)  # closed at the end even if its handler never started
            tg.start_soon(connection, stream)

    try:
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(accept_loop)
            yield server
            tg.cancel_scope.cancel()
    finally:
        for stream in accepted:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
