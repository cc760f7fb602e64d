"""Token endpoint down inside the refresh window: keep the still-valid token, retry sparingly."""

from __future__ import annotations

import logging

import anyio
import httpx
import pytest

import wxlogistics as wx
from wxlogistics._tokens import REFRESH_RETRY_INTERVAL

from .helpers import (
    CANCEL,
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
from .test_tokens import NO_ENDPOINT, FakeClock, GatedSource

pytestmark = pytest.mark.anyio


def down() -> wx.ResponseError:
    return wx.ResponseError("unexpected HTTP status 503", status_code=503, path=STABLE)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "wxlogistics" and r.levelno == logging.WARNING
    ]


async def test_failed_refresh_keeps_valid_token_and_retries_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    error = down()
    source = GatedSource(7200, *[error] * 5, 7200, gate_from=99)
    cache = wx.TokenCache(source, clock=clock)
    old = await cache.get(NO_ENDPOINT)
    assert source.calls == 1

    clock.now = old.refresh_at + 1  # in the refresh window, valid for another 299 s
    for _ in range(10):
        assert await cache.get(NO_ENDPOINT) is old
    assert source.calls == 2  # one attempt, not one per call
    assert cache.fresh() is None
    assert cache.current is old
    assert len(warnings_of(caplog)) == 1

    clock.now += REFRESH_RETRY_INTERVAL - 0.01
    for _ in range(10):
        assert await cache.get(NO_ENDPOINT) is old
    assert source.calls == 2  # still inside the interval
    clock.now += 0.01
    for _ in range(10):
        assert await cache.get(NO_ENDPOINT) is old
    assert source.calls == 3  # the next interval: exactly one more attempt
    assert len(warnings_of(caplog)) == 2

    # Until it really expires the old token is used; from then on, calls fail (each asks).
    clock.now = old.expires_at - 0.01
    assert await cache.get(NO_ENDPOINT) is old
    assert source.calls == 4
    clock.now = old.expires_at
    with pytest.raises(wx.ResponseError) as info:
        await cache.get(NO_ENDPOINT)
    assert info.value is error
    with pytest.raises(wx.ResponseError):
        await cache.get(NO_ENDPOINT)
    assert source.calls == 6
    assert len(warnings_of(caplog)) == 3  # failures past expiry raise instead of warning

    # Once the endpoint is back, the next call gets a new token.
    new = await cache.get(NO_ENDPOINT)
    assert new.value == "TOKEN-7"
    assert source.calls == 7


async def test_refresh_warning_says_what_failed_and_hides_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    refused = wx.CredentialsError(40125, "invalid appsecret rid: 6a1b-2c3d", path=STABLE)
    source = GatedSource(7200, refused, gate_from=99)
    cache = wx.TokenCache(source, clock=clock)
    old = await cache.get(NO_ENDPOINT)
    clock.now = old.refresh_at + 100
    assert await cache.get(NO_ENDPOINT) is old
    [message] = warnings_of(caplog)
    assert message == (
        "could not refresh the access token (CredentialsError: [40125] invalid appsecret"
        " (rid: 6a1b-2c3d)); using the cached one, which expires in 200s;"
        f" next attempt in {REFRESH_RETRY_INTERVAL:g}s at the earliest"
    )
    assert "TOKEN-1" not in caplog.text


async def test_refresh_failure_of_a_custom_source_logs_only_its_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    source = GatedSource(7200, OSError(f"vault said no to {SECRET}"), gate_from=99)
    cache = wx.TokenCache(source, clock=clock)
    old = await cache.get(NO_ENDPOINT)
    clock.now = old.refresh_at
    assert await cache.get(NO_ENDPOINT) is old
    [message] = warnings_of(caplog)
    assert message.startswith("could not refresh the access token (OSError); ")
    assert SECRET not in caplog.text


async def test_callers_during_a_refresh_attempt_use_old_token_without_waiting() -> None:
    clock = FakeClock()
    error = down()
    source = GatedSource(7200, error, gate_from=2)
    cache = wx.TokenCache(source, clock=clock)
    old = await cache.get(NO_ENDPOINT)
    clock.now = old.refresh_at + 1
    refreshed: list[wx.AccessToken] = []

    async def refresher() -> None:
        refreshed.append(await cache.get(NO_ENDPOINT))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(refresher)
            await source.entered(2).wait()
            for _ in range(10):
                assert await cache.get(NO_ENDPOINT) is old  # the attempt is still blocked
            assert not source.release.is_set()
            source.release.set()
    assert refreshed == [old]  # the refresher itself also keeps the old token
    assert source.calls == 2


async def test_failed_refresh_of_a_dropped_token_raises() -> None:
    clock = FakeClock()
    error = down()
    source = GatedSource(7200, error, gate_from=2)
    cache = wx.TokenCache(source, clock=clock)
    old = await cache.get(NO_ENDPOINT)
    clock.now = old.refresh_at + 1
    results: list[object] = []

    async def refresher() -> None:
        try:
            results.append(await cache.get(NO_ENDPOINT))
        except wx.ResponseError as exc:
            results.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(refresher)
            await source.entered(2).wait()
            cache.invalidate(old)  # a business call reported it as revoked meanwhile
            source.release.set()
    assert results == [error]


async def test_client_keeps_calling_while_token_endpoint_is_down_in_refresh_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    router = make_router()
    token_route = router.post(STABLE).mock(
        side_effect=[token_response(TOKEN, 7200)] + [httpx.Response(503)] * 9
    )
    cancel_route = router.post(CANCEL).respond(json=OK)
    policy = wx.RetryPolicy(initial_delay=0, max_delay=0, jitter=0, max_retries=2)
    async with wired(router, clock=clock, retry_policy=policy) as client:
        await client.cancel_order(**IDS)
        clock.now += 7200 - 300 + 1  # refresh window
        for _ in range(5):
            await client.cancel_order(**IDS)
        assert token_route.call_count == 1 + 3  # one attempt (with its retries) for 5 calls
        clock.now += REFRESH_RETRY_INTERVAL
        for _ in range(5):
            await client.cancel_order(**IDS)
        assert token_route.call_count == 1 + 3 + 3
        assert len(warnings_of(caplog)) == 2
        clock.now += 300  # expired
        with pytest.raises(wx.ResponseError) as info:
            await client.cancel_order(**IDS)
        assert info.value.status_code == 503
        assert token_route.call_count == 1 + 3 + 3 + 3
    sent = [c.request.url.params["access_token"] for c in cancel_route.calls]
    assert sent == [TOKEN] * 11
    assert TOKEN not in caplog.text
    assert TOKEN2 not in caplog.text
