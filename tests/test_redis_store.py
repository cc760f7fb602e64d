"""RedisTokenStore against a real redis-server (see tests/redis_fixture.py)."""

from __future__ import annotations

import logging
import time

import anyio
import pytest

import wxlogistics as wx
from wxlogistics._stores import FORCE_REFRESH_PER_DAY, force_refresh_wait
from wxlogistics.testing import FakeWeChat

from . import redis_fixture
from .helpers import IDS
from .redis_fixture import RedisServer

# The real redis-server's fixtures (tests/conftest.py is not touched).
redis_server = redis_fixture.redis_server
redis_url = redis_fixture.redis_url
own_redis_server = redis_fixture.own_redis_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """redis.asyncio runs on asyncio only."""
    return "asyncio"


def _token(value: str, expires_in: float) -> wx.StoredToken:
    now = time.time()
    return wx.StoredToken(value=value, expires_at=now + expires_in, refresh_at=now + expires_in / 2)


async def test_keys_are_documented_and_readable_from_another_language(
    redis_url: str, redis_server: RedisServer
) -> None:
    store = wx.RedisTokenStore(redis_url)
    try:
        token = _token("tok-1", 7200)
        assert await store.save("wx1:stable", token) == token
        assert await store.load("wx1:stable") == token
    finally:
        await store.aclose()
    raw = redis_server.command("HGETALL", "wxlogistics:wx1:stable")
    assert b"access_token" in raw
    assert b"tok-1" in raw
    assert b"expires_at" in raw
    assert f"{token.expires_at!r}".encode() in raw  # epoch seconds, decimal
    ttl = int(redis_server.command("TTL", "wxlogistics:wx1:stable")[1:].strip())
    assert 7100 < ttl <= 7200
    assert redis_server.command("KEYS", "*").count(b"wxlogistics:") == 1
    assert b"secret" not in redis_server.command("KEYS", "*")


async def test_an_older_token_never_overwrites_a_newer_one(redis_url: str) -> None:
    store = wx.RedisTokenStore(redis_url, namespace="t")
    try:
        newer, older = _token("newer", 7200), _token("older", 3600)
        await store.save("k", newer)
        assert await store.save("k", older) == newer
        assert await store.load("k") == newer
        newest = _token("newest", 7300)
        assert await store.save("k", newest) == newest
    finally:
        await store.aclose()


async def test_discard_is_by_value(redis_url: str) -> None:
    store = wx.RedisTokenStore(redis_url)
    try:
        await store.save("k", _token("current", 7200))
        assert await store.discard("k", "stale") is False
        assert (await store.load("k")) is not None
        assert await store.discard("k", "current") is True
        assert await store.load("k") is None
    finally:
        await store.aclose()


async def test_lease_is_exclusive_released_by_its_holder_only_and_expires(redis_url: str) -> None:
    store = wx.RedisTokenStore(redis_url)
    try:
        lease = await store.acquire_lease("k", 10)
        assert lease is not None
        assert await store.acquire_lease("k", 10) is None
        await store.release_lease("k", "someone-else")
        assert await store.acquire_lease("k", 10) is None
        await store.release_lease("k", lease)
        short = await store.acquire_lease("k", 0.2)
        assert short is not None
        with anyio.fail_after(5):  # a crashed holder's lease ends by itself
            while (again := await store.acquire_lease("k", 10)) is None:  # noqa: ASYNC110
                await anyio.sleep(0.05)  # polling Redis: no event to wait on
        assert again != short
    finally:
        await store.aclose()


async def test_force_refresh_limiter_in_lua_matches_the_table(redis_url: str) -> None:
    store = wx.RedisTokenStore(redis_url)
    try:
        t = 1_000_000.0
        taken: list[float] = []
        for i in range(45):
            now = t + i * 20  # every 20 s: half refused for the 30 s gap, then the day's 20
            expected = force_refresh_wait(taken, now)
            wait = await store.take_force_refresh("wx1:stable", now)
            assert wait == pytest.approx(expected)
            if wait == 0:
                taken.append(now)
        assert len(taken) == FORCE_REFRESH_PER_DAY
    finally:
        await store.aclose()


async def test_force_refresh_limit_is_fleet_wide(redis_url: str) -> None:
    fake = FakeWeChat()
    stores = [wx.RedisTokenStore(redis_url), wx.RedisTokenStore(redis_url)]
    try:
        async with (
            fake.client(token_store=stores[0]) as a,
            fake.client(token_store=stores[1]) as b,
        ):
            await a.tokens.force_refresh()
            with pytest.raises(wx.ForceRefreshLimitError):
                await b.tokens.force_refresh()  # another "process", same store
    finally:
        for store in stores:
            await store.aclose()
    assert sum(1 for c in fake.calls if c.body and c.body.get("force_refresh") is True) == 1


async def test_clients_sharing_redis_fetch_once(redis_url: str) -> None:
    fake = FakeWeChat(unknown_orders="cancel")
    stores = [wx.RedisTokenStore(redis_url) for _ in range(3)]
    try:
        clients = [fake.client(token_source="classic", token_store=s) for s in stores]
        async with anyio.create_task_group() as tg:
            for client in clients * 100:
                tg.start_soon(lambda c=client: c.cancel_order(**IDS))
        assert fake.token_fetches == 1
        fake.revoke_tokens()
        async with anyio.create_task_group() as tg:
            for client in clients * 100:
                tg.start_soon(lambda c=client: c.cancel_order(**IDS))
        assert fake.token_fetches == 2
        for client in clients:
            await client.aclose()
    finally:
        for store in stores:
            await store.aclose()


async def test_redis_down_calls_fall_back_and_never_hang(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wxlogistics")
    fake = FakeWeChat(unknown_orders="cancel")
    store = wx.RedisTokenStore(own_redis_server.url, op_timeout=1.0)
    try:
        async with fake.client(token_store=store) as client:
            await client.cancel_order(**IDS)
            own_redis_server.stop()
            fake.expire_tokens()  # the next call needs a new token: through the store
            with anyio.fail_after(10):
                results = []
                async with anyio.create_task_group() as tg:
                    for _ in range(50):

                        async def one() -> None:
                            results.append(await client.cancel_order(**IDS))

                        tg.start_soon(one)
            assert len(results) == 50
            assert client.tokens.fetch_count == 2
            with pytest.raises(wx.TokenStoreError, match="redis"):
                await store.load("x")
    finally:
        await store.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("token store unavailable" in w for w in warnings)
    assert fake.secret not in caplog.text


async def test_an_unreachable_redis_times_out_within_the_bound(redis_url: str) -> None:
    # A listener that accepts and never answers: redis-py would wait for ever without a bound.
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def hold(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, hold)
        store = wx.RedisTokenStore(f"redis://127.0.0.1:{port}/0", op_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(wx.TokenStoreError):
            await store.load("k")
        assert time.monotonic() - started < 3
        await store.aclose()
        tg.cancel_scope.cancel()


def test_redis_store_refuses_trio() -> None:
    import trio

    store = wx.RedisTokenStore("redis://127.0.0.1:1/0")

    async def main() -> None:
        with pytest.raises(wx.ValidationError, match="asyncio only"):
            await store.load("k")

    trio.run(main)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(wx.ValidationError, match="lease_wait"):
        wx.RedisTokenStore("redis://127.0.0.1:1/0", lease_ttl=10, lease_wait=5)
    with pytest.raises(wx.ValidationError, match="namespace"):
        wx.RedisTokenStore("redis://127.0.0.1:1/0", namespace="a b")


async def test_store_error_on_save_holds_no_token(own_redis_server: RedisServer) -> None:
    from .test_tokens_secrets import assert_nowhere

    store = wx.RedisTokenStore(own_redis_server.url, op_timeout=1.0)
    own_redis_server.stop()
    token = _token("tok-" + "x" * 20, 7200)  # a StoredToken: its repr hides the value
    try:
        with pytest.raises(wx.TokenStoreError, match="redis save failed") as caught:
            await store.save("k", token)
    finally:
        await store.aclose()
    assert_nowhere(caught.value, token.value)


def test_missing_redis_server_fails_under_ci_and_skips_locally(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_fixture, "redis_server_binary", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y redis-server"):
        redis_fixture._need_binary()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        redis_fixture._need_binary()
