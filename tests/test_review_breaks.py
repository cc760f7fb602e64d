"""Review of the instruction cuts (9023c9e..31881df): each test here shows one break.

Every test fails on the code under review: on asyncio (the aiohttp wire) unless it says
otherwise; the trio runs of the header tests pass and show what httpx sends. Part 1 is a
break today's commits introduced; part 2, a hole the cancellation commit (ae35a50) leaves
open; part 3, breaks of the stated goal ("the server sees exactly the httpx request's
headers") that were there before and that the commits' tests do not catch.
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

from .helpers import APPID, IDS, SECRET
from .test_tokens_secrets import assert_nowhere
from .wire_server import Req, answer, default_answer, wire_server

pytestmark = pytest.mark.anyio


def _sent(req: Req) -> list[tuple[str, str]]:
    return sorted((k.lower(), v) for k, v in req.header_lines)


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


# -- 1. introduced today: an empty POST/PUT/PATCH gets a Content-Type the request lacks ---------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_an_empty_post_is_sent_without_a_content_type_it_lacks(method: str) -> None:
    """aiohttp adds ``Content-Type: application/octet-stream`` to every POST/PUT/PATCH whose
    headers lack one unless Content-Type is in skip_auto_headers. The session-wide skip list
    (before) always held it; the per-request one holds it only when the body is non-empty
    (``skip_with_body if body else skip``), so an empty-bodied POST now gains a header httpx
    never set (and that the trio wire does not send)."""

    async def send(http: httpx.AsyncClient, url: str) -> None:
        await http.request(method, url + "/empty")
        await http.request(method, url + "/empty-content", content=b"")

    seen, sent = await _through_the_wire(send)
    assert len(sent) == 2
    for request, req in zip(seen, sent, strict=True):
        assert "content-type" not in req.headers, req.header_lines
        assert _sent(req) == _expected(request)


# -- 2. left open by ae35a50: a caller's deadline during a token fetch keeps the secret ---------


async def _hang(req: Req, stream: SocketStream) -> bool:
    await anyio.sleep_forever()
    return False


@pytest.mark.parametrize("source", ["stable", "classic"])
async def test_a_callers_deadline_during_the_token_fetch_leaves_no_secret_in_frames(
    source: str,
) -> None:
    """ae35a50 strips the frames beneath ``_attempts`` and deletes ``request``/``url``, but a
    token fetch runs in the caller's task, and the frames the cancellation still goes up
    through hold the app secret: ``_attempts``' own ``body`` (stable: the JSON with
    ``"secret"``) and ``query`` (classic: ``?...&secret=``), and ``call_token_endpoint``'s
    ``query``/``body``. anyio.fail_after's TimeoutError chains that CancelledError, so an
    error tracker records the secret."""
    async with wire_server(_hang) as server:
        caught = await _cut_during_the_fetch(server.url, source)
        assert "token" in server.requests[0].path  # cut while the fetch was on the wire
    assert_nowhere(caught, SECRET)


async def _cut_during_the_fetch(url: str, source: str) -> BaseException:
    """What the caller caught (this frame, unlike the test's, holds no server that saw it)."""
    async with wx.AsyncLogistics(
        APPID,
        SECRET,
        base_url=url,
        token_source=source,  # type: ignore[arg-type]
    ) as client:
        with pytest.raises(TimeoutError) as info, anyio.fail_after(0.5):
            await client.cancel_order(**IDS)
    return info.value


# -- 3. already there before: what the aiohttp wire sends is not what httpx built --------------


async def test_a_non_ascii_header_value_is_sent_as_httpx_holds_it() -> None:
    """httpx keeps header values as bytes (``headers[k] = "张三"`` stores UTF-8). The aiohttp
    wire decodes them as latin-1 and aiohttp encodes header text as UTF-8: the server gets
    the value encoded twice (each of its six bytes as two). The trio wire sends the bytes."""
    async with (
        wire_server() as server,
        wx.AsyncLogistics(base_url=server.url, token_source=_Fixed(), retry_policy=_ONCE) as client,
    ):
        client.http_client.headers["X-Operator"] = "张三"
        await client.cancel_order(**IDS)
    line = dict((k.lower(), v) for k, v in server.requests[0].header_lines)
    assert line["x-operator"].encode("latin-1") == "张三".encode()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # httpcore (trio) frames it right
async def test_a_streamed_request_body_is_sent_as_httpx_frames_it() -> None:
    """httpx sends a body of unknown length with ``Transfer-Encoding: chunked``. The aiohttp
    wire reads it into bytes and passes the headers on: aiohttp adds a Content-Length and
    writes the bytes unframed under ``Transfer-Encoding: chunked``, a request a server
    (which must prefer Transfer-Encoding) reads as garbage, and a smuggling-shaped one."""

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


async def test_a_delete_without_a_body_is_sent_without_a_content_length() -> None:
    """Minor. httpx sets no Content-Length on a body-less DELETE (nor on a custom method);
    aiohttp adds ``Content-Length: 0`` to every method outside GET/HEAD/OPTIONS/TRACE."""

    async def send(http: httpx.AsyncClient, url: str) -> None:
        await http.delete(url + "/d")

    seen, sent = await _through_the_wire(send)
    assert _sent(sent[0]) == _expected(seen[0])


async def test_a_url_with_credentials_is_sent_with_the_authorization_httpx_built() -> None:
    """httpx turns a URL's ``user:password@`` into ``Authorization: Basic`` (its default
    auth); the aiohttp wire hands aiohttp the URL with the credentials still in it, and
    aiohttp refuses the request ("Cannot combine AUTHORIZATION header with AUTH argument or
    credentials encoded in URL"): a TransportError, nothing sent. httpcore sends it."""

    async def send(http: httpx.AsyncClient, url: str) -> None:
        await http.get(url.replace("://", "://user:pw@") + "/private")

    seen, sent = await _through_the_wire(send)
    assert seen[0].headers["authorization"] == "Basic dXNlcjpwdw=="
    assert _sent(sent[0]) == _expected(seen[0])


class _Fixed:
    async def fetch(self, endpoint: wx.TokenEndpoint) -> wx.IssuedToken:
        return wx.IssuedToken(value="TOKEN-review", expires_in=7200)


_ONCE = wx.RetryPolicy(max_retries=0)


async def _ok(req: Req, stream: SocketStream) -> bool:
    await stream.send(answer(body=default_answer(req)))
    return True


async def _answer_and_close(req: Req, stream: SocketStream) -> bool:
    """Answer, then close: the test server frames bodies by Content-Length only, and must not
    read what follows (a chunked body) as a next request."""
    await stream.send(answer(body=default_answer(req), close=True))
    return False
