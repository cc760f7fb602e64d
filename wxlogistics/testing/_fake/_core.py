"""An in-memory model of WeChat's token and logistics (express by-business) endpoints.

One model, two front doors: :meth:`FakeWeChat.transport` (an ``httpx`` transport, in process)
and :func:`wxlogistics.testing.serve` (a real HTTP server on loopback). Both call
:meth:`FakeWeChat.handle_async`.
"""

from __future__ import annotations

import json
import random
import re
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

from . import _accounts, _delivery, _orders, _printers
from ._base import (
    CLASSIC_PATH,
    DROP,
    STABLE_PATH,
    TEST_BIZ_ID,
    TEST_DELIVERY_ID,
    TOKEN_PATHS,
    Account,
    FakeResponse,
    Fault,
    PathItem,
    Printer,
    RecordedCall,
    Refusal,
    Route,
    Waybill,
    WaybillState,
    errmsg,
)
from ._base import json_answer as _json

__all__ = ["FakeWeChat"]

GRACE = 300.0  # old and new tokens overlap for 5 minutes
NO_WAIT = RetryPolicy(initial_delay=0, max_delay=0, jitter=0, max_rate_limit_wait=0)
ROUTES: Mapping[str, Route] = {
    **_orders.ROUTES,
    **_delivery.ROUTES,
    **_printers.ROUTES,
    **_accounts.ROUTES,
}
"""Every WeChat API path the fake serves (one module per resource), besides the token paths."""
_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u")
"""A ``\\uXXXX`` escape in a JSON body (40033), not an escaped backslash before a ``u``."""


@attrs.define
class _Token:
    kind: Literal["stable", "classic"]
    expires_at: float
    usable_until: float  # min(expiry, supersession + grace); revocation sets it to -inf


class FakeWeChat:
    """An in-memory WeChat logistics service, with fault injection.

    Tokens: the stable endpoint returns the same token while it has more than 5 minutes left,
    then a new one (the old stays valid until it expires); the classic endpoint issues a new token
    on every call and the previous one keeps working for 5 minutes, then answers 40001; an
    expired token answers 42001, an unknown or revoked one 40001, a missing one 41001.

    API paths are routed by a table (``ROUTES``, one module per resource). Every one checks
    the token first, then the method (43002 a POST endpoint called otherwise, 43001 a GET one),
    then for POST the body (40033 escaped non-ASCII, 47001 not a JSON object); then the
    endpoint's own rules (see each handler's docstring):

    - addOrder creates an order and its waybill (``TEST`` / ``test_biz_id`` accepted, the
      carrier's cash code, or an account bound with bindAccount); a repeated order_id answers
      9300522; the quota of (delivery_id, biz_id), for carriers with quotas, decreases and at 0
      answers 9300523.
    - testUpdateOrder (``TEST`` waybills) and :meth:`add_trace` move a waybill along its path;
      a waybill with traces cannot be cancelled (9300506).
    - cancelOrder: 0 (created -> cancelled), 9300524 (already cancelled), 9300506 (has traces),
      930563 (unknown order), 40199 (order known, waybill_id or delivery_id differ), 9300503
      (unknown carrier), 930561 (missing field).
    - getOrder, batchGetOrder (per-item errcodes), getPath, getAllDelivery, getQuota,
      updatePrinter / getPrinter, bindAccount / getAllAccount.

    ``-1`` or anything else through :meth:`fail_next` / :meth:`fail_fraction`, on every path.

    ``latency`` adds a delay to every API answer (not to token fetches), so concurrency can be
    observed in ``max_concurrent``. ``clock`` is monotonic seconds, injectable for expiry tests;
    ``wall_clock`` gives the unix times of answers (account create_time, default action_time).
    ``unknown_orders="cancel"`` answers 0 for orders it does not know, without storing them
    (for load tests that must not grow the fake's memory). ``default_quota`` is the quota of a
    newly bound account of a carrier with quotas, and of the sandbox pair.
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
        default_quota: int = 1000,
        wall_clock: Callable[[], float] = time.time,
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
        self._wall_clock = wall_clock
        self.default_quota = default_quota
        """Quota of a newly bound account (carriers with quotas) and of ``TEST``."""
        self._waybills: dict[str, Waybill] = {}
        self._waybill_serial = 0
        self._accounts: dict[tuple[str, str], Account] = {}
        self._carrier_passwords: dict[tuple[str, str], str] = {}
        self._quotas: dict[tuple[str, str], int] = {}
        if TEST_DELIVERY_ID in self.carriers:
            self._quotas[(TEST_DELIVERY_ID, TEST_BIZ_ID)] = default_quota
        self._printers: dict[str, Printer] = {}
        self._next_faults: deque[Fault] = deque()
        self._fraction: tuple[float, Fault] | None = None
        self.calls: list[RecordedCall] = []
        """Every request received, in order (see :meth:`reset_calls`)."""
        self.record_calls = True
        """Set False for long runs (benchmarks) to keep memory flat."""
        self.orders_added = 0
        """Orders created by addOrder (answer 0)."""
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
        biz_id: str | None = None,
    ) -> Waybill:
        """Create a waybill (as addOrder would, without its checks) and return it.

        ``state="has_traces"`` gives it one "picked up" (100001) path item.
        """
        if delivery_id not in self.carriers:
            raise ValueError(f"unknown carrier {delivery_id!r}; known: {sorted(self.carriers)}")
        waybill = Waybill(
            order_id=order_id,
            delivery_id=delivery_id,
            waybill_id=waybill_id or f"WB{order_id}",
            openid=openid,
            state=state,
            biz_id=biz_id,
        )
        if state == "has_traces":
            waybill.path.append(
                PathItem(action_time=int(self._wall_clock()), action_type=100001, action_msg="揽件")
            )
        self._waybills[order_id] = waybill
        return waybill

    def waybill(self, order_id: str) -> Waybill:
        """The waybill of ``order_id`` (KeyError if none)."""
        return self._waybills[order_id]

    def order(self, order_id: str) -> Waybill:
        """The order ``order_id`` with its waybill (KeyError if none); same as :meth:`waybill`."""
        return self._waybills[order_id]

    @property
    def waybills(self) -> list[Waybill]:
        """Every waybill, in creation order."""
        return list(self._waybills.values())

    def add_trace(
        self,
        order_id: str,
        action_type: int,
        action_msg: str = "",
        *,
        action_time: int | None = None,
    ) -> PathItem:
        """Add a tracking event to an order's waybill (any carrier), as testUpdateOrder does.

        Any event makes a created waybill ``has_traces`` (cancel answers 9300506); 400001
        (order cancelled) makes it ``cancelled``. ``action_time`` defaults to ``wall_clock()``.
        """
        item = PathItem(
            action_time=int(self._wall_clock()) if action_time is None else action_time,
            action_type=action_type,
            action_msg=action_msg,
        )
        self._move(self._waybills[order_id], item)
        return item

    def _move(self, waybill: Waybill, item: PathItem) -> None:
        waybill.path.append(item)
        if item.action_type == 400001:
            waybill.state = "cancelled"
        elif waybill.state == "created":
            waybill.state = "has_traces"

    def _by_waybill(self, delivery_id: str, waybill_id: str) -> Waybill | None:
        for waybill in self._waybills.values():
            if waybill.waybill_id == waybill_id and waybill.delivery_id == delivery_id:
                return waybill
        return None

    def set_quota(self, delivery_id: str, biz_id: str, quota_num: int) -> None:
        """Set the label quota of a carrier account.

        getQuota answers it; addOrder decreases it and answers 9300523 at 0. Only carriers with
        ``can_get_quota`` use quotas.
        """
        if quota_num < 0:
            raise ValueError("quota_num must be >= 0")
        self._quotas[(delivery_id, biz_id)] = quota_num

    def quota(self, delivery_id: str, biz_id: str) -> int | None:
        """The quota left for (delivery_id, biz_id), None if none was ever set."""
        return self._quotas.get((delivery_id, biz_id))

    def add_account(
        self,
        delivery_id: str,
        biz_id: str,
        *,
        status_code: int = 0,
        password: str | None = None,
        remark_content: str = "",
    ) -> Account:
        """Bind a carrier account (as bindAccount would) and return it.

        ``status_code=1`` leaves it under review: addOrder refuses its biz_id (9300525) until
        ``account.status_code = 0``. Carriers with quotas get ``default_quota`` unless set.
        """
        if delivery_id not in self.carriers:
            raise ValueError(f"unknown carrier {delivery_id!r}; known: {sorted(self.carriers)}")
        now = int(self._wall_clock())
        account = Account(
            delivery_id=delivery_id,
            biz_id=biz_id,
            status_code=status_code,
            create_time=now,
            update_time=now,
            remark_content=remark_content,
            password=password,
        )
        self._accounts[(delivery_id, biz_id)] = account
        if _delivery.carrier(delivery_id).can_get_quota:
            self._quotas.setdefault((delivery_id, biz_id), self.default_quota)
        return account

    def account(self, delivery_id: str, biz_id: str) -> Account | None:
        """The bound (or under review) account, None if not bound."""
        return self._accounts.get((delivery_id, biz_id))

    @property
    def accounts(self) -> list[Account]:
        """Every bound or under-review account, in binding order."""
        return list(self._accounts.values())

    def set_carrier_password(self, delivery_id: str, biz_id: str, password: str) -> None:
        """Make the carrier know ``biz_id`` with ``password``.

        bindAccount with another password then answers 9300531 (without this, any password is
        accepted).
        """
        self._carrier_passwords[(delivery_id, biz_id)] = password

    @property
    def printers(self) -> list[Printer]:
        """Every printer configured with updatePrinter, in order."""
        return list(self._printers.values())

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
        route = ROUTES.get(path)
        if route is not None:
            return self._api(route, method, params, body)
        return FakeResponse(404, b"<html><body>404 not found</body></html>", "text/html")

    def _api(
        self, route: Route, method: str, params: Mapping[str, str], body: bytes
    ) -> FakeResponse:
        errcode = self._check_token(params.get("access_token"))
        if errcode:
            return _json({"errcode": errcode, "errmsg": errmsg(errcode)})
        if method != route.method:
            errcode = 43002 if route.method == "POST" else 43001
            return _json({"errcode": errcode, "errmsg": errmsg(errcode)})
        request: dict[str, Any] | None = None
        if route.method == "POST":
            if _ESCAPE.search(body):
                return _json({"errcode": 40033, "errmsg": errmsg(40033)})
            try:
                value = json.loads(body)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                return _json({"errcode": 47001, "errmsg": errmsg(47001)})
            request = value
        try:
            return route.handler(self, request)
        except Refusal as refusal:
            return refusal.answer()

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
            return _json({"errcode": fault.errcode, "errmsg": errmsg(fault.errcode)})
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
            return _json({"errcode": 43002, "errmsg": errmsg(43002)})
        try:
            request = json.loads(body)
        except ValueError:
            return _json({"errcode": 47001, "errmsg": errmsg(47001)})
        if not isinstance(request, dict) or request.get("grant_type") != "client_credential":
            return _json({"errcode": 40002, "errmsg": "invalid grant_type"})
        errcode = self._credentials_error(request.get("appid"), request.get("secret"), 40125)
        if errcode:
            return _json({"errcode": errcode, "errmsg": errmsg(errcode)})
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
            return _json({"errcode": errcode, "errmsg": errmsg(errcode)})
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
            "orders_added": self.orders_added,
            "cancel_requests": sum(w.cancel_requests for w in self._waybills.values()),
            "cancelled_twice": sorted(
                w.order_id for w in self._waybills.values() if w.cancellations > 1
            ),
        }
