"""What the aiohttp wire sends is what httpx built: headers, framing, URL credentials.

Found by a review of the instruction cuts (the wire's per-request header handling); each
test compares, on a loopback server of our own, the header lines received with the httpx
request's headers (the trio runs, over httpcore, show the same on the other wire).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import SocketStream

import wxlogistics as wx
from wxlogistics._wire import WireTransport

from .helpers import IDS
from .test_wire import Fixed, _sent
from .wire_server import Req, answer, default_answer, wire_server

pytestmark = pytest.mark.anyio


def _expected(request: httpx.Request) -> list[tuple[str, str]]:
    # The wire server decodes header lines as latin-1: compare the bytes httpx holds.
    return sorted(
        (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers.raw
    )


async def _through_the_wire(
    send: Any, handler: Any = None
) -> tuple[list[httpx.Request], list[Req]]:
    """Send with a plain httpx client over WireTransport; what httpx built, what was sent."""
    seen: list[httpx.Request] = []

    async def keep(request: httpx.Request) -> None:
        seen.append(request)

    async with (
        wire_server(handler or _ok) as server,
        httpx.AsyncClient(transport=WireTransport(), event_hooks={"request": [keep]}) as http,
    ):
        with anyio.fail_after(5):
            await send(http, server.url)
    return seen, server.requests


# -- an empty POST/PUT/PATCH gets no Content-Type the request lacks ---------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_an_empty_post_is_sent_without_a_content_type_it_lacks(method: str) -> None:
    """aiohttp adds ``Content-Type: application/octet-stream`` to every POST/PUT/PATCH whose
    headers lack one unless Content-Type is in skip_auto_headers, with or without a body."""

    async def send(http: httpx.AsyncClient, url: str) -> None:
        await http.request(method, url + "/empty")
        await http.request(method, url + "/empty-content", content=b"")

    seen, sent = await _through_the_wire(send)
    assert len(sent) == 2
    for request, req in zip(seen, sent, strict=True):
        assert "content-type" not in req.headers, req.header_lines
        assert _sent(req) == _expected(request)


# -- header text, chunked bodies, URL credentials ----------------------------------------------


async def test_a_non_ascii_header_value_is_sent_as_httpx_holds_it() -> None:
    """httpx keeps header values as bytes (``headers[k] = "张三"`` stores UTF-8); aiohttp
    encodes header text as UTF-8, so the wire decodes them as UTF-8 (as latin-1 they went
    out encoded twice)."""
    async with (
        wire_server() as server,
        wx.AsyncLogistics(base_url=server.url, token_source=Fixed(), retry_policy=_ONCE) as client,
    ):
        client.http_client.headers["X-Operator"] = "张三"
        await client.cancel_order(**IDS)
    line = dict((k.lower(), v) for k, v in server.requests[0].header_lines)
    assert line["x-operator"].encode("latin-1") == "张三".encode()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # httpcore (trio) frames it right
async def test_a_streamed_request_body_is_sent_as_httpx_frames_it() -> None:
    """httpx sends a body of unknown length with ``Transfer-Encoding: chunked``. Passed on as
    a header, aiohttp added a Content-Length and wrote the bytes unframed under it (a request
    a server reads as garbage, smuggling-shaped); aiohttp is told to frame it instead."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"x":'
        yield b"1}"

    async def send(http: httpx.AsyncClient, url: str) -> None:
        await http.post(url + "/stream", content=chunks())

    seen, sent = await _through_the_wire(send, _answer_and_close)
    assert seen[0].headers["transfer-encoding"] == "chunked"
    framed_twice = "transfer-encoding" in sent[0].headers and "content-length" in sent[0].headers
    assert not framed_twice, sent[0].header_lines
    assert _sent(sent[0]) == _expected(seen[0])


async def test_a_delete_without_a_body_is_sent_without_a_content_length(
    request: pytest.FixtureRequest, anyio_backend: str
) -> None:
    """A known difference: httpx sets no Content-Length on a body-less DELETE (nor on a
    custom method); aiohttp adds ``Content-Length: 0`` to every method outside
    GET/HEAD/OPTIONS/TRACE, and has no option to leave it out (docs/http.md says so)."""
    if anyio_backend == "asyncio":
        request.applymarker(pytest.mark.xfail(strict=True, reason="aiohttp adds Content-Length: 0"))

    async def send(http: httpx.AsyncClient, url: str) -> None:
        await http.delete(url + "/d")

    seen, sent = await _through_the_wire(send)
    assert _sent(sent[0]) == _expected(seen[0])


async def test_a_url_with_credentials_is_sent_with_the_authorization_httpx_built() -> None:
    """httpx turns a URL's ``user:password@`` into ``Authorization: Basic`` (its default
    auth); given the URL with the credentials still in it, aiohttp refused the request
    ("Cannot combine AUTHORIZATION header with ... credentials encoded in URL")."""

    async def send(http: httpx.AsyncClient, url: str) -> None:
        await http.get(url.replace("://", "://user:pw@") + "/private")

    seen, sent = await _through_the_wire(send)
    assert seen[0].headers["authorization"] == "Basic dXNlcjpwdw=="
    assert _sent(sent[0]) == _expected(seen[0])


_ONCE = wx.RetryPolicy(max_retries=0)


async def _ok(req: Req, stream: SocketStream) -> bool:
    await stream.send(answer(body=default_answer(req)))
    return True


async def _answer_and_close(req: Req, stream: SocketStream) -> bool:
    """Answer, then close: the test server frames bodies by Content-Length only, and must not
    read what follows (a chunked body) as a next request."""
    await stream.send(answer(body=default_answer(req), close=True))
    return False
