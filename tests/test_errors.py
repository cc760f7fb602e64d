"""Every documented errcode becomes the right exception, with its fields kept."""

from __future__ import annotations

import httpx
import pytest

import wxlogistics as wx

from .helpers import CANCEL, CLASSIC, IDS, STABLE, make_router, token_response, wired

pytestmark = pytest.mark.anyio

ERRCODES = [
    (-1, wx.SystemBusyError),
    (40001, wx.AccessTokenError),
    (40014, wx.AccessTokenError),
    (42001, wx.AccessTokenError),
    (45009, wx.RateLimitError),
    (45011, wx.RateLimitError),
    (9300509, wx.RateLimitError),
    (9300537, wx.RateLimitError),
    (48001, wx.PermissionDeniedError),
    (48004, wx.PermissionDeniedError),
    (61007, wx.PermissionDeniedError),
    (930561, wx.InvalidArgumentError),
    (9300526, wx.InvalidArgumentError),
    (9300503, wx.DeliveryNotFoundError),
    (9300520, wx.DeliveryNotFoundError),
    (930563, wx.OrderNotFoundError),
    (40199, wx.WaybillNotFoundError),
    (9300506, wx.WaybillHasTracesError),
    (9300524, wx.AlreadyCancelledError),
    (9300501, wx.CarrierError),
    (9909001, wx.APIError),  # undocumented: plain APIError, code kept
]


@pytest.mark.parametrize(("errcode", "cls"), ERRCODES)
async def test_errcode_maps_to_exception(errcode: int, cls: type[wx.APIError]) -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    payload = {"errcode": errcode, "errmsg": "some failure rid: 6a1b2c3d-0000aaaa-1111bbbb"}
    router.post(CANCEL).respond(json=payload)
    policy = wx.RetryPolicy(max_retries=0)
    async with wired(router, retry_policy=policy) as client:
        with pytest.raises(wx.APIError) as info:
            await client.cancel_order(**IDS)
    error = info.value
    assert type(error) is cls
    assert isinstance(error, wx.WxLogisticsError)
    assert error.errcode == errcode
    assert error.errmsg == payload["errmsg"]
    assert error.rid == "6a1b2c3d-0000aaaa-1111bbbb"
    assert error.payload == payload
    assert error.path == CANCEL
    assert str(error) == f"[{errcode}] some failure (rid: 6a1b2c3d-0000aaaa-1111bbbb)"


async def test_carrier_error_keeps_delivery_result() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(CANCEL).respond(
        json={
            "errcode": 9300501,
            "errmsg": "delivery logic fail",
            "delivery_resultcode": 30004,
            "delivery_resultmsg": "暂不支持取消运单",
        }
    )
    async with wired(router) as client:
        with pytest.raises(wx.CarrierError) as info:
            await client.cancel_order(**IDS)
    assert info.value.delivery_resultcode == 30004
    assert info.value.delivery_resultmsg == "暂不支持取消运单"
    assert str(info.value) == "[9300501] delivery logic fail; carrier said [30004] 暂不支持取消运单"


async def test_errcode_as_numeric_string_is_understood() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(CANCEL).respond(json={"errcode": "40199", "errmsg": "waybill id not exist"})
    async with wired(router) as client:
        with pytest.raises(wx.WaybillNotFoundError) as info:
            await client.cancel_order(**IDS)
    assert str(info.value) == "[40199] waybill id not exist"
    assert info.value.rid is None


async def test_non_numeric_errcode_is_a_response_error() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(CANCEL).respond(json={"errcode": "boom"})
    async with wired(router) as client:
        with pytest.raises(wx.ResponseError) as info:
            await client.cancel_order(**IDS)
    assert info.value.status_code == 200


@pytest.mark.parametrize(
    ("response", "fragment"),
    [
        (
            httpx.Response(
                200, content=b"<html>502 Bad Gateway</html>", headers={"content-type": "text/html"}
            ),
            "not a JSON object",
        ),
        (
            httpx.Response(200, content=b"", headers={"content-type": "text/html; charset=gbk"}),
            "empty body",
        ),
        (httpx.Response(200, content=b'{"errcode": 0,'), "not a JSON object"),
        (httpx.Response(200, content=b"[1, 2]"), "not a JSON object"),
        (httpx.Response(200, content=b"\xff\xfe\x00garbage"), "not a JSON object"),
        (httpx.Response(404, content=b"not found"), "HTTP 404"),
    ],
)
async def test_bad_bodies_raise_response_error(response: httpx.Response, fragment: str) -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(CANCEL).mock(return_value=response)
    async with wired(router) as client:
        with pytest.raises(wx.ResponseError) as info:
            await client.cancel_order(**IDS)
    assert fragment in str(info.value)
    assert info.value.status_code == response.status_code
    assert info.value.path == CANCEL
    assert route.call_count == 1  # not retried: a 200 with a bad body is not transient


async def test_5xx_is_retried_then_raised_with_status() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(CANCEL).respond(status_code=503, content=b"busy")
    async with wired(router, retry_policy=wx.RetryPolicy(max_retries=3, initial_delay=0)) as client:
        with pytest.raises(wx.ResponseError) as info:
            await client.cancel_order(**IDS)
    assert info.value.status_code == 503
    assert info.value.body == "busy"
    assert route.call_count == 4


@pytest.mark.parametrize(
    ("errcode", "cls"),
    [
        (40001, wx.CredentialsError),  # on the token endpoint 40001 means a wrong secret
        (40013, wx.CredentialsError),
        (40125, wx.CredentialsError),
        (40164, wx.CredentialsError),
        (40243, wx.CredentialsError),
        (45009, wx.RateLimitError),
    ],
)
@pytest.mark.parametrize("source", ["stable", "classic"])
async def test_token_endpoint_errors_are_credentials_errors_and_not_retried(
    errcode: int, cls: type[wx.APIError], source: str
) -> None:
    router = make_router()
    path = STABLE if source == "stable" else CLASSIC
    token_route = router.route(path=path).respond(json={"errcode": errcode, "errmsg": "nope"})
    cancel_route = router.post(CANCEL).respond(json={})
    policy = wx.RetryPolicy(max_retries=5, initial_delay=0)
    async with wired(router, retry_policy=policy, token_source=source) as client:  # type: ignore[arg-type]
        with pytest.raises(wx.APIError) as info:
            await client.cancel_order(**IDS)
    assert type(info.value) is cls
    assert info.value.errcode == errcode
    assert info.value.path == path
    assert token_route.call_count == 1
    assert cancel_route.call_count == 0


async def test_token_endpoint_minus_one_is_retried() -> None:
    router = make_router()
    token_route = router.post(STABLE).mock(
        side_effect=[
            httpx.Response(200, json={"errcode": -1, "errmsg": "system error"}),
            token_response(),
        ]
    )
    router.post(CANCEL).respond(json={"errcode": 0})
    async with wired(router) as client:
        result = await client.cancel_order(**IDS)
    assert result.errcode == 0
    assert token_route.call_count == 2


async def test_token_answer_without_token_is_a_response_error() -> None:
    router = make_router()
    router.post(STABLE).respond(json={"expires_in": 7200})
    async with wired(router) as client:
        with pytest.raises(wx.ResponseError, match="access_token"):
            await client.cancel_order(**IDS)


def test_exception_tree() -> None:
    assert issubclass(wx.ValidationError, ValueError)
    assert issubclass(wx.ClientClosedError, RuntimeError)
    assert issubclass(wx.RequestTimeoutError, wx.TransportError)
    for cls in (wx.TransportError, wx.ResponseError, wx.APIError, wx.ValidationError):
        assert issubclass(cls, wx.WxLogisticsError)
    for _, cls in ERRCODES:
        assert issubclass(cls, wx.APIError)
    assert issubclass(wx.CredentialsError, wx.APIError)


def test_rate_limit_retry_after() -> None:
    assert wx.RateLimitError(45009, "daily").retry_after is None
    minute = wx.RateLimitError(45011, "minute").retry_after
    assert minute is not None
    assert 0.5 <= minute <= 60.5
    assert wx.RateLimitError(9300509, "speed").retry_after == 1.0
