"""The other endpoints: batches, validation, results keeping unknown fields, docs tables."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from wxlogistics import (
    AccountAlreadyBoundError,
    ApiResult,
    AsyncLogistics,
    BatchOrderItem,
    ValidationError,
    WaybillNotFoundError,
)
from wxlogistics._endpoints import (
    BATCH_GET_ORDER,
    BIND_ACCOUNT,
    ENDPOINTS,
    errcode_table_markdown,
    retry_table_markdown,
)

from .helpers import STABLE, body_of, make_router, token_response, wired
from .test_contract import ROWS

pytestmark = pytest.mark.anyio


def _refs(n: int) -> list[dict[str, str]]:
    return [{"order_id": f"o{i}", "delivery_id": "SF"} for i in range(n)]


def _echo_batch(request: httpx.Request) -> httpx.Response:
    orders = body_of(request)["order_list"]
    items = [
        {"errcode": 0, "order_id": o["order_id"], "waybill_id": "w" + o["order_id"]}
        if o["order_id"] != "o7"
        else {"errcode": 9300528, "errmsg": "invalid waybill_id", "order_id": "o7"}
        for o in orders
    ]
    return httpx.Response(200, json={"errcode": 0, "order_list": items})


# -- batch_get_order ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 101])
async def test_batch_takes_1_to_100_orders(n: int) -> None:
    router = make_router()
    route = router.post(BATCH_GET_ORDER.path).mock(side_effect=_echo_batch)
    async with wired(router) as client:
        with pytest.raises(ValidationError, match="1 to 100"):
            await client.batch_get_order(order_list=_refs(n))
    assert route.call_count == 0


async def test_batch_item_errors_are_per_item() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(BATCH_GET_ORDER.path).mock(side_effect=_echo_batch)
    async with wired(router) as client:
        result = await client.batch_get_order(order_list=_refs(100))
    items = result.order_list
    assert len(items) == 100
    bad = items[7]
    assert not bad.ok
    assert isinstance(bad.error, WaybillNotFoundError)
    assert bad.error.errcode == 9300528
    assert items[8].ok
    assert items[8].error is None
    assert items[8].waybill_id == "wo8"


async def test_batch_get_orders_chunks_any_number() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(BATCH_GET_ORDER.path).mock(side_effect=_echo_batch)
    async with wired(router) as client:
        items = await client.batch_get_orders(_refs(250))
    sizes = [len(body_of(call.request)["order_list"]) for call in route.calls]
    assert sizes == [100, 100, 50]
    assert [item.order_id for item in items] == [f"o{i}" for i in range(250)]
    assert all(isinstance(item, BatchOrderItem) for item in items)
    assert [i for i, item in enumerate(items) if not item.ok] == [7]


async def test_batch_get_orders_validates_everything_first() -> None:
    router = make_router()
    route = router.post(BATCH_GET_ORDER.path).mock(side_effect=_echo_batch)
    async with wired(router) as client:
        with pytest.raises(ValidationError, match=r"order_list\[150\]"):
            await client.batch_get_orders([*_refs(150), {"order_id": "x"}])
        with pytest.raises(ValidationError, match="chunk_size"):
            await client.batch_get_orders(_refs(3), chunk_size=101)
    assert route.call_count == 0


# -- validation of the other endpoints ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "changes", "needle"),
    [
        ("get_order", {"print_type": 2}, "print_type"),
        ("get_order", {"order_id": "x\n"}, "order_id"),
        ("get_path", {"waybill_id": None}, "waybill_id"),
        ("get_quota", {"biz_id": " "}, "biz_id"),
        ("update_printer", {"update_type": "add"}, "update_type"),
        ("update_printer", {"tagid_list": "1, 2"}, "tagid_list"),
        ("update_printer", {"tagid_list": ",".join(["1"] * 11)}, "tagid_list"),
        ("bind_account", {"type": "rebind"}, "type"),
        ("test_update_order", {"delivery_id": "SF"}, "delivery_id"),
        ("test_update_order", {"biz_id": "real"}, "biz_id"),
        ("test_update_order", {"action_time": "now"}, "action_time"),
    ],
)
async def test_invalid_arguments_raise_before_sending(
    name: str, changes: dict[str, Any], needle: str
) -> None:
    row = ROWS[name]
    router = make_router()
    route = router.route(path=row.path).respond(json=row.answer)
    async with wired(router) as client:
        with pytest.raises(ValidationError) as info:
            await getattr(client, name)(**{**row.kwargs, **changes})
    assert needle in str(info.value)
    assert route.call_count == 0


async def test_bind_account_password_never_shown() -> None:
    row = ROWS["bind_account"]
    router = make_router()
    async with wired(router) as client:
        with pytest.raises(ValidationError) as info:
            await client.bind_account(**{**row.kwargs, "password": "hunter2\x00"})
    assert "hunter2" not in str(info.value)
    from wxlogistics._models import BindAccountRequest

    request = BindAccountRequest(type="bind", biz_id="b", delivery_id="SF", password="hunter2")
    assert "hunter2" not in repr(request)


async def test_bind_account_retry_confirmed_by_already_bound() -> None:
    row = ROWS["bind_account"]
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(BIND_ACCOUNT.path)
    route.side_effect = [
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json={"errcode": 9300529, "errmsg": "account already bound"}),
    ]
    async with wired(router) as client:
        result = await client.bind_account(**row.kwargs)
    assert route.call_count == 2
    assert isinstance(result, ApiResult)
    assert result.confirmed_by_retry is True
    assert result.errcode == 9300529


async def test_bind_account_first_answer_already_bound_raises() -> None:
    row = ROWS["bind_account"]
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(BIND_ACCOUNT.path).respond(json={"errcode": 9300529, "errmsg": "bound"})
    async with wired(router) as client:
        with pytest.raises(AccountAlreadyBoundError):
            await client.bind_account(**row.kwargs)


async def test_closed_client_refuses_after_validation() -> None:
    from wxlogistics import ClientClosedError

    row = ROWS["get_quota"]
    router = make_router()
    async with wired(router) as client:
        pass
    with pytest.raises(ValidationError):
        await client.get_quota(delivery_id="", biz_id="b")
    with pytest.raises(ClientClosedError):
        await client.get_quota(**row.kwargs)
    with pytest.raises(ClientClosedError):
        await client.get_all_delivery()


# -- surface and docs -------------------------------------------------------------------------


def test_public_methods_are_documented_and_flat() -> None:
    names = {e.method_name for e in ENDPOINTS} | {"batch_get_orders", "cancel_orders"}
    for name in names:
        method = getattr(AsyncLogistics, name)
        assert method.__doc__, name
        assert "return" in method.__annotations__, name


def test_errcode_table_markdown() -> None:
    table = errcode_table_markdown()
    lines = table.splitlines()
    assert lines[0] == "| errcode | exception | meaning | raised by |"
    assert (
        "| 9300506 | `WaybillHasTracesError` | waybill already has tracks: cannot cancel "
        "| `cancel_order` |" in lines
    )
    assert any(
        line.startswith("| -1 | `SystemBusyError` |") and "every endpoint" in line for line in lines
    )
    row = next(line for line in lines if line.startswith("| 9300529 |"))
    assert row.endswith("| `bind_account` |")
    for endpoint in ENDPOINTS:  # every code of every table has a row
        for code in endpoint.errcodes:
            assert any(line.startswith(f"| {code} |") for line in lines), code


def test_retry_table_markdown() -> None:
    lines = retry_table_markdown().splitlines()
    assert len(lines) == 2 + len(ENDPOINTS)
    add = next(line for line in lines if line.startswith("| `add_order` |"))
    assert "| no |" in add
    assert "9300522" in add
    cancel = next(line for line in lines if line.startswith("| `cancel_order` |"))
    assert "| yes | 9300524 |" in cancel
    get_all = next(line for line in lines if line.startswith("| `get_all_delivery` |"))
    assert "GET `/cgi-bin/express/business/delivery/getall`" in get_all


def test_import_does_not_load_cattrs() -> None:
    """cattrs (about 10 ms to import) is loaded on the first call that converts a model."""
    import subprocess
    import sys

    code = "import sys, wxlogistics; print('cattrs' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


async def test_bind_account_error_frames_hold_no_password_or_token() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(BIND_ACCOUNT.path).respond(json={"errcode": 9300531, "errmsg": "wrong password"})
    async with wired(router) as client:
        with pytest.raises(Exception) as info:  # noqa: PT011 - the class is checked below
            await client.bind_account(
                type="bind", biz_id="b1", delivery_id="YUNDA", password="pw-SECRET-77"
            )
    from wxlogistics import AccountCredentialsError

    assert type(info.value) is AccountCredentialsError
    tb = info.value.__traceback__
    assert tb is not None
    tb = tb.tb_next  # skip this test's own frame
    seen = []
    while tb is not None:
        seen.extend(repr(value) for value in tb.tb_frame.f_locals.values())
        tb = tb.tb_next
    assert len(seen) > 3
    assert not any("pw-SECRET-77" in text for text in seen)
    assert not any("ACCESS-TOKEN" in text for text in seen)


async def test_nested_items_keep_unknown_fields() -> None:
    row = ROWS["get_path"]
    answer = {
        **row.answer,
        "path_item_list": [
            {"action_time": 1533052800, "action_type": 100001, "action_msg": "揽件", "new": 1}
        ],
    }
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(row.path).respond(json=answer)
    async with wired(router) as client:
        result = await client.get_path(**row.kwargs)
    item = result.path_item_list[0]
    assert item.extra == {"new": 1}
    assert item.action_type == 100001


def test_result_scalars_keep_wire_types_and_read_numeric_strings() -> None:
    from wxlogistics import GetQuotaResult
    from wxlogistics._models._convert import structure_result

    assert structure_result({"quota_num": 7}, GetQuotaResult).quota_num == 7
    assert structure_result({"quota_num": "7"}, GetQuotaResult).quota_num == 7
    assert structure_result({"quota_num": None}, GetQuotaResult).quota_num is None
    assert structure_result({}, GetQuotaResult).quota_num is None
    result = structure_result({"quota_num": 1, "extra_thing": [1]}, GetQuotaResult)
    assert result.extra == {"extra_thing": [1]}
