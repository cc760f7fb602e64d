"""The fake WeChat's order endpoints at the HTTP level: addOrder, getOrder, batchGetOrder,
cancelOrder, getPath, testUpdateOrder, and the sandbox flow through them (issue 9).

Requests are built with plain httpx (paths, methods, ``access_token`` query and JSON bodies of
the reference), answers compared as whole JSON objects (``errmsg`` without its ``rid``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import anyio
import httpx
import pytest

from wxlogistics.testing import FakeWeChat, serve

pytestmark = pytest.mark.anyio

BASE = "https://api.weixin.qq.com"
ADD = "/cgi-bin/express/business/order/add"
GET = "/cgi-bin/express/business/order/get"
BATCHGET = "/cgi-bin/express/business/order/batchget"
CANCEL = "/cgi-bin/express/business/order/cancel"
PATH = "/cgi-bin/express/business/path/get"
TEST_UPDATE = "/cgi-bin/express/business/test_update_order"
QUOTA = "/cgi-bin/express/business/quota/get"
BIND = "/cgi-bin/express/business/account/bind"
NOW = 1_700_000_000
DELETE = object()


def new_fake(**kwargs: Any) -> FakeWeChat:
    return FakeWeChat(wall_clock=lambda: float(NOW), **kwargs)


def token_of(fake: FakeWeChat) -> str:
    body = {"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}
    answer = fake.handle("POST", "/cgi-bin/stable_token", "", json.dumps(body).encode())
    token = json.loads(answer.body)["access_token"]
    assert isinstance(token, str)
    return token


def plain(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer with the ``rid`` suffix cut from every errmsg (it is random)."""
    out = dict(answer)
    if isinstance(out.get("errmsg"), str):
        message, sep, rid = out["errmsg"].partition(" rid: ")
        if sep:
            assert len(rid) == 26, rid
        out["errmsg"] = message
    if isinstance(out.get("order_list"), list):
        out["order_list"] = [plain(item) for item in out["order_list"]]
    return out


async def call(
    fake: FakeWeChat,
    method: str,
    path: str,
    body: Any = None,
    *,
    base_url: str = BASE,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Any]:
    """One request as an SDK would send it: ``?access_token=``, raw UTF-8 JSON body."""
    content = None if body is None else json.dumps(body, ensure_ascii=False).encode()
    headers = {} if body is None else {"content-type": "application/json"}
    async with httpx.AsyncClient(
        transport=transport if transport is not None else fake.transport(), base_url=base_url
    ) as http:
        response = await http.request(
            method, path, params={"access_token": token_of(fake)}, content=content, headers=headers
        )
    assert response.status_code == 200
    value = response.json()
    assert isinstance(value, dict)
    return plain(value)


def order_body(order_id: str = "o1", /, **changes: Any) -> dict[str, Any]:
    """A valid sandbox addOrder body; ``changes`` maps dotted paths to values (DELETE removes)."""
    body: dict[str, Any] = {
        "add_source": 0,
        "order_id": order_id,
        "openid": "oUSER123",
        "delivery_id": "TEST",
        "biz_id": "test_biz_id",
        "custom_remark": "易碎物品",
        "sender": {
            "name": "张三",
            "mobile": "13800000000",
            "province": "广东省",
            "city": "广州市",
            "area": "海珠区",
            "address": "新港中路1号",
        },
        "receiver": {
            "name": "李四",
            "tel": "020-12345678",
            "province": "北京市",
            "city": "北京市",
            "area": "朝阳区",
            "address": "建国路2号",
        },
        "cargo": {
            "count": 1,
            "weight": 1.5,
            "space_x": 30.5,
            "space_y": 20,
            "space_z": 10,
            "detail_list": [{"name": "书", "count": 1}],
        },
        "shop": {
            "wxa_path": "/pages/order?id=o1",
            "img_url": "https://example.com/book.png",
            "goods_name": "书",
            "goods_count": 1,
        },
        "insured": {"use_insured": 0, "insured_value": 0},
        "service": {"service_type": 1, "service_name": "test_service"},
    }
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = body
        for name in parents:
            node = node[name]
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return body


def ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


def error(errcode: int, message: str, **fields: Any) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": message, **fields}


# -- addOrder --------------------------------------------------------------------------------


async def test_add_order_creates_an_order_and_answers_its_waybill() -> None:
    fake = new_fake()
    body = order_body()
    answer = await call(fake, "POST", ADD, body)
    assert answer == {
        "order_id": "o1",
        "waybill_id": "TEST0000000001",
        "waybill_data": [
            {"key": "TEST_bagAddr", "value": "北京市"},
            {"key": "TEST_mark", "value": "001-广州市"},
        ],
    }
    order = fake.order("o1")
    assert (order.delivery_id, order.biz_id, order.openid) == ("TEST", "test_biz_id", "oUSER123")
    assert (order.state, order.path, order.request) == ("created", [], body)
    assert fake.quota("TEST", "test_biz_id") == 999
    assert fake.orders_added == 1
    last = fake.calls[-1]
    assert (last.method, last.path, last.body, last.errcode) == ("POST", ADD, body, 0)


async def test_add_order_with_a_repeated_order_id_answers_9300522() -> None:
    fake = new_fake()
    first = await call(fake, "POST", ADD, order_body())
    again = await call(fake, "POST", ADD, order_body(**{"receiver.city": "上海市"}))
    assert again == error(9300522, "this orderid is repeated")
    assert fake.order("o1").waybill_id == first["waybill_id"]
    assert len(fake.waybills) == 1
    assert fake.quota("TEST", "test_biz_id") == 999  # the refused order took no quota


async def test_a_waybill_made_with_add_waybill_also_counts_as_used() -> None:
    fake = new_fake()
    fake.add_waybill("o1", "SF", "SF1")
    assert (await call(fake, "POST", ADD, order_body()))["errcode"] == 9300522


async def test_quota_decreases_and_at_zero_answers_9300523() -> None:
    fake = new_fake()
    fake.set_quota("TEST", "test_biz_id", 2)
    assert (await call(fake, "POST", QUOTA, {"delivery_id": "TEST", "biz_id": "test_biz_id"})) == {
        "quota_num": 2
    }
    for order_id in ("o1", "o2"):
        assert "waybill_id" in await call(fake, "POST", ADD, order_body(order_id))
    assert await call(fake, "POST", ADD, order_body("o3")) == error(
        9300523, "quota is not enough; please recharge"
    )
    assert await call(fake, "POST", QUOTA, {"delivery_id": "TEST", "biz_id": "test_biz_id"}) == {
        "quota_num": 0
    }
    assert [w.order_id for w in fake.waybills] == ["o1", "o2"]


async def test_bound_account_and_cash_code_are_usable_and_quota_is_per_account() -> None:
    fake = new_fake(default_quota=5)
    bound = await call(
        fake,
        "POST",
        BIND,
        {"type": "bind", "biz_id": "yto-1", "delivery_id": "YTO", "password": "p"},
    )
    assert bound == ok()
    yto = order_body("o1", delivery_id="YTO", biz_id="yto-1", **{"service.service_type": 0})
    assert (await call(fake, "POST", ADD, yto))["waybill_id"] == "YTO0000000001"
    assert fake.quota("YTO", "yto-1") == 4
    assert fake.quota("TEST", "test_biz_id") == 5
    sf_cash = order_body("o2", delivery_id="SF", biz_id="SF_CASH", **{"service.service_type": 0})
    assert (await call(fake, "POST", ADD, sf_cash))["waybill_id"] == "SF0000000002"
    assert fake.quota("SF", "SF_CASH") is None  # SF has no quota (can_get_quota 0)


async def test_add_source_2_needs_a_wx_appid_not_an_openid() -> None:
    fake = new_fake()
    body = order_body(add_source=2, openid=DELETE, wx_appid="wx0123456789abcdef")
    assert (await call(fake, "POST", ADD, body))["order_id"] == "o1"
    assert fake.order("o1").openid is None


LONG_NAME = "长" * 22  # 66 UTF-8 bytes, over the 64-byte limit (22 characters)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"order_id": DELETE}, error(930561, "args error"), id="no-order_id"),
        pytest.param({"order_id": 12}, error(930561, "args error"), id="order_id-int"),
        pytest.param({"add_source": DELETE}, error(930561, "args error"), id="no-add_source"),
        pytest.param({"add_source": 1}, error(930561, "args error"), id="add_source-1"),
        pytest.param({"add_source": "0"}, error(930561, "args error"), id="add_source-str"),
        pytest.param({"openid": DELETE}, error(930561, "args error"), id="no-openid-source-0"),
        pytest.param({"add_source": 2}, error(930561, "args error"), id="no-wx_appid-source-2"),
        pytest.param(
            {"add_source": 2, "wx_appid": "not-an-appid"},
            error(9300536, "invalid wx_appid"),
            id="bad-wx_appid",
        ),
        pytest.param({"biz_id": DELETE}, error(930561, "args error"), id="no-biz_id"),
        pytest.param({"sender": DELETE}, error(930561, "args error"), id="no-sender"),
        pytest.param({"cargo": DELETE}, error(930561, "args error"), id="no-cargo"),
        pytest.param({"cargo.weight": "1.5"}, error(930561, "args error"), id="weight-str"),
        pytest.param({"cargo.count": True}, error(930561, "args error"), id="count-bool"),
        pytest.param({"shop": DELETE}, error(930561, "args error"), id="no-shop"),
        pytest.param({"insured": DELETE}, error(930561, "args error"), id="no-insured"),
        pytest.param({"insured.use_insured": 2}, error(930561, "args error"), id="use_insured-2"),
        pytest.param({"service": DELETE}, error(930561, "args error"), id="no-service"),
        pytest.param({"expect_time": "soon"}, error(930561, "args error"), id="expect_time-str"),
        pytest.param(
            {"order_id": "x" * 513}, error(9300526, "arg size exceed limit"), id="order_id-513B"
        ),
        pytest.param(
            {"custom_remark": "备" * 342},
            error(9300526, "arg size exceed limit"),
            id="remark-1026B",
        ),
        pytest.param(
            {"sender.name": LONG_NAME}, error(9300526, "arg size exceed limit"), id="name-66B"
        ),
        pytest.param(
            {"receiver.post_code": "1" * 11},
            error(9300526, "arg size exceed limit"),
            id="post_code-11B",
        ),
        pytest.param(
            {"cargo.detail_list": [{"name": "x" * 129, "count": 1}]},
            error(9300526, "arg size exceed limit"),
            id="cargo-name-129B",
        ),
        pytest.param(
            {"delivery_id": "NOPE"}, error(9300503, "delivery_id not exist"), id="carrier"
        ),
        pytest.param({"biz_id": "mine"}, error(9300525, "bizid not bind"), id="TEST-other-biz"),
        pytest.param(
            {"delivery_id": "YTO", "biz_id": "unbound"},
            error(9300525, "bizid not bind"),
            id="unbound-account",
        ),
        pytest.param(
            {"delivery_id": "SF", "biz_id": "SF_CASH", "service.service_type": 99},
            error(9300510, "invalid service type"),
            id="service_type",
        ),
        pytest.param(
            {"shop.goods_name": ""},
            error(9300535, "shop arg error: invalid img_url, goods_name or goods_count"),
            id="shop-no-goods-name",
        ),
        pytest.param(
            {"shop.goods_count": 0},
            error(9300535, "shop arg error: invalid img_url, goods_name or goods_count"),
            id="shop-goods-count-0",
        ),
        pytest.param(
            {"shop.detail_list": []},
            error(9300535, "shop arg error: invalid img_url, goods_name or goods_count"),
            id="shop-empty-detail_list",
        ),
        pytest.param(
            {"sender.mobile": DELETE},
            error(
                9300501,
                "delivery logic fail",
                delivery_resultcode=20002,
                delivery_resultmsg="寄件人信息不完整",
            ),
            id="sender-no-phone",
        ),
        pytest.param(
            {"receiver.address": DELETE},
            error(
                9300501,
                "delivery logic fail",
                delivery_resultcode=20004,
                delivery_resultmsg="收件人信息不完整",
            ),
            id="receiver-no-address",
        ),
        pytest.param(
            {"cargo.detail_list": []},
            error(
                9300501,
                "delivery logic fail",
                delivery_resultcode=30001,
                delivery_resultmsg="cargo.detailList is empty",
            ),
            id="cargo-empty",
        ),
        pytest.param(
            {"cargo.weight": 0},
            error(
                9300501,
                "delivery logic fail",
                delivery_resultcode=20006,
                delivery_resultmsg="货物数量或重量不正确",
            ),
            id="weight-0",
        ),
        pytest.param(
            {
                "delivery_id": "SF",
                "biz_id": "SF_CASH",
                "service.service_type": 0,
                "insured": {"use_insured": 1, "insured_value": 99},
            },
            error(
                9300501,
                "delivery logic fail",
                delivery_resultcode=20008,
                delivery_resultmsg="insured value can not less then 100 cents",
            ),
            id="sf-insured-under-100-fen",
        ),
    ],
)
async def test_add_order_refusals(changes: dict[str, Any], expected: dict[str, Any]) -> None:
    fake = new_fake()
    assert await call(fake, "POST", ADD, order_body(**changes)) == expected
    assert fake.waybills == []
    assert fake.orders_added == 0
    assert fake.quota("TEST", "test_biz_id") == 1000


async def test_shop_in_the_new_detail_list_spec_is_accepted() -> None:
    fake = new_fake()
    shop = {
        "wxa_path": "/pages/order",
        "detail_list": [
            {"goods_name": "书", "goods_img_url": "https://x/y.png", "goods_desc": "d"}
        ],
    }
    assert (await call(fake, "POST", ADD, order_body(shop=shop)))["order_id"] == "o1"


# -- getOrder and batchGetOrder --------------------------------------------------------------


def label(answer: dict[str, Any]) -> str:
    return base64.b64decode(answer.pop("print_html")).decode()


async def test_get_order_answers_the_order() -> None:
    fake = new_fake()
    added = await call(fake, "POST", ADD, order_body())
    request = {"order_id": "o1", "delivery_id": "TEST", "waybill_id": added["waybill_id"]}
    answer = await call(fake, "POST", GET, request)
    html = label(answer)
    assert answer == ok(
        waybill_data=added["waybill_data"],
        order_id="o1",
        delivery_id="TEST",
        waybill_id="TEST0000000001",
        order_status=0,
    )
    assert "TEST0000000001" in html
    assert "二联单" in html
    one_part = await call(
        fake, "POST", GET, {"order_id": "o1", "delivery_id": "TEST", "print_type": 1}
    )
    assert "一联单" in label(one_part)  # waybill_id is optional


async def test_get_order_of_a_cancelled_order_says_order_status_1() -> None:
    fake = new_fake()
    fake.add_waybill("o1", "SF", "SF1", state="cancelled")
    answer = await call(fake, "POST", GET, {"order_id": "o1", "delivery_id": "SF"})
    assert answer["order_status"] == 1
    assert answer["waybill_data"] == []


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        ({"order_id": "o1"}, error(930561, "args error")),
        ({"delivery_id": "SF", "waybill_id": "SF1"}, error(930561, "args error")),
        ({"order_id": "o1", "delivery_id": "SF", "print_type": 2}, error(930561, "args error")),
        ({"order_id": "o1", "delivery_id": "NOPE"}, error(9300520, "invalid delivery id")),
        ({"order_id": "zz", "delivery_id": "SF"}, error(930563, "order not exists")),
        (
            {"order_id": "o1", "delivery_id": "SF", "waybill_id": "SF2"},
            error(9300528, "invalid waybill_id"),
        ),
        ({"order_id": "o1", "delivery_id": "YTO"}, error(9300528, "invalid waybill_id")),
    ],
)
async def test_get_order_refusals(request_body: dict[str, Any], expected: dict[str, Any]) -> None:
    fake = new_fake()
    fake.add_waybill("o1", "SF", "SF1")
    assert await call(fake, "POST", GET, request_body) == expected


async def test_batch_get_reports_per_item_errors_in_request_order() -> None:
    fake = new_fake()
    fake.add_waybill("o1", "SF", "SF1")
    fake.add_waybill("o2", "YTO", "YT2", state="cancelled")
    answer = await call(
        fake,
        "POST",
        BATCHGET,
        {
            "order_list": [
                {"order_id": "o2", "delivery_id": "YTO", "waybill_id": "YT2"},
                {"order_id": "nope", "delivery_id": "SF", "waybill_id": "X"},
                {"order_id": "o1", "delivery_id": "SF"},
                {"order_id": "o1", "delivery_id": "SF", "waybill_id": "other"},
                {"order_id": "o1"},
                "not an object",
            ]
        },
    )
    items = answer["order_list"]
    for item in items[:1] + items[2:3]:
        assert base64.b64decode(item.pop("print_html")).startswith(b"<html>")
    assert answer == ok(
        order_list=[
            ok(order_id="o2", delivery_id="YTO", waybill_id="YT2", waybill_data=[], order_status=1),
            error(930563, "order not exists", order_id="nope", delivery_id="SF", waybill_id="X"),
            ok(order_id="o1", delivery_id="SF", waybill_id="SF1", waybill_data=[], order_status=0),
            error(
                9300528, "invalid waybill_id", order_id="o1", delivery_id="SF", waybill_id="other"
            ),
            error(930561, "args error", order_id="o1"),
            error(930561, "args error"),
        ]
    )


@pytest.mark.parametrize(
    "request_body",
    [
        {},
        {"order_list": []},
        {"order_list": {"order_id": "o1"}},
        {"order_list": [{"order_id": f"o{i}", "delivery_id": "SF"} for i in range(101)]},
    ],
    ids=["missing", "empty", "not-a-list", "101-orders"],
)
async def test_batch_get_refuses_a_bad_list_as_a_whole(request_body: dict[str, Any]) -> None:
    fake = new_fake()
    assert await call(fake, "POST", BATCHGET, request_body) == error(930561, "args error")


async def test_batch_get_takes_100_orders() -> None:
    fake = new_fake()
    orders = [{"order_id": f"o{i}", "delivery_id": "SF"} for i in range(100)]
    answer = await call(fake, "POST", BATCHGET, {"order_list": orders})
    assert [item["errcode"] for item in answer["order_list"]] == [930563] * 100


# -- cancelOrder -----------------------------------------------------------------------------


async def test_cancel_answers_with_the_carrier_result_fields() -> None:
    fake = new_fake()
    fake.add_waybill("o1", "SF", "SF1")
    ids = {"order_id": "o1", "delivery_id": "SF", "waybill_id": "SF1", "openid": "oU"}
    assert await call(fake, "POST", CANCEL, ids) == ok(delivery_resultcode=0, delivery_resultmsg="")
    assert await call(fake, "POST", CANCEL, ids) == error(
        9300524, "cancel failed, order already cancelled"
    )
    wrong = await call(fake, "POST", CANCEL, {**ids, "waybill_id": "SF2"})
    assert wrong == error(40199, "waybill id not exist")


# -- getPath and testUpdateOrder -------------------------------------------------------------


def update(order_id: str, waybill_id: str, action_type: int, at: int, **changes: Any) -> Any:
    return {
        "biz_id": "test_biz_id",
        "order_id": order_id,
        "delivery_id": "TEST",
        "waybill_id": waybill_id,
        "action_time": at,
        "action_type": action_type,
        "action_msg": f"step {action_type}",
        **changes,
    }


async def test_test_update_order_moves_the_waybill_along_its_path() -> None:
    fake = new_fake()
    waybill_id = (await call(fake, "POST", ADD, order_body()))["waybill_id"]
    for at, action_type in ((NOW + 1, 100001), (NOW + 2, 200001), (NOW + 3, 300003)):
        answer = await call(fake, "POST", TEST_UPDATE, update("o1", waybill_id, action_type, at))
        assert answer == ok()
    assert fake.order("o1").state == "has_traces"
    assert fake.order("o1").last_action_type == 300003
    path = await call(
        fake, "POST", PATH, {"order_id": "o1", "delivery_id": "TEST", "waybill_id": waybill_id}
    )
    assert path == {
        "openid": "oUSER123",
        "delivery_id": "TEST",
        "waybill_id": waybill_id,
        "path_item_num": 3,
        "path_item_list": [
            {"action_time": NOW + 1, "action_type": 100001, "action_msg": "step 100001"},
            {"action_time": NOW + 2, "action_type": 200001, "action_msg": "step 200001"},
            {"action_time": NOW + 3, "action_type": 300003, "action_msg": "step 300003"},
        ],
    }
    # The newest docs drop order_id from getPath: the waybill is found without it.
    without = await call(fake, "POST", PATH, {"delivery_id": "TEST", "waybill_id": waybill_id})
    assert without == path


async def test_an_order_cancelled_by_its_path_answers_9300524_and_status_1() -> None:
    fake = new_fake()
    waybill_id = (await call(fake, "POST", ADD, order_body()))["waybill_id"]
    await call(fake, "POST", TEST_UPDATE, update("o1", waybill_id, 400001, NOW))
    assert fake.order("o1").state == "cancelled"
    ids = {"order_id": "o1", "delivery_id": "TEST", "waybill_id": waybill_id}
    assert (await call(fake, "POST", CANCEL, ids))["errcode"] == 9300524
    assert (await call(fake, "POST", GET, ids))["order_status"] == 1


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"action_msg": DELETE}, error(930561, "args error")),
        ({"action_time": "now"}, error(930561, "args error")),
        ({"action_type": 123456}, error(930561, "args error")),
        ({"delivery_id": "SF"}, error(930561, "args error")),
        ({"biz_id": "mine"}, error(930561, "args error")),
        ({"order_id": "zz"}, error(930563, "order not exists")),
        ({"waybill_id": "TEST9"}, error(9300528, "invalid waybill_id")),
    ],
)
async def test_test_update_order_refusals(
    changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    fake = new_fake()
    waybill_id = (await call(fake, "POST", ADD, order_body()))["waybill_id"]
    body = update("o1", waybill_id, 100001, NOW)
    for key, value in changes.items():
        if value is DELETE:
            del body[key]
        else:
            body[key] = value
    assert await call(fake, "POST", TEST_UPDATE, body) == expected
    assert fake.order("o1").path == []
    assert fake.order("o1").state == "created"


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        ({"order_id": "o1", "delivery_id": "SF"}, error(930561, "args error")),
        ({"order_id": "o1", "waybill_id": "SF1"}, error(930561, "args error")),
        (
            {"order_id": "o1", "delivery_id": "NOPE", "waybill_id": "SF1"},
            error(9300520, "invalid delivery id"),
        ),
        (
            {"delivery_id": "NOPE", "waybill_id": "SF1"},
            error(9300520, "invalid delivery id"),
        ),
        (
            {"order_id": "zz", "delivery_id": "SF", "waybill_id": "SF1"},
            error(930563, "order not exists"),
        ),
        (
            {"order_id": "o1", "delivery_id": "SF", "waybill_id": "SF2"},
            error(9300528, "invalid waybill_id"),
        ),
        ({"delivery_id": "SF", "waybill_id": "SF2"}, error(9300528, "invalid waybill_id")),
    ],
)
async def test_get_path_refusals(request_body: dict[str, Any], expected: dict[str, Any]) -> None:
    fake = new_fake()
    fake.add_waybill("o1", "SF", "SF1")
    assert await call(fake, "POST", PATH, request_body) == expected


async def test_add_trace_helper_moves_any_carrier_and_add_waybill_has_traces_has_a_path() -> None:
    fake = new_fake()
    fake.add_waybill("o1", "SF", "SF1", openid="oU")
    item = fake.add_trace("o1", 100001, "揽件")
    assert (item.action_time, item.action_type) == (NOW, 100001)
    moved = fake.add_waybill("o2", "SF", "SF2", state="has_traces")
    assert [(i.action_type, i.action_time) for i in moved.path] == [(100001, NOW)]
    path = await call(
        fake, "POST", PATH, {"order_id": "o1", "delivery_id": "SF", "waybill_id": "SF1"}
    )
    assert path["openid"] == "oU"
    assert path["path_item_list"] == [
        {"action_time": NOW, "action_type": 100001, "action_msg": "揽件"}
    ]
    ids = {"order_id": "o1", "delivery_id": "SF", "waybill_id": "SF1"}
    assert await call(fake, "POST", CANCEL, ids) == error(
        9300506, "waybill has traces, cannot cancel"
    )


# -- the sandbox flow, in process and over HTTP ------------------------------------------------


async def sandbox_flow(fake: FakeWeChat, **how: Any) -> None:
    added = await call(fake, "POST", ADD, order_body("flow-1"), **how)
    waybill_id = added["waybill_id"]
    ids = {"order_id": "flow-1", "delivery_id": "TEST", "waybill_id": waybill_id}
    got = await call(fake, "POST", GET, {**ids, "openid": "oUSER123"}, **how)
    assert (got["errcode"], got["order_status"], got["waybill_data"]) == (
        0,
        0,
        added["waybill_data"],
    )
    assert (
        await call(
            fake, "POST", TEST_UPDATE, update(ids["order_id"], waybill_id, 100001, NOW), **how
        )
        == ok()
    )
    path = await call(fake, "POST", PATH, ids, **how)
    assert path["path_item_num"] == 1
    assert path["path_item_list"] == [
        {"action_time": NOW, "action_type": 100001, "action_msg": "step 100001"}
    ]
    assert await call(fake, "POST", CANCEL, ids, **how) == error(
        9300506, "waybill has traces, cannot cancel"
    )
    batch = await call(
        fake,
        "POST",
        BATCHGET,
        {"order_list": [ids, {"order_id": "unknown", "delivery_id": "TEST"}]},
        **how,
    )
    assert [(i["errcode"], i["order_id"]) for i in batch["order_list"]] == [
        (0, "flow-1"),
        (930563, "unknown"),
    ]
    assert batch["order_list"][1] == error(
        930563, "order not exists", order_id="unknown", delivery_id="TEST"
    )


async def test_sandbox_flow_in_process() -> None:
    fake = new_fake()
    await sandbox_flow(fake)
    assert [c.path for c in fake.calls] == [ADD, GET, TEST_UPDATE, PATH, CANCEL, BATCHGET]
    assert [c.errcode for c in fake.calls] == [0, 0, 0, 0, 9300506, 0]
    assert fake.order("flow-1").cancel_requests == 1


async def test_sandbox_flow_over_http() -> None:
    fake = new_fake()
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, fake)
        with anyio.fail_after(10):
            await sandbox_flow(
                fake,
                base_url=f"http://127.0.0.1:{port}",
                transport=httpx.AsyncHTTPTransport(),
            )
            carriers = await call(
                fake,
                "GET",
                "/cgi-bin/express/business/delivery/getall",
                base_url=f"http://127.0.0.1:{port}",
                transport=httpx.AsyncHTTPTransport(),
            )
            async with httpx.AsyncClient() as http:
                stats = (await http.get(f"http://127.0.0.1:{port}/_fake/stats")).json()
        tg.cancel_scope.cancel()
    assert carriers["count"] == 9  # a GET without a body, served
    assert stats["orders_added"] == 1
    assert stats["states"] == {"has_traces": 1}
    assert stats["cancel_requests"] == 1
