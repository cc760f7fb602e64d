"""The fake WeChat: one model, one module per resource.

``_core`` holds the model and its front door, ``_orders`` / ``_delivery`` / ``_printers`` /
``_accounts`` the endpoints, ``_base`` the shared records and input checks.
"""

from ._base import (
    Account,
    FakeResponse,
    Fault,
    PathItem,
    Printer,
    RecordedCall,
    Waybill,
    WaybillState,
)
from ._core import ROUTES, FakeWeChat

__all__ = [
    "ROUTES",
    "Account",
    "FakeResponse",
    "FakeWeChat",
    "Fault",
    "PathItem",
    "Printer",
    "RecordedCall",
    "Waybill",
    "WaybillState",
]
