"""wxlogistics: an async client for WeChat's logistics API (物流助手).

Everything public is importable from here; the modules behind it are private, except
:mod:`wxlogistics.events` (push events, kept apart so that ``import wxlogistics`` stays cheap)
and :mod:`wxlogistics.testing`. :class:`WireTransport` is loaded on first use (it imports
httpx), and so is :class:`RedisTokenStore` (it imports redis, the ``wxlogistics[redis]`` extra).
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
from ._hooks import CallEvent, Hooks, LeaseWaitEvent, RetryEvent, TokenEvent
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
from ._stores import (
    ForceRefreshLimitError,
    MemoryTokenStore,
    StoredToken,
    TokenLeaseTimeoutError,
    TokenStore,
    TokenStoreError,
)
from ._tokens import (
    AccessToken,
    CallableTokenSource,
    ClassicTokenSource,
    CloudRunOpenAPIError,
    CloudRunTokenSource,
    IssuedToken,
    StableTokenSource,
    StaticTokenSource,
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
    "CallableTokenSource",
    "CallEvent",
    "Hooks",
    "LeaseWaitEvent",
    "RetryEvent",
    "TokenEvent",
    "CarrierError",
    "ClassicTokenSource",
    "CloudRunOpenAPIError",
    "CloudRunTokenSource",
    "ClientClosedError",
    "CredentialsError",
    "DeliveryNotFoundError",
    "ForceRefreshLimitError",
    "InvalidArgumentError",
    "IssuedToken",
    "MemoryTokenStore",
    "OrderNotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RedactingFilter",
    "RedisTokenStore",
    "RequestTimeoutError",
    "ResponseError",
    "RetryPolicy",
    "StableTokenSource",
    "StaticTokenSource",
    "StoredToken",
    "SystemBusyError",
    "TokenCache",
    "TokenEndpoint",
    "TokenLeaseTimeoutError",
    "TokenSource",
    "TokenStore",
    "TokenStoreError",
    "TransportError",
    "ValidationError",
    "WaybillHasTracesError",
    "WaybillNotFoundError",
    "WireTransport",
    "WxLogisticsError",
    "__version__",
]

if _typing.TYPE_CHECKING:
    from ._redis import RedisTokenStore
    from ._wire import WireTransport


def __getattr__(name: str) -> _typing.Any:
    if name == "WireTransport":
        from ._wire import WireTransport

        return WireTransport
    if name == "RedisTokenStore":  # imports redis (the extra wxlogistics[redis])
        from ._redis import RedisTokenStore

        return RedisTokenStore
    raise AttributeError(f"module 'wxlogistics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "WireTransport", "RedisTokenStore"})
