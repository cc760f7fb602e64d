"""Models of getQuota (reference section 3.8)."""

from __future__ import annotations

from typing import Any

import attrs

from ._common import text

__all__ = ["GetQuotaRequest", "GetQuotaResult"]


@attrs.frozen(kw_only=True)
class GetQuotaResult:
    """The waybill quota left: ``quota_num``."""

    quota_num: int | None = None
    """Waybills left."""
    errcode: int = 0
    """0 (absent on the wire means 0)."""
    errmsg: str = ""
    """WeChat's message."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""


@attrs.frozen(kw_only=True)
class GetQuotaRequest:
    """The arguments of :meth:`AsyncLogistics.get_quota`."""

    delivery_id: str = attrs.field(validator=text())
    """The carrier id."""
    biz_id: str = attrs.field(validator=text())
    """The carrier customer code."""
