"""Test your code against a fake WeChat, without network or credentials.

::

    from wxlogistics.testing import FakeWeChat

    fake = FakeWeChat()
    fake.add_waybill("order-1", "SF", "WB1")
    async with fake.client() as client:           # an AsyncLogistics wired to the fake
        await client.cancel_order(order_id="order-1", delivery_id="SF", waybill_id="WB1")
    assert fake.waybill("order-1").state == "cancelled"

With pytest, the ``wxlogistics_fake`` and ``wxlogistics_client`` fixtures (registered
automatically when wxlogistics is installed) give you both. ``serve(fake, port=...)`` serves
the same model over HTTP on loopback (``wxlogistics sandbox`` on the command line).
"""

from ._fake import (
    Account,
    FakeResponse,
    FakeWeChat,
    Fault,
    PathItem,
    Printer,
    RecordedCall,
    Waybill,
    WaybillState,
)
from ._server import serve

__all__ = [
    "Account",
    "FakeResponse",
    "FakeWeChat",
    "Fault",
    "PathItem",
    "Printer",
    "RecordedCall",
    "Waybill",
    "WaybillState",
    "serve",
]
