"""The token cache over a TokenStore (in-process, MemoryTokenStore and failing stores)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import wxlogistics as wx
from wxlogistics.testing import FakeWeChat

from .helpers import IDS

pytestmark = pytest.mark.anyio


class CountingStore(wx.MemoryTokenStore):
    """A MemoryTokenStore that counts the calls made to it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[str] = []

    async def load(self, key: str) -> wx.StoredToken | None:
        self.calls.append("load")
        return await super().load(key)

    async def save(self, key: str, token: wx.StoredToken) -> wx.StoredToken:
        self.calls.append("save")
        return await super().save(key, token)

    async def discard(self, key: str, value: str) -> bool:
        self.calls.append("discard")
        return await super().discard(key, value)

    async def acquire_lease(self, key: str, ttl: float) -> str | None:
        self.calls.append("acquire")
        return await super().acquire_lease(key, ttl)


class BrokenStore:
    """A store whose every call fails, as Redis does when it is down."""

    lease_ttl = 1.0
    lease_wait = 2.0

    def __init__(self) -> None:
        self.calls = 0

    async def _fail(self, *args: Any) -> Any:
        self.calls += 1
        raise wx.TokenStoreError("redis load failed: ConnectionError: connection refused")

    load = save = discard = acquire_lease = release_lease = take_force_refresh = _fail


async def test_two_clients_sharing_a_store_fetch_once() -> None:
    fake = FakeWeChat(unknown_orders="cancel")
    store = wx.MemoryTokenStore()
    async with fake.client(token_store=store) as a, fake.client(token_store=store) as b:
        async with anyio.create_task_group() as tg:
            for client in (a, b) * 50:
                tg.start_soon(lambda c=client: c.cancel_order(**IDS))
        assert a.tokens.fetch_count + b.tokens.fetch_count == 1
        assert a.tokens.store_hits + b.tokens.store_hits == 1
    assert fake.token_fetches == 1
    assert sum(1 for c in fake.calls if c.errcode == 0) == 101  # the fetch + 100 cancels


async def test_a_refused_token_is_dropped_by_value_and_refetched_once() -> None:
    fake = FakeWeChat(unknown_orders="cancel")
    store = CountingStore()
    async with (
        fake.client(token_source="classic", token_store=store) as a,
        fake.client(token_source="classic", token_store=store) as b,
    ):
        await a.cancel_order(**IDS)
        await b.cancel_order(**IDS)
        first = (await a.get_access_token()).value
        fake.revoke_tokens()
        async with anyio.create_task_group() as tg:
            for client in (a, b) * 100:
                tg.start_soon(lambda c=client: c.cancel_order(**IDS))
        second = (await b.get_access_token()).value
    assert fake.token_fetches == 2  # the first token, and one refresh for both clients
    assert second != first
    assert (await store.load(f"{fake.appid}:classic")).value == second  # type: ignore[union-attr]
    assert store.calls.count("discard") == 2  # each client drops the failed one, by value
    assert [c.errcode for c in fake.calls].count(40001) <= 200


async def test_discard_only_drops_the_token_that_failed() -> None:
    store = wx.MemoryTokenStore(clock=lambda: 1000.0)
    token = wx.StoredToken(value="new", expires_at=9000.0, refresh_at=8000.0)
    await store.save("k", token)
    assert await store.discard("k", "old") is False
    assert await store.load("k") == token
    assert await store.discard("k", "new") is True
    assert await store.load("k") is None


async def test_an_older_token_never_overwrites_a_newer_one() -> None:
    store = wx.MemoryTokenStore(clock=lambda: 1000.0)
    newer = wx.StoredToken(value="newer", expires_at=9000.0, refresh_at=8000.0)
    older = wx.StoredToken(value="older", expires_at=5000.0, refresh_at=4000.0)
    assert await store.save("k", newer) == newer
    assert await store.save("k", older) == newer
    assert await store.load("k") == newer


async def test_the_hot_path_makes_no_store_call() -> None:
    fake = FakeWeChat(unknown_orders="cancel")
    store = CountingStore()
    async with fake.client(token_store=store) as client:
        await client.cancel_order(**IDS)
        before = list(store.calls)
        for _ in range(100):
            await client.cancel_order(**IDS)
        assert client.tokens.fresh() is not None  # sync, no await
    assert before == ["load", "acquire", "load", "save"]
    assert store.calls == before


async def test_a_broken_store_falls_back_to_the_own_cache(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeWeChat(unknown_orders="cancel")
    store = BrokenStore()
    caplog.set_level(logging.WARNING, logger="wxlogistics")
    async with fake.client(token_store=store) as client:
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(lambda: client.cancel_order(**IDS))
        fake.expire_tokens()
        await client.cancel_order(**IDS)  # a second flight, the store still down
    assert fake.token_fetches == 2
    assert sum(1 for c in fake.calls if c.errcode == 0) == 2 + 51
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # rate limited: one per 30 s
    assert "token store unavailable" in warnings[0]
    assert fake.secret not in caplog.text


class HeldLeaseStore(wx.MemoryTokenStore):
    """Another process holds the lease for ever and never publishes a token."""

    async def acquire_lease(self, key: str, ttl: float) -> str | None:
        return None


async def test_waiting_for_a_lease_ends_in_a_typed_error() -> None:
    fake = FakeWeChat()
    store = HeldLeaseStore(lease_ttl=0.1, lease_wait=0.5)
    async with fake.client(token_store=store) as client:
        with anyio.fail_after(5):  # the bound is 0.5 s; never a hang
            with pytest.raises(wx.TokenLeaseTimeoutError, match="lease") as caught:
                await client.cancel_order(**IDS)
    assert isinstance(caught.value, wx.RequestTimeoutError)
    assert caught.value.may_have_been_sent is False
    assert fake.calls == []


async def test_a_waiter_adopts_the_holders_token() -> None:
    fake = FakeWeChat(unknown_orders="cancel")
    store = wx.MemoryTokenStore()
    key = f"{fake.appid}:stable"
    lease = await store.acquire_lease(key, 10)  # "another process" is refreshing
    assert lease is not None
    async with fake.client(token_store=store) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: client.cancel_order(**IDS))
            await anyio.sleep(0.05)
            assert fake.calls == []  # waiting for the holder
            async with fake.client() as holder:
                token = await holder.get_access_token()
            # publish as the holder would, with wall-clock deadlines
            import time

            await store.save(
                key,
                wx.StoredToken(
                    value=token.value, expires_at=time.time() + 7000, refresh_at=time.time() + 6000
                ),
            )
            await store.release_lease(key, lease)
        assert client.tokens.fetch_count == 0
        assert client.tokens.store_hits == 1
    assert fake.token_fetches == 1  # the holder's
    assert fake.calls[-1].token == token.value


async def test_wall_clock_deadlines_go_into_the_store() -> None:
    fake = FakeWeChat(token_lifetime=7200)
    store = wx.MemoryTokenStore()
    import time

    before = time.time()
    async with fake.client(token_store=store) as client:
        await client.get_access_token()
    stored = await store.load(f"{fake.appid}:stable")
    assert stored is not None
    assert before + 7190 <= stored.expires_at <= time.time() + 7200
    assert stored.refresh_at == pytest.approx(stored.expires_at - 300, abs=1)
    assert "stable-" not in repr(stored)


# -- secrets: no token or app secret in the frames of errors raised through a store ------------


async def test_credentials_error_through_a_store_holds_no_secret_or_refused_token() -> None:
    from .test_tokens_secrets import assert_nowhere

    fake = FakeWeChat(unknown_orders="cancel")
    store = wx.MemoryTokenStore()
    async with fake.client(token_store=store) as client:
        refused = await client.get_access_token()  # its repr hides the value
        fake.expire_tokens()
        fake.fail_next(errcode=40164, path="/cgi-bin/stable_token")
        with pytest.raises(wx.CredentialsError) as caught:
            await client.cancel_order(**IDS)
    assert caught.value.errcode == 40164
    assert_nowhere(caught.value, refused.value, fake.secret)


async def test_lease_timeout_holds_no_refused_token() -> None:
    from .test_tokens_secrets import assert_nowhere

    fake = FakeWeChat(unknown_orders="cancel")
    store = HeldLeaseStore(lease_ttl=0.1, lease_wait=0.3)
    async with fake.client(token_store=store) as client:
        # Fetched without the lease (the store refuses it): through a client of its own.
        async with fake.client(token_store=wx.MemoryTokenStore()) as other:
            token = await other.get_access_token()
        import time

        await store.save(
            f"{fake.appid}:stable",
            wx.StoredToken(
                value=token.value, expires_at=time.time() + 7000, refresh_at=time.time() + 6000
            ),
        )
        await client.cancel_order(**IDS)  # adopted from the store
        fake.revoke_tokens()
        with anyio.fail_after(5), pytest.raises(wx.TokenLeaseTimeoutError) as caught:
            await client.cancel_order(**IDS)
    assert_nowhere(caught.value, token.value, fake.secret)
