"""The fake served over real HTTP/1.1 on loopback (keep-alive, Content-Length bodies)."""

from __future__ import annotations

import contextlib
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
                await _refuse(stream, "header too large")
                return
            request = _parse_head(head)
            if isinstance(request, str):
                # The body's length is unknown, so the connection cannot go on: answer, close.
                await _refuse(stream, request)
                return
            method, target, headers, length = request
            try:
                body = await reader.receive_exactly(length) if length else b""
            except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return
            path, _, query = target.partition("?")
            try:
                if path.startswith("/_fake/"):
                    answer = _admin(fake, method, path, body)
                else:
                    answer = await fake.handle_async(method, path, query, body)
            except Exception as exc:  # a bug in the fake must not take the server down
                text = f"fake WeChat failed: {type(exc).__name__}: {exc}"
                answer = FakeResponse(500, text.encode(), "text/plain")
            if answer.dropped:
                return
            keep_alive = headers.get("connection", "").lower() != "close"
            try:
                await _send(stream, answer, keep_alive)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return
            if not keep_alive:
                return


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str], int] | str:
    """(method, target, headers, body length) of a request head, or why it is refused."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not all(parts) or not parts[2].startswith("HTTP/"):
        return "bad request line"
    method, target, _version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        raw_name, colon, value = line.partition(":")
        if not colon or not raw_name or raw_name != "".join(raw_name.split()):
            return "bad header line"  # no colon, no name, or white space in or around it
        name, value = raw_name.lower(), value.strip()
        if name == "content-length" and headers.get(name, value) != value:
            return "conflicting Content-Length headers"
        headers[name] = value
    if "transfer-encoding" in headers:
        return "Transfer-Encoding is not supported: send a Content-Length"
    raw = headers.get("content-length", "0")
    if not (raw.isascii() and raw.isdigit()):  # digits only: no sign, no spaces, no "5, 5"
        return "bad Content-Length"
    if len(raw) > 12 or int(raw) > _MAX_BODY:
        return "body too large"
    return method, target, headers, int(raw)


async def _refuse(stream: SocketStream, reason: str) -> None:
    """Answer 400 and let the caller close the connection; the server goes on serving."""
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await _send(stream, FakeResponse(400, reason.encode(), "text/plain"), False)


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
