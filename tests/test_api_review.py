"""Breaks found by a hostile review of the whole API, each kept as a test."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import wxlogistics as wx
from wxlogistics._models.orders import AddOrderRequest, CargoItem, ShopItem

from .helpers import STABLE, make_router, token_response, wired
from .test_tokens_secrets import assert_nowhere

pytestmark = pytest.mark.anyio

ADD = "/cgi-bin/express/business/order/add"
GET = "/cgi-bin/express/business/order/get"
ADDR = {"name": "n", "province": "p", "city": "c", "area": "a", "address": "x", "mobile": "1"}
CARGO = {
    "count": 1,
    "weight": 1.0,
    "space_x": 1,
    "space_y": 1,
    "space_z": 1,
    "detail_list": [{"name": "g", "count": 1}],
}
KW: dict[str, Any] = {
    "order_id": "o1",
    "delivery_id": "SF",
    "biz_id": "b",
    "sender": ADDR,
    "receiver": ADDR,
    "cargo": CARGO,
    "shop": {"wxa_path": "/p"},
    "insured": {"use_insured": 0, "insured_value": 0},
    "service": {"service_type": 0, "service_name": "s"},
}


@pytest.mark.parametrize(
    "answer",
    [
        {"errcode": 0, "order_id": "o1", "waybill_id": "W1", "waybill_data": None},
        {"errcode": None, "order_id": "o1", "waybill_id": "W1"},
    ],
)
async def test_a_success_we_cannot_read_is_reconciled_not_lost(answer: dict[str, Any]) -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(ADD).mock(return_value=httpx.Response(200, json=answer))
    get = router.post(GET).mock(
        return_value=httpx.Response(200, json={"errcode": 0, "order_id": "o1", "waybill_id": "W1"})
    )
    async with wired(router) as client:
        result = await client.add_order(**KW)
    assert result.waybill_id == "W1"
    assert result.reconciled is True
    assert get.call_count == 1


async def test_a_repeated_order_id_of_a_cancelled_waybill_is_not_a_success() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(ADD).mock(
        return_value=httpx.Response(200, json={"errcode": 9300522, "errmsg": "order id used"})
    )
    router.post(GET).mock(
        return_value=httpx.Response(
            200, json={"errcode": 0, "order_id": "o1", "waybill_id": "W1", "order_status": 1}
        )
    )
    async with wired(router) as client:
        with pytest.raises(wx.OrderIdRepeatedError):
            await client.add_order(**KW)


async def test_a_refused_carrier_password_stays_out_of_every_frame() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    async with wired(router) as client:
        with pytest.raises(wx.ValidationError) as info:
            await client.bind_account(
                type="bind", biz_id="b", delivery_id="YTO", password=_PASSWORD[0]
            )
    assert_nowhere(info.value, "Carrier-PassW0rd-xyz")


_PASSWORD = [" Carrier-PassW0rd-xyz"]  # not a local of the test's own frame


def test_models_inside_dict_arguments_are_accepted() -> None:
    AddOrderRequest(**{**KW, "cargo": {**CARGO, "detail_list": [CargoItem(name="g", count=1)]}})
    AddOrderRequest(**{**KW, "shop": {"wxa_path": "/p", "detail_list": [ShopItem(goods_name="x")]}})
    AddOrderRequest(**{**KW, "cargo": {**CARGO, "detail_list": ({"name": "g", "count": 1},)}})


@pytest.mark.parametrize("detail_list", ["abc", [1], [None]])
def test_a_malformed_nested_list_is_a_validation_error(detail_list: object) -> None:
    with pytest.raises(wx.ValidationError):
        AddOrderRequest(**{**KW, "cargo": {**CARGO, "detail_list": detail_list}})


@pytest.mark.parametrize(
    ("value", "expires_in"),
    [(12345, 7200), ("", 7200), (" padded", 7200), ("TOKEN-ok", float("nan")), ("T-ok", -1)],
)
def test_a_token_source_handing_over_junk_is_refused(value: Any, expires_in: float) -> None:
    """A CallableTokenSource (or any source) returning a junk token: ValidationError, not a
    TypeError later nor a token that is fetched again on every call."""
    with pytest.raises(wx.ValidationError) as info:
        wx.IssuedToken(value=value, expires_in=expires_in)
    assert "TOKEN-ok" not in str(info.value)


async def test_a_gateway_echoing_bind_account_body_shows_no_password() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post("/cgi-bin/express/business/account/bind").mock(
        side_effect=lambda request: httpx.Response(400, text="Bad: " + request.content.decode())
    )
    async with wired(router) as client:
        with pytest.raises(wx.ResponseError) as info:
            await client.bind_account(
                type="bind", biz_id="b", delivery_id="YTO", password="Carrier-PassW0rd-xyz"
            )
    assert "Carrier-PassW0rd-xyz" not in info.value.body
    assert '"password":"***"' in info.value.body
    assert "Carrier-PassW0rd-xyz" not in str(info.value)


def _echoing_router(status: int) -> Any:
    """WeChat (200) or a gateway (400) quoting the password without any key."""
    secret = _PASSWORD[0].strip()
    answer = {"errcode": 9300531, "errmsg": f"wrong password {secret}", "echo": [secret]}
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post("/cgi-bin/express/business/account/bind").mock(
        return_value=httpx.Response(status, json=answer)
    )
    return router


@pytest.mark.parametrize("status", [200, 400])
async def test_a_password_echoed_bare_is_masked(status: int) -> None:
    """errmsg, payload and body that quote the password without a key are masked too."""
    async with wired(_echoing_router(status)) as client:
        with pytest.raises(wx.WxLogisticsError) as info:
            await client.bind_account(
                type="bind", biz_id="b", delivery_id="YTO", password=_PASSWORD[0].strip()
            )
    error = info.value
    if status == 200:
        assert isinstance(error, wx.AccountCredentialsError)
        assert error.errmsg == "wrong password ***"
        assert error.payload["echo"] == ["***"]
    else:
        assert isinstance(error, wx.ResponseError)
        assert "wrong password ***" in error.body
    assert_nowhere(error, "Carrier-PassW0rd-xyz")
