"""Orders and waybills: addOrder, getOrder, batchGetOrder, cancelOrder, getPath, testUpdateOrder."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._base import (
    ACTION_TYPES,
    ARGS_ERROR,
    TEST_BIZ_ID,
    TEST_DELIVERY_ID,
    FakeResponse,
    PathItem,
    Refusal,
    Route,
    Waybill,
    errmsg,
    get_int,
    get_str,
    json_answer,
    need_int,
    need_list,
    need_num,
    need_obj,
    need_str,
)
from ._delivery import carrier, is_usable_biz_id

if TYPE_CHECKING:
    from ._core import FakeWeChat

ADD_PATH = "/cgi-bin/express/business/order/add"
GET_PATH = "/cgi-bin/express/business/order/get"
BATCHGET_PATH = "/cgi-bin/express/business/order/batchget"
CANCEL_PATH = "/cgi-bin/express/business/order/cancel"
PATH_PATH = "/cgi-bin/express/business/path/get"
TEST_UPDATE_PATH = "/cgi-bin/express/business/test_update_order"

MAX_BATCH = 100
CARRIER_FAIL = 9300501
ADDRESS_LIMITS = {
    "name": 64,
    "tel": 32,
    "mobile": 32,
    "company": 64,
    "post_code": 10,
    "country": 64,
    "province": 64,
    "city": 64,
    "area": 64,
    "address": 512,
}
ADDRESS_REQUIRED = ("name", "province", "city", "area", "address")
_APPID = re.compile(r"wx[0-9a-f]{16}")
_CANCELLED = {"errcode": 0, "errmsg": "ok", "delivery_resultcode": 0, "delivery_resultmsg": ""}


def _carrier_refusal(code: int, message: str) -> Refusal:
    """9300501 with the carrier's delivery_resultcode / delivery_resultmsg."""
    return Refusal(CARRIER_FAIL, delivery_resultcode=code, delivery_resultmsg=message)


# -- addOrder --------------------------------------------------------------------------------


def _address(body: Mapping[str, Any], key: str) -> tuple[dict[str, Any], bool]:
    """Check a sender/receiver's types and byte lengths (930561 / 9300526).

    Also says whether it is complete for the carrier (name, province, city, area, address, and
    tel or mobile).
    """
    party = need_obj(body, key)
    values = {f: get_str(party, f, required=False, max_bytes=n) for f, n in ADDRESS_LIMITS.items()}
    complete = all(values[f] for f in ADDRESS_REQUIRED) and bool(values["tel"] or values["mobile"])
    return party, complete


def _cargo(body: Mapping[str, Any]) -> tuple[int, float, list[Any]]:
    cargo = need_obj(body, "cargo")
    count = need_int(cargo, "count")
    weight = need_num(cargo, "weight")
    for side in ("space_x", "space_y", "space_z"):
        need_num(cargo, side)
    details = need_list(cargo, "detail_list")
    for item in details:
        if not isinstance(item, dict):
            raise Refusal(ARGS_ERROR)
        need_str(item, "name", max_bytes=128)
        need_int(item, "count")
    return count, weight, details


def _shop(body: Mapping[str, Any]) -> bool:
    """Check the shop's types (930561), and say whether its goods are given.

    Given: the legacy fields (img_url, goods_name, goods_count > 0) or a ``detail_list`` whose
    items name their goods.
    """
    shop = need_obj(body, "shop")
    need_str(shop, "wxa_path")
    details = shop.get("detail_list")
    if details is not None:
        if not isinstance(details, list):
            raise Refusal(ARGS_ERROR)
        for item in details:
            if not isinstance(item, dict):
                raise Refusal(ARGS_ERROR)
            for field in ("goods_name", "goods_img_url", "goods_desc"):
                get_str(item, field, required=False)
        return bool(details) and all(item.get("goods_name") for item in details)
    img_url = get_str(shop, "img_url", required=False)
    goods_name = get_str(shop, "goods_name", required=False)
    count = get_int(shop, "goods_count", required=False)
    return bool(img_url and goods_name and count and count > 0)


def add_order(fake: FakeWeChat, body: dict[str, Any] | None) -> FakeResponse:
    """Create an order and its waybill; answer ``{"order_id", "waybill_id", "waybill_data"}``.

    In the order the fake checks (WeChat's own order is not documented), field by field:
    930561 (a required field missing or mistyped, add_source not 0/2, openid missing with
    add_source 0, wx_appid missing with add_source 2) or
    9300526 (a field longer than documented: order_id 512 B, custom_remark 1024 B, sender and
    receiver fields, cargo item name 128 B); then 9300503 (unknown carrier), 9300536 (wx_appid not
    an appid), 9300525 (biz_id neither bound, nor the cash code, nor ``test_biz_id`` for
    ``TEST``), 9300510 (service_type not one of the carrier's), 9300535 (shop goods empty),
    9300522 (order_id already used), 9300523 (quota of (delivery_id, biz_id) is 0), 9300501
    with a delivery_resultcode (the carrier refuses: 20002/20004 sender/receiver incomplete,
    30001 empty cargo list, 20006 count/weight not positive, 20008 SF insured under 100 fen).
    """
    assert body is not None
    add_source = need_int(body, "add_source")
    order_id = need_str(body, "order_id", max_bytes=512)
    delivery_id = need_str(body, "delivery_id")
    biz_id = need_str(body, "biz_id")
    openid = get_str(body, "openid", required=add_source == 0)
    wx_appid = get_str(body, "wx_appid", required=add_source == 2)
    get_str(body, "custom_remark", required=False, max_bytes=1024)
    get_int(body, "tagid", required=False)
    get_int(body, "expect_time", required=False)
    if add_source not in (0, 2):
        raise Refusal(ARGS_ERROR)
    sender, sender_ok = _address(body, "sender")
    receiver, receiver_ok = _address(body, "receiver")
    count, weight, details = _cargo(body)
    insured = need_obj(body, "insured")
    use_insured = need_int(insured, "use_insured")
    insured_value = need_int(insured, "insured_value")
    if use_insured not in (0, 1):
        raise Refusal(ARGS_ERROR)
    service = need_obj(body, "service")
    service_type = need_int(service, "service_type")
    need_str(service, "service_name")
    shop_ok = _shop(body)

    if delivery_id not in fake.carriers:
        raise Refusal(9300503)
    if wx_appid is not None and add_source == 2 and not _APPID.fullmatch(wx_appid):
        raise Refusal(9300536)
    if not is_usable_biz_id(fake, delivery_id, biz_id):
        raise Refusal(9300525)
    entry = carrier(delivery_id)
    if delivery_id != TEST_DELIVERY_ID and service_type not in dict(entry.service_types):
        raise Refusal(9300510)
    if not shop_ok:
        raise Refusal(9300535)
    if order_id in fake._waybills:
        raise Refusal(9300522)
    quota = fake.quota(delivery_id, biz_id) if entry.can_get_quota else None
    if quota is not None and quota <= 0:
        raise Refusal(9300523)
    if not sender_ok:
        raise _carrier_refusal(20002, "寄件人信息不完整")
    if not receiver_ok:
        raise _carrier_refusal(20004, "收件人信息不完整")
    if not details:
        raise _carrier_refusal(30001, "cargo.detailList is empty")
    if count <= 0 or weight <= 0:
        raise _carrier_refusal(20006, "货物数量或重量不正确")
    if delivery_id == "SF" and use_insured == 1 and insured_value < 100:
        raise _carrier_refusal(20008, "insured value can not less then 100 cents")

    if quota is not None:
        fake._quotas[(delivery_id, biz_id)] = quota - 1
    fake._waybill_serial += 1
    waybill_id = f"{delivery_id}{fake._waybill_serial:010d}"
    waybill_data = [
        {"key": f"{delivery_id}_bagAddr", "value": str(receiver.get("city") or "")},
        {
            "key": f"{delivery_id}_mark",
            "value": f"{fake._waybill_serial % 1000:03d}-{sender['city']}",
        },
    ]
    fake._waybills[order_id] = Waybill(
        order_id=order_id,
        delivery_id=delivery_id,
        waybill_id=waybill_id,
        openid=openid,
        biz_id=biz_id,
        waybill_data=waybill_data,
        request=body,
    )
    fake.orders_added += 1
    return json_answer(
        {"order_id": order_id, "waybill_id": waybill_id, "waybill_data": waybill_data}
    )


# -- lookups ---------------------------------------------------------------------------------


def _find(fake: FakeWeChat, order_id: str, delivery_id: str, waybill_id: str | None) -> Waybill:
    """The order's waybill.

    9300520 unknown carrier, 930563 unknown order, 9300528 carrier or waybill_id not the order's.
    """
    if delivery_id not in fake.carriers:
        raise Refusal(9300520)
    waybill = fake._waybills.get(order_id)
    if waybill is None:
        raise Refusal(930563)
    if waybill.delivery_id != delivery_id or (
        waybill_id is not None and waybill_id != waybill.waybill_id
    ):
        raise Refusal(9300528)
    return waybill


def _print_html(waybill: Waybill, print_type: int) -> str:
    kind = "一联单" if print_type == 1 else "二联单"
    page = (
        f"<html><body><h1>{html.escape(carrier(waybill.delivery_id).delivery_name)}</h1>"
        f"<p>{html.escape(waybill.waybill_id)}</p><p>{html.escape(waybill.order_id)}</p>"
        f"<p>{kind}</p></body></html>"
    )
    return base64.b64encode(page.encode()).decode("ascii")


def _order_json(waybill: Waybill, print_type: int = 0) -> dict[str, Any]:
    return {
        "errcode": 0,
        "errmsg": "ok",
        "print_html": _print_html(waybill, print_type),
        "waybill_data": waybill.waybill_data,
        "order_id": waybill.order_id,
        "delivery_id": waybill.delivery_id,
        "waybill_id": waybill.waybill_id,
        "order_status": waybill.order_status,
    }


def get_order(fake: FakeWeChat, body: dict[str, Any] | None) -> FakeResponse:
    """Answer one order.

    ``{"errcode": 0, "errmsg": "ok", "print_html" (base64), "waybill_data", "order_id",
    "delivery_id", "waybill_id", "order_status" (0 normal, 1 cancelled)}``.

    930561 missing field or print_type not 0/1; 9300520 unknown carrier; 930563 unknown order;
    9300528 waybill_id or delivery_id not the order's.
    """
    assert body is not None
    order_id = need_str(body, "order_id")
    delivery_id = need_str(body, "delivery_id")
    waybill_id = get_str(body, "waybill_id", required=False)
    get_str(body, "openid", required=False)
    print_type = get_int(body, "print_type", required=False) or 0
    if print_type not in (0, 1):
        raise Refusal(ARGS_ERROR)
    waybill = _find(fake, order_id, delivery_id, waybill_id)
    return json_answer(_order_json(waybill, print_type))


def batch_get_order(fake: FakeWeChat, body: dict[str, Any] | None) -> FakeResponse:
    """Answer many orders, with an errcode per order.

    ``{"errcode": 0, "errmsg": "ok", "order_list": [...]}``, one entry per requested order in
    request order: the getOrder fields with errcode 0, or ``{"errcode", "errmsg", "order_id",
    "delivery_id", "waybill_id"}`` (as sent) with getOrder's errcode for that order.

    930561 for the whole call when order_list is missing, empty or longer than 100.
    """
    assert body is not None
    items = need_list(body, "order_list")
    if not 1 <= len(items) <= MAX_BATCH:
        raise Refusal(ARGS_ERROR)
    answers = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise Refusal(ARGS_ERROR)
            order_id = need_str(item, "order_id")
            delivery_id = need_str(item, "delivery_id")
            waybill_id = get_str(item, "waybill_id", required=False)
            answers.append(_order_json(_find(fake, order_id, delivery_id, waybill_id)))
        except Refusal as refusal:
            given = item if isinstance(item, dict) else {}
            answers.append(
                {
                    "errcode": refusal.errcode,
                    "errmsg": errmsg(refusal.errcode),
                    **{
                        key: given[key]
                        for key in ("order_id", "delivery_id", "waybill_id")
                        if isinstance(given.get(key), str)
                    },
                }
            )
    return json_answer({"errcode": 0, "errmsg": "ok", "order_list": answers})


# -- cancelOrder -----------------------------------------------------------------------------


def cancel_order(fake: FakeWeChat, body: dict[str, Any] | None) -> FakeResponse:
    """Cancel a waybill.

    0 (created -> cancelled), 9300524 (already cancelled), 9300506 (has traces), 930563
    (unknown order), 40199 (order known, waybill_id or delivery_id differ), 9300503 (unknown
    carrier), 930561 (missing field).
    """
    assert body is not None
    order_id, delivery_id, waybill_id = (
        body.get(k) for k in ("order_id", "delivery_id", "waybill_id")
    )
    if not all(isinstance(v, str) and v for v in (order_id, delivery_id, waybill_id)):
        raise Refusal(ARGS_ERROR)
    if delivery_id not in fake.carriers:
        raise Refusal(9300503)
    waybill = fake._waybills.get(str(order_id))
    if waybill is None:
        if fake.unknown_orders == "cancel":
            return json_answer(_CANCELLED)
        raise Refusal(930563)
    if waybill.waybill_id != waybill_id or waybill.delivery_id != delivery_id:
        raise Refusal(40199)
    waybill.cancel_requests += 1
    if waybill.state == "has_traces":
        raise Refusal(9300506)
    if waybill.state == "cancelled":
        raise Refusal(9300524)
    waybill.state = "cancelled"
    waybill.cancellations += 1
    return json_answer(_CANCELLED)


# -- getPath and testUpdateOrder -------------------------------------------------------------


def get_path(fake: FakeWeChat, body: dict[str, Any] | None) -> FakeResponse:
    """Answer a waybill's path.

    ``{"openid", "delivery_id", "waybill_id", "path_item_num", "path_item_list": [{"action_time",
    "action_type", "action_msg"}]}`` (no errcode, as WeChat's example).

    order_id is optional (the newest docs omit it); without it the waybill is found by
    delivery_id + waybill_id. 930561 missing field; 9300520 unknown carrier; 930563 unknown
    order; 9300528 waybill not the order's (or unknown, without order_id).
    """
    assert body is not None
    delivery_id = need_str(body, "delivery_id")
    waybill_id = need_str(body, "waybill_id")
    order_id = get_str(body, "order_id", required=False)
    get_str(body, "openid", required=False)
    if order_id is not None:
        waybill = _find(fake, order_id, delivery_id, waybill_id)
    else:
        if delivery_id not in fake.carriers:
            raise Refusal(9300520)
        found = fake._by_waybill(delivery_id, waybill_id)
        if found is None:
            raise Refusal(9300528)
        waybill = found
    return json_answer(
        {
            "openid": waybill.openid or "",
            "delivery_id": waybill.delivery_id,
            "waybill_id": waybill.waybill_id,
            "path_item_num": len(waybill.path),
            "path_item_list": [item.to_json() for item in waybill.path],
        }
    )


def test_update_order(fake: FakeWeChat, body: dict[str, Any] | None) -> FakeResponse:
    """Sandbox: add a tracking event to a ``TEST`` waybill; ``{"errcode": 0, "errmsg": "ok"}``.

    930561 missing or mistyped field, delivery_id not ``TEST``, biz_id not ``test_biz_id``,
    or an unknown action_type; 930563 unknown order; 9300528 waybill_id not the order's.
    """
    assert body is not None
    biz_id = need_str(body, "biz_id")
    order_id = need_str(body, "order_id")
    delivery_id = need_str(body, "delivery_id")
    waybill_id = need_str(body, "waybill_id")
    action_time = need_int(body, "action_time")
    action_type = need_int(body, "action_type")
    action_msg = body.get("action_msg")
    if not isinstance(action_msg, str):
        raise Refusal(ARGS_ERROR)
    if delivery_id != TEST_DELIVERY_ID or biz_id != TEST_BIZ_ID:
        raise Refusal(ARGS_ERROR)
    if action_type not in ACTION_TYPES:
        raise Refusal(ARGS_ERROR)
    waybill = _find(fake, order_id, delivery_id, waybill_id)
    fake._move(
        waybill, PathItem(action_time=action_time, action_type=action_type, action_msg=action_msg)
    )
    return json_answer({"errcode": 0, "errmsg": "ok"})


ROUTES = {
    ADD_PATH: Route("POST", add_order),
    GET_PATH: Route("POST", get_order),
    BATCHGET_PATH: Route("POST", batch_get_order),
    CANCEL_PATH: Route("POST", cancel_order),
    PATH_PATH: Route("POST", get_path),
    TEST_UPDATE_PATH: Route("POST", test_update_order),
}
