"""Models of getPath (reference section 3.6)."""

from __future__ import annotations

import datetime
from typing import Any

import attrs

from ._common import optional_text, text, unix_to_datetime

__all__ = ["GetPathRequest", "GetPathResult", "PathItem"]


@attrs.frozen(kw_only=True)
class PathItem:
    """One track event: ``action_time`` (unix seconds), ``action_type``, ``action_msg``."""

    action_time: int | None = None
    """When, in unix seconds (as on the wire); see :attr:`action_datetime`."""
    action_type: int | None = None
    """What happened (100001 picked up ... 300003 delivered, 400001 cancelled)."""
    action_msg: str | None = None
    """The carrier's description."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""

    @property
    def action_datetime(self) -> datetime.datetime | None:
        """``action_time`` as an aware UTC datetime (None when absent or 0)."""
        return unix_to_datetime(self.action_time)


@attrs.frozen(kw_only=True)
class GetPathResult:
    """A waybill's track as getPath returns it."""

    openid: str | None = None
    """The user's openid."""
    delivery_id: str | None = None
    """The carrier id."""
    waybill_id: str | None = None
    """The waybill number."""
    path_item_num: int | None = None
    """How many events."""
    path_item_list: tuple[PathItem, ...] = ()
    """The events: ``result.path_item_list[0].action_type``."""
    errcode: int = 0
    """0 (absent on the wire means 0)."""
    errmsg: str = ""
    """WeChat's message."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""


@attrs.frozen(kw_only=True)
class GetPathRequest:
    """The arguments of :meth:`AsyncLogistics.get_path`."""

    order_id: str = attrs.field(validator=text(512))
    """The order id (missing from the newest table, present in its example: sent)."""
    delivery_id: str = attrs.field(validator=text())
    """The carrier id."""
    waybill_id: str = attrs.field(validator=text())
    """The waybill number."""
    openid: str | None = attrs.field(default=None, validator=optional_text())
    """The user's openid (optional)."""
