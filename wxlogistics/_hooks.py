"""Observability hooks: plain callbacks the client calls with one small frozen event each.

``AsyncLogistics(hooks=Hooks(on_call=..., on_retry=..., on_token=..., on_lease_wait=...))``.
Each callback is a plain synchronous callable taking one event; it runs in the task making
the call, at the moment the event happens, so it must be fast (count, log, put on a queue).
A hook that raises never breaks a call: the first failure of each hook is logged at WARNING,
later ones at DEBUG.

Events hold names, numbers and error class names only: never a token, a secret, a URL with
its query string, a request body or an answer's payload.

With no hooks (the default), the request loop checks one attribute per call and builds no
event.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

import attrs

from ._exceptions import APIError, ValidationError

__all__ = [
    "CallEvent",
    "Hooks",
    "LeaseWaitEvent",
    "RetryEvent",
    "TokenEvent",
]

_logger = logging.getLogger("wxlogistics")


@attrs.frozen(kw_only=True)
class CallEvent:
    """One API call has finished (successfully or not): ``Hooks.on_call``.

    Sent once per business call (``cancel_order``, ``get_path``...), after its last attempt,
    retries and token replay included. Not sent for token-endpoint requests (see
    :class:`TokenEvent`), nor for a call cancelled by its caller (its own deadline), nor for
    one refused before any attempt (invalid arguments, or the client closed already).
    """

    endpoint: str
    """WeChat's name of the API (``"cancelOrder"``, ``"getPath"``...)."""
    path: str
    """The API's path, without host or query (``"/cgi-bin/express/business/order/cancel"``)."""
    errcode: int | None
    """The errcode of the last answer: 0 for a success, 9300524 for a cancel confirmed by a
    retry, the API error's code on failure; None when no JSON answer came (timeouts,
    connection failures, HTTP errors)."""
    error_type: str | None
    """The class name of the exception the call raised (``"SystemBusyError"``,
    ``"RequestTimeoutError"``...), or None for a success."""
    attempts: int
    """Requests made for this call: 1, plus one per retry, plus one for a token replay."""
    latency_s: float
    """Seconds from the start of the call to its end, waits for a token, a free connection
    and between retries included."""
    may_have_been_sent: bool
    """True when WeChat may have carried the call out (always for a success); as
    the error's ``may_have_been_sent`` for a failure."""

    @property
    def ok(self) -> bool:
        """True when the call succeeded (``error_type is None``)."""
        return self.error_type is None


@attrs.frozen(kw_only=True)
class RetryEvent:
    """An attempt failed and another is scheduled: ``Hooks.on_retry``.

    Sent before the pause. Also sent for the replay after a token error (40001, 40014,
    42001), with ``delay_s`` 0, and for retries of the token endpoints themselves
    (``endpoint`` ``"stable_token"`` or ``"token"``). Not sent for the transparent resend of a
    request whose connection failed before any answer byte (that is not a retry).
    """

    endpoint: str
    """WeChat's name of the API (``"cancelOrder"``), or ``"stable_token"`` / ``"token"``."""
    path: str
    """The API's path, without host or query."""
    attempt: int
    """The number of the attempt scheduled: 2 for the first retry."""
    delay_s: float
    """Seconds the loop waits before that attempt."""
    error_type: str
    """The class name of the failed attempt's error (``"SystemBusyError"``)."""
    errcode: int | None
    """The failed attempt's errcode, or None when no JSON answer came."""
    reason: str
    """``error_type`` and ``errcode`` in one string: ``"SystemBusyError errcode=-1"``,
    ``"RequestTimeoutError"``, ``"ResponseError HTTP 503"``."""


TokenEventKind = Literal["fetched", "refreshed", "failed"]


@attrs.frozen(kw_only=True)
class TokenEvent:
    """The token cache got a token, or failed to: ``Hooks.on_token``.

    Sent once per fetch (one per process however many calls waited for it). Never holds the
    token. A fetch abandoned because the caller running it was cancelled sends nothing (a
    waiter starts it again, which does).
    """

    source: str
    """Where the token comes from: ``"stable"``, ``"classic"``, ``"callable"``, ``"static"``,
    or the class name of your own :class:`TokenSource`."""
    kind: TokenEventKind
    """``"fetched"``: the cache's first token; ``"refreshed"``: a later one (ahead of expiry,
    after a token error such as 42001, or ``force_refresh()``); ``"failed"``: the fetch
    raised (``error_type`` says what)."""
    latency_s: float
    """Seconds the fetch took (a shared store's lease wait included)."""
    expires_in_s: float | None
    """Seconds the new token stays valid (its remaining lifetime: less than WeChat's 7200
    when taken from a shared store); None when ``kind`` is ``"failed"``."""
    error_type: str | None
    """The class name of the fetch's error (``"CredentialsError"``...); None on success."""
    from_store: bool = False
    """True when the token was taken from the shared :class:`TokenStore` (another process
    fetched it), so WeChat was not asked."""


LeaseWaitOutcome = Literal["adopted", "acquired", "timed_out"]


@attrs.frozen(kw_only=True)
class LeaseWaitEvent:
    """This process waited for another one's token-refresh lease: ``Hooks.on_lease_wait``.

    Only with a shared :class:`TokenStore`, and only when the lease was held by someone else
    and no usable token was stored, so the cache had to wait.
    """

    source: str
    """Where the token comes from (as :attr:`TokenEvent.source`)."""
    key: str
    """The token's key in the store (``"{appid}:{source}"``; no secret in it)."""
    waited_s: float
    """Seconds spent waiting."""
    outcome: LeaseWaitOutcome
    """``"adopted"``: the holder's token appeared and was taken; ``"acquired"``: the lease
    came free and this process fetched; ``"timed_out"``: neither within the store's
    ``lease_wait`` (the call raised :class:`TokenLeaseTimeoutError`)."""


def _check_hook(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not callable(value):
        raise ValidationError(
            f"Hooks.{attribute.name} must be a callable taking one event, not"
            f" {type(value).__name__}"
        )
    if inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(
        getattr(value, "__call__", None)  # noqa: B004 (an object with an async __call__)
    ):
        raise ValidationError(
            f"Hooks.{attribute.name} must be a plain (synchronous) callable: hooks run inside"
            " the call and are not awaited; to consume events asynchronously, put them on a"
            " queue (anyio.create_memory_object_stream(...)[0].send_nowait) in a sync hook"
        )


@attrs.frozen(kw_only=True)
class Hooks:
    """Callbacks for what the client does, each taking one event; all optional.

    ::

        def on_call(event: CallEvent) -> None:
            latency.record(event.latency_s, {"endpoint": event.endpoint})

        client = AsyncLogistics(appid, secret, hooks=Hooks(on_call=on_call))

    Hooks are synchronous and run in the task making the call, so they must be fast and must
    not block; they cannot be coroutines (push to a queue for async work). An exception
    raised by a hook is caught: it never breaks the call, and is logged at WARNING on the
    first failure of each hook (DEBUG afterwards). One :class:`Hooks` may be shared by
    several clients. See docs/observability.md.
    """

    on_call: Callable[[CallEvent], object] | None = attrs.field(default=None, validator=_check_hook)
    """Called with a :class:`CallEvent` when an API call has finished."""
    on_retry: Callable[[RetryEvent], object] | None = attrs.field(
        default=None, validator=_check_hook
    )
    """Called with a :class:`RetryEvent` when a failed attempt is to be retried."""
    on_token: Callable[[TokenEvent], object] | None = attrs.field(
        default=None, validator=_check_hook
    )
    """Called with a :class:`TokenEvent` when a token was fetched, refreshed, or not."""
    on_lease_wait: Callable[[LeaseWaitEvent], object] | None = attrs.field(
        default=None, validator=_check_hook
    )
    """Called with a :class:`LeaseWaitEvent` after waiting for another process's lease."""
    _warned: set[str] = attrs.field(factory=set, init=False, repr=False, eq=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False, eq=False)

    @property
    def empty(self) -> bool:
        """True when no callback is set (the client then treats it as no hooks at all)."""
        return (
            self.on_call is None
            and self.on_retry is None
            and self.on_token is None
            and self.on_lease_wait is None
        )

    def _failed(self, name: str, exc: Exception) -> None:
        """Log a hook's failure: WARNING the first time for this hook, DEBUG afterwards."""
        with self._lock:
            first = name not in self._warned
            self._warned.add(name)
        # The hook's own error (events hold no secret); its type and message, no frame locals.
        if first:
            _logger.warning(
                "hook %s raised %s: %s; the call went on (later failures of this hook are"
                " logged at DEBUG)",
                name,
                type(exc).__name__,
                exc,
            )
        elif _logger.isEnabledFor(logging.DEBUG):
            _logger.debug("hook %s raised %s: %s", name, type(exc).__name__, exc)


def _emit(hooks: Hooks, name: str, callback: Callable[[Any], object], event: object) -> None:
    try:
        callback(event)
    except Exception as exc:
        hooks._failed(name, exc)


# -- builders, called only when a hook is set (tests patch the event classes here) ---------------


def endpoint_name(path: str) -> str:
    """The name of an endpoint known only by its path (token endpoints): its last segment."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def _errcode_of(error: BaseException) -> int | None:
    return error.errcode if isinstance(error, APIError) else None


def emit_call(
    hooks: Hooks,
    *,
    endpoint: str,
    path: str,
    outcome: object,
    attempts: int,
    latency_s: float,
) -> None:
    """Send a :class:`CallEvent` for a call that returned ``outcome`` (payload or error)."""
    callback = hooks.on_call
    if callback is None:
        return
    if isinstance(outcome, BaseException):
        event = CallEvent(
            endpoint=endpoint,
            path=path,
            errcode=_errcode_of(outcome),
            error_type=type(outcome).__name__,
            attempts=attempts,
            latency_s=latency_s,
            may_have_been_sent=bool(getattr(outcome, "may_have_been_sent", False)),
        )
    else:
        errcode = outcome.get("errcode", 0) if isinstance(outcome, dict) else 0
        event = CallEvent(
            endpoint=endpoint,
            path=path,
            errcode=errcode if type(errcode) is int else 0,
            error_type=None,
            attempts=attempts,
            latency_s=latency_s,
            may_have_been_sent=True,
        )
    _emit(hooks, "on_call", callback, event)


def emit_retry(
    hooks: Hooks,
    *,
    endpoint: str,
    path: str,
    attempt: int,
    delay_s: float,
    error: BaseException,
) -> None:
    """Send a :class:`RetryEvent` for ``error``, to be followed by attempt ``attempt``."""
    callback = hooks.on_retry
    if callback is None:
        return
    error_type = type(error).__name__
    errcode = _errcode_of(error)
    if errcode is not None:
        reason = f"{error_type} errcode={errcode}"
    else:
        status = getattr(error, "status_code", None)
        reason = f"{error_type} HTTP {status}" if isinstance(status, int) else error_type
    event = RetryEvent(
        endpoint=endpoint,
        path=path,
        attempt=attempt,
        delay_s=delay_s,
        error_type=error_type,
        errcode=errcode,
        reason=reason,
    )
    _emit(hooks, "on_retry", callback, event)


def emit_token(
    hooks: Hooks,
    *,
    source: str,
    kind: TokenEventKind,
    latency_s: float,
    expires_in_s: float | None,
    error: BaseException | None = None,
    from_store: bool = False,
) -> None:
    """Send a :class:`TokenEvent`."""
    callback = hooks.on_token
    if callback is None:
        return
    event = TokenEvent(
        source=source,
        kind=kind,
        latency_s=latency_s,
        expires_in_s=expires_in_s,
        error_type=None if error is None else type(error).__name__,
        from_store=from_store,
    )
    _emit(hooks, "on_token", callback, event)


def emit_lease_wait(
    hooks: Hooks, *, source: str, key: str, waited_s: float, outcome: LeaseWaitOutcome
) -> None:
    """Send a :class:`LeaseWaitEvent`."""
    callback = hooks.on_lease_wait
    if callback is None:
        return
    event = LeaseWaitEvent(source=source, key=key, waited_s=waited_s, outcome=outcome)
    _emit(hooks, "on_lease_wait", callback, event)


def source_name(source: object) -> str:
    """A token source's short name: its ``store_name`` (``"stable"``), else its class name."""
    name = getattr(source, "store_name", None)
    return name if isinstance(name, str) and name else type(source).__name__
