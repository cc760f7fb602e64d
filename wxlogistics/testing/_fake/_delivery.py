"""Carriers: getAllDelivery (GET delivery/getall) and getQuota (POST quota/get)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ._base import (
    TEST_BIZ_ID,
    TEST_DELIVERY_ID,
    FakeResponse,
    Refusal,
    Route,
    json_answer,
    need_str,
)

if TYPE_CHECKING:
    from ._core import FakeWeChat

GETALL_PATH = "/cgi-bin/express/business/delivery/getall"
QUOTA_PATH = "/cgi-bin/express/business/quota/get"


@attrs.frozen(kw_only=True)
class Carrier:
    """What getAllDelivery says about one carrier."""

    delivery_id: str
    delivery_name: str
    can_use_cash: int = 0
    can_get_quota: int = 0
    cash_biz_id: str = ""
    service_types: tuple[tuple[int, str], ...] = ((0, "标准快递"),)
    needs_password: bool = True
    """bindAccount needs a password (W3C: not for EMS, SF, JD)."""
    needs_review: bool = False
    """bindAccount is reviewed (EMS): answers 9300532, the account waits in status 1."""

    def to_json(self) -> dict[str, Any]:
        """GetAllDelivery's ``data`` entry."""
        return {
            "delivery_id": self.delivery_id,
            "delivery_name": self.delivery_name,
            "can_use_cash": self.can_use_cash,
            "can_get_quota": self.can_get_quota,
            "cash_biz_id": self.cash_biz_id,
            "service_type": service_type_list(self),
        }


def service_type_list(carrier: Carrier) -> list[dict[str, Any]]:
    """The ``service_type`` list of getAllDelivery / getAllAccount."""
    return [{"service_type": t, "service_name": n} for t, n in carrier.service_types]


CATALOG: dict[str, Carrier] = {
    c.delivery_id: c
    for c in (
        Carrier(
            delivery_id="SF",
            delivery_name="顺丰速运",
            can_use_cash=1,
            cash_biz_id="SF_CASH",
            service_types=((0, "标准快递"), (1, "顺丰即日"), (2, "顺丰次晨"), (3, "顺丰特惠")),
            needs_password=False,
        ),
        Carrier(delivery_id="YTO", delivery_name="圆通速递", can_get_quota=1),
        Carrier(delivery_id="ZTO", delivery_name="中通快递", can_get_quota=1),
        Carrier(delivery_id="STO", delivery_name="申通快递", can_get_quota=1),
        Carrier(delivery_id="YUNDA", delivery_name="韵达快递", can_get_quota=1),
        Carrier(delivery_id="BEST", delivery_name="百世快递", can_get_quota=1),
        Carrier(
            delivery_id="EMS",
            delivery_name="中国邮政速递物流",
            service_types=((6, "标准快递"), (9, "快递包裹")),
            needs_password=False,
            needs_review=True,
        ),
        Carrier(
            delivery_id="JD",
            delivery_name="京东物流",
            service_types=((0, "特快送"), (1, "特惠送")),
            needs_password=False,
        ),
        Carrier(
            delivery_id=TEST_DELIVERY_ID,
            delivery_name="测试快递公司 (sandbox)",
            can_get_quota=1,
            service_types=((1, "test_service"),),
            needs_password=False,
        ),
    )
}


def carrier(delivery_id: str) -> Carrier:
    """The catalog entry of ``delivery_id`` (a plain one for carriers the catalog lacks)."""
    return CATALOG.get(delivery_id) or Carrier(delivery_id=delivery_id, delivery_name=delivery_id)


def get_all_delivery(fake: FakeWeChat, _body: dict[str, Any] | None) -> FakeResponse:
    """``{"count", "data": [...]}`` for every carrier the fake knows (no errcode, as WeChat)."""
    data = [carrier(d).to_json() for d in sorted(fake.carriers)]
    return json_answer({"count": len(data), "data": data})


def get_quota(fake: FakeWeChat, body: dict[str, Any] | None) -> FakeResponse:
    """Answer ``{"quota_num": n}`` (no errcode, as WeChat).

    930561 missing field, 9300520 unknown carrier, 9300527 carrier without quota, 9300525
    no quota known for this biz_id.
    """
    assert body is not None
    delivery_id = need_str(body, "delivery_id")
    biz_id = need_str(body, "biz_id")
    if delivery_id not in fake.carriers:
        raise Refusal(9300520)
    if not carrier(delivery_id).can_get_quota:
        raise Refusal(9300527)
    quota = fake.quota(delivery_id, biz_id)
    if quota is None:
        raise Refusal(9300525)
    return json_answer({"quota_num": quota})


def is_usable_biz_id(fake: FakeWeChat, delivery_id: str, biz_id: str) -> bool:
    """Whether addOrder accepts ``biz_id`` for ``delivery_id``.

    Accepted: the sandbox pair, the carrier's cash code, or an account bound (and reviewed).
    """
    if delivery_id == TEST_DELIVERY_ID:
        return biz_id == TEST_BIZ_ID
    entry = carrier(delivery_id)
    if entry.can_use_cash and biz_id == entry.cash_biz_id:
        return True
    account = fake.account(delivery_id, biz_id)
    return account is not None and account.status_code == 0


ROUTES = {
    GETALL_PATH: Route("GET", get_all_delivery),
    QUOTA_PATH: Route("POST", get_quota),
}
