"""Models of testUpdateOrder (reference section 3.9), the sandbox's track simulator."""

from __future__ import annotations

import attrs

from ._common import check_int, one_of, text

__all__ = ["SANDBOX_BIZ_ID", "SANDBOX_DELIVERY_ID", "TestUpdateOrderRequest"]

SANDBOX_DELIVERY_ID = "TEST"
"""The sandbox carrier id."""
SANDBOX_BIZ_ID = "test_biz_id"
"""The sandbox customer code."""


@attrs.frozen(kw_only=True)
class TestUpdateOrderRequest:
    """The arguments of :meth:`AsyncLogistics.test_update_order` (sandbox values enforced)."""

    __test__ = False  # not a pytest test class

    order_id: str = attrs.field(validator=text(512))
    """The sandbox order id."""
    waybill_id: str = attrs.field(validator=text())
    """The sandbox waybill number."""
    action_time: int = attrs.field(validator=check_int)
    """When, unix seconds."""
    action_type: int = attrs.field(validator=check_int)
    """What happened (100001 picked up ... 400001 cancelled)."""
    action_msg: str = attrs.field(validator=text(1024))
    """The description."""
    biz_id: str = attrs.field(default=SANDBOX_BIZ_ID, validator=one_of(SANDBOX_BIZ_ID))
    """Always ``test_biz_id``."""
    delivery_id: str = attrs.field(
        default=SANDBOX_DELIVERY_ID, validator=one_of(SANDBOX_DELIVERY_ID)
    )
    """Always ``TEST``."""
