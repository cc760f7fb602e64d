"""The fake WeChat behaves as the reference says, and its faults are what tests need."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

import wxlogistics as wx
from wxlogistics.testing import FakeResponse, FakeWeChat, serve

from .helpers import IDS

pytestmark = pytest.mark.anyio

CANCEL = "/cgi-bin/express/business/order/cancel"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_fake(**kwargs: object) -> FakeWeChat:
    fake = FakeWeChat(**kwargs)  # type: ignore[arg-type]
    fake.add_waybill(IDS["order_id"], IDS["delivery_id"], IDS["waybill_id"])
    return fake


async def raw(fake: FakeWeChat, method: str, path: str, **kwargs: object) -> dict[str, object]:
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url="https://api.weixin.qq.com"
    ) as http:
        response = await http.request(method, path, **kwargs)  # type: ignore[arg-type]
    value = response.json()
    assert isinstance(value, dict)
    return value


async def stable_token(fake: FakeWeChat, **extra: object) -> dict[str, object]:
    body = {"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret, **extra}
    return await raw(fake, "POST", "/cgi-bin/stable_token", json=body)


async def classic_token(fake: FakeWeChat) -> dict[str, object]:
    params = {"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}
    return await raw(fake, "GET", "/cgi-bin/token", params=params)


# -- cancel outcomes through the real client -----------------------------------------------------


async def test_cancel_then_cancel_again() -> None:
    fake = make_fake()
    async with fake.client() as client:
        result = await client.cancel_order(**IDS)
        assert result.errcode == 0
        assert fake.waybill(IDS["order_id"]).state == "cancelled"
        with pytest.raises(wx.AlreadyCancelledError):
            await client.cancel_order(**IDS)
    waybill = fake.waybill(IDS["order_id"])
    assert (waybill.cancel_requests, waybill.cancellations) == (2, 1)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"order_id": "nope"}, wx.OrderNotFoundError),
        ({"waybill_id": "other"}, wx.WaybillNotFoundError),
        ({"delivery_id": "NOPE"}, wx.DeliveryNotFoundError),
    ],
)
async def test_cancel_refusals(change: dict[str, str], error: type[wx.APIError]) -> None:
    fake = make_fake()
    async with fake.client() as client:
        with pytest.raises(error):
            await client.cancel_order(**{**IDS, **change})
    assert fake.waybill(IDS["order_id"]).state == "created"


async def test_has_traces_cannot_be_cancelled() -> None:
    fake = FakeWeChat()
    fake.add_waybill("o1", "SF", "W1", state="has_traces")
    async with fake.client() as client:
        with pytest.raises(wx.WaybillHasTracesError) as info:
            await client.cancel_order(order_id="o1", delivery_id="SF", waybill_id="W1")
    assert info.value.rid is not None
    assert fake.waybill("o1").state == "has_traces"


async def test_missing_field_and_escaped_body_are_refused() -> None:
    fake = make_fake()
    token = (await stable_token(fake))["access_token"]
    missing = await raw(
        fake, "POST", CANCEL, params={"access_token": token}, json={"order_id": "x"}
    )
    assert missing["errcode"] == 930561
    escaped = await raw(
        fake,
        "POST",
        CANCEL,
        params={"access_token": token},
        content=json.dumps({**IDS, "openid": "用户"}),
    )
    assert escaped["errcode"] == 40033


# -- tokens ----------------------------------------------------------------------------------


async def test_stable_token_is_reused_then_renewed_in_last_five_minutes() -> None:
    clock = Clock()
    fake = FakeWeChat(clock=clock)
    first = await stable_token(fake)
    assert first["expires_in"] == 7200
    clock.now += 1000
    again = await stable_token(fake)
    assert again["access_token"] == first["access_token"]
    assert again["expires_in"] == 6200
    clock.now += 6000  # 200 s left: inside the 5-minute hand-over
    renewed = await stable_token(fake)
    assert renewed["access_token"] != first["access_token"]
    # The old one still works until it expires.
    still = await raw(
        fake, "POST", CANCEL, params={"access_token": first["access_token"]}, json=IDS
    )
    assert still["errcode"] == 930563  # authenticated; this fake simply has no such order
    forced = await stable_token(fake, force_refresh=True)
    assert forced["access_token"] != renewed["access_token"]
    stale = await raw(
        fake, "POST", CANCEL, params={"access_token": renewed["access_token"]}, json=IDS
    )
    assert stale["errcode"] == 40001


async def test_classic_token_supersedes_previous_after_grace() -> None:
    clock = Clock()
    fake = make_fake(clock=clock)
    old = (await classic_token(fake))["access_token"]
    new = (await classic_token(fake))["access_token"]
    assert old != new
    ok = await raw(
        fake, "POST", CANCEL, params={"access_token": old}, json={**IDS, "order_id": "zz"}
    )
    assert ok["errcode"] == 930563  # the old token still authenticates within 5 minutes
    clock.now += 301
    superseded = await raw(fake, "POST", CANCEL, params={"access_token": old}, json=IDS)
    assert superseded["errcode"] == 40001
    clock.now += 7200
    expired = await raw(fake, "POST", CANCEL, params={"access_token": new}, json=IDS)
    assert expired["errcode"] == 42001
    missing = await raw(fake, "POST", CANCEL, json=IDS)
    assert missing["errcode"] == 41001


@pytest.mark.parametrize(
    ("field", "stable_code", "classic_code"), [("appid", 40013, 40013), ("secret", 40125, 40001)]
)
async def test_wrong_credentials(field: str, stable_code: int, classic_code: int) -> None:
    fake = FakeWeChat()
    body = {
        "grant_type": "client_credential",
        "appid": fake.appid,
        "secret": fake.secret,
        field: "wrong",
    }
    assert (await raw(fake, "POST", "/cgi-bin/stable_token", json=body))["errcode"] == stable_code
    assert (await raw(fake, "GET", "/cgi-bin/token", params=body))["errcode"] == classic_code


@pytest.mark.parametrize(
    ("action", "errcode"), [("expire_tokens", 42001), ("revoke_tokens", 40001)]
)
async def test_client_recovers_from_expired_or_revoked_token(action: str, errcode: int) -> None:
    fake = FakeWeChat()
    for i in range(3):
        fake.add_waybill(f"o{i}", "SF", f"W{i}")
    async with fake.client() as client:
        await client.cancel_order(order_id="o0", delivery_id="SF", waybill_id="W0")
        getattr(fake, action)()
        await client.cancel_order(order_id="o1", delivery_id="SF", waybill_id="W1")
        assert client.tokens.fetch_count == 2
    cancels = [c for c in fake.calls if c.path == CANCEL]
    assert [c.errcode for c in cancels] == [0, errcode, 0]
    assert cancels[1].token == cancels[0].token != cancels[2].token


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"errcode": -1},
        {"status": 502},
        {"drop": "before"},
    ],
)
async def test_transient_faults_are_retried_to_success(fault: dict[str, object]) -> None:
    fake = make_fake()
    fake.fail_next(2, **fault)  # type: ignore[arg-type]
    async with fake.client() as client:
        result = await client.cancel_order(**IDS)
    assert result.errcode == 0
    assert [c.path for c in fake.calls].count(CANCEL) == 3
    assert fake.waybill(IDS["order_id"]).cancellations == 1


async def test_answer_lost_after_cancel_is_confirmed_by_the_retry() -> None:
    """The first attempt cancelled the waybill but its answer was lost: the retry's 9300524
    confirms it, so the call succeeds (issue 8, item 4)."""
    fake = make_fake()
    fake.fail_next(1, drop="after")
    async with fake.client() as client:
        result = await client.cancel_order(**IDS)
    assert result.confirmed_by_retry is True
    assert result.errcode == 9300524
    assert fake.waybill(IDS["order_id"]).cancellations == 1
    assert [c.path for c in fake.calls if c.path == CANCEL] == [CANCEL, CANCEL]


async def test_first_attempt_9300524_stays_already_cancelled() -> None:
    fake = make_fake()
    async with fake.client() as client:
        await client.cancel_order(**IDS)
        with pytest.raises(wx.AlreadyCancelledError) as info:
            await client.cancel_order(**IDS)
    assert info.value.may_have_been_sent is False


async def test_dropped_then_busy_says_it_may_have_been_carried_out() -> None:
    """Item 5: after an attempt that may have been carried out, whatever error is finally
    raised says so."""
    fake = make_fake()
    fake.fail_next(1, drop="after")
    fake.fail_next(2, errcode=-1)
    async with fake.client(retry_policy=wx.RetryPolicy(max_retries=2, initial_delay=0)) as client:
        with pytest.raises(wx.SystemBusyError) as info:
            await client.cancel_order(**IDS)
    assert info.value.may_have_been_sent is True
    assert fake.waybill(IDS["order_id"]).cancellations == 1


@pytest.mark.parametrize(
    ("body", "fragment"), [("html", "not a JSON object"), ("empty", "empty body")]
)
async def test_bad_bodies(body: str, fragment: str) -> None:
    fake = make_fake()
    fake.fail_next(1, body=body)  # type: ignore[arg-type]
    async with fake.client() as client:
        with pytest.raises(wx.ResponseError, match=fragment):
            await client.cancel_order(**IDS)
    assert fake.waybill(IDS["order_id"]).state == "created"


async def test_token_endpoint_fault_targets_only_that_path() -> None:
    fake = make_fake()
    fake.fail_next(1, errcode=40164, path="/cgi-bin/stable_token")
    async with fake.client() as client:
        with pytest.raises(wx.CredentialsError) as info:
            await client.cancel_order(**IDS)
        assert info.value.errcode == 40164
        assert (await client.cancel_order(**IDS)).errcode == 0


async def test_fail_fraction_is_seeded_and_clearable() -> None:
    def run() -> list[int | None]:
        fake = FakeWeChat(seed=42)
        fake.fail_fraction(0.3, errcode=45009)
        return [fake._take_fault(CANCEL) is not None for _ in range(200)]  # type: ignore[misc]

    first, second = run(), run()
    assert first == second
    assert 30 < sum(first) < 90  # type: ignore[arg-type]
    fake = make_fake()
    fake.fail_fraction(1.0, errcode=45009)
    async with fake.client() as client:
        with pytest.raises(wx.RateLimitError):
            await client.cancel_order(**IDS)
        fake.clear_faults()
        assert (await client.cancel_order(**IDS)).errcode == 0


async def test_latency_and_concurrency_are_observed() -> None:
    fake = FakeWeChat(latency=0.05)
    for i in range(10):
        fake.add_waybill(f"o{i}", "SF", f"W{i}")
    requests = [
        wx.CancelOrderRequest(order_id=f"o{i}", delivery_id="SF", waybill_id=f"W{i}")
        for i in range(10)
    ]
    async with fake.client() as client, client.cancel_orders(requests, concurrency=4) as outcomes:
        statuses = [o.status async for o in outcomes]
    assert statuses == ["cancelled"] * 10
    assert fake.max_concurrent == 4


def test_fault_arguments_are_checked() -> None:
    fake = FakeWeChat()
    with pytest.raises(ValueError, match="at most one"):
        fake.fail_next(errcode=-1, status=500)
    with pytest.raises(ValueError, match="between 0 and 1"):
        fake.fail_fraction(2.0, errcode=-1)
    with pytest.raises(ValueError, match="unknown carrier"):
        fake.add_waybill("o", "NOPE", "w")


async def test_plugin_fixtures(
    wxlogistics_fake: FakeWeChat, wxlogistics_client: wx.AsyncLogistics
) -> None:
    wxlogistics_fake.add_waybill("o1", "SF", "WB1")
    await wxlogistics_client.cancel_order(order_id="o1", delivery_id="SF", waybill_id="WB1")
    assert wxlogistics_fake.waybill("o1").state == "cancelled"


# -- the HTTP server: malformed requests get 400, and it goes on serving ------------------------


async def exchange(port: int, raw: bytes) -> bytes:
    """Send ``raw`` on a fresh connection and read until the server closes it."""
    received = b""
    with anyio.fail_after(5):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(raw)
            while True:
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return received


async def still_serves(port: int, fake: FakeWeChat) -> None:
    body = {"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"http://127.0.0.1:{port}/cgi-bin/stable_token", json=body)
    assert response.status_code == 200
    assert "access_token" in response.json()


TOKEN_POST = b"POST /cgi-bin/stable_token HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(
            TOKEN_POST + b"Content-Length: abc\r\n\r\n{}",
            b"bad Content-Length",
            id="length-not-a-number",
        ),
        pytest.param(
            TOKEN_POST + b"Content-Length: -5\r\n\r\n{}",
            b"bad Content-Length",
            id="length-negative",
        ),
        pytest.param(
            TOKEN_POST + b"Content-Length: +2\r\n\r\n{}", b"bad Content-Length", id="length-signed"
        ),
        pytest.param(
            TOKEN_POST + b"Content-Length: 2, 2\r\n\r\n{}", b"bad Content-Length", id="length-list"
        ),
        pytest.param(
            TOKEN_POST + b"Content-Length: \xb2\r\n\r\n{}",
            b"bad Content-Length",
            id="length-unicode-digit",
        ),
        pytest.param(
            TOKEN_POST + b"Content-Length: 99999999999999999999999\r\n\r\n",
            b"body too large",
            id="length-huge",
        ),
        pytest.param(
            TOKEN_POST + b"Content-Length: 8388609\r\n\r\n",
            b"body too large",
            id="length-over-limit",
        ),
        pytest.param(
            TOKEN_POST + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            b"conflicting Content-Length",
            id="length-twice",
        ),
        pytest.param(
            TOKEN_POST + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"Transfer-Encoding",
            id="chunked",
        ),
        pytest.param(
            TOKEN_POST + b"no colon here\r\n\r\n", b"bad header line", id="header-no-colon"
        ),
        pytest.param(TOKEN_POST + b": no name\r\n\r\n", b"bad header line", id="header-no-name"),
        pytest.param(
            TOKEN_POST + b"Content-Length : 2\r\n\r\n{}",
            b"bad header line",
            id="header-space-before-colon",
        ),
        pytest.param(b"GARBAGE\r\n\r\n", b"bad request line", id="request-line-one-word"),
        pytest.param(b"GET /\r\n\r\n", b"bad request line", id="request-line-no-version"),
        pytest.param(
            b"GET  / HTTP/1.1\r\n\r\n", b"bad request line", id="request-line-double-space"
        ),
        pytest.param(b"GET / SPDY/3\r\n\r\n", b"bad request line", id="request-line-not-http"),
    ],
)
async def test_server_answers_400_to_malformed_requests_and_keeps_serving(
    raw: bytes, reason: bytes
) -> None:
    fake = FakeWeChat()
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, fake)
        answer = await exchange(port, raw)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
        assert b"Connection: close\r\n" in answer
        assert reason in answer.split(b"\r\n\r\n", 1)[1]
        await still_serves(port, fake)
        tg.cancel_scope.cancel()
    assert fake.calls == [c for c in fake.calls if c.path == "/cgi-bin/stable_token"]
    assert len(fake.calls) == 1  # only the request after the bad one reached the model


async def test_server_answers_500_when_the_fake_fails_and_keeps_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeWeChat()
    real = fake.handle_async

    async def flaky(method: str, path: str, query: str, body: bytes) -> FakeResponse:
        if path == "/boom":
            raise KeyError("a bug in the model")
        return await real(method, path, query, body)

    monkeypatch.setattr(fake, "handle_async", flaky)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, fake)
        answer = await exchange(port, b"GET /boom HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), answer
        assert b"KeyError" in answer
        await still_serves(port, fake)
        tg.cancel_scope.cancel()
