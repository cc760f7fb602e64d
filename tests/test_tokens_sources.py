"""Token sources beyond stable/classic: a caller's callable, a static token, Cloud Run mode,
and the explicit, rate-limited force refresh of the stable source."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import wxlogistics as wx
from wxlogistics._stores import FORCE_REFRESH_PER_DAY, force_refresh_wait
from wxlogistics.testing import FakeWeChat

from .helpers import IDS, NO_WAIT

pytestmark = pytest.mark.anyio

TOKEN_PATHS = {"/cgi-bin/token", "/cgi-bin/stable_token"}


async def _issued_by(fake: FakeWeChat) -> str:
    """A token the fake accepts, fetched by another client."""
    async with fake.client() as other:
        return (await other.get_access_token()).value


async def test_callable_source_is_asked_again_once_on_a_token_error() -> None:
    fake = FakeWeChat(unknown_orders="cancel")
    good = await _issued_by(fake)
    fake.reset_calls()
    fetches_before = fake.token_fetches
    answers = ["not-a-token-the-fake-knows", good]
    asked: list[str] = []

    async def central() -> str:
        asked.append(answers[len(asked)])
        return asked[-1]

    source = wx.CallableTokenSource(func=central, appid=fake.appid)
    async with wx.AsyncLogistics(
        token_source=source, transport=fake.transport(), retry_policy=NO_WAIT
    ) as client:
        result = await client.cancel_order(**IDS)
        assert result.errcode == 0
        await client.cancel_order(**IDS)  # the good token is reused: not asked again

    assert len(asked) == 2
    assert [c.token for c in fake.calls] == ["not-a-token-the-fake-knows", good, good]
    assert [c.errcode for c in fake.calls] == [40001, 0, 0]
    assert not any(c.path in TOKEN_PATHS for c in fake.calls)  # never fetched from WeChat
    assert fake.token_fetches == fetches_before


async def test_callable_source_refused_twice_raises_access_token_error() -> None:
    fake = FakeWeChat(unknown_orders="cancel")
    calls = 0

    async def central() -> wx.IssuedToken:
        nonlocal calls
        calls += 1
        return wx.IssuedToken(value=f"stale-{calls}", expires_in=7200)

    async with wx.AsyncLogistics(
        token_source=wx.CallableTokenSource(func=central),
        transport=fake.transport(),
        retry_policy=NO_WAIT,
    ) as client:
        with pytest.raises(wx.AccessTokenError) as caught:
            await client.cancel_order(**IDS)
    assert caught.value.errcode == 40001
    assert calls == 2
    assert [c.token for c in fake.calls] == ["stale-1", "stale-2"]


async def test_callable_source_returning_nonsense_is_a_validation_error() -> None:
    async def central() -> Any:
        return 42

    fake = FakeWeChat()
    async with wx.AsyncLogistics(
        token_source=wx.CallableTokenSource(func=central), transport=fake.transport()
    ) as client:
        with pytest.raises(wx.ValidationError, match="returned int"):
            await client.cancel_order(**IDS)
    assert fake.calls == []


async def test_static_source_sends_its_token_and_is_never_refreshed() -> None:
    fake = FakeWeChat(unknown_orders="cancel")
    good = await _issued_by(fake)
    fake.reset_calls()
    async with wx.AsyncLogistics(
        token_source=wx.StaticTokenSource(token=good),
        transport=fake.transport(),
        retry_policy=NO_WAIT,
    ) as client:
        for _ in range(3):
            await client.cancel_order(**IDS)
        fake.revoke_tokens()
        with pytest.raises(wx.AccessTokenError):
            await client.cancel_order(**IDS)
    assert [c.token for c in fake.calls] == [good] * 5  # 3 calls, then one call + one replay
    assert [c.errcode for c in fake.calls][-2:] == [40001, 40001]
    assert "good" not in repr(wx.StaticTokenSource(token="good"))


async def test_cloudrun_mode_sends_no_token_to_the_plain_http_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("WX_APPID", "WX_SECRET", "WX_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    seen: list[httpx.URL] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"errcode": 0, "delivery_resultcode": 0})

    async with wx.AsyncLogistics(
        token_source="cloudrun", transport=httpx.MockTransport(handler)
    ) as client:
        assert client.base_url == "http://api.weixin.qq.com"
        result = await client.cancel_order(**IDS)
        assert result.errcode == 0
        with pytest.raises(wx.ValidationError, match="Cloud Run"):
            await client.get_access_token()

    assert [str(u) for u in seen] == [
        "http://api.weixin.qq.com/cgi-bin/express/business/order/cancel"
    ]
    assert parse_qs(urlsplit(str(seen[0])).query) == {}


async def test_cloudrun_41001_says_the_open_api_service_is_off() -> None:
    fake = FakeWeChat()  # answers 41001 to a request without access_token
    async with wx.AsyncLogistics(
        token_source="cloudrun", transport=fake.transport(), retry_policy=NO_WAIT
    ) as client:
        with pytest.raises(wx.CloudRunOpenAPIError) as caught:
            await client.cancel_order(**IDS)
    error = caught.value
    assert isinstance(error, wx.APIError)
    assert error.errcode == 41001
    assert "open-API service" in str(error)
    assert "redeploy" in str(error)
    assert len(fake.calls) == 1  # no token replay, no token fetch
    assert fake.calls[0].token is None
    assert fake.token_fetches == 0


async def test_41001_outside_cloudrun_keeps_the_plain_message() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("stable_token"):
            return httpx.Response(200, json={"access_token": "T", "expires_in": 7200})
        return httpx.Response(200, json={"errcode": 41001, "errmsg": "access_token missing"})

    async with wx.AsyncLogistics(
        "wx1", "s", transport=httpx.MockTransport(handler), retry_policy=NO_WAIT
    ) as client:
        with pytest.raises(wx.APIError) as caught:
            await client.cancel_order(**IDS)
    assert type(caught.value) is wx.APIError
    assert "open-API" not in str(caught.value)


def test_cloudrun_with_a_store_is_refused() -> None:
    with pytest.raises(wx.ValidationError, match="cloudrun"):
        wx.AsyncLogistics(token_source="cloudrun", token_store=wx.MemoryTokenStore())


def test_a_store_needs_a_source_with_a_key() -> None:
    async def central() -> str:
        return "t"

    with pytest.raises(wx.ValidationError, match="store_name"):
        wx.AsyncLogistics(
            token_source=wx.CallableTokenSource(func=central), token_store=wx.MemoryTokenStore()
        )


def test_per_fetch_force_refresh_is_refused() -> None:
    with pytest.raises(wx.ValidationError, match=r"force_refresh\(\)"):
        wx.StableTokenSource(appid="wx1", secret="s", force_refresh=True)


async def test_force_refresh_rotates_once_then_the_limiter_refuses() -> None:
    fake = FakeWeChat(unknown_orders="cancel")
    async with fake.client() as client:
        old = await client.get_access_token()
        new = await client.tokens.force_refresh()
        assert new.value != old.value
        assert (await client.get_access_token()) is new
        await client.cancel_order(**IDS)  # the forced token works
        with pytest.raises(wx.ForceRefreshLimitError) as caught:
            await client.tokens.force_refresh()
    assert 25 < caught.value.retry_after <= 30
    forced = [c for c in fake.calls if c.body and c.body.get("force_refresh") is True]
    assert len(forced) == 1  # the refused one never left
    assert fake.calls[-1].token == new.value


async def test_force_refresh_needs_the_stable_source() -> None:
    fake = FakeWeChat()
    async with fake.client(token_source="classic") as client:
        with pytest.raises(wx.ValidationError, match="stable"):
            await client.tokens.force_refresh()


@pytest.mark.parametrize(
    ("times", "now", "wait"),
    [
        ([], 1000.0, 0.0),
        ([990.0], 1000.0, 20.0),  # 30 s apart
        ([970.0], 1000.0, 0.0),
        ([1000.0 - 86_400.0 + 10 + i * 31 for i in range(FORCE_REFRESH_PER_DAY)], 100_000.0, 0.0),
        # 20 in the last 24 h: the oldest must leave the window first
        ([50_000.0 + i * 100 for i in range(FORCE_REFRESH_PER_DAY)], 60_000.0, 76_400.0),
        ([50_000.0 + i * 100 for i in range(FORCE_REFRESH_PER_DAY - 1)], 60_000.0, 0.0),
    ],
)
def test_force_refresh_limiter_table(times: list[float], now: float, wait: float) -> None:
    assert force_refresh_wait(times, now) == pytest.approx(wait)


async def test_memory_limiter_counts_only_what_it_allows() -> None:
    store = wx.MemoryTokenStore()
    t = 1_000_000.0
    allowed = 0
    for i in range(40):
        if await store.take_force_refresh("wx1:stable", t + i * 30) == 0:
            allowed += 1
    assert allowed == 20  # 40 tries 30 s apart within 20 minutes: 20 a day
    assert await store.take_force_refresh("wx1:stable", t + 40 * 30) > 80_000
    assert await store.take_force_refresh("wx1:stable", t + 86_400 + 1) == 0
