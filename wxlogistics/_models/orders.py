"""Models of addOrder, getOrder and batchGetOrder (reference sections 3.1, 3.2, 3.5)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from wxlogistics._exceptions import APIError, ValidationError, api_error

from ._common import (
    WaybillData,
    check_int,
    check_number,
    one_of,
    optional_text,
    text,
)
from ._convert import LOCAL, structure_items, structure_request
from .sandbox import SANDBOX_BIZ_ID, SANDBOX_DELIVERY_ID

__all__ = [
    "MAX_BATCH_ORDERS",
    "AddOrderRequest",
    "AddOrderResult",
    "Address",
    "BatchGetOrderRequest",
    "BatchGetOrderResult",
    "BatchOrderItem",
    "Cargo",
    "CargoItem",
    "GetOrderRequest",
    "GetOrderResult",
    "Insured",
    "OrderRef",
    "Service",
    "Shop",
    "ShopItem",
]

MAX_BATCH_ORDERS = 100
"""Most orders one batchGetOrder call takes."""


_Dict = Mapping[str, Any]


def _address(value: Address | _Dict, name: str) -> Address:
    return structure_request(Address, value, name)


def _sender(value: Address | _Dict) -> Address:
    return _address(value, "sender")


def _receiver(value: Address | _Dict) -> Address:
    return _address(value, "receiver")


def _cargo_items(value: Iterable[CargoItem | _Dict]) -> tuple[CargoItem, ...]:
    return structure_items(CargoItem, value, "cargo.detail_list")


def _shop_items(value: Iterable[ShopItem | _Dict] | None) -> tuple[ShopItem, ...] | None:
    return None if value is None else structure_items(ShopItem, value, "shop.detail_list")


def _cargo(value: Cargo | _Dict) -> Cargo:
    return structure_request(Cargo, value, "cargo")


def _shop(value: Shop | _Dict) -> Shop:
    return structure_request(Shop, value, "shop")


def _insured(value: Insured | _Dict) -> Insured:
    return structure_request(Insured, value, "insured")


def _service(value: Service | _Dict) -> Service:
    return structure_request(Service, value, "service")


def _order_refs(value: Iterable[OrderRef | _Dict]) -> tuple[OrderRef, ...]:
    return structure_items(OrderRef, value, "order_list")


@attrs.frozen(kw_only=True)
class Address:
    """A sender or receiver (byte limits are UTF-8 bytes); ``tel`` or ``mobile`` is required."""

    name: str = attrs.field(validator=text(64))
    """Name, at most 64 bytes."""
    province: str = attrs.field(validator=text(64))
    """Province, at most 64 bytes."""
    city: str = attrs.field(validator=text(64))
    """City, at most 64 bytes."""
    area: str = attrs.field(validator=text(64))
    """District, at most 64 bytes."""
    address: str = attrs.field(validator=text(512))
    """Street address, at most 512 bytes."""
    tel: str | None = attrs.field(default=None, validator=optional_text(32))
    """Landline, at most 32 bytes."""
    mobile: str | None = attrs.field(default=None, validator=optional_text(32))
    """Mobile number, at most 32 bytes."""
    company: str | None = attrs.field(default=None, validator=optional_text(64))
    """Company, at most 64 bytes."""
    post_code: str | None = attrs.field(default=None, validator=optional_text(10))
    """Post code, at most 10 bytes."""
    country: str | None = attrs.field(default=None, validator=optional_text(64))
    """Country, at most 64 bytes."""

    def __attrs_post_init__(self) -> None:
        if self.tel is None and self.mobile is None:
            raise ValidationError("an address needs tel or mobile (one of them)")


@attrs.frozen(kw_only=True)
class CargoItem:
    """One line of ``cargo.detail_list``."""

    name: str = attrs.field(validator=text(128))
    """What it is, at most 128 bytes."""
    count: int = attrs.field(validator=check_int)
    """How many."""


@attrs.frozen(kw_only=True)
class Cargo:
    """The parcel, as passed to the carrier (kg and cm)."""

    count: int = attrs.field(validator=check_int)
    """Number of packages."""
    weight: float = attrs.field(validator=check_number)
    """Weight in kg."""
    space_x: float = attrs.field(validator=check_number)
    """Length in cm."""
    space_y: float = attrs.field(validator=check_number)
    """Width in cm."""
    space_z: float = attrs.field(validator=check_number)
    """Height in cm."""
    detail_list: tuple[CargoItem, ...] = attrs.field(converter=_cargo_items)
    """The contents; not empty (carriers refuse an empty list)."""

    @detail_list.validator
    def _not_empty(self, attribute: attrs.Attribute[Any], value: tuple[CargoItem, ...]) -> None:
        if not value:
            raise ValidationError("cargo.detail_list must not be empty (carriers refuse it)")


@attrs.frozen(kw_only=True)
class ShopItem:
    """One line of ``shop.detail_list`` (the newer way to describe the goods)."""

    goods_name: str | None = attrs.field(default=None, validator=optional_text(512))
    """Name (WeChat: at most 40 Chinese characters)."""
    goods_img_url: str | None = attrs.field(default=None, validator=optional_text(1024))
    """Image URL."""
    goods_desc: str | None = attrs.field(default=None, validator=optional_text(512))
    """Description (WeChat: at most 40 characters)."""


@attrs.frozen(kw_only=True)
class Shop:
    """Goods shown in the user's notification and on the label.

    Which fields are mandatory in the newest docs is unconfirmed (reference 3.1): only
    ``wxa_path`` is required here; WeChat answers 9300535 for what it misses.
    """

    wxa_path: str = attrs.field(validator=text(1024))
    """The order page's path in the mini program."""
    img_url: str | None = attrs.field(default=None, validator=optional_text(1024))
    """Goods image URL (older form)."""
    goods_name: str | None = attrs.field(default=None, validator=optional_text(512))
    """Goods name (older form)."""
    goods_count: int | None = attrs.field(default=None, validator=check_int)
    """Goods count (older form)."""
    detail_list: tuple[ShopItem, ...] | None = attrs.field(
        default=None,
        converter=_shop_items,
    )
    """The goods (newer form)."""


@attrs.frozen(kw_only=True)
class Insured:
    """Insurance: ``use_insured`` 0/1 and ``insured_value`` in fen (10000 = 100 CNY)."""

    use_insured: int = attrs.field(validator=one_of(0, 1))
    """1 to insure."""
    insured_value: int = attrs.field(validator=check_int)
    """Insured value in fen."""


@attrs.frozen(kw_only=True)
class Service:
    """The carrier's service (values from get_all_delivery / get_all_account)."""

    service_type: int = attrs.field(validator=check_int)
    """The service's number."""
    service_name: str = attrs.field(validator=text(512))
    """The service's name."""


@attrs.frozen(kw_only=True)
class AddOrderRequest:
    """The arguments of :meth:`AsyncLogistics.add_order`, validated on construction."""

    order_id: str = attrs.field(validator=text(512))
    """Merchant order id, globally unique, at most 512 bytes."""
    delivery_id: str = attrs.field(validator=text())
    """Carrier id (sandbox: ``TEST``)."""
    biz_id: str = attrs.field(validator=text())
    """Carrier customer code or cash code (sandbox: ``test_biz_id``)."""
    sender: Address = attrs.field(converter=_sender)
    """Who sends."""
    receiver: Address = attrs.field(converter=_receiver)
    """Who receives."""
    cargo: Cargo = attrs.field(converter=_cargo)
    """The parcel."""
    shop: Shop = attrs.field(converter=_shop)
    """The goods shown to the user."""
    insured: Insured = attrs.field(converter=_insured)
    """Insurance."""
    service: Service = attrs.field(converter=_service)
    """Service type."""
    add_source: int = attrs.field(default=0, validator=one_of(0, 2))
    """0: mini-program order; 2: App/H5 order (then ``wx_appid`` is required)."""
    wx_appid: str | None = attrs.field(default=None, validator=optional_text())
    """The App/H5 appid (``add_source=2``)."""
    openid: str | None = attrs.field(default=None, validator=optional_text())
    """The user's openid (not needed with ``add_source=2``)."""
    custom_remark: str | None = attrs.field(default=None, validator=optional_text(1024))
    """Note for the carrier, at most 1024 bytes."""
    tagid: int | None = attrs.field(default=None, validator=check_int)
    """Tenant tag (platform-type mini programs)."""
    expect_time: int | None = attrs.field(default=None, validator=check_int)
    """Pickup time, unix seconds (required by SF; 0 = pre-arranged)."""

    def __attrs_post_init__(self) -> None:
        if self.add_source == 2 and self.wx_appid is None:
            raise ValidationError("wx_appid is required when add_source=2")
        if (self.delivery_id == SANDBOX_DELIVERY_ID) != (self.biz_id == SANDBOX_BIZ_ID):
            raise ValidationError(
                f'the sandbox takes delivery_id="{SANDBOX_DELIVERY_ID}" together with '
                f'biz_id="{SANDBOX_BIZ_ID}" (got {self.delivery_id!r}, {self.biz_id!r})'
            )


@attrs.frozen(kw_only=True)
class AddOrderResult:
    """The waybill addOrder created (or, ``reconciled``, the one getOrder found)."""

    order_id: str | None = None
    """The order id (echo)."""
    waybill_id: str | None = None
    """The carrier's waybill number."""
    waybill_data: tuple[WaybillData, ...] = ()
    """Label data: ``result.waybill_data[0].key`` / ``.value``."""
    errcode: int = 0
    """0 (absent on the wire means 0)."""
    errmsg: str = ""
    """WeChat's message, often absent."""
    delivery_resultcode: int | None = None
    """The carrier's result code, when sent."""
    delivery_resultmsg: str | None = None
    """The carrier's message, when sent."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""
    reconciled: bool = attrs.field(default=False, metadata=LOCAL)
    """True when addOrder's outcome was unclear (timeout, -1, order id already used) and
    this waybill was found with getOrder for the same ``order_id``."""
    order_status: int | None = attrs.field(default=None, metadata=LOCAL)
    """When ``reconciled``: getOrder's ``order_status`` (0 normal, 1 cancelled)."""


@attrs.frozen(kw_only=True)
class GetOrderRequest:
    """The arguments of :meth:`AsyncLogistics.get_order`."""

    order_id: str = attrs.field(validator=text(512))
    """The order id used with addOrder."""
    delivery_id: str = attrs.field(validator=text())
    """The carrier id (must match the waybill)."""
    waybill_id: str | None = attrs.field(default=None, validator=optional_text())
    """The waybill number (optional)."""
    openid: str | None = attrs.field(default=None, validator=optional_text())
    """The user's openid (optional)."""
    print_type: int | None = attrs.field(default=None, validator=one_of(0, 1))
    """1: one-part label; 0 (default): two-part."""


@attrs.frozen(kw_only=True)
class GetOrderResult:
    """A waybill as getOrder returns it."""

    order_id: str | None = None
    """The order id."""
    delivery_id: str | None = None
    """The carrier id."""
    waybill_id: str | None = None
    """The waybill number."""
    print_html: str | None = None
    """The label as base64-encoded HTML."""
    waybill_data: tuple[WaybillData, ...] = ()
    """Label data."""
    order_status: int | None = None
    """0 normal, 1 cancelled."""
    errcode: int = 0
    """0 (absent on the wire means 0)."""
    errmsg: str = ""
    """WeChat's message."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""


@attrs.frozen(kw_only=True)
class OrderRef:
    """One item of batchGetOrder's ``order_list``."""

    order_id: str = attrs.field(validator=text(512))
    """The order id."""
    delivery_id: str = attrs.field(validator=text())
    """The carrier id (must match the waybill)."""
    waybill_id: str | None = attrs.field(default=None, validator=optional_text())
    """The waybill number (optional)."""


@attrs.frozen(kw_only=True)
class BatchGetOrderRequest:
    """The arguments of :meth:`AsyncLogistics.batch_get_order`: 1 to 100 orders."""

    order_list: tuple[OrderRef, ...] = attrs.field(converter=_order_refs)
    """The orders (:class:`OrderRef` or dicts with ``order_id``, ``delivery_id``...)."""

    @order_list.validator
    def _size(self, attribute: attrs.Attribute[Any], value: tuple[OrderRef, ...]) -> None:
        if not 1 <= len(value) <= MAX_BATCH_ORDERS:
            raise ValidationError(
                f"order_list takes 1 to {MAX_BATCH_ORDERS} orders, not {len(value)} "
                "(batch_get_orders() splits any number into calls)"
            )


@attrs.frozen(kw_only=True)
class BatchOrderItem:
    """One order of a batchGetOrder answer; check ``ok`` (item errors are not raised)."""

    errcode: int = 0
    """This item's errcode (0 = found)."""
    errmsg: str = ""
    """This item's message."""
    order_id: str | None = None
    """The order id."""
    delivery_id: str | None = None
    """The carrier id."""
    waybill_id: str | None = None
    """The waybill number."""
    print_html: str | None = None
    """The label as base64-encoded HTML."""
    waybill_data: tuple[WaybillData, ...] = ()
    """Label data."""
    order_status: int | None = None
    """0 normal, 1 cancelled."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""

    @property
    def ok(self) -> bool:
        """True when this item's errcode is 0."""
        return self.errcode == 0

    @property
    def error(self) -> APIError | None:
        """This item's error as the exception getOrder would raise (not raised), or None."""
        if self.errcode == 0:
            return None
        from wxlogistics._endpoints import BATCH_GET_ORDER

        payload = {"errcode": self.errcode, "errmsg": self.errmsg, "order_id": self.order_id}
        return api_error(
            self.errcode, self.errmsg, payload, BATCH_GET_ORDER.path, BATCH_GET_ORDER.errcodes
        )


@attrs.frozen(kw_only=True)
class BatchGetOrderResult:
    """A batchGetOrder answer: one :class:`BatchOrderItem` per order, each with its errcode."""

    order_list: tuple[BatchOrderItem, ...] = ()
    """The orders, each with its own ``errcode``."""
    errcode: int = 0
    """0 (absent on the wire means 0)."""
    errmsg: str = ""
    """WeChat's message."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""
