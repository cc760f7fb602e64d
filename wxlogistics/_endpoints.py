"""The WeChat logistics endpoints the client calls: method, path, retry safety and errcodes.

One declaration per endpoint (:data:`ENDPOINTS`, in WeChat's order of reference section 2).
Each carries its own errcode table, the common codes (:data:`COMMON_ERRCODES`) plus the codes
that only that endpoint answers, so 9300506 is a :class:`WaybillHasTracesError` only when
cancelOrder says it. The Markdown tables in the docs are rendered from these declarations by
:func:`errcode_table_markdown` and :func:`retry_table_markdown`.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ._exceptions import (
    COMMON_ERRCODES,
    AccountAlreadyBoundError,
    AccountCredentialsError,
    AccountNotBoundError,
    AccountNotFoundError,
    AccountUnderReviewError,
    AlreadyCancelledError,
    APIError,
    CarrierError,
    DeliveryNotFoundError,
    InvalidArgumentError,
    InvalidServiceError,
    OrderIdRepeatedError,
    OrderNotFoundError,
    QuotaError,
    ShopBannedError,
    WaybillHasTracesError,
    WaybillNotFoundError,
    WaybillPendingError,
)
from ._transport import Endpoint

__all__ = [
    "ADD_ORDER",
    "BATCH_GET_ORDER",
    "BIND_ACCOUNT",
    "CANCEL_ORDER",
    "COMMON_ERRCODES",
    "ENDPOINTS",
    "ERRCODE_MEANINGS",
    "GET_ALL_ACCOUNT",
    "GET_ALL_DELIVERY",
    "GET_ORDER",
    "GET_PATH",
    "GET_PRINTER",
    "GET_QUOTA",
    "TEST_UPDATE_ORDER",
    "UPDATE_PRINTER",
    "ApiEndpoint",
    "errcode_table_markdown",
    "retry_table_markdown",
]

_BASE = "/cgi-bin/express/business"

ERRCODE_MEANINGS: dict[int, str] = {
    -1: "system busy",
    40001: "access token invalid or not the latest",
    40014: "access token malformed",
    42001: "access token expired",
    48001: "API not authorised for this account",
    48004: "API banned for irregularities",
    61007: "API not authorised for the third-party platform",
    45009: "daily quota of this API reached",
    45011: "per-minute limit reached",
    9300509: "speed limit, retry too fast",
    9300537: "frequency limit",
    9300501: "carrier logic error (see delivery_resultcode / delivery_resultmsg)",
    9300502: "carrier system error",
    9300503: "delivery_id does not exist",
    9300504: "service_type does not exist",
    9300505: "shop banned",
    9300506: "waybill already has tracks: cannot cancel",
    9300508: "order id has been used",
    9300510: "invalid service type",
    9300513: "out of quota",
    9300515: "wx_appid does not exist (add_source=2)",
    9300516: "wx_appid not linked to this mini program",
    9300517: "update_type must be bind or unbind",
    9300520: "invalid delivery id",
    9300521: "order id known, waybill still being generated",
    9300522: "this order id is repeated",
    9300523: "quota not enough, recharge",
    9300524: "cancel failed, usually already cancelled",
    9300525: "biz_id not bound",
    9300526: "field length invalid (arg size exceed limit)",
    9300527: "carrier does not support quota",
    9300528: "invalid waybill_id",
    9300529: "account already bound",
    9300530: "biz_id to unbind not found",
    9300531: "biz_id invalid or wrong password",
    9300532: "binding submitted, under review",
    9300533: "invalid tagid_list",
    9300534: "wx_appid owner differs from the mini program (add_source=2)",
    9300535: "shop: image url / goods name empty or invalid, or goods count 0",
    9300536: "wx_appid invalid (add_source=2)",
    930561: "args error",
    930563: "order does not exist",
    40199: "waybill id does not exist",
}
"""What each modelled errcode means (reference section 5 and 7, condensed)."""


def _table(own: Mapping[int, type[APIError]]) -> Mapping[int, type[APIError]]:
    table = dict(COMMON_ERRCODES)
    table.update(own)
    return table


@attrs.frozen
class ApiEndpoint(Endpoint):
    """A declared endpoint: the transport's :class:`Endpoint` plus what the docs show.

    ``name`` is WeChat's API name (``cancelOrder``), ``method_name`` the client's method
    (``cancel_order``). ``reconcile_errcodes`` are the answers after which the client looks
    the outcome up instead of raising (addOrder: the order id is already used).
    """

    name: str = attrs.field(kw_only=True)
    method_name: str = attrs.field(kw_only=True)
    reconcile_errcodes: frozenset[int] = attrs.field(kw_only=True, default=frozenset())
    policy: str = attrs.field(kw_only=True, default="")
    """One sentence on retries, for the retry-safety table."""


CANCEL_ORDER = ApiEndpoint(
    "POST",
    f"{_BASE}/order/cancel",
    idempotent=True,
    done_errcodes=frozenset({9300524}),
    errcodes=_table(
        {
            930561: InvalidArgumentError,
            9300526: InvalidArgumentError,
            9300503: DeliveryNotFoundError,
            9300520: DeliveryNotFoundError,
            930563: OrderNotFoundError,
            40199: WaybillNotFoundError,
            9300506: WaybillHasTracesError,
            9300524: AlreadyCancelledError,
            9300501: CarrierError,
        }
    ),
    name="cancelOrder",
    method_name="cancel_order",
    policy="Cancelling twice does no harm; 9300524 answering a retry after an ambiguous attempt "
    "is that attempt's success (confirmed_by_retry).",
)
"""cancelOrder: cancelling twice does no harm (the second answers 9300524, "already done")."""

ADD_ORDER = ApiEndpoint(
    "POST",
    f"{_BASE}/order/add",
    idempotent=False,
    errcodes=_table(
        {
            9300501: CarrierError,
            9300502: CarrierError,
            9300503: DeliveryNotFoundError,
            9300520: DeliveryNotFoundError,
            9300504: InvalidServiceError,
            9300510: InvalidServiceError,
            9300505: ShopBannedError,
            9300508: OrderIdRepeatedError,
            9300522: OrderIdRepeatedError,
            9300521: WaybillPendingError,
            9300513: QuotaError,
            9300523: QuotaError,
            9300525: AccountNotBoundError,
            9300526: InvalidArgumentError,
            9300515: InvalidArgumentError,
            9300516: InvalidArgumentError,
            9300534: InvalidArgumentError,
            9300535: InvalidArgumentError,
            9300536: InvalidArgumentError,
            930561: InvalidArgumentError,
        }
    ),
    name="addOrder",
    method_name="add_order",
    # 9909001: undocumented, observed once before a retry answered 9300522 (reference 5.1).
    reconcile_errcodes=frozenset({-1, 9300508, 9300521, 9300522, 9909001}),
    policy="Not safe to repeat: resent only when the request provably never left (connect "
    "failure, pool timeout). After an ambiguous failure or a reconcile errcode, getOrder for "
    "the same order_id: its waybill is returned (reconciled=True), else OutcomeUnknownError.",
)
"""addOrder: creating twice could make two waybills, so never resent once it may have left."""

_READ = "A read: timeouts, dropped connections, 5xx and -1 are retried."
_ORDER_LOOKUP = _table(
    {
        9300503: DeliveryNotFoundError,
        9300520: DeliveryNotFoundError,
        9300528: WaybillNotFoundError,
        930563: OrderNotFoundError,
        930561: InvalidArgumentError,
    }
)
"""The errcodes of the reads that look an order up (getOrder, batchGetOrder, getPath)."""

GET_ORDER = ApiEndpoint(
    "POST",
    f"{_BASE}/order/get",
    idempotent=True,
    errcodes=_ORDER_LOOKUP,
    name="getOrder",
    method_name="get_order",
    policy=_READ,
)
"""getOrder: a read."""

BATCH_GET_ORDER = ApiEndpoint(
    "POST",
    f"{_BASE}/order/batchget",
    idempotent=True,
    errcodes=_ORDER_LOOKUP,
    name="batchGetOrder",
    method_name="batch_get_order",
    policy=_READ + " Per-item errcodes come back on the items, never raised.",
)
"""batchGetOrder: a read of up to 100 orders; item errcodes use this same table."""

GET_PATH = ApiEndpoint(
    "POST",
    f"{_BASE}/path/get",
    idempotent=True,
    errcodes=_ORDER_LOOKUP,
    name="getPath",
    method_name="get_path",
    policy=_READ,
)
"""getPath: a read."""

GET_ALL_DELIVERY = ApiEndpoint(
    "GET",
    f"{_BASE}/delivery/getall",
    idempotent=True,
    name="getAllDelivery",
    method_name="get_all_delivery",
    policy=_READ,
)
"""getAllDelivery: a read (GET, no body)."""

GET_QUOTA = ApiEndpoint(
    "POST",
    f"{_BASE}/quota/get",
    idempotent=True,
    errcodes=_table(
        {
            9300503: DeliveryNotFoundError,
            9300520: DeliveryNotFoundError,
            9300527: QuotaError,
            9300525: AccountNotBoundError,
        }
    ),
    name="getQuota",
    method_name="get_quota",
    policy=_READ,
)
"""getQuota: a read (POST)."""

GET_PRINTER = ApiEndpoint(
    "GET",
    f"{_BASE}/printer/getall",
    idempotent=True,
    name="getPrinter",
    method_name="get_printer",
    policy=_READ,
)
"""getPrinter: a read (GET, no body)."""

UPDATE_PRINTER = ApiEndpoint(
    "POST",
    f"{_BASE}/printer/update",
    idempotent=True,
    errcodes=_table({9300517: InvalidArgumentError, 9300533: InvalidArgumentError}),
    name="updatePrinter",
    method_name="update_printer",
    policy="Binding or unbinding a printer twice leaves the same state: retried like a read.",
)
"""updatePrinter: sets a state, so safe to repeat."""

BIND_ACCOUNT = ApiEndpoint(
    "POST",
    f"{_BASE}/account/bind",
    idempotent=True,
    done_errcodes=frozenset({9300529, 9300530}),
    errcodes=_table(
        {
            9300503: DeliveryNotFoundError,
            9300520: DeliveryNotFoundError,
            9300529: AccountAlreadyBoundError,
            9300530: AccountNotFoundError,
            9300531: AccountCredentialsError,
            9300532: AccountUnderReviewError,
        }
    ),
    name="bindAccount",
    method_name="bind_account",
    policy="Sets a state: retried like a read; 9300529 (bind) / 9300530 (unbind) answering a "
    "retry after an ambiguous attempt is that attempt's success (confirmed_by_retry).",
)
"""bindAccount: binding twice answers 9300529, unbinding twice 9300530 ("already done")."""

GET_ALL_ACCOUNT = ApiEndpoint(
    "GET",
    f"{_BASE}/account/getall",
    idempotent=True,
    name="getAllAccount",
    method_name="get_all_account",
    policy=_READ,
)
"""getAllAccount: a read (GET, no body)."""

TEST_UPDATE_ORDER = ApiEndpoint(
    "POST",
    f"{_BASE}/test_update_order",
    idempotent=False,
    errcodes=_table({930563: OrderNotFoundError, 930561: InvalidArgumentError}),
    name="testUpdateOrder",
    method_name="test_update_order",
    policy="Adds a track event (sandbox): resent only when it provably never left, so a "
    "retry cannot push the same event twice.",
)
"""testUpdateOrder: sandbox only; each call adds a track event, so not repeated."""

ENDPOINTS: tuple[ApiEndpoint, ...] = (
    ADD_ORDER,
    BATCH_GET_ORDER,
    CANCEL_ORDER,
    GET_ALL_DELIVERY,
    GET_ORDER,
    GET_PATH,
    GET_PRINTER,
    GET_QUOTA,
    TEST_UPDATE_ORDER,
    UPDATE_PRINTER,
    BIND_ACCOUNT,
    GET_ALL_ACCOUNT,
)
"""Every endpoint the client calls (the contract test has one row for each)."""


def _codes(codes: frozenset[int]) -> str:
    return ", ".join(str(code) for code in sorted(codes)) or "-"


def errcode_table_markdown() -> str:
    """The errcode -> exception table of every endpoint, as Markdown (for docs/errors.md).

    One row per errcode and class: the common codes say "all", the others list the endpoints
    whose table holds them. Rendered from the tables the client uses, so it cannot drift.
    """
    rows: dict[tuple[int, str], list[str]] = {}
    for endpoint in ENDPOINTS:
        for code, cls in endpoint.errcodes.items():
            if COMMON_ERRCODES.get(code) is cls:
                continue
            rows.setdefault((code, cls.__name__), []).append(endpoint.method_name)
    lines = [
        "| errcode | exception | meaning | raised by |",
        "|---|---|---|---|",
    ]
    for code, cls in sorted(COMMON_ERRCODES.items()):
        meaning = ERRCODE_MEANINGS.get(code, "")
        lines.append(f"| {code} | `{cls.__name__}` | {meaning} | every endpoint |")
    for (code, name), methods in sorted(rows.items()):
        meaning = ERRCODE_MEANINGS.get(code, "")
        used = ", ".join(f"`{m}`" for m in methods)
        lines.append(f"| {code} | `{name}` | {meaning} | {used} |")
    lines.append("")
    lines.append("Any other errcode raises plain `APIError`.")
    return "\n".join(lines) + "\n"


def retry_table_markdown() -> str:
    """The retry-safety policy of every endpoint, as Markdown (for docs/retries.md).

    Rendered from the declarations the client uses (:data:`ENDPOINTS`).
    """
    lines = [
        "| method | WeChat API | HTTP | safe to repeat | already-done errcodes "
        "| reconcile errcodes | policy |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in ENDPOINTS:
        safe = "yes" if e.idempotent else "no"
        lines.append(
            f"| `{e.method_name}` | {e.name} | {e.method} `{e.path}` | {safe} "
            f"| {_codes(e.done_errcodes)} | {_codes(e.reconcile_errcodes)} | {e.policy} |"
        )
    return "\n".join(lines) + "\n"
