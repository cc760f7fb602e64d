"""Carrier accounts: bindAccount (POST account/bind) and getAllAccount (GET account/getall)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import (
    ARGS_ERROR,
    Account,
    FakeResponse,
    Refusal,
    Route,
    get_str,
    json_answer,
    need_str,
)
from ._delivery import carrier, service_type_list

if TYPE_CHECKING:
    from ._core import FakeWeChat

BIND_PATH = "/cgi-bin/express/business/account/bind"
GETALL_PATH = "/cgi-bin/express/business/account/getall"


def bind_account(fake: FakeWeChat, body: dict[str, Any] | None) -> FakeResponse:
    """Bind or unbind a carrier account.

    bind: 0 (bound), 9300532 (EMS: submitted for review, listed with status_code 1), 9300529
    (already bound or under review), 9300531 (password missing where the carrier needs one, or
    different from the one set with :meth:`FakeWeChat.set_carrier_password`).
    unbind: 0, or 9300530 (not bound). Both: 930561 (missing field, type not bind/unbind, EMS
    without remark_content), 9300520 (unknown carrier).
    """
    assert body is not None
    kind = need_str(body, "type")
    biz_id = need_str(body, "biz_id")
    delivery_id = need_str(body, "delivery_id")
    password = get_str(body, "password", required=False)
    remark = get_str(body, "remark_content", required=False)
    if kind not in ("bind", "unbind"):
        raise Refusal(ARGS_ERROR)
    if delivery_id not in fake.carriers:
        raise Refusal(9300520)
    key = (delivery_id, biz_id)
    if kind == "unbind":
        if fake._accounts.pop(key, None) is None:
            raise Refusal(9300530)
        return json_answer({"errcode": 0, "errmsg": "ok"})
    if key in fake._accounts:
        raise Refusal(9300529)
    entry = carrier(delivery_id)
    expected = fake._carrier_passwords.get(key)
    if (entry.needs_password and password is None) or (
        expected is not None and password != expected
    ):
        raise Refusal(9300531)
    if entry.needs_review and remark is None:
        raise Refusal(ARGS_ERROR)
    now = int(fake._wall_clock())
    fake._accounts[key] = Account(
        delivery_id=delivery_id,
        biz_id=biz_id,
        status_code=1 if entry.needs_review else 0,
        create_time=now,
        update_time=now,
        remark_content=remark or "",
        password=password,
    )
    if entry.can_get_quota:
        fake._quotas.setdefault(key, fake.default_quota)
    if entry.needs_review:
        raise Refusal(9300532)
    return json_answer({"errcode": 0, "errmsg": "ok"})


def get_all_account(fake: FakeWeChat, _body: dict[str, Any] | None) -> FakeResponse:
    """``{"errcode": 0, "errmsg": "ok", "count", "list": [...]}``, bound and reviewed accounts."""
    items = []
    for account in fake._accounts.values():
        entry = carrier(account.delivery_id)
        quota = fake._quotas.get((account.delivery_id, account.biz_id), 0)
        items.append(
            {
                "biz_id": account.biz_id,
                "delivery_id": account.delivery_id,
                "create_time": account.create_time,
                "update_time": account.update_time,
                "status_code": account.status_code,
                "alias": "",
                "remark_wrong_msg": "",
                "remark_content": account.remark_content,
                "quota_num": quota if entry.can_get_quota else 0,
                "quota_update_time": account.update_time,
                "service_type": service_type_list(entry),
            }
        )
    return json_answer({"errcode": 0, "errmsg": "ok", "count": len(items), "list": items})


ROUTES = {
    BIND_PATH: Route("POST", bind_account),
    GETALL_PATH: Route("GET", get_all_account),
}
