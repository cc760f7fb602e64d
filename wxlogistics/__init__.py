"""wxlogistics: an async client for WeChat's logistics API (物流助手).

Everything public is importable from here; the modules behind it are private, except
:mod:`wxlogistics.events` (push events, kept apart so that ``import wxlogistics`` stays cheap)
and :mod:`wxlogistics.testing`. :class:`WireTransport` is loaded on first use (it imports httpx).
"""

import typing as _typing

from ._batch import CancelBatch
from ._client import AsyncLogistics
from ._constants import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    __version__,
)
from ._exceptions import (
    AccessTokenError,
    AlreadyCancelledError,
    APIError,
    CarrierError,
    ClientClosedError,
    CredentialsError,
    DeliveryNotFoundError,
    InvalidArgumentError,
    OrderNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ResponseError,
    SystemBusyError,
    TransportError,
    ValidationError,
    WaybillHasTracesError,
    WaybillNotFoundError,
    WxLogisticsError,
)
from ._models import CancelOrderRequest, CancelOrderResult, CancelOutcome, CancelStatus
from ._redact import RedactingFilter
from ._retry import RetryPolicy
from ._tokens import (
    AccessToken,
    ClassicTokenSource,
    IssuedToken,
    StableTokenSource,
    TokenCache,
    TokenEndpoint,
    TokenSource,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "APIError",
    "AccessToken",
    "AccessTokenError",
    "AlreadyCancelledError",
    "AsyncLogistics",
    "CancelBatch",
    "CancelOrderRequest",
    "CancelOrderResult",
    "CancelOutcome",
    "CancelStatus",
    "CarrierError",
    "ClassicTokenSource",
    "ClientClosedError",
    "CredentialsError",
    "DeliveryNotFoundError",
    "InvalidArgumentError",
    "IssuedToken",
    "OrderNotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RedactingFilter",
    "RequestTimeoutError",
    "ResponseError",
    "RetryPolicy",
    "StableTokenSource",
    "SystemBusyError",
    "TokenCache",
    "TokenEndpoint",
    "TokenSource",
    "TransportError",
    "ValidationError",
    "WaybillHasTracesError",
    "WaybillNotFoundError",
    "WireTransport",
    "WxLogisticsError",
    "__version__",
]

if _typing.TYPE_CHECKING:
    from ._wire import WireTransport


def __getattr__(name: str) -> _typing.Any:
    if name == "WireTransport":
        from ._wire import WireTransport

        return WireTransport
    raise AttributeError(f"module 'wxlogistics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "WireTransport"})
