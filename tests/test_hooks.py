"""Observability hooks: which events fire, with which fields, and what they never hold."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import attrs
import httpx
import pytest

import wxlogistics as wx
import wxlogistics._hooks as hooks_module
from wxlogistics.testing import FakeWeChat

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

pytestmark = pytest.mark.anyio


class Recorder:
    """Hooks that keep every event, in order."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.hooks = wx.Hooks(
            on_call=self.events.append,
            on_retry=self.events.append,
            on_token=self.events.append,
            on_lease_wait=self.events.append,
        )

    def of(self, cls: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


def busy(errcode: int = -1) -> httpx.Response:
    return httpx.Response(200, json={"errcode": errcode, "errmsg": "system busy"})


async def test_success_fires_a_token_and_a_call_event() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response(TOKEN, 7200))
    router.post(CANCEL).mock(return_value=httpx.Response(200, json=OK))
    rec = Recorder()
    async with wired(router, hooks=rec.hooks) as client:
        await client.cancel_order(**IDS)
    assert [type(e) for e in rec.events] == [wx.TokenEvent, wx.CallEvent]
    token, call = rec.events
    assert token.source == "stable"
    assert token.kind == "fetched"
    assert token.error_type is None
    assert token.from_store is False
    assert 7100 < token.expires_in_s <= 7200
    assert 0 <= token.latency_s < 30
    assert call.endpoint == "cancelOrder"
    assert call.path == CANCEL
    assert call.errcode == 0
    assert call.error_type is None
    assert call.ok is True
    assert call.attempts == 1
    assert call.may_have_been_sent is True
    assert 0 <= call.latency_s < 30


async def test_retry_then_success() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(CANCEL).mock(
        side_effect=[busy(-1), httpx.Response(503), httpx.Response(200, json=OK)]
    )
    rec = Recorder()
    async with wired(router, hooks=rec.hooks) as client:
        await client.cancel_order(**IDS)
    first, second = rec.of(wx.RetryEvent)
    assert first == wx.RetryEvent(
        endpoint="cancelOrder",
        path=CANCEL,
        attempt=2,
        delay_s=0.0,
        error_type="SystemBusyError",
        errcode=-1,
        reason="SystemBusyError errcode=-1",
    )
    assert second.attempt == 3
    assert second.error_type == "ResponseError"
    assert second.errcode is None
    assert second.reason == "ResponseError HTTP 503"
    (call,) = rec.of(wx.CallEvent)
    assert (call.attempts, call.errcode, call.error_type) == (3, 0, None)
    # Retries are reported before the call ends.
    assert rec.events.index(second) < rec.events.index(call)


async def test_retry_delay_is_the_one_slept() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(CANCEL).mock(side_effect=[busy(-1), httpx.Response(200, json=OK)])
    rec = Recorder()
    policy = wx.RetryPolicy(initial_delay=0.05, max_delay=0.05, jitter=0)
    async with wired(router, hooks=rec.hooks, retry_policy=policy) as client:
        await client.cancel_order(**IDS)
    (retry,) = rec.of(wx.RetryEvent)
    assert retry.delay_s == 0.05
    (call,) = rec.of(wx.CallEvent)
    assert call.latency_s >= 0.05


async def test_token_refresh_after_42001() -> None:
    router = make_router()
    router.post(STABLE).mock(side_effect=[token_response(TOKEN), token_response(TOKEN2)])

    def cancel(request: httpx.Request) -> httpx.Response:
        if request.url.params["access_token"] == TOKEN:
            return httpx.Response(200, json={"errcode": 42001, "errmsg": "access_token expired"})
        return httpx.Response(200, json=OK)

    router.post(CANCEL).mock(side_effect=cancel)
    rec = Recorder()
    async with wired(router, hooks=rec.hooks) as client:
        await client.cancel_order(**IDS)
    assert [type(e).__name__ for e in rec.events] == [
        "TokenEvent",
        "RetryEvent",
        "TokenEvent",
        "CallEvent",
    ]
    fetched, replay, refreshed, call = rec.events
    assert (fetched.kind, refreshed.kind) == ("fetched", "refreshed")
    assert refreshed.source == "stable"
    assert refreshed.expires_in_s is not None
    assert refreshed.expires_in_s > 7000
    assert (replay.attempt, replay.delay_s, replay.error_type, replay.errcode) == (
        2,
        0.0,
        "AccessTokenError",
        42001,
    )
    assert (call.attempts, call.errcode, call.error_type) == (2, 0, None)


async def test_api_failure() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(CANCEL).mock(
        return_value=httpx.Response(200, json={"errcode": 40199, "errmsg": "not exist"})
    )
    rec = Recorder()
    async with wired(router, hooks=rec.hooks) as client:
        with pytest.raises(wx.WaybillNotFoundError):
            await client.cancel_order(**IDS)
    assert rec.of(wx.RetryEvent) == []
    (call,) = rec.of(wx.CallEvent)
    assert call.errcode == 40199
    assert call.error_type == "WaybillNotFoundError"
    assert call.ok is False
    assert call.attempts == 1
    assert call.may_have_been_sent is False


async def test_timeouts_until_retries_run_out() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    cancel = router.post(CANCEL).mock(side_effect=httpx.ReadTimeout("timed out"))
    rec = Recorder()
    async with wired(router, hooks=rec.hooks) as client:  # max_retries 2
        with pytest.raises(wx.RequestTimeoutError):
            await client.cancel_order(**IDS)
    assert cancel.call_count == 3
    assert [(r.attempt, r.reason) for r in rec.of(wx.RetryEvent)] == [
        (2, "RequestTimeoutError"),
        (3, "RequestTimeoutError"),
    ]
    (call,) = rec.of(wx.CallEvent)
    assert (call.errcode, call.error_type, call.attempts) == (None, "RequestTimeoutError", 3)
    assert call.may_have_been_sent is True


async def test_cancel_confirmed_by_retry_is_a_success_with_its_errcode() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(CANCEL).mock(
        side_effect=[
            httpx.Response(502),
            httpx.Response(200, json={"errcode": 9300524, "errmsg": "already cancelled"}),
        ]
    )
    rec = Recorder()
    async with wired(router, hooks=rec.hooks) as client:
        result = await client.cancel_order(**IDS)
    assert result.confirmed_by_retry is True
    (call,) = rec.of(wx.CallEvent)
    assert (call.errcode, call.error_type, call.attempts, call.ok) == (9300524, None, 2, True)


async def test_token_failure() -> None:
    router = make_router()
    router.post(STABLE).mock(
        return_value=httpx.Response(200, json={"errcode": 40125, "errmsg": "invalid appsecret"})
    )
    cancel = router.post(CANCEL).mock(return_value=httpx.Response(200, json=OK))
    rec = Recorder()
    async with wired(router, hooks=rec.hooks) as client:
        with pytest.raises(wx.CredentialsError):
            await client.cancel_order(**IDS)
    assert cancel.call_count == 0
    token, call = rec.events
    assert token == wx.TokenEvent(
        source="stable",
        kind="failed",
        latency_s=token.latency_s,
        expires_in_s=None,
        error_type="CredentialsError",
    )
    assert (call.error_type, call.errcode, call.attempts) == ("CredentialsError", 40125, 1)
    assert call.may_have_been_sent is False


async def test_token_endpoint_retries_are_reported() -> None:
    router = make_router()
    router.post(STABLE).mock(side_effect=[httpx.Response(503), token_response()])
    router.post(CANCEL).mock(return_value=httpx.Response(200, json=OK))
    rec = Recorder()
    async with wired(router, hooks=rec.hooks) as client:
        await client.cancel_order(**IDS)
    retry, token, call = rec.events
    assert (retry.endpoint, retry.path, retry.attempt) == ("stable_token", STABLE, 2)
    assert retry.reason == "ResponseError HTTP 503"
    assert (token.kind, token.error_type) == ("fetched", None)
    assert call.attempts == 1  # the token's retry is not the call's


async def test_get_endpoints_are_named_too() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.get("/cgi-bin/express/business/delivery/getall").mock(
        return_value=httpx.Response(200, json={"count": 0, "data": []})
    )
    rec = Recorder()
    async with wired(router, hooks=rec.hooks) as client:
        await client.get_all_delivery()
    (call,) = rec.of(wx.CallEvent)
    assert call.endpoint == "getAllDelivery"
    assert call.path == "/cgi-bin/express/business/delivery/getall"


async def test_force_refresh_fires_a_refreshed_event() -> None:
    fake = FakeWeChat()
    rec = Recorder()
    async with fake.client(hooks=rec.hooks) as client:
        await client.get_access_token()
        await client.tokens.force_refresh()
    assert [e.kind for e in rec.of(wx.TokenEvent)] == ["fetched", "refreshed"]


async def test_failed_early_refresh_keeps_the_token_and_says_so() -> None:
    router = make_router()
    router.post(STABLE).mock(
        side_effect=[token_response(TOKEN, 7200), httpx.Response(200, json={"errcode": 40125})]
    )
    router.post(CANCEL).mock(return_value=httpx.Response(200, json=OK))
    now = [0.0]
    rec = Recorder()
    async with wired(router, hooks=rec.hooks, clock=lambda: now[0]) as client:
        await client.cancel_order(**IDS)
        now[0] = 7000.0  # past refresh_at, before expiry
        await client.cancel_order(**IDS)  # the old token, with a WARNING log
    tokens = rec.of(wx.TokenEvent)
    assert [(t.kind, t.error_type) for t in tokens] == [
        ("fetched", None),
        ("failed", "CredentialsError"),
    ]
    assert [c.ok for c in rec.of(wx.CallEvent)] == [True, True]


# -- lease waits (shared store) ------------------------------------------------------------------


class HeldLeaseStore(wx.MemoryTokenStore):
    """Another process holds the lease for ever and never publishes a token."""

    async def acquire_lease(self, key: str, ttl: float) -> str | None:
        return None


async def test_lease_wait_that_times_out() -> None:
    fake = FakeWeChat()
    rec = Recorder()
    store = HeldLeaseStore(lease_ttl=0.1, lease_wait=0.2)
    async with fake.client(token_store=store, hooks=rec.hooks) as client:
        with anyio.fail_after(5), pytest.raises(wx.TokenLeaseTimeoutError):
            await client.cancel_order(**IDS)
    wait, token, call = rec.events
    assert wait.source == "stable"
    assert wait.key == f"{fake.appid}:stable"
    assert wait.outcome == "timed_out"
    assert 0.1 < wait.waited_s < 5
    assert (token.kind, token.error_type) == ("failed", "TokenLeaseTimeoutError")
    assert call.error_type == "TokenLeaseTimeoutError"


class RefusalSignallingStore(wx.MemoryTokenStore):
    """A MemoryTokenStore that says when it refused a lease."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = anyio.Event()

    async def acquire_lease(self, key: str, ttl: float) -> str | None:
        lease = await super().acquire_lease(key, ttl)
        if lease is None:
            self.refused.set()
        return lease


async def test_lease_wait_that_adopts_the_holders_token() -> None:
    fake = FakeWeChat(unknown_orders="cancel")
    store = RefusalSignallingStore()
    key = f"{fake.appid}:stable"
    lease = await store.acquire_lease(key, 10)  # "another process" is refreshing
    assert lease is not None
    rec = Recorder()
    async with (
        fake.client(token_store=store, hooks=rec.hooks) as client,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(lambda: client.cancel_order(**IDS))
        await store.refused.wait()  # the call found the lease held: it waits now
        async with fake.client() as holder:
            token = await holder.get_access_token()
        now = time.time()
        stored = wx.StoredToken(value=token.value, expires_at=now + 7000, refresh_at=now + 6000)
        await store.save(key, stored)
        await store.release_lease(key, lease)
    wait, got, call = rec.events
    assert (wait.outcome, wait.key) == ("adopted", key)
    assert wait.waited_s > 0
    assert (got.kind, got.from_store) == ("fetched", True)
    assert got.expires_in_s is not None
    assert 6900 < got.expires_in_s <= 7000
    assert call.ok


async def test_no_lease_event_without_a_wait() -> None:
    fake = FakeWeChat(unknown_orders="cancel")
    rec = Recorder()
    async with fake.client(token_store=wx.MemoryTokenStore(), hooks=rec.hooks) as client:
        await client.cancel_order(**IDS)
    assert rec.of(wx.LeaseWaitEvent) == []
    (token,) = rec.of(wx.TokenEvent)
    assert (token.kind, token.from_store) == ("fetched", False)


# -- secrets -------------------------------------------------------------------------------------


async def test_no_event_holds_a_secret() -> None:
    """Every kind of event, from calls with a real secret and token: none shows either."""
    router = make_router()
    router.post(STABLE).mock(
        side_effect=[httpx.Response(503), token_response(TOKEN), token_response(TOKEN2)]
    )

    def cancel(request: httpx.Request) -> httpx.Response:
        if request.url.params["access_token"] == TOKEN:
            return httpx.Response(
                200, json={"errcode": 42001, "errmsg": f"expired {TOKEN} {SECRET}"}
            )
        return httpx.Response(200, json={"errcode": 40199, "errmsg": f"bad {TOKEN2} {SECRET}"})

    router.post(CANCEL).mock(side_effect=cancel)
    rec = Recorder()
    async with wired(router, hooks=rec.hooks) as client:
        with pytest.raises(wx.WaybillNotFoundError):
            await client.cancel_order(**IDS)
    store = HeldLeaseStore(lease_ttl=0.1, lease_wait=0.2)
    async with wired(make_router(), hooks=rec.hooks, token_store=store) as client:
        with pytest.raises(wx.TokenLeaseTimeoutError):
            await client.cancel_order(**IDS)
    kinds = {type(e) for e in rec.events}
    assert kinds == {wx.TokenEvent, wx.RetryEvent, wx.CallEvent, wx.LeaseWaitEvent}
    for event in rec.events:
        text = repr(event) + str(attrs.asdict(event))
        for secret in (SECRET, TOKEN, TOKEN2, "access_token="):
            assert secret not in text, event


# -- hooks that fail ------------------------------------------------------------------------------


async def test_a_raising_hook_never_breaks_a_call(caplog: pytest.LogCaptureFixture) -> None:
    def boom(event: object) -> None:
        raise RuntimeError(f"hook bug on {event!r}")

    hooks = wx.Hooks(on_call=boom, on_retry=boom, on_token=boom)
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(CANCEL).mock(
        side_effect=[busy(-1), httpx.Response(200, json=OK), httpx.Response(200, json=OK)]
    )
    caplog.set_level(logging.WARNING, logger="wxlogistics")
    async with wired(router, hooks=hooks) as client:
        first = await client.cancel_order(**IDS)
        second = await client.cancel_order(**IDS)
    assert first.errcode == 0
    assert second.errcode == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # Once per hook, however often it fails.
    assert len(warnings) == 3
    assert {w.split()[1] for w in warnings} == {"on_call", "on_retry", "on_token"}
    assert all("RuntimeError" in w and "the call went on" in w for w in warnings)
    assert TOKEN not in caplog.text
    assert SECRET not in caplog.text


async def test_a_raising_hook_does_not_change_a_failure() -> None:
    def boom(event: object) -> None:
        raise ValueError("nope")

    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(CANCEL).mock(
        return_value=httpx.Response(200, json={"errcode": 9300506, "errmsg": "has traces"})
    )
    async with wired(router, hooks=wx.Hooks(on_call=boom)) as client:
        with pytest.raises(wx.WaybillHasTracesError) as caught:
            await client.cancel_order(**IDS)
    assert caught.value.__context__ is None  # the hook's error is not chained to the call's


# -- no hooks, no events --------------------------------------------------------------------------


@pytest.mark.parametrize("hooks", [None, wx.Hooks()], ids=["none", "empty"])
async def test_without_hooks_no_event_is_built(
    monkeypatch: pytest.MonkeyPatch, hooks: wx.Hooks | None
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("an event was built without hooks")

    for name in ("CallEvent", "RetryEvent", "TokenEvent", "LeaseWaitEvent"):
        monkeypatch.setattr(hooks_module, name, forbidden)
    monkeypatch.setattr("wxlogistics._transport._Observer", forbidden)

    router = make_router()
    router.post(STABLE).mock(
        side_effect=[
            httpx.Response(503),  # the token endpoint retried
            token_response(TOKEN),
            token_response(TOKEN2),  # after 42001
            token_response("ACCESS-TOKEN-three-000"),  # force_refresh
        ]
    )
    answers = iter(
        [
            busy(-1),  # retried
            httpx.Response(200, json={"errcode": 42001}),  # token replay
            httpx.Response(200, json=OK),
            httpx.Response(200, json={"errcode": 40199}),  # a failure
        ]
    )
    router.post(CANCEL).mock(side_effect=lambda request: next(answers))
    async with wired(router, hooks=hooks) as client:
        assert client._transport._hooks is None
        assert client.tokens._hooks is None
        result = await client.cancel_order(**IDS)
        with pytest.raises(wx.WaybillNotFoundError):
            await client.cancel_order(**IDS)
        await client.tokens.force_refresh()
    assert result.errcode == 0
    store = HeldLeaseStore(lease_ttl=0.1, lease_wait=0.2)
    async with wired(make_router(), hooks=hooks, token_store=store) as client:
        with pytest.raises(wx.TokenLeaseTimeoutError):
            await client.cancel_order(**IDS)


# -- validation ---------------------------------------------------------------------------------


def test_hooks_must_be_sync_callables() -> None:
    async def async_hook(event: wx.CallEvent) -> None:
        pass

    class AsyncCallable:
        async def __call__(self, event: wx.CallEvent) -> None:
            pass

    with pytest.raises(wx.ValidationError, match="on_call must be a callable"):
        wx.Hooks(on_call=42)  # type: ignore[arg-type]
    with pytest.raises(wx.ValidationError, match=r"on_retry must be a plain \(synchronous\)"):
        wx.Hooks(on_retry=async_hook)  # type: ignore[arg-type]
    with pytest.raises(wx.ValidationError, match="queue"):
        wx.Hooks(on_token=AsyncCallable())  # type: ignore[arg-type]
    with pytest.raises(wx.ValidationError, match="hooks must be a Hooks, not dict"):
        wx.AsyncLogistics("wx1234567890abcdef", SECRET, hooks={"on_call": print})  # type: ignore[arg-type]


def test_hooks_are_frozen_and_their_repr_is_plain() -> None:
    hooks = wx.Hooks(on_call=print)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        hooks.on_call = None  # type: ignore[misc]
    assert repr(hooks).startswith("Hooks(on_call=<built-in function print>, on_retry=None")
    assert "warned" not in repr(hooks)
    assert wx.Hooks().empty
    assert not hooks.empty
