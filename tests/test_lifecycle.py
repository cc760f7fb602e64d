"""Client lifecycle: what it owns it closes, what it is given it leaves open."""

from __future__ import annotations

import httpx
import pytest

import wxlogistics as wx

from .helpers import IDS, OK, STABLE, make_router, token_response

pytestmark = pytest.mark.anyio


async def test_owned_httpx_client_is_closed_with_bounded_pool() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post("/cgi-bin/express/business/order/cancel").respond(json=OK)
    client = wx.AsyncLogistics(
        "wxappid", "secret", max_connections=7, transport=httpx.MockTransport(router.async_handler)
    )
    http = client.http_client
    assert http is not None
    assert http.timeout == httpx.Timeout(10.0, connect=5.0)
    await client.cancel_order(**IDS)
    await client.aclose()
    assert http.is_closed
    assert client.is_closed
    await client.aclose()  # idempotent


async def test_given_http_client_is_not_closed() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post("/cgi-bin/express/business/order/cancel").respond(json=OK)
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as http:
        async with wx.AsyncLogistics("wxappid", "secret", http_client=http) as client:
            assert client.http_client is http
            await client.cancel_order(**IDS)
        assert client.is_closed
        assert not http.is_closed


async def test_use_after_close_raises() -> None:
    client = wx.AsyncLogistics("wxappid", "secret")
    await client.aclose()
    with pytest.raises(wx.ClientClosedError):
        await client.cancel_order(**IDS)
    with pytest.raises(wx.ClientClosedError):
        async with client:
            pass


async def test_headers_of_given_client_are_sent() -> None:
    seen: list[httpx.Headers] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return token_response() if request.url.path == STABLE else httpx.Response(200, json=OK)

    async with (
        httpx.AsyncClient(
            transport=httpx.MockTransport(record), headers={"X-Trace": "abc"}
        ) as http,
        wx.AsyncLogistics("wxappid", "secret", http_client=http) as client,
    ):
        await client.cancel_order(**IDS)
    assert all(h["x-trace"] == "abc" for h in seen)
    assert seen[-1]["user-agent"] == f"wxlogistics/{wx.__version__}"
