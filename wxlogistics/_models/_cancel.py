"""Requests and results: frozen attrs records, built from wire data by ``from_api``."""

from __future__ import annotations

import json
from typing import Any, Literal

import attrs

from wxlogistics._exceptions import (
    AccessTokenError,
    AlreadyCancelledError,
    ClientClosedError,
    CredentialsError,
    OrderNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseError,
    SystemBusyError,
    TransportError,
    WaybillHasTracesError,
    WaybillNotFoundError,
    WxLogisticsError,
)
from wxlogistics._transport import ConfirmedPayload, encode_json
from wxlogistics._validate import check_id as check_id  # re-exported: callers import it from here

__all__ = ["CancelOrderRequest", "CancelOrderResult", "CancelOutcome", "CancelStatus"]


def _check_optional_id(name: str, value: object) -> str | None:
    return None if value is None else check_id(name, value)


def _validate_required(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_id(attribute.name, value)


def _validate_optional(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_optional_id(attribute.name, value)


@attrs.frozen(kw_only=True)
class CancelOrderRequest:
    """One waybill to cancel: the arguments of :meth:`AsyncLogistics.cancel_order`.

    Validated on construction; a bad id raises :class:`ValidationError`.
    """

    order_id: str = attrs.field(validator=_validate_required)
    """The merchant order id used when the waybill was created."""
    delivery_id: str = attrs.field(validator=_validate_required)
    """The carrier id, e.g. ``"SF"``."""
    waybill_id: str = attrs.field(validator=_validate_required)
    """The waybill number returned when the waybill was created."""
    openid: str | None = attrs.field(default=None, validator=_validate_optional)
    """The user's openid; optional (not needed for App/H5 orders)."""

    def to_body(self) -> dict[str, str]:
        """The JSON body WeChat expects: exactly the given fields, ``openid`` left out if None."""
        body = {
            "order_id": self.order_id,
            "delivery_id": self.delivery_id,
            "waybill_id": self.waybill_id,
        }
        if self.openid is not None:
            body["openid"] = self.openid
        return body


def cancel_json(
    order_id: object, delivery_id: object, waybill_id: object, openid: object = None
) -> bytes:
    """The cancelOrder JSON body for these ids, validated as :class:`CancelOrderRequest` does.

    The hot path of ``cancel_order``: the ids are checked in the record's field order (the
    same first error, the same message) without building the record (a frozen attrs instance
    and four validator calls), and the three strings are quoted by the JSON encoder's own
    string function into the bytes ``encode_json(record.to_body())`` gives, without a pass of
    the encoder over a dict. With an ``openid``, the record is built as usual.
    """
    if openid is not None:
        return encode_json(
            CancelOrderRequest(
                order_id=order_id,  # type: ignore[arg-type]
                delivery_id=delivery_id,  # type: ignore[arg-type]
                waybill_id=waybill_id,  # type: ignore[arg-type]
                openid=openid,  # type: ignore[arg-type]
            ).to_body()
        )
    quoted = (
        _quote(check_id("order_id", order_id)),
        _quote(check_id("delivery_id", delivery_id)),
        _quote(check_id("waybill_id", waybill_id)),
    )
    return (_CANCEL_JSON % quoted).encode()


_CANCEL_JSON = '{"order_id":%s,"delivery_id":%s,"waybill_id":%s}'
# What json.JSONEncoder(ensure_ascii=False) quotes a str with (C when available).
_quote = json.encoder.encode_basestring


def _optional_int(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


@attrs.frozen(kw_only=True)
class CancelOrderResult:
    """The answer to a successful cancel.

    ``payload`` keeps the whole decoded body, so fields WeChat adds later are not lost.
    """

    errcode: int
    """0 on success (WeChat may omit it; it is then 0 here)."""
    errmsg: str
    """WeChat's message, usually ``"ok"``; empty when WeChat sent none."""
    delivery_resultcode: int | None
    """The carrier's result code (0 = ok), or None when WeChat did not send one."""
    delivery_resultmsg: str | None
    """The carrier's message, or None when WeChat did not send one."""
    payload: dict[str, Any] = attrs.field(repr=False, eq=False)
    """The whole decoded JSON body."""
    confirmed_by_retry: bool = False
    """True when an attempt that may have reached WeChat got no answer, and the retry was
    answered 9300524 (already cancelled): the earlier attempt cancelled the waybill.
    ``errcode``/``errmsg`` are then the retry's (9300524)."""

    @classmethod
    def from_api(cls, payload: dict[str, Any]) -> CancelOrderResult:
        """Build the result from WeChat's decoded JSON body."""
        errcode = payload.get("errcode")
        errmsg = payload.get("errmsg")
        code = payload.get("delivery_resultcode")
        msg = payload.get("delivery_resultmsg")
        # The usual types are taken as they are; anything else goes through the conversions.
        return cls(
            errcode=errcode if type(errcode) is int else _optional_int(errcode) or 0,
            errmsg=errmsg if type(errmsg) is str else str(errmsg or ""),
            delivery_resultcode=code if type(code) is int else _optional_int(code),
            delivery_resultmsg=msg if isinstance(msg, str) else None,
            payload=payload,
            confirmed_by_retry=type(payload) is ConfirmedPayload,
        )


CancelStatus = Literal["cancelled", "already_cancelled", "not_found", "has_traces", "failed"]
"""How a cancel ended, in one word (the CLI's ``outcome`` field)."""


@attrs.frozen(kw_only=True)
class CancelOutcome:
    """What happened to one request of a batch: a result or an error, never both.

    Built with neither or both, it raises :class:`ValueError`.
    """

    request: CancelOrderRequest
    """The request, as given."""
    result: CancelOrderResult | None = None
    """The result, when the cancel succeeded (also when a retry confirmed it)."""
    error: WxLogisticsError | None = None
    """The error, when it did not."""

    def __attrs_post_init__(self) -> None:
        if (self.result is None) == (self.error is None):
            raise ValueError("a CancelOutcome has a result or an error, exactly one of them")

    @property
    def ok(self) -> bool:
        """True when the waybill was cancelled by this request."""
        return self.result is not None

    @property
    def status(self) -> CancelStatus:
        """``cancelled``, ``already_cancelled``, ``not_found``, ``has_traces`` or ``failed``.

        ``cancelled`` for every result, whatever its fields say.
        """
        error = self.error
        if self.result is not None or error is None:
            return "cancelled"
        if isinstance(error, AlreadyCancelledError):
            return "already_cancelled"
        if isinstance(error, (OrderNotFoundError, WaybillNotFoundError)):
            return "not_found"
        if isinstance(error, WaybillHasTracesError):
            return "has_traces"
        return "failed"

    @property
    def final(self) -> bool:
        """False when asking again later could end differently.

        That is: the network, a busy or rate-limited WeChat, a refused token, a client closed
        before the request was sent, or the configuration (appid/secret refused, API not
        allowed for the account), which once fixed lets the same request succeed. True for
        every result.
        """
        error = self.error
        if self.result is not None or error is None or self.status != "failed":
            return True
        return not isinstance(
            error,
            (
                TransportError,
                ResponseError,
                SystemBusyError,
                RateLimitError,
                AccessTokenError,
                CredentialsError,
                PermissionDeniedError,
                ClientClosedError,  # never reached WeChat: an open client can still do it
            ),
        )
