"""Records, answers and input checks shared by the fake's resource modules."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from ._core import FakeWeChat

__all__ = [
    "DROP",
    "Account",
    "FakeResponse",
    "Fault",
    "PathItem",
    "Printer",
    "RecordedCall",
    "Refusal",
    "Route",
    "Waybill",
    "WaybillState",
]

WaybillState = Literal["created", "has_traces", "cancelled"]

STABLE_PATH = "/cgi-bin/stable_token"
CLASSIC_PATH = "/cgi-bin/token"
TOKEN_PATHS = frozenset({STABLE_PATH, CLASSIC_PATH})

TEST_DELIVERY_ID = "TEST"
TEST_BIZ_ID = "test_biz_id"

ACTION_TYPES: Mapping[int, str] = {
    100001: "picked up",
    100002: "pickup failed",
    100003: "courier assigned",
    200001: "in transit",
    300001: "arrived at the delivery station",  # only in the WDK example, not in the table
    300002: "out for delivery",
    300003: "delivered",
    300004: "delivery failed",
    400001: "order cancelled",
    400002: "order stranded",
}
"""The action_type codes of getPath / testUpdateOrder / onPathUpdate (reference §3.6)."""

ERRMSG: Mapping[int, str] = {
    0: "ok",
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40013: "invalid appid",
    40033: "invalid charset. please check your request, if include \\uxxxx will create fail!",
    40125: "invalid appsecret",
    40199: "waybill id not exist",
    41001: "access_token missing",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    930561: "args error",
    930563: "order not exists",
    9300501: "delivery logic fail",
    9300503: "delivery_id not exist",
    9300506: "waybill has traces, cannot cancel",
    9300509: "speed limit, retry too fast",
    9300510: "invalid service type",
    9300517: "update_type must be bind or unbind",
    9300520: "invalid delivery id",
    9300522: "this orderid is repeated",
    9300523: "quota is not enough; please recharge",
    9300524: "cancel failed, order already cancelled",
    9300525: "bizid not bind",
    9300526: "arg size exceed limit",
    9300527: "delivery does not support quota",
    9300528: "invalid waybill_id",
    9300529: "account already bound",
    9300530: "bizid to unbind not found",
    9300531: "bizid invalid or password wrong",
    9300532: "bind submitted, please wait for review",
    9300533: "invalid tagid_list",
    9300535: "shop arg error: invalid img_url, goods_name or goods_count",
    9300536: "invalid wx_appid",
}


def errmsg(errcode: int) -> str:
    """WeChat's errmsg for ``errcode``, with a ``rid`` suffix as the real service adds."""
    rid = f"{secrets.randbits(32):08x}-{secrets.randbits(32):08x}-{secrets.randbits(32):08x}"
    return f"{ERRMSG.get(errcode, 'fake error')} rid: {rid}"


@attrs.frozen
class FakeResponse:
    """An answer of the fake: status, JSON or raw body. ``DROP`` closes the connection."""

    status: int
    """HTTP status."""
    body: bytes
    """Raw body."""
    content_type: str = "application/json; encoding=utf-8"
    """Content-Type header."""
    dropped: bool = False
    """True: close the connection without answering."""


DROP = FakeResponse(0, b"", dropped=True)


def json_answer(payload: Mapping[str, Any]) -> FakeResponse:
    r"""HTTP 200 with ``payload`` as raw UTF-8 JSON (no ``\uXXXX`` escapes, as WeChat sends)."""
    return FakeResponse(200, json.dumps(payload, ensure_ascii=False).encode())


def error_answer(errcode: int, **extra: Any) -> FakeResponse:
    """``{"errcode": errcode, "errmsg": ...}`` plus ``extra`` fields."""
    return json_answer({"errcode": errcode, "errmsg": errmsg(errcode), **extra})


class Refusal(Exception):
    """Raised by a handler to answer an errcode (with optional extra answer fields)."""

    def __init__(self, errcode: int, **extra: Any) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.extra = extra

    def answer(self) -> FakeResponse:
        """The JSON error answer."""
        return error_answer(self.errcode, **self.extra)


@attrs.frozen(kw_only=True)
class RecordedCall:
    """One request the fake received, for assertions."""

    method: str
    """HTTP method."""
    path: str
    """URL path."""
    token: str | None
    """The ``access_token`` query parameter, if any."""
    body: dict[str, Any] | None = attrs.field(repr=False)
    """The decoded JSON body, if any."""
    status: int
    """HTTP status answered (0 for a dropped connection)."""
    errcode: int | None
    """errcode answered (None for a dropped connection or a non-JSON answer)."""


@attrs.frozen(kw_only=True)
class Fault:
    """What to do instead of (or on top of) the normal answer. See :meth:`FakeWeChat.fail_next`."""

    errcode: int | None = None
    """Answer this errcode (the request is not carried out)."""
    status: int | None = None
    """Answer this HTTP status (the request is not carried out)."""
    body: Literal["html", "empty"] | None = None
    """Answer HTTP 200 with an HTML page or an empty body (not carried out)."""
    drop: Literal["before", "after"] | None = None
    """Close the connection without answering, before or after carrying the request out."""
    latency: float = 0.0
    """Seconds to wait before answering."""
    path: str | None = None
    """Only requests to this path; None: every API path except the token endpoints."""

    def applies_to(self, path: str) -> bool:
        """Whether this fault targets ``path``."""
        return path == self.path if self.path is not None else path not in TOKEN_PATHS


@attrs.frozen(kw_only=True)
class PathItem:
    """One node of a waybill's path (getPath's ``path_item_list`` entry)."""

    action_time: int
    """Unix seconds."""
    action_type: int
    """One of the action_type codes (100001 picked up ... 300003 delivered, 400001 cancelled)."""
    action_msg: str
    """Free text."""

    def to_json(self) -> dict[str, Any]:
        """The wire shape."""
        return {
            "action_time": self.action_time,
            "action_type": self.action_type,
            "action_msg": self.action_msg,
        }


@attrs.define(kw_only=True)
class Waybill:
    """A waybill the fake knows (an order with its waybill), its state and what was asked of it."""

    order_id: str
    """The merchant order id."""
    delivery_id: str
    """The carrier id."""
    waybill_id: str
    """The waybill number."""
    openid: str | None = None
    """The user's openid, if any."""
    state: WaybillState = "created"
    """created (cancellable), has_traces (moved: 9300506) or cancelled (9300524)."""
    cancel_requests: int = 0
    """How many cancel requests reached this waybill (whatever their answer)."""
    cancellations: int = 0
    """How many of them cancelled it (answer 0). More than 1 would be a bug."""
    biz_id: str | None = None
    """The carrier account (customer code) the order was placed with, if known."""
    waybill_data: list[dict[str, str]] = attrs.field(factory=list)
    """Label data (``[{"key": ..., "value": ...}]``) as addOrder answered it."""
    path: list[PathItem] = attrs.field(factory=list)
    """The waybill's tracking events, oldest first (getPath answers them)."""
    request: dict[str, Any] | None = attrs.field(default=None, repr=False)
    """The addOrder body that created it (None when made with ``add_waybill``)."""

    @property
    def order_status(self) -> int:
        """GetOrder's ``order_status``: 1 when cancelled, else 0."""
        return 1 if self.state == "cancelled" else 0

    @property
    def last_action_type(self) -> int | None:
        """The action_type of the newest path item (None while it has no path)."""
        return self.path[-1].action_type if self.path else None


@attrs.define(kw_only=True)
class Account:
    """A carrier account bound to the mini program (a getAllAccount ``list`` entry)."""

    delivery_id: str
    """The carrier id."""
    biz_id: str
    """The carrier customer code."""
    status_code: int = 0
    """0 bound; 1 submitted, under review (EMS). WeChat does not document the values."""
    create_time: int = 0
    """Unix seconds."""
    update_time: int = 0
    """Unix seconds."""
    remark_content: str = ""
    """The review note sent with the bind request."""
    password: str | None = attrs.field(default=None, repr=False)
    """The password the account was bound with."""


@attrs.define(kw_only=True)
class Printer:
    """A label printer (a user's openid) configured with updatePrinter."""

    openid: str
    """The printer's openid."""
    tagid_list: list[str] = attrs.field(factory=list)
    """Tenant tags (platform-type mini programs), in the order given."""


Handler = Callable[["FakeWeChat", "dict[str, Any] | None"], FakeResponse]


@attrs.frozen
class Route:
    """One endpoint of the fake: its HTTP method and the handler of its decoded body."""

    method: Literal["GET", "POST"]
    """The method WeChat requires (the other answers 43001 / 43002)."""
    handler: Handler
    """Answers the request; called with the JSON body (None for GET)."""


# -- input checks: raise Refusal(930561) for a missing or mistyped field, 9300526 if too long --


ARGS_ERROR = 930561
TOO_LONG = 9300526


def get_str(
    obj: Mapping[str, Any], key: str, *, required: bool = True, max_bytes: int | None = None
) -> str | None:
    """``obj[key]`` as a string: 930561 if required and missing or empty, or not a string."""
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise Refusal(ARGS_ERROR)
        return None
    if not isinstance(value, str):
        raise Refusal(ARGS_ERROR)
    if max_bytes is not None and len(value.encode()) > max_bytes:
        raise Refusal(TOO_LONG)
    return value


def need_str(obj: Mapping[str, Any], key: str, *, max_bytes: int | None = None) -> str:
    """A required non-empty string field."""
    value = get_str(obj, key, max_bytes=max_bytes)
    assert value is not None
    return value


def get_int(obj: Mapping[str, Any], key: str, *, required: bool = True) -> int | None:
    """``obj[key]`` as a JSON integer (not a bool, not a float): 930561 otherwise."""
    value = obj.get(key)
    if value is None:
        if required:
            raise Refusal(ARGS_ERROR)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refusal(ARGS_ERROR)
    return value


def need_int(obj: Mapping[str, Any], key: str) -> int:
    """A required integer field."""
    value = get_int(obj, key)
    assert value is not None
    return value


def need_num(obj: Mapping[str, Any], key: str) -> float:
    """A required JSON number (integer or fraction, not a bool)."""
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refusal(ARGS_ERROR)
    return float(value)


def need_obj(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A required JSON object field."""
    value = obj.get(key)
    if not isinstance(value, dict):
        raise Refusal(ARGS_ERROR)
    return value


def need_list(obj: Mapping[str, Any], key: str) -> list[Any]:
    """A required JSON array field."""
    value = obj.get(key)
    if not isinstance(value, list):
        raise Refusal(ARGS_ERROR)
    return value
