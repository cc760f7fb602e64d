"""A caller's own deadline fires on time while a token is being fetched (fetcher or waiter).

The token sources here block on an event: the fetch lasts as long as the test wants. Each
test also arms a safety release (after a few seconds) so that code which holds a caller until
the fetch ends finishes (and fails the assertions) instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest

import wxlogistics as wx

from .helpers import CANCEL, IDS, OK, STABLE, TOKEN, make_router, token_response, wired
from .test_tokens import NO_ENDPOINT, GatedSource

SAFETY_RELEASE = 4.0
"""Seconds after which a gated fetch is released anyway (old code held callers until then)."""


@contextlib.asynccontextmanager
async def safety_release(gate: anyio.Event) -> AsyncIterator[None]:
    """Set ``gate`` after SAFETY_RELEASE seconds unless the body is done by then."""

    async def release_later() -> None:
        await anyio.sleep(SAFETY_RELEASE)
        gate.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(release_later)
        yield
        tg.cancel_scope.cancel()


# -- anyio: both backends -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_fetching_caller_gives_up_on_its_deadline_and_a_waiter_takes_over() -> None:
    source = GatedSource()
    cache = wx.TokenCache(source)
    results: list[Any] = []

    async def waiter() -> None:
        await source.entered(1).wait()  # join once the first caller is fetching
        try:
            results.append(await cache.get(NO_ENDPOINT))
        except Exception as exc:  # collected: a waiter must not fail here
            results.append(exc)

    async with safety_release(source.release), anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(waiter)
        with pytest.raises(TimeoutError) as info:
            with anyio.fail_after(0.2):
                await cache.get(NO_ENDPOINT)
        # The caller left while the fetch was still blocked: it was not held by it.
        assert not source.release.is_set()
        assert type(info.value) is TimeoutError  # the caller's own, not RequestTimeoutError
        await source.entered(2).wait()  # a waiter took the fetch over
        assert results == []  # ... and nobody saw the fetcher's cancellation as an error
        source.release.set()
    assert source.calls == 2  # the aborted fetch and the one taken over: never two at once
    assert [r.value for r in results] == ["TOKEN-2"] * 20
    assert cache.fetch_count == 1


@pytest.mark.anyio
async def test_waiting_caller_gives_up_on_its_deadline() -> None:
    source = GatedSource()
    cache = wx.TokenCache(source)
    results: list[Any] = []

    async def fetcher() -> None:
        results.append(await cache.get(NO_ENDPOINT))

    async with safety_release(source.release), anyio.create_task_group() as tg:
        tg.start_soon(fetcher)
        await source.entered(1).wait()
        with pytest.raises(TimeoutError) as info:
            with anyio.fail_after(0.2):
                await cache.get(NO_ENDPOINT)
        assert not source.release.is_set()
        assert type(info.value) is TimeoutError
        source.release.set()
    assert source.calls == 1
    assert [r.value for r in results] == ["TOKEN-1"]


@pytest.mark.anyio
async def test_fetching_caller_is_not_held_when_nobody_waits() -> None:
    source = GatedSource()
    cache = wx.TokenCache(source)
    async with safety_release(source.release):
        with anyio.move_on_after(0.2) as scope:
            await cache.get(NO_ENDPOINT)
        assert scope.cancelled_caught
        assert not source.release.is_set()
        source.release.set()
    # The aborted fetch published nothing; the next call asks again and gets a token.
    assert cache.current is None
    token = await cache.get(NO_ENDPOINT)
    assert token.value == "TOKEN-2"
    assert source.calls == 2


@pytest.mark.anyio
async def test_client_call_fetching_a_token_raises_the_callers_timeout() -> None:
    router = make_router()
    gate = anyio.Event()
    entered = anyio.Event()
    token_requests = 0

    async def blocked_token(request: httpx.Request) -> httpx.Response:
        nonlocal token_requests
        token_requests += 1
        entered.set()
        await gate.wait()
        return token_response(TOKEN)

    token_route = router.post(STABLE).mock(side_effect=blocked_token)
    cancel_route = router.post(CANCEL).respond(json=OK)
    results: list[Any] = []
    async with wired(router) as client:

        async def waiter() -> None:
            await entered.wait()
            results.append(await client.cancel_order(**IDS))

        async with safety_release(gate), anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            with pytest.raises(TimeoutError) as info:
                with anyio.fail_after(0.2):
                    await client.cancel_order(**IDS)
            assert not gate.is_set()
            assert not isinstance(info.value, wx.WxLogisticsError)
            gate.set()
    assert [type(r) for r in results] == [wx.CancelOrderResult]
    assert token_requests == 2  # the abandoned request and the waiter's
    assert token_route.call_count == 1  # (respx records only requests that got an answer)
    assert cancel_route.call_count == 1  # the caller that gave up sent nothing
    assert cancel_route.calls.last.request.url.params["access_token"] == TOKEN


@pytest.mark.anyio
async def test_fetch_bound_raises_request_timeout_in_fetcher_and_waiters() -> None:
    source = GatedSource()  # never released: the fetch hangs
    cache = wx.TokenCache(source, fetch_timeout=0.2)
    results: list[Any] = []

    async def one() -> None:
        try:
            results.append(await cache.get(NO_ENDPOINT))
        except Exception as exc:  # collected for assertions
            results.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(one)
    assert [type(r) for r in results] == [wx.RequestTimeoutError] * 5
    assert str(results[0]) == "fetching an access token took longer than 0.2s"
    assert results[0].__context__ is None  # no cancellation (and its frames) chained to it
    assert source.calls == 1


# -- asyncio's own deadlines (asyncio only) -----------------------------------------------------


def asyncio_deadlines() -> list[str]:
    kinds = ["wait_for"]
    if sys.version_info >= (3, 11):
        kinds.append("timeout")
    return kinds


async def with_asyncio_deadline(kind: str, call: Callable[[], Awaitable[Any]]) -> Any:
    if kind == "wait_for":
        return await asyncio.wait_for(call(), 0.2)
    async with asyncio.timeout(0.2):
        return await call()


async def asyncio_safety_release(gate: anyio.Event) -> None:
    await asyncio.sleep(SAFETY_RELEASE)
    gate.set()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", asyncio_deadlines())
async def test_asyncio_deadline_of_fetching_caller(kind: str) -> None:
    source = GatedSource()
    cache = wx.TokenCache(source)
    safety = asyncio.ensure_future(asyncio_safety_release(source.release))

    async def waiter() -> wx.AccessToken:
        await source.entered(1).wait()
        return await cache.get(NO_ENDPOINT)

    waiters = [asyncio.ensure_future(waiter()) for _ in range(5)]
    try:
        with pytest.raises(asyncio.TimeoutError):
            await with_asyncio_deadline(kind, lambda: cache.get(NO_ENDPOINT))
        assert not source.release.is_set()
        await source.entered(2).wait()
        assert not any(w.done() for w in waiters)
        source.release.set()
        results = await asyncio.gather(*waiters)
    finally:
        for task in (safety, *waiters):
            task.cancel()
        await asyncio.gather(safety, *waiters, return_exceptions=True)
    assert [r.value for r in results] == ["TOKEN-2"] * 5
    assert source.calls == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", asyncio_deadlines())
async def test_asyncio_deadline_of_waiting_caller(kind: str) -> None:
    source = GatedSource()
    cache = wx.TokenCache(source)
    safety = asyncio.ensure_future(asyncio_safety_release(source.release))
    fetcher = asyncio.ensure_future(cache.get(NO_ENDPOINT))
    try:
        await source.entered(1).wait()
        with pytest.raises(asyncio.TimeoutError):
            await with_asyncio_deadline(kind, lambda: cache.get(NO_ENDPOINT))
        assert not source.release.is_set()
        assert not fetcher.done()
        source.release.set()
        token = await fetcher
    finally:
        safety.cancel()
        fetcher.cancel()
        await asyncio.gather(safety, fetcher, return_exceptions=True)
    assert token.value == "TOKEN-1"
    assert source.calls == 1
