"""The token cache: single flight, expiry, compare-and-clear, replay once, cancellation."""

from __future__ import annotations

import math
import traceback
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

import wxlogistics as wx

from .helpers import (
    APPID,
    CANCEL,
    CLASSIC,
    IDS,
    OK,
    SECRET,
    STABLE,
    TOKEN,
    TOKEN2,
    make_router,
    token_response,
    wired,
)

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class NoEndpoint:
    """An endpoint for sources that never call one."""

    async def call_token_endpoint(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        raise AssertionError("this source must not call the token endpoint")


NO_ENDPOINT = NoEndpoint()


class GatedSource:
    """A token source whose fetches block until ``release`` is set, then play ``outcomes``.

    Fetch ``n`` (counted from 1) sets ``entered(n)`` on entry, so a test can wait for it.
    Each outcome is a lifetime in seconds (a token ``TOKEN-<n>`` is issued) or an exception
    to raise; the last outcome repeats. ``gate_from`` is the first fetch that blocks.
    """

    def __init__(self, *outcomes: float | Exception, gate_from: int = 1) -> None:
        self.outcomes = list(outcomes) or [7200.0]
        self.gate_from = gate_from
        self.calls = 0
        self.release = anyio.Event()
        self._entered: dict[int, anyio.Event] = {}

    def entered(self, n: int) -> anyio.Event:
        return self._entered.setdefault(n, anyio.Event())

    async def fetch(self, endpoint: wx.TokenEndpoint) -> wx.IssuedToken:
        self.calls += 1
        n = self.calls
        self.entered(n).set()
        if n >= self.gate_from:
            await self.release.wait()
        outcome = self.outcomes[min(n, len(self.outcomes)) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return wx.IssuedToken(value=f"TOKEN-{n}", expires_in=outcome)


def slow_tokens(*tokens: str, delay: float = 0.05) -> Any:
    """A side effect issuing the given tokens in turn, slowly enough for callers to pile up."""
    issued = iter(tokens)

    async def respond(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(delay)
        return token_response(next(issued))

    return respond


async def gather(n: int, fn: Any) -> list[Any]:
    results: list[Any] = [None] * n

    async def one(i: int) -> None:
        try:
            results[i] = await fn()
        except Exception as exc:  # collected for assertions
            results[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return results


async def test_one_token_fetch_for_1000_concurrent_cold_calls() -> None:
    router = make_router()
    token_route = router.post(STABLE).mock(side_effect=slow_tokens(TOKEN))
    cancel_route = router.post(CANCEL).respond(json=OK)
    async with wired(router) as client:
        results = await gather(1000, lambda: client.cancel_order(**IDS))
        assert client.tokens.fetch_count == 1
    assert all(isinstance(r, wx.CancelOrderResult) for r in results)
    assert token_route.call_count == 1
    assert cancel_route.call_count == 1000
    assert {c.request.url.params["access_token"] for c in cancel_route.calls} == {TOKEN}


async def test_one_refresh_for_1000_concurrent_expired_token_failures() -> None:
    router = make_router()
    token_route = router.post(STABLE).mock(side_effect=slow_tokens(TOKEN, TOKEN2))

    async def cancel(request: httpx.Request) -> httpx.Response:
        await anyio.lowlevel.checkpoint()
        if request.url.params["access_token"] == TOKEN:
            return httpx.Response(200, json={"errcode": 42001, "errmsg": "access_token expired"})
        return httpx.Response(200, json=OK)

    cancel_route = router.post(CANCEL).mock(side_effect=cancel)
    async with wired(router) as client:
        await client.tokens.get(client._transport)  # warm: everybody starts with TOKEN
        results = await gather(1000, lambda: client.cancel_order(**IDS))
    assert all(isinstance(r, wx.CancelOrderResult) for r in results), results[:3]
    assert token_route.call_count == 2  # the warm-up fetch and exactly one refresh
    tokens_sent = [c.request.url.params["access_token"] for c in cancel_route.calls]
    assert tokens_sent.count(TOKEN) == 1000
    assert tokens_sent.count(TOKEN2) == 1000


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
async def test_token_error_replays_once_with_fresh_token(errcode: int) -> None:
    router = make_router()
    token_route = router.post(STABLE).mock(
        side_effect=[token_response(TOKEN), token_response(TOKEN2)]
    )
    cancel_route = router.post(CANCEL).mock(
        side_effect=[
            httpx.Response(200, json={"errcode": errcode, "errmsg": "x"}),
            httpx.Response(200, json=OK),
        ]
    )
    async with wired(router, retry_policy=wx.RetryPolicy(max_retries=0)) as client:
        result = await client.cancel_order(**IDS)
    assert result.errcode == 0
    assert token_route.call_count == 2
    assert [c.request.url.params["access_token"] for c in cancel_route.calls] == [TOKEN, TOKEN2]


async def test_second_token_error_raises_access_token_error() -> None:
    router = make_router()
    token_route = router.post(STABLE).mock(
        side_effect=[token_response(TOKEN), token_response(TOKEN2)]
    )
    cancel_route = router.post(CANCEL).respond(
        json={"errcode": 40001, "errmsg": "invalid credential"}
    )
    async with wired(router) as client:
        with pytest.raises(wx.AccessTokenError) as info:
            await client.cancel_order(**IDS)
    assert info.value.errcode == 40001
    assert token_route.call_count == 2
    assert cancel_route.call_count == 2  # the call and one replay: no loop


async def test_token_refreshed_before_expiry_margin() -> None:
    clock = FakeClock()
    router = make_router()
    token_route = router.post(STABLE).mock(
        side_effect=[token_response(TOKEN, 7200), token_response(TOKEN2, 7200)]
    )
    cancel_route = router.post(CANCEL).respond(json=OK)
    async with wired(router, clock=clock) as client:
        await client.cancel_order(**IDS)
        clock.now += 7200 - 300 - 1  # just inside the margin: still the old token
        await client.cancel_order(**IDS)
        clock.now += 2  # past refresh point
        await client.cancel_order(**IDS)
    assert token_route.call_count == 2
    sent = [c.request.url.params["access_token"] for c in cancel_route.calls]
    assert sent == [TOKEN, TOKEN, TOKEN2]


async def test_short_lived_token_refreshed_at_half_life_not_every_call() -> None:
    clock = FakeClock()
    router = make_router()
    token_route = router.post(STABLE).mock(
        side_effect=[token_response(TOKEN, 200), token_response(TOKEN2, 7200)]
    )
    router.post(CANCEL).respond(json=OK)
    async with wired(router, clock=clock) as client:
        for _ in range(5):
            await client.cancel_order(**IDS)
        clock.now += 99
        await client.cancel_order(**IDS)
        assert token_route.call_count == 1
        clock.now += 2
        await client.cancel_order(**IDS)
    assert token_route.call_count == 2


async def test_classic_source_sends_get_with_query() -> None:
    router = make_router()
    token_route = router.get(CLASSIC).mock(return_value=token_response())
    router.post(CANCEL).respond(json=OK)
    async with wired(router, token_source="classic") as client:
        await client.cancel_order(**IDS)
    request = token_route.calls.last.request
    assert request.method == "GET"
    assert dict(request.url.params) == {
        "grant_type": "client_credential",
        "appid": APPID,
        "secret": SECRET,
    }
    assert request.content == b""


async def test_custom_token_source() -> None:
    class Fixed:
        calls = 0

        async def fetch(self, endpoint: wx.TokenEndpoint) -> wx.IssuedToken:
            self.calls += 1
            return wx.IssuedToken(value="CUSTOM", expires_in=math.inf)

    source = Fixed()
    router = make_router()
    route = router.post(CANCEL).respond(json=OK)
    async with wired(router, token_source=source) as client:
        await client.cancel_order(**IDS)
        await client.cancel_order(**IDS)
    assert source.calls == 1
    assert route.calls.last.request.url.params["access_token"] == "CUSTOM"


async def test_cancelled_waiter_does_not_block_others() -> None:
    router = make_router()
    token_route = router.post(STABLE).mock(side_effect=slow_tokens(TOKEN, delay=0.2))
    router.post(CANCEL).respond(json=OK)
    async with wired(router) as client:
        results: list[Any] = []

        async def waiter() -> None:
            results.append(await client.cancel_order(**IDS))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)  # the refresher
            await anyio.sleep(0.01)
            with anyio.move_on_after(0.05):  # this one gives up while waiting for the lock
                await client.cancel_order(**IDS)
            tg.start_soon(waiter)
        assert len(results) == 2
    assert token_route.call_count == 1


async def test_cancelled_fetcher_abandons_its_fetch_and_the_next_call_asks_again() -> None:
    router = make_router()
    token_route = router.post(STABLE).mock(side_effect=slow_tokens(TOKEN, TOKEN2, delay=0.1))
    cancel_route = router.post(CANCEL).respond(json=OK)
    async with wired(router) as client:
        with anyio.move_on_after(0.02) as scope:
            await client.cancel_order(**IDS)  # cancelled mid-fetch
        assert scope.cancelled_caught
        # The fetch was not shielded: it was abandoned with its caller, publishing nothing.
        assert client.tokens.current is None
        await client.cancel_order(**IDS)
    assert token_route.call_count == 1  # (respx records only the request that got an answer)
    assert client.tokens.fetch_count == 1
    assert cancel_route.call_count == 1
    assert cancel_route.calls.last.request.url.params["access_token"] == TOKEN


async def test_token_fetch_failure_propagates_to_every_waiter_without_hanging() -> None:
    router = make_router()

    async def refuse(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.02)
        return httpx.Response(200, json={"errcode": 40125, "errmsg": "invalid appsecret"})

    token_route = router.post(STABLE).mock(side_effect=refuse)
    async with wired(router) as client:
        with anyio.fail_after(5):
            results = await gather(20, lambda: client.cancel_order(**IDS))
        assert all(isinstance(r, wx.CredentialsError) for r in results)
        # The callers that waited on the failed fetch share its error: one request, no hang.
        assert token_route.call_count == 1
        # A later call asks again (the secret may have been fixed meanwhile).
        with pytest.raises(wx.CredentialsError):
            await client.cancel_order(**IDS)
    assert token_route.call_count == 2


async def test_shared_fetch_error_does_not_pile_up_every_waiters_frames() -> None:
    router = make_router()

    async def refuse(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.02)
        return httpx.Response(200, json={"errcode": 40125, "errmsg": "invalid appsecret"})

    router.post(STABLE).mock(side_effect=refuse)
    async with wired(router) as client:
        results = await gather(50, lambda: client.cancel_order(**IDS))
    assert all(isinstance(r, wx.CredentialsError) for r in results)
    assert {r.errcode for r in results} == {40125}  # one fetch, one refusal for every waiter
    assert router.routes[0].call_count == 1
    # Each call raises its own copy (this call was not sent), not the others' frames.
    for error in results:
        assert error.may_have_been_sent is False
        depth = len(list(traceback.walk_tb(error.__traceback__)))
        assert depth < 20, depth


def test_token_cache_repr_and_token_repr_hide_value() -> None:
    cache = wx.TokenCache(wx.StableTokenSource(appid=APPID, secret=SECRET))
    token = wx.AccessToken(value=TOKEN, refresh_at=1.0, expires_at=2.0)
    for text in (repr(cache), repr(token), repr(wx.IssuedToken(value=TOKEN, expires_in=1))):
        assert TOKEN not in text
        assert SECRET not in text
