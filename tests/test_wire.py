"""One HTTP stack: the session's httpx client over WireTransport, tested on each wire.

Tests marked ``anyio`` run on asyncio (the aiohttp wire) and trio (the httpcore wire), against
loopback servers of our own (tests/wire_server.py) for faults the fake cannot produce.
"""

from __future__ import annotations

import gc
import gzip
import time
import warnings
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from anyio.abc import SocketStream

import wxlogistics as wx
from wxlogistics._wire import WireTransport, shared_ssl_context
from wxlogistics.testing import FakeWeChat, serve

from .helpers import CANCEL, IDS, OK, STABLE, body_of, token_response
from .wire_server import Req, answer, default_answer, wire_server

pytestmark = pytest.mark.anyio

FAST = wx.RetryPolicy(max_retries=2, initial_delay=0, max_delay=0, jitter=0)


class Fixed:
    """A token source that never calls WeChat."""

    def __init__(self, value: str = "TOP-SECRET-TOKEN-123") -> None:
        self.value = value

    async def fetch(self, endpoint: wx.TokenEndpoint) -> wx.IssuedToken:
        return wx.IssuedToken(value=self.value, expires_in=7200)


def client_for(url: str, **kwargs: object) -> wx.AsyncLogistics:
    kwargs.setdefault("retry_policy", FAST)
    kwargs.setdefault("token_source", Fixed())
    return wx.AsyncLogistics(base_url=url, **kwargs)  # type: ignore[arg-type]


@asynccontextmanager
async def served(fake: FakeWeChat) -> AsyncIterator[str]:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, fake)
        yield f"http://127.0.0.1:{port}"
        tg.cancel_scope.cancel()


# -- the session owns an httpx client, always ---------------------------------------------------


async def test_default_client_is_httpx_over_the_wire_and_hooks_see_everything() -> None:
    fake = FakeWeChat()
    for i in range(3):
        fake.add_waybill(f"o{i}", "SF", f"W{i}")
    seen: list[tuple[str, str]] = []

    async def on_request(request: httpx.Request) -> None:
        seen.append(("request", request.url.path))

    async def on_response(response: httpx.Response) -> None:
        seen.append(("response", f"{response.request.url.path} {response.status_code}"))

    async with served(fake) as url:
        client = wx.AsyncLogistics(fake.appid, fake.secret, base_url=url)
        assert isinstance(client.http_client, httpx.AsyncClient)
        client.http_client.event_hooks["request"].append(on_request)
        client.http_client.event_hooks["response"].append(on_response)
        async with client:
            for i in range(3):
                await client.cancel_order(order_id=f"o{i}", delivery_id="SF", waybill_id=f"W{i}")
        assert client.http_client.is_closed
    assert seen == [
        ("request", STABLE),
        ("response", f"{STABLE} 200"),
        *[x for _ in range(3) for x in (("request", CANCEL), ("response", f"{CANCEL} 200"))],
    ]
    assert all(w.state == "cancelled" for w in fake.waybills)


async def test_max_connections_bounds_the_default_wire() -> None:
    fake = FakeWeChat(latency=0.01)
    for i in range(30):
        fake.add_waybill(f"o{i}", "SF", f"W{i}")
    async with (
        served(fake) as url,
        wx.AsyncLogistics(fake.appid, fake.secret, base_url=url, max_connections=5) as client,
        anyio.create_task_group() as tg,
    ):
        for i in range(30):
            tg.start_soon(
                lambda i=i: client.cancel_order(
                    order_id=f"o{i}", delivery_id="SF", waybill_id=f"W{i}"
                )
            )
    assert fake.max_concurrent == 5
    assert fake.token_fetches == 1


async def test_headers_set_on_the_session_client_are_sent() -> None:
    async with wire_server() as server, client_for(server.url) as client:
        client.http_client.headers["X-Trace"] = "abc"
        await client.cancel_order(**IDS)
        client.http_client.headers["X-Trace"] = "def"
        await client.cancel_order(**IDS)
    assert [r.headers.get("x-trace") for r in server.requests] == ["abc", "def"]
    assert server.requests[0].headers["user-agent"] == f"wxlogistics/{wx.__version__}"
    assert server.requests[0].headers["content-type"] == "application/json; charset=utf-8"
    assert server.requests[0].json() == IDS


def _sent(req: Req) -> list[tuple[str, str]]:
    return sorted((k.lower(), v) for k, v in req.header_lines)


async def test_the_server_gets_exactly_the_httpx_request_headers() -> None:
    """No header added, dropped or changed beneath httpx, with or without a body."""
    seen: list[httpx.Request] = []

    async def keep(request: httpx.Request) -> None:
        seen.append(request)

    async with wire_server() as server:
        transport = WireTransport()
        async with httpx.AsyncClient(transport=transport, event_hooks={"request": [keep]}) as http:
            await http.post(server.url + "/a", content=b'{"x":1}')
            await http.get(server.url + "/b")
            # Headers aiohttp would add by itself, removed from the httpx request.
            for name in ("accept", "accept-encoding", "user-agent", "connection"):
                del http.headers[name]
            await http.post(server.url + "/c", content=b"raw")
            await http.get(server.url + "/d", headers={"host": "other.example:81"})
            await http.post(server.url + "/e", content=b"abc", headers={"X-Twice": "1"})
    expected = [sorted((k.decode().lower(), v.decode()) for k, v in r.headers.raw) for r in seen]
    assert [_sent(r) for r in server.requests] == expected
    assert "content-type" not in server.requests[2].headers
    assert "user-agent" not in server.requests[2].headers
    assert server.requests[3].headers["host"] == "other.example:81"
    assert [r.body for r in server.requests] == [b'{"x":1}', b"", b"raw", b"", b"abc"]


async def test_the_session_sends_its_headers_and_no_others() -> None:
    async with wire_server() as server, client_for(server.url) as client:
        await client.cancel_order(**IDS)
    port = server.url.rsplit(":", 1)[1]
    body = server.requests[0].body
    assert _sent(server.requests[0]) == sorted(
        [
            ("host", f"127.0.0.1:{port}"),
            ("accept", "application/json"),
            ("accept-encoding", "gzip, deflate"),
            ("connection", "keep-alive"),
            ("user-agent", f"wxlogistics/{wx.__version__}"),
            ("content-type", "application/json; charset=utf-8"),
            ("content-length", str(len(body))),
        ]
    )


def test_http_client_and_transport_are_exclusive() -> None:
    with pytest.raises(wx.ValidationError, match="not both"):
        wx.AsyncLogistics(
            "wx",
            "s",
            http_client=httpx.AsyncClient(),
            transport=httpx.MockTransport(lambda r: httpx.Response(200)),
        )


# -- mocks see the default client -----------------------------------------------------------------


async def test_respx_mock_intercepts_the_default_client_created_before() -> None:
    import respx

    async with wx.AsyncLogistics("wxappid", "secret", base_url="https://wechat.invalid") as client:
        with respx.mock(base_url="https://wechat.invalid", assert_all_called=True) as router:
            router.post(STABLE).mock(return_value=token_response())
            route = router.post(CANCEL).respond(json=OK)
            result = await client.cancel_order(**IDS)
        assert result.errcode == 0
        assert body_of(route.calls.last.request) == IDS


async def test_respx_mock_intercepts_a_client_created_inside() -> None:
    import respx

    with respx.mock(base_url="https://wechat.invalid") as router:
        router.post(STABLE).mock(return_value=token_response())
        router.post(CANCEL).respond(json={"errcode": 40199, "errmsg": "no"})
        async with wx.AsyncLogistics(
            "wxappid", "secret", base_url="https://wechat.invalid"
        ) as client:
            with pytest.raises(wx.WaybillNotFoundError):
                await client.cancel_order(**IDS)


async def test_respx_httpx_mocker() -> None:
    import respx

    async with wx.AsyncLogistics("wxappid", "secret", base_url="https://wechat.invalid") as client:
        with respx.mock(base_url="https://wechat.invalid", using="httpx") as router:
            router.post(STABLE).mock(return_value=token_response())
            router.post(CANCEL).respond(json=OK)
            assert (await client.cancel_order(**IDS)).errcode == 0


def _respx_decorated() -> object:
    import respx

    @respx.mock(base_url="https://wechat.invalid")
    async def decorated(respx_mock: respx.Router) -> int:
        respx_mock.post(STABLE).mock(return_value=token_response())
        respx_mock.post(CANCEL).respond(json=OK)
        async with wx.AsyncLogistics(
            "wxappid", "secret", base_url="https://wechat.invalid"
        ) as client:
            return (await client.cancel_order(**IDS)).errcode

    return decorated


async def test_respx_mock_as_a_decorator() -> None:
    assert await _respx_decorated()() == 0  # type: ignore[operator]


async def test_respx_mock_fixture(respx_mock: object) -> None:
    import respx

    assert isinstance(respx_mock, respx.Router)
    respx_mock.post("https://api.weixin.qq.com" + STABLE).mock(return_value=token_response())
    respx_mock.post("https://api.weixin.qq.com" + CANCEL).respond(json=OK)
    async with wx.AsyncLogistics("wxappid", "secret") as client:
        assert (await client.cancel_order(**IDS)).errcode == 0


async def test_pytest_httpx_mocks_the_default_client(httpx_mock: object) -> None:
    from pytest_httpx import HTTPXMock

    assert isinstance(httpx_mock, HTTPXMock)
    httpx_mock.add_response(
        method="POST", url="https://api.weixin.qq.com" + STABLE, json=token_response().json()
    )
    httpx_mock.add_response(method="POST", json=OK, match_json=IDS)
    async with wx.AsyncLogistics("wxappid", "secret") as client:
        assert (await client.cancel_order(**IDS)).errcode == 0
    assert [r.url.path for r in httpx_mock.get_requests()] == [STABLE, CANCEL]


# -- failures map to httpx's family, scrubbed ----------------------------------------------------


async def test_unreachable_host_is_a_transport_error_never_sent() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    async with client_for(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(wx.TransportError) as info:
            await client.cancel_order(**IDS)
    assert not isinstance(info.value, wx.RequestTimeoutError)
    assert info.value.may_have_been_sent is False
    assert type(info.value.__cause__).__name__ == "ConnectError"


async def test_hang_up_is_scrubbed_and_may_have_been_sent() -> None:
    async def hang_up(req: Req, stream: SocketStream) -> bool:
        return False

    async def attempt(url: str) -> wx.TransportError:
        async with client_for(url) as client:
            try:
                await client.cancel_order(**IDS)
            except wx.TransportError as exc:
                return exc
        raise AssertionError("no error")

    async with wire_server(hang_up) as server:
        error = await attempt(server.url)
        sent = len(server.requests)
        del server  # its request log holds the token; the error's frames must not
    from .test_secrets import all_text_of

    assert "TOP-SECRET-TOKEN-123" not in all_text_of(error)
    assert error.may_have_been_sent is True
    assert type(error.__cause__).__name__ == "RemoteProtocolError"
    # 3 attempts, each resent once at once (a dropped connection before any answer byte)
    assert sent == 6


# -- wire behaviour, the same on every wire --------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_answers_are_decoded(encoding: str) -> None:
    data = (
        b'{"errcode":0,"errmsg":"ok","delivery_resultcode":0,"delivery_resultmsg":"\xe5\x8f\x96"}'
    )
    if encoding == "gzip":
        packed = gzip.compress(data)
    elif encoding == "deflate":
        packed = zlib.compress(data)
    else:
        z = zlib.compressobj(wbits=-15)
        packed = z.compress(data) + z.flush()

    async def compressed(req: Req, stream: SocketStream) -> bool:
        name = "deflate" if encoding == "raw-deflate" else encoding
        await stream.send(answer(body=packed, headers={"content-encoding": name}))
        return True

    async with wire_server(compressed) as server, client_for(server.url) as client:
        result = await client.cancel_order(**IDS)
    assert result.delivery_resultmsg == "取"


async def test_stale_keep_alive_connections_are_resent_once() -> None:
    """The server closes every connection right after answering, without saying so: 40
    sequential calls all succeed, each resent at most once."""

    async def close_after(req: Req, stream: SocketStream) -> bool:
        await stream.send(answer(body=default_answer(req)))
        return False

    async with wire_server(close_after) as server, client_for(server.url) as client:
        for _ in range(40):
            await anyio.sleep(0.005)  # let the FIN arrive sometimes, not always
            assert (await client.cancel_order(**IDS)).errcode == 0
    assert len(server.requests) == 40  # the server saw each call once


async def test_stale_connection_is_not_resent_for_calls_unsafe_to_repeat() -> None:
    async def close_after(req: Req, stream: SocketStream) -> bool:
        await stream.send(answer(body=default_answer(req)))
        return False

    transport = WireTransport()
    async with (
        wire_server(close_after) as server,
        httpx.AsyncClient(transport=transport, base_url=server.url) as http,
    ):
        await http.post("/x", content=b"{}")
        await anyio.sleep(0.05)
        # a POST without the extension: httpx's own semantics, nothing resent
        response = await http.post("/x", content=b"{}")
        assert response.status_code == 200
    assert len(server.requests) == 2


async def test_large_response_headers_are_accepted() -> None:
    async def big_header(req: Req, stream: SocketStream) -> bool:
        await stream.send(answer(body=OK, headers={"x-big": "a" * 60_000}))
        return True

    async with wire_server(big_header) as server, client_for(server.url) as client:
        assert (await client.cancel_order(**IDS)).errcode == 0


async def test_oversized_body_is_a_response_error() -> None:
    async def huge(req: Req, stream: SocketStream) -> bool:
        await stream.send(answer(body=b"[" + b"1," * 5000 + b"1]"))
        return True

    async with (
        wire_server(huge) as server,
        client_for(server.url, transport=WireTransport(max_response_bytes=4096)) as client,
    ):
        with pytest.raises(wx.ResponseError, match="larger than 4096"):
            await client.cancel_order(**IDS)


async def test_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(b" " * (20 * 1024 * 1024))

    async def bombing(req: Req, stream: SocketStream) -> bool:
        await stream.send(answer(body=bomb, headers={"content-encoding": "gzip"}))
        return True

    async with wire_server(bombing) as server, client_for(server.url) as client:
        with pytest.raises(wx.ResponseError, match="larger than"):
            await client.cancel_order(**IDS)


async def test_chunked_answer_without_length() -> None:
    async def chunked(req: Req, stream: SocketStream) -> bool:
        data = b'{"errcode":0,"errmsg":"ok"}'
        head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        await stream.send(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
        return True

    async with wire_server(chunked) as server, client_for(server.url) as client:
        assert (await client.cancel_order(**IDS)).errcode == 0


async def test_slow_loris_is_cut_by_the_attempt_deadline() -> None:
    """Each byte arrives well within the read timeout, but the answer never completes."""

    async def trickle(req: Req, stream: SocketStream) -> bool:
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
        for _ in range(1000):
            await stream.send(b" ")
            await anyio.sleep(0.05)
        return False

    async with (
        wire_server(trickle) as server,
        client_for(server.url, timeout=0.3, retry_policy=wx.RetryPolicy(max_retries=0)) as client,
    ):
        started = time.monotonic()
        with pytest.raises(wx.RequestTimeoutError) as info:
            await client.cancel_order(**IDS)
        elapsed = time.monotonic() - started
    assert elapsed < 3.0  # the deadline is connect + read = 0.6 s; the answer needs 50 s
    assert info.value.may_have_been_sent is True


@pytest.mark.filterwarnings("ignore:Sending a large body:ResourceWarning")  # aiohttp, 64 MB
@pytest.mark.filterwarnings("ignore:Async generator 'httpx._content:ResourceWarning")  # trio
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_write_timeout_is_honoured() -> None:
    """A server that never reads: sending 64 MB cannot hold the attempt past its deadline."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def never_read(stream: SocketStream) -> None:
        async with stream:
            await anyio.sleep(30)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, never_read)
        async with httpx.AsyncClient(transport=WireTransport(), timeout=0.5) as http:
            started = time.monotonic()
            with pytest.raises(httpx.TimeoutException):
                await http.post(f"http://127.0.0.1:{port}/x", content=b"x" * (64 << 20))
            assert time.monotonic() - started < 5.0
        tg.cancel_scope.cancel()


async def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with wire_server() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with client_for("http://wechat.example") as client:
            assert (await client.cancel_order(**IDS)).errcode == 0
        monkeypatch.setenv("NO_PROXY", "wechat.example")
        async with (
            wire_server() as direct,
            client_for(direct.url.replace("127.0.0.1", "localhost")) as client,
        ):
            monkeypatch.setenv("NO_PROXY", "localhost")
            assert (await client.cancel_order(**IDS)).errcode == 0
    assert proxy.requests[0].target.startswith("http://wechat.example" + CANCEL)
    assert len(proxy.requests) == 1


# -- connections -----------------------------------------------------------------------------------


async def test_a_sequential_client_uses_one_connection() -> None:
    async with wire_server() as server, client_for(server.url) as client:
        for _ in range(20):
            await client.cancel_order(**IDS)
        for _ in range(3):  # sparse traffic reuses the idle connection too
            await anyio.sleep(0.2)
            await client.cancel_order(**IDS)
    assert server.connections == 1
    assert len(server.requests) == 23


async def test_huge_max_connections_does_not_block_the_loop() -> None:
    """The first call at max_connections=10,000 builds no pool or SSL context per slot."""
    gaps: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await anyio.sleep(0.002)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with wire_server() as server, anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.02)
        async with client_for(server.url, max_connections=10_000) as client:
            await client.cancel_order(**IDS)
        done.set()
    assert max(gaps) < 0.25  # target 50 ms; bounded loosely for a loaded 2-core machine


def test_one_ssl_context_per_process() -> None:
    assert shared_ssl_context() is shared_ssl_context()
    a, b = WireTransport(), WireTransport()
    assert a._ssl_context() is b._ssl_context()


# -- event loops -----------------------------------------------------------------------------------


def test_one_client_across_event_loops_in_sequence() -> None:
    import asyncio
    import threading

    fake = FakeWeChat()
    for i in range(3):
        fake.add_waybill(f"o{i}", "SF", f"W{i}")
    ready = threading.Event()
    stop = threading.Event()
    port: list[int] = []

    def run_server() -> None:
        async def main() -> None:
            async with anyio.create_task_group() as tg:
                port.append(await tg.start(serve, fake))
                ready.set()
                while not stop.is_set():  # noqa: ASYNC110 - a threading.Event
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()

        anyio.run(main)

    thread = threading.Thread(target=run_server)
    thread.start()
    try:
        ready.wait(5)
        client = wx.AsyncLogistics(fake.appid, fake.secret, base_url=f"http://127.0.0.1:{port[0]}")

        async def cancel(i: int) -> int:
            return (
                await client.cancel_order(order_id=f"o{i}", delivery_id="SF", waybill_id=f"W{i}")
            ).errcode

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert asyncio.run(cancel(0)) == 0
            assert asyncio.run(cancel(1)) == 0
            assert anyio.run(cancel, 2, backend="trio") == 0
            anyio.run(client.aclose, backend="trio")
            gc.collect()
    finally:
        stop.set()
        thread.join()
    assert [w.state for w in fake.waybills] == ["cancelled"] * 3
    assert fake.token_fetches == 1


def test_two_loops_at_once_is_a_clear_error() -> None:
    import asyncio
    import threading

    async def hold(
        server_url: str,
        client: wx.AsyncLogistics,
        started: threading.Event,
        release: threading.Event,
    ) -> None:
        await client.cancel_order(**IDS)
        started.set()
        while not release.is_set():  # noqa: ASYNC110 - a threading.Event
            await asyncio.sleep(0.01)

    async def main() -> None:
        async with wire_server() as server:
            client = client_for(server.url)
            started, release = threading.Event(), threading.Event()
            errors: list[BaseException] = []

            def other_loop() -> None:
                started.wait(5)
                try:
                    asyncio.run(client.cancel_order(**IDS))
                except BaseException as exc:
                    errors.append(exc)
                finally:
                    release.set()

            thread = threading.Thread(target=other_loop)
            thread.start()
            await hold(server.url, client, started, release)
            await anyio.to_thread.run_sync(thread.join)
            await client.aclose()
            assert len(errors) == 1
            assert isinstance(errors[0], wx.WxLogisticsError)
            assert "one AsyncLogistics per event loop" in str(errors[0])

    asyncio.run(main())


async def test_unclosed_client_warns() -> None:
    async with wire_server() as server:
        client = client_for(server.url)
        await client.cancel_order(**IDS)
        with pytest.warns(ResourceWarning, match="aclose"):
            client.__del__()
        await client.aclose()


# -- closing in flight -----------------------------------------------------------------------------


async def test_aclose_lets_sent_calls_finish_and_refuses_queued_ones() -> None:
    release = anyio.Event()

    async def slow(req: Req, stream: SocketStream) -> bool:
        if "token" not in req.path:
            await release.wait()
        await stream.send(answer(body=default_answer(req)))
        return True

    results: list[object] = []
    async with wire_server(slow) as server:
        client = client_for(server.url, max_connections=2)

        async def call() -> None:
            try:
                results.append(await client.cancel_order(**IDS))
            except wx.WxLogisticsError as exc:
                results.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(call)
            while len(server.requests) < 2:  # noqa: ASYNC110 - the server's log
                await anyio.sleep(0.01)
            tg.start_soon(client.aclose)
            await anyio.sleep(0.05)
            release.set()
    cancelled = [r for r in results if isinstance(r, wx.CancelOrderResult)]
    refused = [r for r in results if isinstance(r, wx.ClientClosedError)]
    assert len(cancelled) == 2  # the two that were sent finished within the grace
    assert len(refused) == 3  # the queued ones never left
    assert len(server.requests) == 2
    assert client.is_closed


async def test_the_wire_carries_requests_again_after_a_mock_ends() -> None:
    """Mock detection is per request: once respx stops patching, the wire is back (its
    response-size bound is the tell)."""
    import respx

    async def big(req: Req, stream: SocketStream) -> bool:
        await stream.send(answer(body=b"[" + b"1," * 5000 + b"1]"))
        return True

    with respx.mock(base_url="https://wechat.invalid") as router:
        router.post(STABLE).mock(return_value=token_response())
        router.post(CANCEL).respond(json=OK)
        async with wx.AsyncLogistics("wxappid", "secret", base_url="https://wechat.invalid") as c:
            await c.cancel_order(**IDS)
    async with (
        wire_server(big) as server,
        client_for(server.url, transport=WireTransport(max_response_bytes=4096)) as client,
    ):
        with pytest.raises(wx.ResponseError, match="larger than 4096"):
            await client.cancel_order(**IDS)


async def test_retry_after_is_honoured_on_429_and_503() -> None:
    answers = [
        answer(429, b"slow down", {"retry-after": "1", "content-type": "text/plain"}),
        answer(503, b"busy", {"retry-after": "0", "content-type": "text/plain"}),
    ]

    async def limited(req: Req, stream: SocketStream) -> bool:
        await stream.send(answers.pop(0) if answers else answer(body=OK))
        return True

    async with wire_server(limited) as server, client_for(server.url) as client:
        started = time.monotonic()
        assert (await client.cancel_order(**IDS)).errcode == 0
        elapsed = time.monotonic() - started
    assert len(server.requests) == 3
    assert 0.9 <= elapsed < 5.0  # waited the second the server asked for (backoff here is 0)


async def test_retry_after_beyond_the_maximum_wait_is_raised_at_once() -> None:
    async def busy(req: Req, stream: SocketStream) -> bool:
        date = "Wed, 21 Oct 2099 07:28:00 GMT"
        await stream.send(answer(503, b"down", {"retry-after": date}))
        return True

    async with wire_server(busy) as server, client_for(server.url) as client:
        started = time.monotonic()
        with pytest.raises(wx.ResponseError) as info:
            await client.cancel_order(**IDS)
        assert time.monotonic() - started < 2.0
    assert info.value.status_code == 503
    assert info.value.retry_after == 86_400.0  # capped at a day
    assert len(server.requests) == 1


async def test_cookies_set_by_the_server_are_kept() -> None:
    """Skipping cookie work when no Set-Cookie came changes nothing when one does."""

    async def cookie(req: Req, stream: SocketStream) -> bool:
        await stream.send(answer(body=OK, headers={"set-cookie": "session=abc; Path=/"}))
        return True

    async with wire_server(cookie) as server, client_for(server.url) as client:
        await client.cancel_order(**IDS)
        await client.cancel_order(**IDS)
        assert client.http_client.cookies.get("session") == "abc"
    assert "cookie" not in server.requests[0].headers
    assert server.requests[1].headers["cookie"] == "session=abc"


async def test_aclose_grace_ends_calls_still_in_flight_as_may_have_been_sent() -> None:
    """A call that outlives aclose()'s grace ends as TransportError(may_have_been_sent=True),
    with no token in any frame of its traceback."""

    async def silent(req: Req, stream: SocketStream) -> bool:
        if "token" in req.path:
            await stream.send(answer(body=default_answer(req)))
            return True
        await anyio.sleep(30)
        return False

    errors: list[BaseException] = []
    async with wire_server(silent) as server:
        client = client_for(server.url, retry_policy=wx.RetryPolicy(max_retries=0))
        client._transport._close_grace = 0.2  # the default is 5 s

        async def call() -> None:
            try:
                await client.cancel_order(**IDS)
            except wx.WxLogisticsError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            while not server.requests:  # noqa: ASYNC110 - the server's log
                await anyio.sleep(0.01)
            with anyio.fail_after(5):
                await client.aclose()
    from .test_tokens_secrets import assert_nowhere

    assert len(errors) == 1
    assert isinstance(errors[0], wx.TransportError)
    assert errors[0].may_have_been_sent is True
    assert_nowhere(errors[0], "TOP-SECRET-TOKEN-123")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_no_ssl_context_is_built_for_an_http_host(backend: str) -> None:
    import subprocess
    import sys

    code = """
import anyio, wxlogistics as wx
from wxlogistics._wire import shared_ssl_context
from wxlogistics.testing import FakeWeChat, serve

async def main():
    fake = FakeWeChat()
    fake.add_waybill("o", "SF", "W")
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, fake)
        async with wx.AsyncLogistics(fake.appid, fake.secret,
                                     base_url=f"http://127.0.0.1:{port}") as client:
            await client.cancel_order(order_id="o", delivery_id="SF", waybill_id="W")
        tg.cancel_scope.cancel()
    print(shared_ssl_context.cache_info().currsize)

anyio.run(main, backend=BACKEND)
"""
    code = code.replace("BACKEND", repr(backend))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


async def test_a_resend_after_a_dead_connection_counts_as_an_ambiguous_attempt() -> None:
    """The first send was carried out but its connection died before any answer byte; the
    wire's resend is answered 9300524: the cancel succeeded (confirmed_by_retry)."""
    cancelled: set[str] = set()

    async def carried_out_then_dropped(req: Req, stream: SocketStream) -> bool:
        if "token" in req.path:
            await stream.send(answer(body=default_answer(req)))
            return True
        order = req.json()["order_id"]
        if order not in cancelled:
            cancelled.add(order)
            return False  # hang up without answering
        await stream.send(answer(body={"errcode": 9300524, "errmsg": "already cancelled"}))
        return True

    async with (
        wire_server(carried_out_then_dropped) as server,
        client_for(server.url, retry_policy=wx.RetryPolicy(max_retries=0)) as client,
    ):
        result = await client.cancel_order(**IDS)
    assert result.confirmed_by_retry is True
    assert len(server.requests) == 2  # one attempt, resent once by the wire


def test_a_request_refused_by_a_closed_client_is_not_final() -> None:
    outcome = wx.CancelOutcome(
        request=wx.CancelOrderRequest(**IDS), error=wx.ClientClosedError("closed")
    )
    assert outcome.status == "failed"
    assert outcome.final is False


async def test_a_failed_resend_keeps_the_first_sends_ambiguity() -> None:
    """The first send was read by the server, its connection died before any answer byte and
    the host then refused connections: the error says the call may have been carried out."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    seen: list[bytes] = []

    async def first_and_down() -> None:
        stream = await listener.listeners[0].accept()
        async with stream:
            seen.append(await stream.receive())
        await listener.aclose()  # the host goes down: the resend's connect is refused

    async with anyio.create_task_group() as tg:
        tg.start_soon(first_and_down)
        async with client_for(
            f"http://127.0.0.1:{port}", retry_policy=wx.RetryPolicy(max_retries=0)
        ) as client:
            with pytest.raises(wx.TransportError) as info:
                await client.cancel_order(**IDS)
    assert len(seen) == 1
    assert info.value.may_have_been_sent is True


async def test_a_non_ascii_reason_phrase_is_fine() -> None:
    async def chinese(req: Req, stream: SocketStream) -> bool:
        data = answer(body=default_answer(req)).replace(b" 200 X", " 200 成功".encode())
        await stream.send(data)
        return True

    async with wire_server(chinese) as server, client_for(server.url) as client:
        assert (await client.cancel_order(**IDS)).errcode == 0
    assert len(server.requests) == 1


async def test_a_failed_token_fetch_says_the_call_was_not_sent() -> None:
    import respx

    async with wx.AsyncLogistics(
        "wxappid", "secret", base_url="https://wechat.invalid", retry_policy=FAST
    ) as client:
        with respx.mock(base_url="https://wechat.invalid", assert_all_called=False) as router:
            router.post(STABLE).respond(502)
            cancel = router.post(CANCEL).respond(json=OK)
            with pytest.raises(wx.ResponseError) as info:
                await client.cancel_order(**IDS)
    assert info.value.status_code == 502
    assert info.value.may_have_been_sent is False  # the cancel itself never left
    assert cancel.call_count == 0


def test_two_loops_starting_at_the_same_moment_get_a_clear_error() -> None:
    import asyncio
    import threading

    barrier = threading.Barrier(2)
    results: list[object] = []

    async def serve_and_race() -> None:
        async with wire_server() as server:
            client = client_for(server.url)

            def in_a_thread() -> None:
                async def first_call() -> object:
                    barrier.wait(5)
                    try:
                        return await client.cancel_order(**IDS)
                    except wx.WxLogisticsError as exc:
                        return exc

                results.append(asyncio.run(first_call()))

            threads = [threading.Thread(target=in_a_thread) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                await anyio.to_thread.run_sync(thread.join, 10)
            assert not any(thread.is_alive() for thread in threads)  # nobody hangs

    anyio.run(serve_and_race)
    errors = [r for r in results if isinstance(r, wx.WxLogisticsError)]
    assert len(results) == 2
    assert errors, results  # at least one of the two was refused, clearly
    assert all("one AsyncLogistics per event loop" in str(e) for e in errors)


async def test_cookies_set_on_the_session_client_are_sent_and_removed() -> None:
    async with wire_server() as server, client_for(server.url) as client:
        await client.cancel_order(**IDS)
        client.http_client.cookies.set("team", "blue")
        await client.cancel_order(**IDS)
        client.http_client.cookies.clear()
        await client.cancel_order(**IDS)
    assert [r.headers.get("cookie") for r in server.requests] == [None, "team=blue", None]


async def test_headers_removed_from_the_session_client_are_not_sent() -> None:
    async with wire_server() as server, client_for(server.url) as client:
        client.http_client.headers["X-Trace"] = "abc"
        await client.cancel_order(**IDS)
        del client.http_client.headers["X-Trace"]
        await client.cancel_order(**IDS)
    assert [r.headers.get("x-trace") for r in server.requests] == ["abc", None]


async def test_the_session_client_sends_requests_as_they_are_until_given_an_auth() -> None:
    """Its pass-through auth adds nothing and sends once, even on a 401; a user's auth applies."""

    async def unauthorized(req: Req, stream: SocketStream) -> bool:
        await stream.send(answer(401, body={"errcode": -1}))
        return True

    once = wx.RetryPolicy(max_retries=0)
    async with (
        wire_server(unauthorized) as server,
        client_for(server.url, retry_policy=once) as client,
    ):
        with pytest.raises(wx.WxLogisticsError):
            await client.cancel_order(**IDS)
        assert len(server.requests) == 1
        assert "authorization" not in server.requests[0].headers
        client.http_client.auth = httpx.BasicAuth("user", "pass")
        with pytest.raises(wx.WxLogisticsError):
            await client.cancel_order(**IDS)
    assert len(server.requests) == 2
    assert server.requests[1].headers["authorization"] == "Basic dXNlcjpwYXNz"
    assert server.requests[1].json() == IDS


async def test_a_client_passed_in_keeps_its_own_auth() -> None:
    async with wire_server() as server:
        http = httpx.AsyncClient(transport=WireTransport(), auth=("user", "pass"))
        async with http, client_for(server.url, http_client=http) as client:
            await client.cancel_order(**IDS)
        assert isinstance(http.auth, httpx.BasicAuth)
    assert server.requests[0].headers["authorization"] == "Basic dXNlcjpwYXNz"


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", httpx.URL("https://api.example/cgi-bin/x?access_token=T"), b'{"a":1}'),
        ("GET", "http://127.0.0.1:8080/cgi-bin/y?x=1", b""),
        ("post", "http://h/p", b"\xe4\xb8\xad"),
    ],
)
def test_the_request_factory_builds_what_the_constructor_builds(
    method: str, url: httpx.URL | str, body: bytes
) -> None:
    from wxlogistics._wire import request_factory

    headers = httpx.Headers({"Host": "h", "Content-Type": "application/json"})
    extensions = {"timeout": {"connect": 1.0, "read": 2.0, "write": 2.0, "pool": 2.0}}
    made = request_factory()(method, url, headers, body, extensions)
    built = httpx.Request(
        method, url, headers=headers, stream=httpx.ByteStream(body), extensions=extensions
    )
    built.read()
    assert vars(made).keys() == vars(built).keys()
    assert (made.method, made.url, made.headers, made.extensions, made.content) == (
        built.method,
        built.url,
        built.headers,
        built.extensions,
        built.content,
    )
    assert b"".join(made.stream) == body  # type: ignore[arg-type]
    # Each request has its own headers and extensions: hooks may change them.
    made.headers["X-Hook"] = "1"
    made.extensions["mine"] = True
    assert "x-hook" not in headers
    assert "mine" not in extensions
