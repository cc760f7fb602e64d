"""The whole API end to end: the default client, on the default wire, against the fake WeChat
served over HTTP with its sandbox rules (issue 9's end-to-end test)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

import wxlogistics as wx
from wxlogistics.testing import FakeWeChat, serve

pytestmark = pytest.mark.anyio

ADDRESS = {
    "name": "张三",
    "mobile": "13800000000",
    "province": "广东省",
    "city": "广州市",
    "area": "海珠区",
    "address": "新港中路 397 号",
}


def order_args() -> dict[str, object]:
    return {
        "order_id": "e2e-1",
        "openid": "oUser123",
        "delivery_id": "TEST",
        "biz_id": "test_biz_id",
        "sender": ADDRESS,
        "receiver": wx.Address(**ADDRESS),  # a model or a dict, as the caller likes
        "cargo": {
            "count": 1,
            "weight": 1.2,
            "space_x": 10,
            "space_y": 10,
            "space_z": 10,
            "detail_list": [{"name": "书", "count": 1}],
        },
        "shop": {
            "wxa_path": "/pages/order?id=e2e-1",
            "img_url": "https://example.com/book.png",
            "goods_name": "书",
            "goods_count": 1,
        },
        "insured": {"use_insured": 0, "insured_value": 0},
        "service": {"service_type": 1, "service_name": "标准快递"},
    }


@asynccontextmanager
async def sandbox() -> AsyncIterator[tuple[FakeWeChat, wx.AsyncLogistics]]:
    fake = FakeWeChat()
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, fake)
        async with wx.AsyncLogistics(
            fake.appid, fake.secret, base_url=f"http://127.0.0.1:{port}"
        ) as client:
            yield fake, client
        tg.cancel_scope.cancel()


async def test_add_get_move_track_cancel_and_batch_get() -> None:
    async with sandbox() as (fake, client):
        added = await client.add_order(**order_args())  # type: ignore[arg-type]
        assert added.order_id == "e2e-1"
        assert added.waybill_id
        order = await client.get_order(
            order_id="e2e-1", delivery_id="TEST", waybill_id=added.waybill_id
        )
        assert order.waybill_id == added.waybill_id
        assert order.print_html  # the print data is there
        await client.test_update_order(
            order_id="e2e-1",
            waybill_id=added.waybill_id,
            action_time=int(time.time()),
            action_type=100001,
            action_msg="揽件成功",
        )
        path = await client.get_path(
            order_id="e2e-1", delivery_id="TEST", waybill_id=added.waybill_id
        )
        assert [item.action_type for item in path.path_item_list] == [100001]
        assert path.path_item_list[0].action_msg == "揽件成功"
        with pytest.raises(wx.WaybillHasTracesError):
            await client.cancel_order(
                order_id="e2e-1", delivery_id="TEST", waybill_id=added.waybill_id
            )
        batch = await client.batch_get_order(
            order_list=[
                {"order_id": "e2e-1", "delivery_id": "TEST", "waybill_id": added.waybill_id},
                {"order_id": "nobody", "delivery_id": "TEST", "waybill_id": "W0"},
            ]
        )
        first, second = batch.order_list
        assert first.ok
        assert first.waybill_id == added.waybill_id
        assert not second.ok
        assert second.errcode != 0
        # a repeated order id (9300522) is reconciled to the existing waybill: no second one
        again = await client.add_order(**order_args())  # type: ignore[arg-type]
        assert again.waybill_id == added.waybill_id
        assert again.reconciled is True
    assert fake.orders_added == 1
    assert fake.token_fetches == 1


async def test_read_endpoints_against_the_sandbox() -> None:
    async with sandbox() as (_fake, client):
        deliveries = await client.get_all_delivery()
        assert any(d.delivery_id == "TEST" for d in deliveries.data)
        quota = await client.get_quota(delivery_id="TEST", biz_id="test_biz_id")
        assert quota.quota_num > 0
        printers = await client.get_printer()
        assert printers.count == 0
        accounts = await client.get_all_account()
        assert accounts.count == len(accounts.list)
