"""Every exception wxlogistics raises.

The tree::

    WxLogisticsError
    ├── ValidationError            bad arguments, raised before any request (also a ValueError)
    ├── ClientClosedError          the client was used after aclose() (also a RuntimeError)
    ├── TransportError             the request failed on the network, after retries
    │   └── RequestTimeoutError    ... because a timeout fired
    │       └── TokenLeaseTimeoutError  another process held the refresh lease too long
    ├── TokenStoreError            a token store (Redis) failed (its own methods only)
    ├── ForceRefreshLimitError     force_refresh refused: 20 a day, 30 s apart
    ├── OutcomeUnknownError        addOrder: may have created a waybill, getOrder found none
    ├── PushError                  a pushed message was refused (wxlogistics.events):
    │                              PushSignatureError, PushReplayError, PushDecryptError,
    │                              PushFormatError
    ├── ResponseError              unexpected HTTP status, or a body that is not a JSON object
    └── APIError                   WeChat answered with a non-zero errcode
        ├── SystemBusyError        -1: system busy (retried for calls safe to repeat)
        ├── AccessTokenError       40001, 40014, 42001: token invalid or expired, after one replay
        ├── CredentialsError       token endpoint refused the appid/secret (40013, 40125, 40164...)
        ├── PermissionDeniedError  48001, 48004, 61007: API not authorised for this account
        ├── RateLimitError         45009 (daily, never retried), 45011, 9300509, 9300537
        ├── InvalidArgumentError   930561, 9300526 ...: WeChat rejected an argument
        │   └── InvalidServiceError     9300504, 9300510: unknown service_type (addOrder)
        ├── DeliveryNotFoundError  9300503, 9300520: unknown delivery_id
        ├── OrderNotFoundError     930563: no such order
        ├── WaybillNotFoundError   40199, 9300528: no such waybill
        ├── WaybillHasTracesError  9300506: the parcel has moved, it can no longer be cancelled
        ├── AlreadyCancelledError  9300524: cancel refused, usually because it was already cancelled
        ├── CarrierError           9300501, 9300502: the carrier refused (``delivery_resultcode``)
        ├── QuotaError             9300513, 9300523: waybill quota used up (addOrder)
        │                          9300527: the carrier has no quota to query (getQuota)
        ├── OrderIdRepeatedError   9300508, 9300522: order_id already used (addOrder reconciles)
        ├── WaybillPendingError    9300521: order known, waybill still being generated (addOrder)
        ├── ShopBannedError        9300505: the shop may not ship (addOrder)
        └── AccountError           bindAccount / addOrder account states:
            ├── AccountNotBoundError        9300525: biz_id not bound (addOrder)
            ├── AccountAlreadyBoundError    9300529: already bound (bindAccount)
            ├── AccountNotFoundError        9300530: biz_id to unbind not found (bindAccount)
            ├── AccountCredentialsError     9300531: biz_id invalid or wrong password
            └── AccountUnderReviewError     9300532: binding submitted, under review
        (and CloudRunOpenAPIError  41001 in Cloud Run mode: the open-API service is off)

Which errcode raises which class depends on the endpoint: every endpoint has its own table in
:mod:`wxlogistics._endpoints` (the common codes plus its own), so 9300506 is a
:class:`WaybillHasTracesError` only from cancelOrder and a plain :class:`APIError` elsewhere.

Messages read like ``[40199] waybill id not exist (rid: 6a1b...)``. No exception carries the
access token or the app secret: not in its message, its attributes, nor its chained cause.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "TokenStoreError",
    "TokenLeaseTimeoutError",
    "ForceRefreshLimitError",
    "CloudRunOpenAPIError",
    "AccessTokenError",
    "APIError",
    "AccountAlreadyBoundError",
    "AccountCredentialsError",
    "AccountError",
    "AccountNotBoundError",
    "AccountNotFoundError",
    "AccountUnderReviewError",
    "AlreadyCancelledError",
    "CarrierError",
    "ClientClosedError",
    "CredentialsError",
    "DeliveryNotFoundError",
    "InvalidArgumentError",
    "InvalidServiceError",
    "OrderIdRepeatedError",
    "OrderNotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "QuotaError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseError",
    "ShopBannedError",
    "SystemBusyError",
    "TransportError",
    "ValidationError",
    "WaybillHasTracesError",
    "WaybillNotFoundError",
    "WaybillPendingError",
    "WxLogisticsError",
]

_RID_RE = re.compile(r"rid:\s*([0-9A-Za-z-]+)")


class WxLogisticsError(Exception):
    """Base class of every exception raised by wxlogistics.

    ``may_have_been_sent`` is True when some attempt of the failed call may have been carried
    out by WeChat (a timeout or dropped connection after the request was written, an HTTP
    error status other than 429, an unreadable answer), whatever the class of the error
    finally raised: check before assuming nothing happened.
    """

    may_have_been_sent: bool = False


class ValidationError(WxLogisticsError, ValueError):
    """An argument is missing or malformed; raised before any request is sent."""


class ClientClosedError(WxLogisticsError, RuntimeError):
    """The client was used after :meth:`AsyncLogistics.aclose`."""


class TransportError(WxLogisticsError):
    """The request could not be completed on the network (after any retries).

    ``path`` is the API path (never the query, which holds the token).
    ``may_have_been_sent`` is False when the request certainly never reached WeChat (connect
    failures, pool timeouts), which makes it safe to retry any call.
    The chained ``__cause__`` is a copy of the httpx exception with secrets removed.
    """

    def __init__(self, message: str, *, path: str = "", may_have_been_sent: bool = True) -> None:
        super().__init__(message)
        self.path = path
        self.may_have_been_sent = may_have_been_sent


class RequestTimeoutError(TransportError):
    """A connect, read, write or pool timeout fired (after any retries)."""


class ResponseError(WxLogisticsError):
    """WeChat answered with an unexpected HTTP status, or a body that is not a JSON object.

    Attributes: ``status_code``, ``path``, ``body`` (the first 2,000 characters of the body)
    and ``retry_after`` (seconds the server asked to wait, from a ``Retry-After`` header on a
    429 or 503; ``None`` when it gave none).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        path: str = "",
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.path = path
        self.body = body
        self.retry_after = retry_after


class APIError(WxLogisticsError):
    """WeChat answered with a non-zero ``errcode``.

    Attributes: ``errcode``, ``errmsg``, ``rid`` (the trace id WeChat appends to ``errmsg``,
    quote it in support tickets; ``None`` when absent), ``payload`` (the whole decoded body)
    and ``path``.
    """

    def __init__(
        self,
        errcode: int,
        errmsg: str = "",
        *,
        payload: dict[str, Any] | None = None,
        path: str = "",
    ) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.payload: dict[str, Any] = payload if payload is not None else {}
        self.path = path
        match = _RID_RE.search(errmsg)
        self.rid: str | None = match.group(1) if match else None
        super().__init__(errcode, errmsg)

    def __str__(self) -> str:
        text = _RID_RE.sub("", self.errmsg).strip().rstrip(",;").strip() or "(no errmsg)"
        return f"[{self.errcode}] {text}" + (f" (rid: {self.rid})" if self.rid else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(errcode={self.errcode!r}, errmsg={self.errmsg!r})"


class SystemBusyError(APIError):
    """errcode -1: WeChat is busy. Retried automatically for calls that are safe to repeat."""


class AccessTokenError(APIError):
    """40001, 40014 or 42001: the access token was refused even after one refresh and replay."""


class CredentialsError(APIError):
    """The token endpoint refused to issue a token.

    Wrong appid or secret (40001, 40013, 40125), caller IP not whitelisted (40164), frozen
    secret (40243), account punished (50004) and the like. Never retried: fix the configuration.
    """


class PermissionDeniedError(APIError):
    """48001, 48004, 61007: this account (or token type) may not call this API."""


class RateLimitError(APIError):
    """A rate limit or quota was hit: 45009 (daily), 45011 (per minute), 9300509, 9300537.

    ``retry_after`` is the suggested wait in seconds, or ``None`` for the daily quota (45009),
    which is never retried: it resets the next day (or via WeChat's ``clear_quota``).
    """

    def __init__(
        self,
        errcode: int,
        errmsg: str = "",
        *,
        payload: dict[str, Any] | None = None,
        path: str = "",
    ) -> None:
        super().__init__(errcode, errmsg, payload=payload, path=path)
        self.retry_after: float | None
        if errcode == 45009:
            self.retry_after = None
        elif errcode == 45011:
            # "retry next minute": wait for the next wall-clock minute, plus a little slack.
            self.retry_after = 60.0 - (time.time() % 60.0) + 0.5
        else:
            self.retry_after = 1.0


class InvalidArgumentError(APIError):
    """WeChat rejected an argument: 930561 (args error), 9300526 (field length) and others.

    The codes per endpoint are in the errcode table (docs/errors.md).
    """


class InvalidServiceError(InvalidArgumentError):
    """9300504 or 9300510 (addOrder): the ``service_type`` is unknown to the carrier."""


class DeliveryNotFoundError(APIError):
    """9300503 or 9300520: the ``delivery_id`` is not a known carrier."""


class OrderNotFoundError(APIError):
    """930563: WeChat knows no such order."""


class WaybillNotFoundError(APIError):
    """40199 (cancelOrder) or 9300528 (getOrder, getPath...): WeChat knows no such waybill."""


class WaybillHasTracesError(APIError):
    """9300506: the waybill already has tracking events, so it can no longer be cancelled."""


class AlreadyCancelledError(APIError):
    """9300524: the cancel failed, usually because the waybill was already cancelled.

    After an automatic retry of a cancel whose first answer was lost, this is what a
    successful first attempt looks like: the waybill is cancelled either way.
    """


class CarrierError(APIError):
    """9300501 (carrier logic error) or 9300502 (carrier system error): the carrier refused.

    ``delivery_resultcode`` and ``delivery_resultmsg`` carry the carrier's own reason
    (e.g. 30002 already picked up, 30004 carrier does not support cancelling).
    """

    @property
    def delivery_resultcode(self) -> int | None:
        """The carrier's result code, if WeChat passed one on."""
        value = self.payload.get("delivery_resultcode")
        return value if isinstance(value, int) else None

    @property
    def delivery_resultmsg(self) -> str | None:
        """The carrier's message, if WeChat passed one on."""
        value = self.payload.get("delivery_resultmsg")
        return value if isinstance(value, str) else None

    def __str__(self) -> str:
        base = super().__str__()
        if self.delivery_resultcode is None:
            return base
        carrier = f"[{self.delivery_resultcode}] {self.delivery_resultmsg or ''}".rstrip()
        return f"{base}; carrier said {carrier}"


class QuotaError(APIError):
    """The carrier's waybill quota (电子面单余额) is the problem.

    9300513 / 9300523 from addOrder: used up, recharge with the carrier. 9300527 from getQuota:
    this carrier does not report a quota.
    """


class OrderIdRepeatedError(APIError):
    """9300508 or 9300522 (addOrder): this ``order_id`` was already used.

    :meth:`AsyncLogistics.add_order` does not raise it: it looks the order up with getOrder and
    returns that waybill (or raises :class:`OutcomeUnknownError`).
    """


class WaybillPendingError(APIError):
    """9300521 (addOrder): the order id is known and its waybill is still being generated."""


class ShopBannedError(APIError):
    """9300505 (addOrder): the shop is banned from shipping."""


class AccountError(APIError):
    """A carrier account (biz_id) is in a state that refuses the request."""


class AccountNotBoundError(AccountError):
    """9300525 (addOrder): the ``biz_id`` is not bound to this mini program (bindAccount)."""


class AccountAlreadyBoundError(AccountError):
    """9300529 (bindAccount): the account is already bound."""


class AccountNotFoundError(AccountError):
    """9300530 (bindAccount): the ``biz_id`` to unbind is not bound."""


class AccountCredentialsError(AccountError):
    """9300531 (bindAccount): the ``biz_id`` is invalid or the password is wrong."""


class AccountUnderReviewError(AccountError):
    """9300532 (bindAccount): the binding was submitted and is under the carrier's review."""


class OutcomeUnknownError(WxLogisticsError):
    """addOrder may have created a waybill, but getOrder found none for the order id.

    Raised after an ambiguous failure (timeout or dropped connection after sending, 5xx, -1)
    or an answer saying the order id is already used or still being processed, when the
    lookup found nothing or failed. The waybill may exist now or appear shortly: call
    ``get_order`` (or ``add_order`` again with the **same** ``order_id``; never a new one)
    later. ``order_id`` names the order; ``__cause__`` is the failure that made the outcome
    unknown; ``lookup_error`` the lookup's own error, if it failed.
    """

    may_have_been_sent = True

    def __init__(
        self, message: str, *, order_id: str, lookup_error: WxLogisticsError | None = None
    ) -> None:
        super().__init__(message)
        self.order_id = order_id
        self.lookup_error = lookup_error


TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
"""Errcodes that mean the access token sent was refused (on business APIs)."""

COMMON_ERRCODES: dict[int, type[APIError]] = {
    -1: SystemBusyError,
    40001: AccessTokenError,
    40014: AccessTokenError,
    42001: AccessTokenError,
    48001: PermissionDeniedError,
    48004: PermissionDeniedError,
    61007: PermissionDeniedError,
    45009: RateLimitError,
    45011: RateLimitError,
    9300509: RateLimitError,
    9300537: RateLimitError,
}
"""The errcodes every business API may answer (token, permissions, rate limits, -1).

Each endpoint's own table (:mod:`wxlogistics._endpoints`) starts from this one."""


def api_error(
    errcode: int,
    errmsg: str,
    payload: dict[str, Any],
    path: str,
    table: Mapping[int, type[APIError]] = COMMON_ERRCODES,
) -> APIError:
    """Build the exception for a business API's errcode, from that endpoint's ``table``.

    Codes not in the table raise plain :class:`APIError`.
    """
    cls = table.get(errcode, APIError)
    return cls(errcode, errmsg, payload=payload, path=path)


def token_endpoint_error(errcode: int, errmsg: str, payload: dict[str, Any], path: str) -> APIError:
    """Build the exception for an errcode from a token endpoint.

    On ``/cgi-bin/token`` and ``/cgi-bin/stable_token`` 40001 means "wrong secret", so
    everything but -1 (busy) and the rate limits is a :class:`CredentialsError`.
    """
    cls: type[APIError]
    if errcode == -1:
        cls = SystemBusyError
    elif errcode in (45009, 45011):
        cls = RateLimitError
    else:
        cls = CredentialsError
    return cls(errcode, errmsg, payload=payload, path=path)


CLOUDRUN_41001_HINT = (
    "Cloud Run open-API mode sends no access_token: 41001 means the open-API service"
    " (开放接口服务) is off for this service, this API path is not in its permission list, or"
    " the container is still starting; turn it on, list the path, and redeploy the version"
)
"""Why a 41001 happens in Cloud Run open-API mode, and what to do."""


class CloudRunOpenAPIError(APIError):
    """41001 in Cloud Run open-API mode: the open-API service (开放接口服务) did not serve it."""

    def __str__(self) -> str:
        return f"{super().__str__()}: {CLOUDRUN_41001_HINT}"


class TokenStoreError(WxLogisticsError):
    """The token store could not be reached or answered nonsense (Redis down, say).

    The client does not raise it from API calls: it falls back to its own in-memory cache and
    logs a WARNING. Raised by the store's own methods only.
    """


class TokenLeaseTimeoutError(RequestTimeoutError):
    """Another process held the refresh lease and no new token appeared within the bound.

    Raised instead of waiting forever (a lease also expires by itself when its holder dies).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, may_have_been_sent=False)


class ForceRefreshLimitError(WxLogisticsError):
    """``force_refresh`` refused by the limiter: WeChat allows 20 a day, 30 s apart.

    ``retry_after`` is the number of seconds after which a new attempt would be allowed.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
