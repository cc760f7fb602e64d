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
    AccountAlreadyBoundError,
    AccountCredentialsError,
    AccountError,
    AccountNotBoundError,
    AccountNotFoundError,
    AccountUnderReviewError,
    AlreadyCancelledError,
    APIError,
    CarrierError,
    ClientClosedError,
    CredentialsError,
    DeliveryNotFoundError,
    InvalidArgumentError,
    InvalidServiceError,
    OrderIdRepeatedError,
    OrderNotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    RequestTimeoutError,
    ResponseError,
    ShopBannedError,
    SystemBusyError,
    TransportError,
    ValidationError,
    WaybillHasTracesError,
    WaybillNotFoundError,
    WaybillPendingError,
    WxLogisticsError,
)
from ._models import (
    Account,
    AddOrderResult,
    Address,
    ApiResult,
    BatchGetOrderResult,
    BatchOrderItem,
    CancelOrderRequest,
    CancelOrderResult,
    CancelOutcome,
    CancelStatus,
    Cargo,
    CargoItem,
    Delivery,
    GetAllAccountResult,
    GetAllDeliveryResult,
    GetOrderResult,
    GetPathResult,
    GetPrinterResult,
    GetQuotaResult,
    Insured,
    OrderRef,
    PathItem,
    Service,
    ServiceType,
    Shop,
    ShopItem,
    WaybillData,
)
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
    "AccountAlreadyBoundError",
    "AccountCredentialsError",
    "AccountError",
    "AccountNotBoundError",
    "AccountNotFoundError",
    "AccountUnderReviewError",
    "InvalidServiceError",
    "OrderIdRepeatedError",
    "OutcomeUnknownError",
    "QuotaError",
    "ShopBannedError",
    "WaybillPendingError",
    "Account",
    "AddOrderResult",
    "Address",
    "ApiResult",
    "BatchGetOrderResult",
    "BatchOrderItem",
    "Cargo",
    "CargoItem",
    "Delivery",
    "GetAllAccountResult",
    "GetAllDeliveryResult",
    "GetOrderResult",
    "GetPathResult",
    "GetPrinterResult",
    "GetQuotaResult",
    "Insured",
    "OrderRef",
    "PathItem",
    "Service",
    "ServiceType",
    "Shop",
    "ShopItem",
    "WaybillData",
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
