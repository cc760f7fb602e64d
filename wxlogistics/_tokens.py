"""Access tokens: where they come from (sources) and how they are kept (the cache).

A :class:`TokenSource` knows how to ask for a token; :class:`TokenCache` keeps one in memory,
refreshes it ahead of expiry, lets exactly one task fetch at a time (single flight) and drops a
token only if it is still the one that failed (compare-and-clear). A caller that gives up (its
own deadline) is never held by a fetch: the fetch is abandoned and a waiter starts it again.
While the cached token is still valid, a failed refresh is logged and retried at most every
:data:`REFRESH_RETRY_INTERVAL` seconds, and calls go on with the old token.

Sources do no HTTP of their own: they call the :class:`TokenEndpoint` they are handed, which is
the client's request loop (retries, timeouts, error mapping and secret scrubbing included).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import anyio
import attrs

from ._exceptions import RequestTimeoutError, ResponseError, WxLogisticsError

__all__ = [
    "AccessToken",
    "ClassicTokenSource",
    "IssuedToken",
    "StableTokenSource",
    "TokenCache",
    "TokenEndpoint",
    "TokenSource",
]

_logger = logging.getLogger("wxlogistics")

DEFAULT_REFRESH_MARGIN = 300.0
"""Seconds before expiry at which a token is refreshed (WeChat overlaps old and new for 5 min)."""
DEFAULT_FETCH_TIMEOUT = 60.0
"""Upper bound, in seconds, on one token fetch including its retries."""
REFRESH_RETRY_INTERVAL = 5.0
"""Seconds between attempts to refresh a token that is due for refresh but still valid."""


class TokenEndpoint(Protocol):
    """What a :class:`TokenSource` calls to reach a token endpoint (the client's request loop)."""

    async def call_token_endpoint(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send one request to a token endpoint and return the decoded JSON object.

        Raises :class:`CredentialsError` (or another :class:`WxLogisticsError`) on failure.
        """
        ...


@attrs.frozen(kw_only=True)
class IssuedToken:
    """A token as a source hands it over: its value and its lifetime in seconds."""

    value: str = attrs.field(repr=False)
    """The access token itself. Never shown in a repr."""
    expires_in: float
    """Seconds the token stays valid, counted from when it was issued."""


@runtime_checkable
class TokenSource(Protocol):
    """Where access tokens come from. Implement ``fetch`` to plug in another origin."""

    async def fetch(self, endpoint: TokenEndpoint) -> IssuedToken:
        """Obtain a token; the cache calls it once at a time (single flight).

        It may be cancelled halfway (when the caller running it gives up); the cache then
        calls it again for the callers still waiting, so it must be safe to repeat.
        """
        ...


def _issued_from_payload(payload: dict[str, Any], path: str) -> IssuedToken | ResponseError:
    """The token in ``payload``, or the error to raise (returned: this frame holds the token)."""
    value = payload.get("access_token")
    expires_in = payload.get("expires_in")
    if (
        not isinstance(value, str)
        or not value
        or isinstance(expires_in, bool)
        or not isinstance(expires_in, (int, float))
        or not math.isfinite(expires_in)
        or expires_in <= 0
    ):
        keys = ", ".join(sorted(payload))
        return ResponseError(
            f"token endpoint answered without a usable access_token/expires_in (keys: {keys})",
            status_code=200,
            path=path,
        )
    return IssuedToken(value=value, expires_in=float(expires_in))


@attrs.define(kw_only=True)
class StableTokenSource:
    """``POST /cgi-bin/stable_token``: the default.

    Repeated calls return the same token while it is valid, so several processes using the same
    app do not invalidate each other's tokens (the classic endpoint does), and a fetch that was
    abandoned halfway can simply be asked again.
    ``force_refresh=True`` rotates the token on every fetch: WeChat allows that 20 times a day,
    so leave it off unless a token has leaked.
    """

    appid: str
    """The mini program's AppID."""
    secret: str = attrs.field(repr=False)
    """The AppSecret. Never shown in a repr."""
    force_refresh: bool = False
    """Ask WeChat to rotate the token on each fetch (limited to 20 a day)."""

    PATH = "/cgi-bin/stable_token"

    async def fetch(self, endpoint: TokenEndpoint) -> IssuedToken:
        """Fetch a token from ``/cgi-bin/stable_token``."""
        payload = await endpoint.call_token_endpoint(
            "POST",
            self.PATH,
            json={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.secret,
                "force_refresh": self.force_refresh,
            },
        )
        issued = _issued_from_payload(payload, self.PATH)
        del payload  # it holds the token; the frame that raises must not
        if isinstance(issued, ResponseError):
            raise issued
        return issued


@attrs.define(kw_only=True)
class ClassicTokenSource:
    """``GET /cgi-bin/token``: the classic endpoint.

    Every fetch invalidates the previous token (after a 5-minute overlap), so only one process
    per app should use it. A fetch abandoned halfway (its caller gave up) may already have
    rotated the token at WeChat; the cache then fetches again, which costs one more request of
    the daily quota. Prefer :class:`StableTokenSource`.
    """

    appid: str
    """The mini program's AppID."""
    secret: str = attrs.field(repr=False)
    """The AppSecret. Never shown in a repr."""

    PATH = "/cgi-bin/token"

    async def fetch(self, endpoint: TokenEndpoint) -> IssuedToken:
        """Fetch a token from ``/cgi-bin/token``."""
        payload = await endpoint.call_token_endpoint(
            "GET",
            self.PATH,
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )
        issued = _issued_from_payload(payload, self.PATH)
        del payload  # it holds the token; the frame that raises must not
        if isinstance(issued, ResponseError):
            raise issued
        return issued


@attrs.frozen(kw_only=True, eq=False)
class AccessToken:
    """A cached token with its deadlines on the cache's clock. Compared by identity."""

    value: str = attrs.field(repr=False)
    """The access token. Never shown in a repr."""
    refresh_at: float
    """Clock reading after which the cache fetches a replacement."""
    expires_at: float
    """Clock reading after which the token is no longer used at all."""


class _Flight:
    """One token fetch and how it ended: a token, an error, or neither (it was abandoned)."""

    __slots__ = ("done", "error", "error_tb", "token")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.token: AccessToken | None = None
        self.error: Exception | None = None
        self.error_tb: TracebackType | None = None


class TokenCache:
    """An in-memory, single-flight, auto-refreshing access-token cache.

    - ``fresh()`` and ``get`` return the cached token without waiting on anything while it
      is fresh.
    - Without a usable token, exactly one caller fetches (single flight); the others wait on an
      :class:`anyio.Event` that wakes them all at once. If the fetch fails, the callers that
      waited for it get its error (one request for a wrong secret, not one per caller); the
      next call after that asks again.
    - No caller is held by a fetch: the fetch runs in the task of the caller that started it,
      bounded by ``fetch_timeout`` (then :class:`RequestTimeoutError`) but not shielded. If that
      caller is cancelled (its own deadline, say), the fetch is abandoned and one of the
      waiters starts it again; waiters never see the other caller's cancellation.
    - Past ``refresh_at`` but before ``expires_at``, one caller tries to refresh while the
      others keep using the old token without waiting. If the refresh fails, that caller logs
      a WARNING and also keeps the old token; the next attempt is made at the earliest
      :data:`REFRESH_RETRY_INTERVAL` seconds later. Only once the token has expired do calls
      fail with the fetch's error.
    - ``invalidate(token)`` drops the token only if it is still the cached one, so any number
      of concurrent failures of one stale token cause one refetch.

    ``clock`` is injectable (monotonic seconds) so expiry can be tested without sleeping.
    """

    def __init__(
        self,
        source: TokenSource,
        *,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._refresh_margin = refresh_margin
        self._fetch_timeout = fetch_timeout
        self._clock = clock
        self._token: AccessToken | None = None
        self._flight: _Flight | None = None  # the fetch under way, if any
        self._refresh_tried_at: float | None = None  # the last early refresh's start
        self.fetch_count = 0
        """How many tokens this cache has fetched (for tests and metrics)."""

    def __repr__(self) -> str:
        state = "empty" if self._token is None else "holding a token"
        return f"<TokenCache source={self.source!r} {state} fetches={self.fetch_count}>"

    @property
    def current(self) -> AccessToken | None:
        """The cached token, if any and not expired; never fetches."""
        token = self._token
        if token is not None and self._clock() < token.expires_at:
            return token
        return None

    def fresh(self) -> AccessToken | None:
        """The cached token if it needs no refresh yet (no await: the hot path)."""
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token
        return None

    async def get(self, endpoint: TokenEndpoint) -> AccessToken:
        """Return a usable token, fetching one (once, for all waiters) if needed.

        Raises what the fetch raised (:class:`CredentialsError`, :class:`RequestTimeoutError`
        after ``fetch_timeout``...) only when no unexpired token is cached.
        """
        token = self._token
        if token is not None:
            now = self._clock()
            if now < token.refresh_at:
                return token
            if now < token.expires_at:
                return await self._refresh_early(endpoint, token, now)
        return await self._fetch_or_wait(endpoint)

    def invalidate(self, token: AccessToken) -> None:
        """Drop ``token`` if it is still the cached one (compare-and-clear)."""
        if self._token is token:
            self._token = None

    def clear(self) -> None:
        """Drop whatever token is cached."""
        self._token = None

    async def _refresh_early(
        self, endpoint: TokenEndpoint, token: AccessToken, now: float
    ) -> AccessToken:
        """``token`` is due for refresh but still valid: refresh it without failing for it."""
        tried = self._refresh_tried_at
        if self._flight is not None or (tried is not None and now - tried < REFRESH_RETRY_INTERVAL):
            return token  # a refresh is under way, or failed a moment ago: keep the old token
        self._refresh_tried_at = now
        flight = _Flight()
        self._flight = flight
        outcome = await self._fly(flight, endpoint)
        if isinstance(outcome, AccessToken):
            return outcome
        if self._token is token and self._clock() < token.expires_at:
            self._warn(outcome, token)
            return token
        # The old token was dropped meanwhile (or ran out): nothing to fall back on.
        raise outcome.with_traceback(flight.error_tb)

    async def _fetch_or_wait(self, endpoint: TokenEndpoint) -> AccessToken:
        """No usable token: fetch one, or wait for the fetch under way."""
        while True:
            flight = self._flight
            if flight is None:
                flight = _Flight()
                self._flight = flight
                outcome = await self._fly(flight, endpoint)
                if isinstance(outcome, AccessToken):
                    return outcome
            else:
                await flight.done.wait()
            if flight.error is not None:
                raise flight.error.with_traceback(flight.error_tb)
            token = self.current
            if token is not None:
                return token
            # The caller fetching was cancelled (the fetch was abandoned), or the new token was
            # dropped again already: start (or wait for) the next fetch.

    async def _fly(self, flight: _Flight, endpoint: TokenEndpoint) -> AccessToken | Exception:
        """Run ``flight``'s fetch in this task; record and return its token or its error.

        Cancellation propagates (it is the caller's) and leaves the flight with neither token
        nor error, which tells its waiters to take over. Errors are returned, to be raised
        outside any ``except`` (so nothing is chained to them) from frames without secrets.
        """
        try:
            # Not fail_after: its TimeoutError would chain the cancelled frames (which held
            # the secret) to the error raised, as its __context__.
            with anyio.move_on_after(self._fetch_timeout) as bound:
                issued = await self.source.fetch(endpoint)
            if bound.cancelled_caught:
                flight.error = RequestTimeoutError(
                    f"fetching an access token took longer than {self._fetch_timeout:g}s"
                )
                return flight.error
            flight.token = self._publish(issued)
            return flight.token
        except Exception as exc:
            flight.error = exc
            flight.error_tb = exc.__traceback__
            return exc
        finally:
            if self._flight is flight:
                self._flight = None
            flight.done.set()  # wakes every waiter at once; the token is already published

    def _publish(self, issued: IssuedToken) -> AccessToken:
        now = self._clock()
        lifetime = issued.expires_in
        # Never refresh later than the margin before expiry, nor sooner than half-life
        # (a token issued with a short lifetime must not cause a fetch per call).
        refresh_after = max(lifetime - self._refresh_margin, lifetime / 2)
        token = AccessToken(
            value=issued.value, refresh_at=now + refresh_after, expires_at=now + lifetime
        )
        self._token = token
        self.fetch_count += 1
        if _logger.isEnabledFor(logging.DEBUG):
            _logger.debug("fetched an access token, valid for %.0fs", lifetime)
        return token

    def _warn(self, error: Exception, token: AccessToken) -> None:
        # The library's errors are scrubbed of secrets; another source's may not be.
        what = (
            f"{type(error).__name__}: {error}"
            if isinstance(error, WxLogisticsError)
            else type(error).__name__
        )
        _logger.warning(
            "could not refresh the access token (%s); using the cached one, which expires in"
            " %.0fs; next attempt in %gs at the earliest",
            what,
            token.expires_at - self._clock(),
            REFRESH_RETRY_INTERVAL,
        )
