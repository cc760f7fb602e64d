"""The client's methods, one module per resource, mixed into :class:`AsyncLogistics`.

Each method validates its arguments into a request model, calls one declared endpoint of
:mod:`wxlogistics._endpoints` and builds the result model; the public surface is the flat
list of methods on the client.
"""

from .accounts import AccountsResource
from .deliveries import DeliveriesResource
from .orders import OrdersResource
from .paths import PathsResource
from .printers import PrintersResource
from .quota import QuotaResource
from .sandbox import SandboxResource

__all__ = [
    "AccountsResource",
    "DeliveriesResource",
    "OrdersResource",
    "PathsResource",
    "PrintersResource",
    "QuotaResource",
    "SandboxResource",
]
