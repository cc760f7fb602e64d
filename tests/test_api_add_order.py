"""add_order: validation before sending, and the retry / reconcile policy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from wxlogistics import (
    AddOrderResult,
    CarrierError,
    OutcomeUnknownError,
    QuotaError,
    RequestTimeoutError,
    ResponseError,
    TransportError,
    ValidationError,
)
from wxlogistics._endpoints import ADD_ORDER, GET_ORDER

from .helpers import STABLE, body_of, make_router, token_response, wired
from .test_contract import ADD_ARGS, ADDRESS, WAYBILL_DATA

pytestmark = pytest.mark.anyio

CREATED = {
    "order_id": ADD_ARGS["order_id"],
    "waybill_id": "123456789",
    "waybill_data": WAYBILL_DATA,
}
FOUND = {
    "errcode": 0,
    "errmsg": "ok",
    "order_id": ADD_ARGS["order_id"],
    "delivery_id": "SF",
    "waybill_id": "WB-FOUND",
    "print_html": "PGh0bWw+",
    "waybill_data": WAYBILL_DATA,
    "order_status": 0,
}


def _routes(add: list[Any], get: list[Any] | None = None) -> tuple[Any, Any, Any]:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    add_route = router.post(ADD_ORDER.path)
    add_route.side_effect = add
    get_route = router.post(GET_ORDER.path)
    get_route.side_effect = get or []
    return router, add_route, get_route


def _json(payload: dict[str, Any], status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=payload)


# -- retry safety -------------------------------------------------------------------------------


async def test_read_timeout_is_reconciled_with_get_order() -> None:
    router, add, get = _routes([httpx.ReadTimeout("slow")], [_json(FOUND)])
    async with wired(router) as client:
        result = await client.add_order(**ADD_ARGS)
    assert add.call_count == 1  # never resent: it may have created the waybill
    assert get.call_count == 1
    assert body_of(get.calls.last.request) == {
        "order_id": ADD_ARGS["order_id"],
        "delivery_id": "SF",
        "openid": "oABC123456",
    }
    assert result.reconciled is True
    assert result.waybill_id == "WB-FOUND"
    assert result.order_status == 0
    assert result.waybill_data[0].key == "SF_bagAddr"


@pytest.mark.parametrize("errcode", [9300522, 9300508, 9300521, -1, 9909001])
async def test_reconcile_errcodes_return_the_existing_waybill(errcode: int) -> None:
    answer = {"errcode": errcode, "errmsg": "this orderid is repeated"}
    router, add, get = _routes([_json(answer)], [_json(FOUND)])
    async with wired(router) as client:
        result = await client.add_order(**ADD_ARGS)
    assert add.call_count == 1
    assert get.call_count == 1
    assert (result.reconciled, result.waybill_id) == (True, "WB-FOUND")


async def test_dropped_connection_after_sending_is_reconciled() -> None:
    router, add, get = _routes([httpx.RemoteProtocolError("dropped")], [_json(FOUND)])
    async with wired(router) as client:
        result = await client.add_order(**ADD_ARGS)
    assert (add.call_count, get.call_count) == (1, 1)
    assert result.reconciled is True


async def test_5xx_is_reconciled() -> None:
    router, add, get = _routes([httpx.Response(502, text="bad gateway")], [_json(FOUND)])
    async with wired(router) as client:
        result = await client.add_order(**ADD_ARGS)
    assert (add.call_count, get.call_count) == (1, 1)
    assert result.waybill_id == "WB-FOUND"


async def test_timeout_then_retry_of_same_order_id_answering_9300522_gives_one_waybill() -> None:
    """The caller's own retry after OutcomeUnknownError reuses the order id: no second waybill."""
    not_found = {"errcode": 930563, "errmsg": "order not exists"}
    repeated = {"errcode": 9300522, "errmsg": "this orderid is repeated"}
    router, add, get = _routes(
        [httpx.ReadTimeout("slow"), _json(repeated)], [_json(not_found), _json(FOUND)]
    )
    async with wired(router) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.add_order(**ADD_ARGS)
        result = await client.add_order(**ADD_ARGS)
    assert (add.call_count, get.call_count) == (2, 2)
    assert result.waybill_id == "WB-FOUND"


async def test_connect_failure_is_resent() -> None:
    router, add, get = _routes([httpx.ConnectError("refused"), _json(CREATED)])
    async with wired(router) as client:
        result = await client.add_order(**ADD_ARGS)
    assert add.call_count == 2  # provably never reached WeChat
    assert get.call_count == 0
    assert result.reconciled is False
    assert result.waybill_id == "123456789"


async def test_connect_failures_to_the_end_raise_without_lookup() -> None:
    router, add, get = _routes([httpx.ConnectError("refused")] * 3)
    async with wired(router) as client:
        with pytest.raises(TransportError) as info:
            await client.add_order(**ADD_ARGS)
    assert add.call_count == 3
    assert get.call_count == 0
    assert info.value.may_have_been_sent is False


@pytest.mark.parametrize(
    "lookup",
    [
        {"errcode": 930563, "errmsg": "order not exists"},
        {"errcode": 9300528, "errmsg": "invalid waybill_id"},
        {"errcode": 0, "errmsg": "ok", "order_id": "x"},  # an answer without a waybill
    ],
)
async def test_nothing_found_raises_outcome_unknown(lookup: dict[str, Any]) -> None:
    router, add, get = _routes([httpx.ReadTimeout("slow")], [_json(lookup)])
    async with wired(router) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.add_order(**ADD_ARGS)
    error = info.value
    assert error.order_id == ADD_ARGS["order_id"]
    assert error.may_have_been_sent is True
    assert error.lookup_error is None
    assert isinstance(error.__cause__, RequestTimeoutError)
    assert "same order_id" in str(error)
    assert (add.call_count, get.call_count) == (1, 1)


async def test_lookup_failure_raises_outcome_unknown_with_the_lookup_error() -> None:
    router, add, get = _routes(
        [_json({"errcode": 9300522, "errmsg": "this orderid is repeated"})],
        [httpx.ReadTimeout("slow")] * 3,
    )
    async with wired(router) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.add_order(**ADD_ARGS)
    assert isinstance(info.value.lookup_error, RequestTimeoutError)
    assert get.call_count == 3  # getOrder is a read: retried
    assert add.call_count == 1


async def test_outcome_unknown_frames_hold_no_token() -> None:
    router, _, _ = _routes([httpx.ReadTimeout("slow")], [_json({"errcode": 930563})])
    async with wired(router) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.add_order(**ADD_ARGS)
        token = (await client.get_access_token()).value
    seen = []
    tb = info.value.__traceback__
    assert tb is not None
    tb = tb.tb_next  # the SDK's frames, not this test's (which holds the token)
    while tb is not None:
        seen.extend(repr(v) for v in tb.tb_frame.f_locals.values())
        tb = tb.tb_next
    assert seen  # the SDK frames were inspected
    assert not any(token in text for text in seen)


@pytest.mark.parametrize(
    ("answer", "cls"),
    [
        (
            {
                "errcode": 9300501,
                "errmsg": "delivery logic fail",
                "delivery_resultcode": 20003,
                "delivery_resultmsg": "超区",
            },
            CarrierError,
        ),
        ({"errcode": 9300523, "errmsg": "quota not enough"}, QuotaError),
    ],
)
async def test_refusals_raise_without_lookup(answer: dict[str, Any], cls: type) -> None:
    router, add, get = _routes([_json(answer)])
    async with wired(router) as client:
        with pytest.raises(cls):
            await client.add_order(**ADD_ARGS)
    assert (add.call_count, get.call_count) == (1, 0)


async def test_unparseable_success_is_looked_up_not_reported_as_not_sent() -> None:
    """errcode 0 in a shape we cannot read: the waybill exists, so it is looked up; here the
    lookup finds nothing usable, so the outcome is unknown (never "not sent")."""
    router, _, _ = _routes([_json({"waybill_id": "1", "waybill_data": "not a list"})])
    async with wired(router) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.add_order(**ADD_ARGS)
    assert isinstance(info.value.__cause__, ResponseError)


async def test_models_are_accepted_as_well_as_dicts() -> None:
    from wxlogistics import Address, Cargo, CargoItem, Insured, Service, Shop

    router, add, _ = _routes([_json(CREATED)])
    args = {
        **ADD_ARGS,
        "sender": Address(**ADDRESS),
        "cargo": Cargo(
            count=2,
            weight=5.5,
            space_x=30.5,
            space_y=20,
            space_z=20,
            detail_list=[CargoItem(name="书", count=1)],
        ),
        "shop": Shop(wxa_path="/index/index?from=waybill", goods_name="书", goods_count=2),
        "insured": Insured(use_insured=1, insured_value=10000),
        "service": Service(service_type=0, service_name="标准快递"),
    }
    async with wired(router) as client:
        result = await client.add_order(**args)
    assert isinstance(result, AddOrderResult)
    assert body_of(add.calls.last.request) == {**ADD_ARGS, "add_source": 0}


# -- validation -----------------------------------------------------------------------------


def _with(**changes: Any) -> dict[str, Any]:
    return {**ADD_ARGS, **changes}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (_with(delivery_id="TEST"), "sandbox"),
        (_with(biz_id="test_biz_id"), "sandbox"),
        (_with(order_id="单" * 171), "order_id"),  # 513 bytes
        (_with(custom_remark="注" * 342), "custom_remark"),  # 1026 bytes
        (_with(sender={**ADDRESS, "name": "名" * 22}), "name"),  # 66 bytes > 64
        (_with(sender={**ADDRESS, "address": "址" * 171}), "address"),  # 513 > 512
        (_with(receiver={k: v for k, v in ADDRESS.items() if k != "mobile"}), "tel or mobile"),
        (_with(receiver={**ADDRESS, "nmae": "x"}), "unknown fields"),
        (_with(receiver={k: v for k, v in ADDRESS.items() if k != "city"}), "'city'"),
        (_with(cargo={**ADD_ARGS["cargo"], "count": "2"}), "count must be an int"),
        (_with(cargo={**ADD_ARGS["cargo"], "count": True}), "count must be an int"),
        (_with(cargo={**ADD_ARGS["cargo"], "weight": float("nan")}), "weight"),
        (_with(cargo={**ADD_ARGS["cargo"], "detail_list": []}), "detail_list must not be empty"),
        (_with(insured={"use_insured": 2, "insured_value": 1}), "use_insured"),
        (_with(add_source=2), "wx_appid"),
        (_with(add_source=1), "add_source"),
        (_with(order_id=""), "order_id"),
        (_with(order_id=123), "order_id must be a str"),
        (_with(expect_time=1.5), "expect_time"),
        (_with(shop="x"), "shop must be a Shop or a dict"),
    ],
)
async def test_invalid_arguments_raise_before_sending(args: dict[str, Any], needle: str) -> None:
    router, add, _ = _routes([_json(CREATED)])
    async with wired(router) as client:
        with pytest.raises(ValidationError) as info:
            await client.add_order(**args)
    assert needle in str(info.value)
    assert add.call_count == 0


async def test_byte_limits_are_inclusive() -> None:
    router, add, _ = _routes([_json(CREATED)])
    args = _with(
        order_id="单" * 170,  # 510 bytes
        custom_remark="注" * 341,  # 1023 bytes
        sender={**ADDRESS, "name": "名" * 21},  # 63 bytes
    )
    async with wired(router) as client:
        await client.add_order(**args)
    assert add.call_count == 1


async def test_sandbox_values_are_accepted() -> None:
    router, add, _ = _routes([_json(CREATED)])
    async with wired(router) as client:
        await client.add_order(**_with(delivery_id="TEST", biz_id="test_biz_id"))
    assert body_of(add.calls.last.request)["biz_id"] == "test_biz_id"
