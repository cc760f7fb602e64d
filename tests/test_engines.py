"""The HTTP engines against a real loopback server, and respx still mocking the default one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
import respx

import wxlogistics as wx
from wxlogistics.testing import FakeWeChat, serve

from .helpers import CANCEL, IDS, OK, STABLE, body_of, token_response

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def served(fake: FakeWeChat) -> AsyncIterator[str]:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, fake)
        yield f"http://127.0.0.1:{port}"
        tg.cancel_scope.cancel()


def cancellable(fake: FakeWeChat, n: int) -> None:
    for i in range(n):
        fake.add_waybill(f"o{i}", "SF", f"W{i}")


async def test_default_engine_per_backend(anyio_backend: str) -> None:
    fake = FakeWeChat(latency=0.01)
    cancellable(fake, 30)
    async with served(fake) as url:
        client = wx.AsyncLogistics(fake.appid, fake.secret, base_url=url, max_connections=5)
        async with client:
            assert client.engine == "unstarted"
            async with anyio.create_task_group() as tg:
                for i in range(30):
                    tg.start_soon(
                        lambda i=i: client.cancel_order(
                            order_id=f"o{i}", delivery_id="SF", waybill_id=f"W{i}"
                        )
                    )
            assert client.engine == ("httpx" if anyio_backend == "trio" else "aiohttp")
        assert client.is_closed
    assert all(w.state == "cancelled" for w in fake.waybills)
    assert fake.max_concurrent == 5  # max_connections bounds every engine
    assert fake.token_fetches == 1


@pytest.mark.parametrize("engine", ["httpx", "aiohttp"])
async def test_forced_engine_round_trip(engine: str, anyio_backend: str) -> None:
    if engine == "aiohttp" and anyio_backend == "trio":
        pytest.skip("aiohttp runs on asyncio only")
    fake = FakeWeChat()
    cancellable(fake, 2)
    async with (
        served(fake) as url,
        wx.AsyncLogistics(fake.appid, fake.secret, base_url=url, http_engine=engine) as client,
    ):  # type: ignore[arg-type]
        result = await client.cancel_order(
            order_id="o0", delivery_id="SF", waybill_id="W0", openid="用户"
        )
        assert result.errcode == 0
        with pytest.raises(wx.AlreadyCancelledError):
            await client.cancel_order(order_id="o0", delivery_id="SF", waybill_id="W0")
        fake.fail_next(1, body="html")
        with pytest.raises(wx.ResponseError, match="not a JSON object"):
            await client.cancel_order(order_id="o1", delivery_id="SF", waybill_id="W1")
        fake.fail_next(1, drop="before")
        assert (
            await client.cancel_order(order_id="o1", delivery_id="SF", waybill_id="W1")
        ).errcode == 0
        assert client.engine == engine
    cancels = [c for c in fake.calls if c.path == CANCEL]
    assert cancels[0].body == {
        "order_id": "o0",
        "delivery_id": "SF",
        "waybill_id": "W0",
        "openid": "用户",
    }
    assert len({c.token for c in cancels}) == 1


async def test_aiohttp_engine_refused_on_trio(anyio_backend: str) -> None:
    if anyio_backend != "trio":
        pytest.skip("trio only")
    async with wx.AsyncLogistics(
        "wx", "s", base_url="http://127.0.0.1:9", http_engine="aiohttp"
    ) as client:
        with pytest.raises(wx.ValidationError, match="asyncio only"):
            await client.cancel_order(**IDS)


async def test_respx_mock_intercepts_the_default_engine() -> None:
    """A user's test wrapping the SDK in respx.mock is mocked, whatever the default engine."""
    async with wx.AsyncLogistics("wxappid", "secret", base_url="https://wechat.invalid") as client:
        with respx.mock(base_url="https://wechat.invalid", assert_all_called=True) as router:
            router.post(STABLE).mock(return_value=token_response())
            route = router.post(CANCEL).respond(json=OK)
            result = await client.cancel_order(**IDS)
        assert result.errcode == 0
        assert body_of(route.calls.last.request) == IDS
        assert client.http_client is not None  # the httpx fallback carried it


async def test_respx_mock_with_httpx_mocker() -> None:
    async with wx.AsyncLogistics("wxappid", "secret", base_url="https://wechat.invalid") as client:
        with respx.mock(base_url="https://wechat.invalid", using="httpx") as router:
            router.post(STABLE).mock(return_value=token_response())
            router.post(CANCEL).respond(json={"errcode": 40199, "errmsg": "no"})
            with pytest.raises(wx.WaybillNotFoundError):
                await client.cancel_order(**IDS)


async def test_unmocked_unreachable_host_is_a_transport_error() -> None:
    """Outside respx the default engine really sends (here: to a closed local port)."""
    async with wx.AsyncLogistics(
        "wxappid",
        "secret",
        base_url="http://127.0.0.1:9",
        retry_policy=wx.RetryPolicy(max_retries=0),
    ) as client:
        with pytest.raises(wx.TransportError) as info:
            await client.cancel_order(**IDS)
    assert info.value.may_have_been_sent is False


async def test_real_engine_errors_are_scrubbed(anyio_backend: str) -> None:
    """Network errors of either engine are scrubbed (the token sits in the URL)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def hang_up(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()

    class Fixed:
        async def fetch(self, endpoint: wx.TokenEndpoint) -> wx.IssuedToken:
            return wx.IssuedToken(value="TOP-SECRET-TOKEN-123", expires_in=7200)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, hang_up)
        async with wx.AsyncLogistics(
            base_url=f"http://127.0.0.1:{port}",
            token_source=Fixed(),
            retry_policy=wx.RetryPolicy(max_retries=1, initial_delay=0),
        ) as client:
            with pytest.raises(wx.TransportError) as info:
                await client.cancel_order(**IDS)
            assert client.engine == ("httpx" if anyio_backend == "trio" else "aiohttp")
        tg.cancel_scope.cancel()
    from .test_secrets import all_text_of

    text = all_text_of(info.value)
    assert "TOP-SECRET-TOKEN-123" not in text
    assert info.value.may_have_been_sent is True
    assert isinstance(info.value.__cause__, Exception)


def test_http_client_and_transport_are_exclusive() -> None:
    with pytest.raises(wx.ValidationError, match="not both"):
        wx.AsyncLogistics(
            "wx",
            "s",
            http_client=httpx.AsyncClient(),
            transport=httpx.MockTransport(lambda r: httpx.Response(200)),
        )
    with pytest.raises(wx.ValidationError, match="http_engine"):
        wx.AsyncLogistics("wx", "s", http_engine="curl")  # type: ignore[arg-type]


async def test_sharded_httpx_pool_returns_every_slot() -> None:
    """The owned httpx engine's small pools hand every slot back, after answers and failures."""
    fake = FakeWeChat(latency=0.005)
    cancellable(fake, 40)
    async with (
        served(fake) as url,
        wx.AsyncLogistics(
            fake.appid, fake.secret, base_url=url, http_engine="httpx", max_connections=20
        ) as client,
    ):
        fake.fail_next(3, drop="before")
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(
                    lambda i=i: client.cancel_order(
                        order_id=f"o{i}", delivery_id="SF", waybill_id=f"W{i}"
                    )
                )
        http = client.http_client
        assert http is not None
        sharded = http._transport  # type: ignore[attr-defined]
        assert len(sharded._pools) == 3  # 20 connections in pools of at most 8
        assert sorted(sharded._free) == sorted(i for _ in range(7) for i in range(3))
    assert all(w.state == "cancelled" for w in fake.waybills)
    assert fake.max_concurrent <= 20
