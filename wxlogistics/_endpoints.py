"""The WeChat logistics endpoints the client calls, with their retry safety."""

from __future__ import annotations

from ._transport import Endpoint

__all__ = ["CANCEL_ORDER"]

CANCEL_ORDER = Endpoint(
    "POST",
    "/cgi-bin/express/business/order/cancel",
    idempotent=True,
    done_errcodes=frozenset({9300524}),
)
"""cancelOrder: cancelling twice does no harm (the second answers 9300524, "already done")."""
