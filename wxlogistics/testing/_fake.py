"""An in-memory model of WeChat's token and logistics-cancel endpoints, with fault injection.

One model, two front doors: :meth:`FakeWeChat.transport` (an ``httpx`` transport, in process)
and :func:`wxlogistics.testing.serve` (a real HTTP server on loopback). Both call
:meth:`FakeWeChat.handle_async`.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl

import anyio
import attrs
import httpx

from wxlogistics import AsyncLogistics, RetryPolicy

__all__ = ["FakeResponse", "FakeWeChat", "Fault", "RecordedCall", "Waybill", "WaybillState"]

WaybillState = Literal["created", "has_traces", "cancelled"]

CANCEL_PATH = "/cgi-bin/express/business/order/cancel"
STABLE_PATH = "/cgi-bin/stable_token"
CLASSIC_PATH = "/cgi-bin/token"
TOKEN_PATHS = frozenset({STABLE_PATH, CLASSIC_PATH})
GRACE = 300.0  # old and new tokens overlap for 5 minutes
NO_WAIT = RetryPolicy(initial_delay=0, max_delay=0, jitter=0, max_rate_limit_wait=0)

_ERRMSG = {
    0: "ok",
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40013: "invalid appid",
    40033: "invalid charset. please check your request, if include \\uxxxx will create fail!",
    40125: "invalid appsecret",
    40199: "waybill id not exist",
    41001: "access_token missing",
    42001: "access_token expired",
    43002: "require POST method",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    930561: "args error",
    930563: "order not exists",
    9300503: "delivery_id not exist",
    9300506: "waybill has traces, cannot cancel",
    9300509: "speed limit, retry too fast",
    9300524: "cancel failed, order already cancelled",
}


@attrs.define(kw_only=True)
class Waybill:
    """A waybill the fake knows, with its state and what was asked of it."""

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
_CANCELLED = FakeResponse(
    200, b'{"errcode":0,"errmsg":"ok","delivery_resultcode":0,"delivery_resultmsg":""}'
)


@attrs.define
class _Token:
    kind: Literal["stable", "classic"]
    expires_at: float
    usable_until: float  # min(expiry, supersession + grace); revocation sets it to -inf


class FakeWeChat:
    """An in-memory WeChat logistics service.

    Tokens: the stable endpoint returns the same token while it has more than 5 minutes left,
    then a new one (the old stays valid until it expires); the classic endpoint issues a new token
    on every call and the previous one keeps working for 5 minutes, then answers 40001; an
    expired token answers 42001, an unknown or revoked one 40001, a missing one 41001.

    Cancel: 0 (created -> cancelled), 9300524 (already cancelled), 9300506 (has traces),
    930563 (unknown order), 40199 (order known, waybill_id or delivery_id differ), 9300503
    (unknown carrier), 930561 (missing field), 40033 (escaped non-ASCII in the body), and -1
    or anything else through :meth:`fail_next` / :meth:`fail_fraction`.

    ``latency`` adds a delay to every API answer (not to token fetches), so concurrency can be
    observed in ``max_concurrent``. ``clock`` is monotonic seconds, injectable for expiry tests.
    ``unknown_orders="cancel"`` answers 0 for orders it does not know, without storing them
    (for load tests that must not grow the fake's memory).
    """

    def __init__(
        self,
        *,
        appid: str = "wxfake0000000000",
        secret: str = "fake-app-secret",
        token_lifetime: float = 7200.0,
        carriers: Iterable[str] = ("SF", "YTO", "ZTO", "STO", "YUNDA", "EMS", "BEST", "JD", "TEST"),
        latency: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        unknown_orders: Literal["not_found", "cancel"] = "not_found",
    ) -> None:
        self.appid = appid
        self.secret = secret
        self.token_lifetime = token_lifetime
        self.carriers = frozenset(carriers)
        self.unknown_orders = unknown_orders
        self.latency = latency
        self._clock = clock
        self._random = random.Random(seed)
        self._tokens: dict[str, _Token] = {}
        self._stable: str | None = None
        self._classic: str | None = None
        self._waybills: dict[str, Waybill] = {}
        self._next_faults: deque[Fault] = deque()
        self._fraction: tuple[float, Fault] | None = None
        self.calls: list[RecordedCall] = []
        """Every request received, in order (see :meth:`reset_calls`)."""
        self.record_calls = True
        """Set False for long runs (benchmarks) to keep memory flat."""
        self.token_fetches = 0
        """Tokens issued or re-served by the token endpoints."""
        self.in_flight = 0
        """API requests being answered right now."""
        self.max_concurrent = 0
        """The most API requests ever answered at once."""

    def __repr__(self) -> str:
        return f"<FakeWeChat appid={self.appid!r} waybills={len(self._waybills)}>"

    # -- set-up ---------------------------------------------------------------------------------

    def add_waybill(
        self,
        order_id: str,
        delivery_id: str = "SF",
        waybill_id: str | None = None,
        *,
        openid: str | None = None,
        state: WaybillState = "created",
    ) -> Waybill:
        """Create a waybill (as addOrder would) and return it."""
        if delivery_id not in self.carriers:
            raise ValueError(f"unknown carrier {delivery_id!r}; known: {sorted(self.carriers)}")
        waybill = Waybill(
            order_id=order_id,
            delivery_id=delivery_id,
            waybill_id=waybill_id or f"WB{order_id}",
            openid=openid,
            state=state,
        )
        self._waybills[order_id] = waybill
        return waybill

    def waybill(self, order_id: str) -> Waybill:
        """The waybill of ``order_id`` (KeyError if none)."""
        return self._waybills[order_id]

    @property
    def waybills(self) -> list[Waybill]:
        """Every waybill, in creation order."""
        return list(self._waybills.values())

    # -- faults ---------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        errcode: int | None = None,
        status: int | None = None,
        body: Literal["html", "empty"] | None = None,
        drop: Literal["before", "after"] | None = None,
        latency: float = 0.0,
        path: str | None = None,
    ) -> None:
        """Make the next ``n`` matching requests misbehave.

        Exactly one of ``errcode``, ``status``, ``body``, ``drop`` (or only ``latency``).
        ``path=None`` targets every API path except the token endpoints.
        """
        fault = self._fault(errcode, status, body, drop, latency, path)
        self._next_faults.extend([fault] * n)

    def fail_fraction(
        self,
        fraction: float,
        *,
        errcode: int | None = None,
        status: int | None = None,
        body: Literal["html", "empty"] | None = None,
        drop: Literal["before", "after"] | None = None,
        latency: float = 0.0,
        path: str | None = None,
    ) -> None:
        """Make a random ``fraction`` (0 to 1) of matching requests misbehave, until cleared."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        self._fraction = (fraction, self._fault(errcode, status, body, drop, latency, path))

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self._next_faults.clear()
        self._fraction = None

    @staticmethod
    def _fault(
        errcode: int | None,
        status: int | None,
        body: Literal["html", "empty"] | None,
        drop: Literal["before", "after"] | None,
        latency: float,
        path: str | None,
    ) -> Fault:
        if sum(x is not None for x in (errcode, status, body, drop)) > 1:
            raise ValueError("give at most one of errcode, status, body, drop")
        return Fault(
            errcode=errcode, status=status, body=body, drop=drop, latency=latency, path=path
        )

    def expire_tokens(self) -> None:
        """Expire every token issued so far: they answer 42001 from now on."""
        now = self._clock()
        for token in self._tokens.values():
            token.expires_at = min(token.expires_at, now)
            token.usable_until = min(token.usable_until, now)
        self._stable = self._classic = None

    def revoke_tokens(self) -> None:
        """Revoke every token issued so far: they answer 40001 from now on."""
        for token in self._tokens.values():
            token.usable_until = float("-inf")
        self._stable = self._classic = None

    def reset_calls(self) -> None:
        """Forget the request log."""
        self.calls.clear()

    # -- front doors ----------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering from this fake, in process."""

        async def handler(request: httpx.Request) -> httpx.Response:
            answer = await self.handle_async(
                request.method, request.url.path, request.url.query.decode(), request.content
            )
            if answer.dropped:
                raise httpx.RemoteProtocolError(
                    "fake WeChat dropped the connection", request=request
                )
            return httpx.Response(
                answer.status, content=answer.body, headers={"content-type": answer.content_type}
            )

        return httpx.MockTransport(handler)

    def client(self, **kwargs: Any) -> AsyncLogistics:
        """An :class:`AsyncLogistics` wired to this fake (retries do not sleep by default)."""
        kwargs.setdefault("appid", self.appid)
        kwargs.setdefault("secret", self.secret)
        if "max_retries" in kwargs and "retry_policy" not in kwargs:
            kwargs["retry_policy"] = attrs.evolve(NO_WAIT, max_retries=kwargs.pop("max_retries"))
        kwargs.setdefault("retry_policy", NO_WAIT)
        return AsyncLogistics(transport=self.transport(), **kwargs)

    # -- the model ------------------------------------------------------------------------------

    async def handle_async(self, method: str, path: str, query: str, body: bytes) -> FakeResponse:
        """Answer one HTTP request, applying faults and latency."""
        fault = self._take_fault(path)
        api = path not in TOKEN_PATHS
        if api:
            self.in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self.in_flight)
        try:
            delay = (self.latency if api else 0.0) + (fault.latency if fault else 0.0)
            if delay:
                await anyio.sleep(delay)
            if fault is not None and fault.drop == "before":
                answer = DROP
            elif fault is not None and (fault.errcode is not None or fault.status or fault.body):
                answer = self._faulty(fault)
            else:
                answer = self.handle(method, path, query, body)
                if fault is not None and fault.drop == "after":
                    answer = DROP
        finally:
            if api:
                self.in_flight -= 1
        if self.record_calls:
            self._record(method, path, query, body, answer)
        return answer

    def handle(self, method: str, path: str, query: str, body: bytes) -> FakeResponse:
        """Answer one request by the model alone (no faults, no latency)."""
        params = dict(parse_qsl(query))
        if path == STABLE_PATH:
            return self._stable_token(method, body)
        if path == CLASSIC_PATH:
            return self._classic_token(method, params)
        if path == CANCEL_PATH:
            errcode = self._check_token(params.get("access_token"))
            if errcode:
                return _json({"errcode": errcode, "errmsg": _errmsg(errcode)})
            if method != "POST":
                return _json({"errcode": 43002, "errmsg": _errmsg(43002)})
            return self._cancel(body)
        return FakeResponse(404, b"<html><body>404 not found</body></html>", "text/html")

    def _take_fault(self, path: str) -> Fault | None:
        if self._next_faults and self._next_faults[0].applies_to(path):
            return self._next_faults.popleft()
        if self._fraction is not None:
            fraction, fault = self._fraction
            if fault.applies_to(path) and self._random.random() < fraction:
                return fault
        return None

    @staticmethod
    def _faulty(fault: Fault) -> FakeResponse:
        if fault.errcode is not None:
            return _json({"errcode": fault.errcode, "errmsg": _errmsg(fault.errcode)})
        if fault.status:
            return FakeResponse(fault.status, b"<html>upstream error</html>", "text/html")
        if fault.body == "html":
            return FakeResponse(200, b"<html><body>gateway</body></html>", "text/html")
        return FakeResponse(200, b"", "text/html; charset=gbk")

    def _record(
        self, method: str, path: str, query: str, body: bytes, answer: FakeResponse
    ) -> None:
        decoded: dict[str, Any] | None = None
        try:
            value = json.loads(body) if body else None
            decoded = value if isinstance(value, dict) else None
        except ValueError:
            pass
        errcode: int | None = None
        if not answer.dropped and answer.content_type.startswith("application/json"):
            errcode = int(json.loads(answer.body).get("errcode", 0))
        self.calls.append(
            RecordedCall(
                method=method,
                path=path,
                token=dict(parse_qsl(query)).get("access_token"),
                body=decoded,
                status=answer.status,
                errcode=errcode,
            )
        )

    # tokens

    def _issue(self, kind: Literal["stable", "classic"]) -> str:
        value = f"{kind}-{secrets.token_urlsafe(24)}"
        expires_at = self._clock() + self.token_lifetime
        self._tokens[value] = _Token(kind=kind, expires_at=expires_at, usable_until=expires_at)
        return value

    def _credentials_error(self, appid: object, secret: object, bad_secret: int) -> int:
        if not appid:
            return 41002
        if appid != self.appid:
            return 40013
        if not secret:
            return 41004
        if secret != self.secret:
            return bad_secret
        return 0

    def _stable_token(self, method: str, body: bytes) -> FakeResponse:
        if method != "POST":
            return _json({"errcode": 43002, "errmsg": _errmsg(43002)})
        try:
            request = json.loads(body)
        except ValueError:
            return _json({"errcode": 47001, "errmsg": _errmsg(47001)})
        if not isinstance(request, dict) or request.get("grant_type") != "client_credential":
            return _json({"errcode": 40002, "errmsg": "invalid grant_type"})
        errcode = self._credentials_error(request.get("appid"), request.get("secret"), 40125)
        if errcode:
            return _json({"errcode": errcode, "errmsg": _errmsg(errcode)})
        now = self._clock()
        current = self._tokens.get(self._stable) if self._stable else None
        if request.get("force_refresh") is True and current is not None:
            current.usable_until = now  # force mode invalidates the previous token
            current = None
        if current is None or current.expires_at - now <= GRACE:
            self._stable = self._issue("stable")
            current = self._tokens[self._stable]
        self.token_fetches += 1
        return _json({"access_token": self._stable, "expires_in": int(current.expires_at - now)})

    def _classic_token(self, method: str, params: Mapping[str, str]) -> FakeResponse:
        if params.get("grant_type") != "client_credential":
            return _json({"errcode": 40002, "errmsg": "invalid grant_type"})
        errcode = self._credentials_error(params.get("appid"), params.get("secret"), 40001)
        if errcode:
            return _json({"errcode": errcode, "errmsg": _errmsg(errcode)})
        now = self._clock()
        previous = self._tokens.get(self._classic) if self._classic else None
        if previous is not None:
            previous.usable_until = min(previous.usable_until, now + GRACE)
        self._classic = self._issue("classic")
        self.token_fetches += 1
        return _json({"access_token": self._classic, "expires_in": int(self.token_lifetime)})

    def _check_token(self, value: str | None) -> int:
        if not value:
            return 41001
        token = self._tokens.get(value)
        if token is None:
            return 40001
        now = self._clock()
        if now >= token.expires_at:
            return 42001
        if now >= token.usable_until:
            return 40001
        return 0

    # cancel

    def _cancel(self, body: bytes) -> FakeResponse:
        if b"\\u" in body:
            return _json({"errcode": 40033, "errmsg": _errmsg(40033)})
        try:
            request = json.loads(body)
        except ValueError:
            return _json({"errcode": 47001, "errmsg": _errmsg(47001)})
        if not isinstance(request, dict):
            return _json({"errcode": 47001, "errmsg": _errmsg(47001)})
        order_id, delivery_id, waybill_id = (
            request.get(k) for k in ("order_id", "delivery_id", "waybill_id")
        )
        if not all(isinstance(v, str) and v for v in (order_id, delivery_id, waybill_id)):
            return _json({"errcode": 930561, "errmsg": _errmsg(930561)})
        if delivery_id not in self.carriers:
            return _json({"errcode": 9300503, "errmsg": _errmsg(9300503)})
        waybill = self._waybills.get(str(order_id))
        if waybill is None:
            if self.unknown_orders == "cancel":
                return _CANCELLED
            return _json({"errcode": 930563, "errmsg": _errmsg(930563)})
        if waybill.waybill_id != waybill_id or waybill.delivery_id != delivery_id:
            return _json({"errcode": 40199, "errmsg": _errmsg(40199)})
        waybill.cancel_requests += 1
        if waybill.state == "has_traces":
            return _json({"errcode": 9300506, "errmsg": _errmsg(9300506)})
        if waybill.state == "cancelled":
            return _json({"errcode": 9300524, "errmsg": _errmsg(9300524)})
        waybill.state = "cancelled"
        waybill.cancellations += 1
        return _json(
            {"errcode": 0, "errmsg": "ok", "delivery_resultcode": 0, "delivery_resultmsg": ""}
        )

    def stats(self) -> dict[str, Any]:
        """Counters for assertions across processes (served at ``GET /_fake/stats``)."""
        states: dict[str, int] = {}
        for waybill in self._waybills.values():
            states[waybill.state] = states.get(waybill.state, 0) + 1
        return {
            "waybills": len(self._waybills),
            "states": states,
            "token_fetches": self.token_fetches,
            "max_concurrent": self.max_concurrent,
            "cancel_requests": sum(w.cancel_requests for w in self._waybills.values()),
            "cancelled_twice": sorted(
                w.order_id for w in self._waybills.values() if w.cancellations > 1
            ),
        }


def _errmsg(errcode: int) -> str:
    rid = f"{secrets.randbits(32):08x}-{secrets.randbits(32):08x}-{secrets.randbits(32):08x}"
    return f"{_ERRMSG.get(errcode, 'fake error')} rid: {rid}"


def _json(payload: Mapping[str, Any]) -> FakeResponse:
    return FakeResponse(200, json.dumps(payload, ensure_ascii=False).encode())
