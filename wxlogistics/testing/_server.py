"""The fake served over real HTTP/1.1 on loopback (keep-alive, Content-Length bodies)."""

from __future__ import annotations

import json
from functools import partial

import anyio
from anyio.abc import SocketStream, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from ._fake import FakeResponse, FakeWeChat

__all__ = ["serve"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_MAX_HEADER = 64 * 1024
_MAX_BODY = 8 * 1024 * 1024


async def serve(
    fake: FakeWeChat,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``fake`` over HTTP until cancelled; reports the bound port via ``task_status``.

    Besides the WeChat paths it answers ``GET /_fake/stats`` (the fake's counters) and
    ``POST /_fake/waybills`` (a JSON list of waybills to create), for tests in other processes.
    """
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener:
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
        await listener.serve(partial(_connection, fake))


async def _connection(fake: FakeWeChat, stream: SocketStream) -> None:
    reader = BufferedByteReceiveStream(stream)
    async with stream:
        while True:
            try:
                head = await reader.receive_until(b"\r\n\r\n", _MAX_HEADER)
            except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return
            except anyio.DelimiterNotFound:
                await _send(stream, FakeResponse(400, b"header too large", "text/plain"), False)
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, _version = lines[0].split(" ", 2)
            except ValueError:
                await _send(stream, FakeResponse(400, b"bad request line", "text/plain"), False)
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if length > _MAX_BODY:
                await _send(stream, FakeResponse(400, b"body too large", "text/plain"), False)
                return
            try:
                body = await reader.receive_exactly(length) if length else b""
            except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return
            path, _, query = target.partition("?")
            if path.startswith("/_fake/"):
                answer = _admin(fake, method, path, body)
            else:
                answer = await fake.handle_async(method, path, query, body)
            if answer.dropped:
                return
            keep_alive = headers.get("connection", "").lower() != "close"
            try:
                await _send(stream, answer, keep_alive)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return
            if not keep_alive:
                return


async def _send(stream: SocketStream, answer: FakeResponse, keep_alive: bool) -> None:
    reason = _REASONS.get(answer.status, "Unknown")
    head = (
        f"HTTP/1.1 {answer.status} {reason}\r\n"
        f"Content-Type: {answer.content_type}\r\n"
        f"Content-Length: {len(answer.body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    await stream.send(head.encode("latin-1") + answer.body)


def _admin(fake: FakeWeChat, method: str, path: str, body: bytes) -> FakeResponse:
    if path == "/_fake/stats" and method == "GET":
        return FakeResponse(200, json.dumps(fake.stats()).encode())
    if path == "/_fake/waybills" and method == "POST":
        try:
            items = json.loads(body)
            for item in items:
                fake.add_waybill(**item)
        except (ValueError, TypeError) as exc:
            return FakeResponse(400, str(exc).encode(), "text/plain")
        return FakeResponse(200, json.dumps({"waybills": len(fake.waybills)}).encode())
    return FakeResponse(404, b"unknown admin path", "text/plain")
