"""Models of bindAccount and getAllAccount (reference sections 3.11, 3.12)."""

from __future__ import annotations

import datetime
from typing import Any

import attrs

from wxlogistics._validate import check_secret

from ._common import ServiceType, one_of, optional_text, text, unix_to_datetime

__all__ = ["Account", "BindAccountRequest", "GetAllAccountResult"]


def _password(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_secret("password", value)  # the message never quotes it


@attrs.frozen(kw_only=True)
class BindAccountRequest:
    """The arguments of :meth:`AsyncLogistics.bind_account`; ``password`` is never shown."""

    type: str = attrs.field(validator=one_of("bind", "unbind"))
    """``bind`` or ``unbind``."""
    biz_id: str = attrs.field(validator=text())
    """The carrier customer code."""
    delivery_id: str = attrs.field(validator=text())
    """The carrier id."""
    password: str | None = attrs.field(default=None, validator=_password, repr=False)
    """The account's password (not needed for EMS, SF, JD)."""
    remark_content: str | None = attrs.field(default=None, validator=optional_text(1024))
    """Review text (EMS: phone, contact, service type, ship-from address)."""


@attrs.frozen(kw_only=True)
class Account:
    """A bound carrier account. Unix times stay ints; ``*_datetime`` views convert them."""

    biz_id: str | None = None
    """The carrier customer code."""
    delivery_id: str | None = None
    """The carrier id."""
    create_time: int | None = None
    """When bound, unix seconds."""
    update_time: int | None = None
    """Last change, unix seconds."""
    status_code: int | None = None
    """Binding status (values undocumented)."""
    alias: str | None = None
    """Alias."""
    remark_wrong_msg: str | None = None
    """Why an EMS review failed."""
    remark_content: str | None = None
    """The remark sent with the binding."""
    quota_num: int | None = None
    """Waybill quota left."""
    quota_update_time: int | None = None
    """When the quota was updated, unix seconds."""
    service_type: tuple[ServiceType, ...] = ()
    """The account's services."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""

    @property
    def create_datetime(self) -> datetime.datetime | None:
        """``create_time`` as an aware UTC datetime."""
        return unix_to_datetime(self.create_time)

    @property
    def update_datetime(self) -> datetime.datetime | None:
        """``update_time`` as an aware UTC datetime."""
        return unix_to_datetime(self.update_time)


@attrs.frozen(kw_only=True)
class GetAllAccountResult:
    """The bound accounts: ``count`` and ``list``."""

    count: int | None = None
    """How many accounts."""
    list: tuple[Account, ...] = ()
    """The accounts (WeChat's field name)."""
    errcode: int = 0
    """0 (absent on the wire means 0)."""
    errmsg: str = ""
    """WeChat's message."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""
