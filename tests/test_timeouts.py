"""Timeouts are always on, and fire against a real server that never answers."""

from __future__ import annotations

import anyio
import httpx
import pytest
from anyio.abc import SocketStream

import wxlogistics as wx

from .helpers import CANCEL, IDS, OK, STABLE, make_router, token_response, wired

pytestmark = pytest.mark.anyio


async def test_every_request_carries_the_configured_timeout() -> None:
    seen: list[dict[str, float | None]] = []
    router = make_router()

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return token_response() if request.url.path == STABLE else httpx.Response(200, json=OK)

    router.route().mock(side_effect=record)
    async with wired(router, timeout=httpx.Timeout(3.0, connect=1.0)) as client:
        await client.cancel_order(**IDS)
    assert seen == [{"connect": 1.0, "read": 3.0, "write": 3.0, "pool": 3.0}] * 2


async def test_default_timeout_applies_even_to_a_client_without_one() -> None:
    seen: list[dict[str, float | None]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return token_response() if request.url.path == STABLE else httpx.Response(200, json=OK)

    transport = httpx.MockTransport(record)
    async with (
        httpx.AsyncClient(transport=transport, timeout=None) as http,
        wx.AsyncLogistics("wxappid", "secret", http_client=http) as client,
    ):
        await client.cancel_order(**IDS)
    assert seen[-1] == {"connect": 5.0, "read": 10.0, "write": 10.0, "pool": 10.0}


@pytest.mark.parametrize(
    "timeout", [None, 0, -1, httpx.Timeout(None), httpx.Timeout(5.0, read=None)]
)
def test_no_timeout_is_refused(timeout: object) -> None:
    with pytest.raises(wx.ValidationError):
        wx.AsyncLogistics("wxappid", "secret", timeout=timeout)  # type: ignore[arg-type]


async def test_read_timeout_against_a_silent_server() -> None:
    """A loopback server accepts and reads but never answers: the client times out."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    connections = 0

    async def silent(stream: SocketStream) -> None:
        nonlocal connections
        connections += 1
        async with stream:
            try:
                while await stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, silent)
        source_calls = 0

        class Instant:
            async def fetch(self, endpoint: wx.TokenEndpoint) -> wx.IssuedToken:
                nonlocal source_calls
                source_calls += 1
                return wx.IssuedToken(value="T0KEN-value", expires_in=7200)

        policy = wx.RetryPolicy(max_retries=1, initial_delay=0)
        async with wx.AsyncLogistics(
            base_url=f"http://127.0.0.1:{port}",
            timeout=0.3,
            retry_policy=policy,
            token_source=Instant(),
        ) as client:
            with anyio.fail_after(5):
                with pytest.raises(wx.RequestTimeoutError) as info:
                    await client.cancel_order(**IDS)
        tg.cancel_scope.cancel()
    assert info.value.path == CANCEL
    assert info.value.may_have_been_sent is True
    assert "timeout" in str(info.value).lower()  # httpx: ReadTimeout; aiohttp: SocketTimeoutError
    assert connections >= 1
    assert source_calls == 1


async def test_connect_failure_is_a_transport_error() -> None:
    # Bind then close to get a port nobody listens on.
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    router_free = wx.RetryPolicy(max_retries=2, initial_delay=0)

    class Instant:
        async def fetch(self, endpoint: wx.TokenEndpoint) -> wx.IssuedToken:
            return wx.IssuedToken(value="T0KEN-value", expires_in=7200)

    async with wx.AsyncLogistics(
        base_url=f"http://127.0.0.1:{port}", retry_policy=router_free, token_source=Instant()
    ) as client:
        with pytest.raises(wx.TransportError) as info:
            await client.cancel_order(**IDS)
    assert not isinstance(info.value, wx.RequestTimeoutError)
    assert info.value.may_have_been_sent is False
    # httpx.ConnectError (trio, httpx engine) or aiohttp's ClientConnectorError, scrubbed.
    assert "Connect" in f"{type(info.value.__cause__).__name__}: {info.value.__cause__}"
