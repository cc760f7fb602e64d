"""Models of getAllDelivery (reference section 3.4)."""

from __future__ import annotations

from typing import Any

import attrs

from ._common import ServiceType

__all__ = ["Delivery", "GetAllDeliveryResult"]


@attrs.frozen(kw_only=True)
class Delivery:
    """A carrier WeChat supports."""

    delivery_id: str | None = None
    """The carrier id, e.g. ``SF``."""
    delivery_name: str | None = None
    """Its name."""
    can_use_cash: int | None = None
    """1 when cash orders (散单) are supported (use ``cash_biz_id``)."""
    can_get_quota: int | None = None
    """1 when getQuota works for it."""
    cash_biz_id: str | None = None
    """The biz_id for cash orders."""
    service_type: tuple[ServiceType, ...] = ()
    """Its services."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""


@attrs.frozen(kw_only=True)
class GetAllDeliveryResult:
    """The carriers: ``count`` and ``data``."""

    count: int | None = None
    """How many carriers."""
    data: tuple[Delivery, ...] = ()
    """The carriers."""
    errcode: int = 0
    """0 (absent on the wire means 0)."""
    errmsg: str = ""
    """WeChat's message."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""
