"""The contract: every endpoint's method, path, body and result, against one table.

The table mirrors the reference (docs: /work/shared/reference/wechat-logistics-api.md,
sections 2 and 3). Each answer carries a field no model declares, which must land in
``extra``. The test fails when an endpoint is declared without a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import httpx
import pytest

from wxlogistics._endpoints import ENDPOINTS

from .helpers import STABLE, TOKEN, make_router, token_response, wired

pytestmark = pytest.mark.anyio

B = "/cgi-bin/express/business"
ADDRESS = {
    "name": "张三",
    "mobile": "13800000000",
    "province": "广东省",
    "city": "广州市",
    "area": "海珠区",
    "address": "新港中路 397 号",
}
ADD_ARGS: dict[str, Any] = {
    "order_id": "01234567890123456789",
    "openid": "oABC123456",
    "delivery_id": "SF",
    "biz_id": "xyz",
    "custom_remark": "易碎物品",
    "sender": ADDRESS,
    "receiver": ADDRESS,
    "shop": {"wxa_path": "/index/index?from=waybill", "goods_name": "书", "goods_count": 2},
    "cargo": {
        "count": 2,
        "weight": 5.5,
        "space_x": 30.5,
        "space_y": 20,
        "space_z": 20,
        "detail_list": [{"name": "书", "count": 1}],
    },
    "insured": {"use_insured": 1, "insured_value": 10000},
    "service": {"service_type": 0, "service_name": "标准快递"},
}
WAYBILL_DATA = [{"key": "SF_bagAddr", "value": "广州"}, {"key": "SF_mark", "value": "101"}]
UNKNOWN = {"field_added_later": {"x": 1}}


@attrs.frozen
class Row:
    """One endpoint as the reference describes it."""

    method_name: str
    http: str
    path: str
    kwargs: dict[str, Any]
    body: dict[str, Any] | None  # None: no body at all (GET)
    answer: dict[str, Any]
    check: Callable[[Any], None]


def _add(result: Any) -> None:
    assert result.waybill_id == "123456789"
    assert result.waybill_data[0].key == "SF_bagAddr"
    assert result.waybill_data[1].value == "101"
    assert result.reconciled is False


def _get(result: Any) -> None:
    assert (result.order_id, result.delivery_id, result.waybill_id) == ("o1", "SF", "w1")
    assert result.print_html == "PGh0bWw+"
    assert result.order_status == 0
    assert result.waybill_data[0].key == "SF_bagAddr"


def _batch(result: Any) -> None:
    first, second = result.order_list
    assert first.ok
    assert first.waybill_id == "w1"
    assert first.order_status == 1
    assert not second.ok
    assert second.errcode == 9300528


def _path(result: Any) -> None:
    assert result.path_item_num == 2
    item = result.path_item_list[0]
    assert (item.action_time, item.action_type, item.action_msg) == (1533052800, 100001, "揽件")
    assert type(item.action_time) is int
    assert item.action_datetime is not None
    assert item.action_datetime.year == 2018


def _deliveries(result: Any) -> None:
    assert result.count == 1
    sf = result.data[0]
    assert (sf.delivery_id, sf.can_use_cash, sf.cash_biz_id) == ("SF", 1, "SF_CASH")
    assert sf.service_type[0].service_name == "标准快递"


def _quota(result: Any) -> None:
    assert result.quota_num == 210


def _printer(result: Any) -> None:
    assert result.count == 2
    assert result.openid == ("oA", "oB")
    assert result.tagid_list == ("123", "456")


def _ok(result: Any) -> None:
    assert (result.errcode, result.errmsg) == (0, "ok")


def _accounts(result: Any) -> None:
    account = result.list[0]
    assert (account.biz_id, account.delivery_id, account.status_code) == ("b1", "YUNDA", 0)
    assert account.create_time == 1555484222
    assert type(account.create_time) is int
    assert account.create_datetime is not None
    assert account.service_type[0].service_type == 1


def _cancel(result: Any) -> None:
    assert (result.errcode, result.delivery_resultcode) == (0, 0)


ROWS: dict[str, Row] = {
    "add_order": Row(
        "add_order",
        "POST",
        f"{B}/order/add",
        ADD_ARGS,
        {**ADD_ARGS, "add_source": 0},
        {
            "order_id": "01234567890123456789",
            "waybill_id": "123456789",
            "waybill_data": WAYBILL_DATA,
        },
        _add,
    ),
    "batch_get_order": Row(
        "batch_get_order",
        "POST",
        f"{B}/order/batchget",
        {
            "order_list": [
                {"order_id": "o1", "delivery_id": "SF", "waybill_id": "w1"},
                {"order_id": "o2", "delivery_id": "SF"},
            ]
        },
        {
            "order_list": [
                {"order_id": "o1", "delivery_id": "SF", "waybill_id": "w1"},
                {"order_id": "o2", "delivery_id": "SF"},
            ]
        },
        {
            "errcode": 0,
            "errmsg": "ok",
            "order_list": [
                {
                    "errcode": 0,
                    "errmsg": "ok",
                    "order_id": "o1",
                    "delivery_id": "SF",
                    "waybill_id": "w1",
                    "print_html": "PGh0bWw+",
                    "waybill_data": WAYBILL_DATA,
                    "order_status": 1,
                },
                {"errcode": 9300528, "errmsg": "invalid waybill_id", "order_id": "o2"},
            ],
        },
        _batch,
    ),
    "cancel_order": Row(
        "cancel_order",
        "POST",
        f"{B}/order/cancel",
        {"order_id": "o1", "delivery_id": "SF", "waybill_id": "w1", "openid": "oA"},
        {"order_id": "o1", "delivery_id": "SF", "waybill_id": "w1", "openid": "oA"},
        {"errcode": 0, "errmsg": "ok", "delivery_resultcode": 0, "delivery_resultmsg": ""},
        _cancel,
    ),
    "get_all_delivery": Row(
        "get_all_delivery",
        "GET",
        f"{B}/delivery/getall",
        {},
        None,
        {
            "count": 1,
            "data": [
                {
                    "delivery_id": "SF",
                    "delivery_name": "顺丰速运",
                    "can_use_cash": 1,
                    "can_get_quota": 1,
                    "cash_biz_id": "SF_CASH",
                    "service_type": [{"service_type": 0, "service_name": "标准快递"}],
                }
            ],
        },
        _deliveries,
    ),
    "get_order": Row(
        "get_order",
        "POST",
        f"{B}/order/get",
        {"order_id": "o1", "delivery_id": "SF", "waybill_id": "w1", "print_type": 1},
        {"order_id": "o1", "delivery_id": "SF", "waybill_id": "w1", "print_type": 1},
        {
            "errcode": 0,
            "errmsg": "ok",
            "print_html": "PGh0bWw+",
            "waybill_data": WAYBILL_DATA,
            "order_id": "o1",
            "delivery_id": "SF",
            "waybill_id": "w1",
            "order_status": 0,
        },
        _get,
    ),
    "get_path": Row(
        "get_path",
        "POST",
        f"{B}/path/get",
        {"order_id": "o1", "delivery_id": "SF", "waybill_id": "w1", "openid": "oA"},
        {"order_id": "o1", "delivery_id": "SF", "waybill_id": "w1", "openid": "oA"},
        {
            "openid": "oA",
            "delivery_id": "SF",
            "waybill_id": "w1",
            "path_item_num": 2,
            "path_item_list": [
                {"action_time": 1533052800, "action_type": 100001, "action_msg": "揽件"},
                {"action_time": 1533062800, "action_type": 200001, "action_msg": "运输中"},
            ],
        },
        _path,
    ),
    "get_printer": Row(
        "get_printer",
        "GET",
        f"{B}/printer/getall",
        {},
        None,
        {"count": 2, "openid": ["oA", "oB"], "tagid_list": ["123", "456"]},
        _printer,
    ),
    "get_quota": Row(
        "get_quota",
        "POST",
        f"{B}/quota/get",
        {"delivery_id": "YTO", "biz_id": "xyz"},
        {"delivery_id": "YTO", "biz_id": "xyz"},
        {"quota_num": 210},
        _quota,
    ),
    "test_update_order": Row(
        "test_update_order",
        "POST",
        f"{B}/test_update_order",
        {
            "order_id": "o1",
            "waybill_id": "w1",
            "action_time": 1533062800,
            "action_type": 300002,
            "action_msg": "派件中",
        },
        {
            "biz_id": "test_biz_id",
            "order_id": "o1",
            "delivery_id": "TEST",
            "waybill_id": "w1",
            "action_time": 1533062800,
            "action_type": 300002,
            "action_msg": "派件中",
        },
        {"errcode": 0, "errmsg": "ok"},
        _ok,
    ),
    "update_printer": Row(
        "update_printer",
        "POST",
        f"{B}/printer/update",
        {"openid": "oA", "update_type": "bind", "tagid_list": "123,456"},
        {"openid": "oA", "update_type": "bind", "tagid_list": "123,456"},
        {"errcode": 0, "errmsg": "ok"},
        _ok,
    ),
    "bind_account": Row(
        "bind_account",
        "POST",
        f"{B}/account/bind",
        {"type": "bind", "biz_id": "123456", "delivery_id": "YUNDA", "password": "pw-1"},
        {"type": "bind", "biz_id": "123456", "delivery_id": "YUNDA", "password": "pw-1"},
        {"errcode": 0, "errmsg": "ok"},
        _ok,
    ),
    "get_all_account": Row(
        "get_all_account",
        "GET",
        f"{B}/account/getall",
        {},
        None,
        {
            "count": 1,
            "list": [
                {
                    "biz_id": "b1",
                    "delivery_id": "YUNDA",
                    "create_time": 1555484222,
                    "update_time": 1555484222,
                    "status_code": 0,
                    "alias": "",
                    "remark_wrong_msg": "",
                    "remark_content": "",
                    "quota_num": 5,
                    "quota_update_time": 1555484222,
                    "service_type": [{"service_type": 1, "service_name": "标准"}],
                }
            ],
        },
        _accounts,
    ),
}


def test_every_endpoint_has_a_row() -> None:
    declared = {endpoint.method_name for endpoint in ENDPOINTS}
    assert declared == set(ROWS)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.method_name)
def test_declaration_matches_the_reference(endpoint: Any) -> None:
    row = ROWS[endpoint.method_name]
    assert (endpoint.method, endpoint.path) == (row.http, row.path)


@pytest.mark.parametrize("name", sorted(ROWS))
async def test_request_and_result(name: str) -> None:
    row = ROWS[name]
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.route(method=row.http, path=row.path).respond(json={**row.answer, **UNKNOWN})
    async with wired(router) as client:
        result = await getattr(client, name)(**row.kwargs)

    assert route.call_count == 1
    request: httpx.Request = route.calls.last.request
    assert request.method == row.http
    assert request.url.path == row.path
    assert dict(request.url.params) == {"access_token": TOKEN}
    if row.body is None:
        assert request.content == b""
        assert "content-type" not in request.headers
    else:
        assert request.headers["content-type"] == "application/json; charset=utf-8"
        assert b"\\u" not in request.content  # UTF-8 as is (40033)
        assert httpx.Response(200, content=request.content).json() == row.body
    row.check(result)
    if name != "cancel_order":  # cancel keeps the whole body in payload instead
        assert result.extra == UNKNOWN
    else:
        assert result.payload["field_added_later"] == {"x": 1}
