"""Access tokens: where they come from (sources) and how they are kept (the cache).

A :class:`TokenSource` knows how to ask for a token; :class:`TokenCache` keeps one in memory,
refreshes it ahead of expiry, lets exactly one task fetch at a time (single flight) and drops a
token only if it is still the one that failed (compare-and-clear). A caller that gives up (its
own deadline) is never held by a fetch: the fetch is abandoned and a waiter starts it again.
While the cached token is still valid, a failed refresh is logged and retried at most every
:data:`REFRESH_RETRY_INTERVAL` seconds, and calls go on with the old token.

Sources do no HTTP of their own: they call the :class:`TokenEndpoint` they are handed, which is
the client's request loop (retries, timeouts, error mapping and secret scrubbing included).

With a :class:`TokenStore` (Redis, say) the cache still answers from memory while its token is
fresh; only a fetch goes through the store: adopt the stored token if it is usable, else take
the store's lease so that one process fleet-wide asks WeChat, and publish the answer there. If
the store fails, the cache logs a WARNING and fetches by itself, as without a store.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import anyio
import attrs

from ._exceptions import (
    CloudRunOpenAPIError,
    RequestTimeoutError,
    ResponseError,
    ValidationError,
    WxLogisticsError,
)
from ._hooks import Hooks, LeaseWaitOutcome, emit_lease_wait, emit_token, source_name
from ._stores import (
    DEFAULT_LEASE_TTL,
    DEFAULT_LEASE_WAIT,
    ForceRefreshLimitError,
    MemoryTokenStore,
    StoredToken,
    TokenLeaseTimeoutError,
    TokenStore,
    TokenStoreError,
)

__all__ = [
    "AccessToken",
    "CallableTokenSource",
    "ClassicTokenSource",
    "CloudRunOpenAPIError",
    "CloudRunTokenSource",
    "IssuedToken",
    "StableTokenSource",
    "StaticTokenSource",
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
DEFAULT_CALLABLE_TTL = 60.0
"""Seconds a bare string from a :class:`CallableTokenSource` is reused before asking again."""
STORE_WARNING_INTERVAL = 30.0
"""Seconds between two WARNINGs about an unreachable token store."""


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
    """A token as a source hands it over: its value and its lifetime in seconds.

    Checked on construction (a source of your own gets a :class:`ValidationError` for a value
    that is not a non-empty str, or a lifetime that is not a number above 0, NaN refused); the
    message never shows the value.
    """

    value: str = attrs.field(repr=False, validator=lambda _i, _a, v: _check_token_value(v))
    """The access token itself. Never shown in a repr."""
    expires_in: float = attrs.field(validator=lambda _i, _a, v: _check_lifetime(v))
    """Seconds the token stays valid, counted from when it was issued."""


def _check_token_value(value: object) -> None:
    if not isinstance(value, str) or not value or value != value.strip() or "\n" in value:
        raise ValidationError(
            f"a token must be a non-empty str without white space at either end "
            f"(got {type(value).__name__})"
        )


def _check_lifetime(value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or math.isnan(value)
        or value <= 0
    ):
        raise ValidationError(f"a token's expires_in must be a number above 0: {value!r}")


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


def _no_per_fetch_force(instance: object, attribute: object, value: bool) -> None:
    if value:
        raise ValidationError(
            "StableTokenSource(force_refresh=True) is not supported: it would rotate the token on"
            " every fetch (WeChat allows 20 a day); call 'await client.tokens.force_refresh()'"
            " once instead"
        )


@attrs.define(kw_only=True)
class StableTokenSource:
    """``POST /cgi-bin/stable_token``: the default.

    Repeated calls return the same token while it is valid, so several processes using the same
    app do not invalidate each other's tokens (the classic endpoint does), and a fetch that was
    abandoned halfway can simply be asked again.
    A forced rotation (``force_refresh=true``, for a leaked token) is only made by an explicit
    ``await client.tokens.force_refresh()``, behind a limiter (20 a day, 30 s apart).
    """

    appid: str
    """The mini program's AppID."""
    secret: str = attrs.field(repr=False)
    """The AppSecret. Never shown in a repr."""
    force_refresh: bool = attrs.field(default=False, validator=_no_per_fetch_force)
    """Must stay False; see :meth:`TokenCache.force_refresh`."""

    PATH = "/cgi-bin/stable_token"
    store_name: ClassVar[str] = "stable"
    """The last part of this source's key in a :class:`TokenStore`."""

    async def fetch(self, endpoint: TokenEndpoint) -> IssuedToken:
        """Fetch a token from ``/cgi-bin/stable_token``."""
        return await self._fetch(endpoint, force=False)

    async def fetch_forced(self, endpoint: TokenEndpoint) -> IssuedToken:
        """Fetch a new token with ``force_refresh=true`` (no limiter here: see the cache)."""
        return await self._fetch(endpoint, force=True)

    async def _fetch(self, endpoint: TokenEndpoint, *, force: bool) -> IssuedToken:
        payload = await endpoint.call_token_endpoint(
            "POST",
            self.PATH,
            json={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.secret,
                "force_refresh": force,
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
    per app should fetch it: share it through a :class:`TokenStore` (its lease makes one
    process fleet-wide fetch). A fetch abandoned halfway (its caller gave up) may already have
    rotated the token at WeChat; the cache then fetches again, which costs one more request of
    the daily quota. Prefer :class:`StableTokenSource`.
    """

    appid: str
    """The mini program's AppID."""
    secret: str = attrs.field(repr=False)
    """The AppSecret. Never shown in a repr."""

    PATH = "/cgi-bin/token"
    store_name: ClassVar[str] = "classic"
    """The last part of this source's key in a :class:`TokenStore`."""

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


TokenFunction = Callable[[], Awaitable["str | IssuedToken"]]
"""An async callable with no arguments returning a token (a bare string or an IssuedToken)."""


@attrs.define(kw_only=True)
class CallableTokenSource:
    """Tokens from your own async callable (a central token service, say); never from WeChat.

    ``func()`` returns the token: a bare string (reused for ``ttl`` seconds) or an
    :class:`IssuedToken` (reused per its ``expires_in``, refreshed ahead as usual). When WeChat
    refuses the token (40001/40014/42001), the client asks ``func`` once more and replays the
    call once. The SDK makes no token request of its own.
    """

    func: TokenFunction
    """The async callable returning the token."""
    ttl: float = DEFAULT_CALLABLE_TTL
    """Seconds a bare string is reused before ``func`` is asked again."""
    appid: str | None = None
    """The AppID (optional; shown on the client, used for a store's key)."""
    store_name: ClassVar[str] = "callable"

    async def fetch(self, endpoint: TokenEndpoint) -> IssuedToken:
        """Ask ``func`` for a token."""
        result = await self.func()
        if isinstance(result, IssuedToken):
            return result
        if not isinstance(result, str) or not result:
            raise ValidationError(
                f"the token callable returned {type(result).__name__}, not a non-empty str"
                " or an IssuedToken"
            )
        return IssuedToken(value=result, expires_in=self.ttl)


_STATIC_LIFETIME = 10 * 365 * 86_400.0


@attrs.define(kw_only=True)
class StaticTokenSource:
    """One fixed token (scripts, tests).

    Never refreshed: a token WeChat refuses raises :class:`AccessTokenError` after the one
    replay.
    """

    token: str = attrs.field(repr=False)
    """The access token. Never shown in a repr."""
    appid: str | None = None
    """The AppID (optional; shown on the client)."""
    store_name: ClassVar[str] = "static"

    async def fetch(self, endpoint: TokenEndpoint) -> IssuedToken:
        """Return the fixed token."""
        return IssuedToken(value=self.token, expires_in=_STATIC_LIFETIME)


CLOUDRUN_BASE_URL = "http://api.weixin.qq.com"
"""Where Cloud Run's open-API service (开放接口服务) takes requests: plain HTTP, no token."""


@attrs.define(kw_only=True)
class CloudRunTokenSource:
    """Cloud Run (微信云托管) open-API mode: no token at all.

    Requests go to ``http://api.weixin.qq.com`` without ``access_token`` and the platform
    injects the credentials. Chosen with ``AsyncLogistics(token_source="cloudrun")``; the
    client then never asks for a token, and 41001 ("access_token missing") raises an
    :class:`APIError` whose message says the open-API service is off.
    """

    appid: str | None = None
    """The AppID (optional; shown on the client)."""

    async def fetch(self, endpoint: TokenEndpoint) -> IssuedToken:
        """Refuse: in Cloud Run open-API mode the platform holds the token."""
        raise ValidationError(
            "no access token in Cloud Run open-API mode: the platform adds the credentials"
        )


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
    """An in-memory, single-flight, auto-refreshing access-token cache, optionally over a store.

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
    - With a ``store`` (shared by processes), a fetch first adopts the stored token if it is
      fresh; else it takes the store's lease (one process fleet-wide asks WeChat) or waits,
      at most ``lease_wait`` seconds, for the holder's token (then
      :class:`TokenLeaseTimeoutError`). A token refused by WeChat is deleted from the store by
      value (only that token). A store that fails (:class:`TokenStoreError`) is logged and the
      cache fetches by itself.

    ``clock`` is injectable (monotonic seconds) so expiry can be tested without sleeping;
    ``wall_clock`` (epoch seconds) dates what goes into the store.
    """

    def __init__(
        self,
        source: TokenSource,
        *,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        store: TokenStore | None = None,
        store_key: str | None = None,
        lease_ttl: float | None = None,
        lease_wait: float | None = None,
        wall_clock: Callable[[], float] = time.time,
        hooks: Hooks | None = None,
    ) -> None:
        if store is not None and not store_key:
            raise ValidationError("a token store needs a key (store_key)")
        # The store's settings, unless given here.
        if lease_ttl is None:
            lease_ttl = float(getattr(store, "lease_ttl", DEFAULT_LEASE_TTL))
        if lease_wait is None:
            lease_wait = float(getattr(store, "lease_wait", DEFAULT_LEASE_WAIT))
        self.source = source
        self._refresh_margin = refresh_margin
        self._fetch_timeout = fetch_timeout
        self._clock = clock
        self._wall = wall_clock
        self._token: AccessToken | None = None
        self._flight: _Flight | None = None  # the fetch under way, if any
        self._refresh_tried_at: float | None = None  # the last early refresh's start
        self.store = store
        """The shared :class:`TokenStore`, or None (this cache alone)."""
        self.store_key = store_key
        """The token's key in the store (no secret in it)."""
        self._lease_ttl = lease_ttl
        self._lease_wait = lease_wait
        # A refused token, to delete from the store. Kept as the AccessToken (whose repr hides
        # the value), never as a bare string: frames holding it may end up in a traceback.
        self._failed: AccessToken | None = None
        self._store_warned_at: float | None = None
        self._limiter = MemoryTokenStore(clock=wall_clock)  # force_refresh without a store
        self._endpoint: TokenEndpoint | None = None
        self._hooks = None if hooks is None or hooks.empty else hooks
        self._had_token = False  # a token was published before: the next is a refresh
        self.fetch_count = 0
        """How many tokens this cache has fetched from its source (for tests and metrics)."""
        self.store_hits = 0
        """How many tokens this cache took from the store instead of fetching."""

    def __repr__(self) -> str:
        state = "empty" if self._token is None else "holding a token"
        return f"<TokenCache source={self.source!r} {state} fetches={self.fetch_count}>"

    def attach(self, endpoint: TokenEndpoint) -> None:
        """Set the endpoint :meth:`force_refresh` uses (the client's request loop)."""
        self._endpoint = endpoint

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
        """Drop ``token`` if it is still the cached one (compare-and-clear).

        With a store, the next fetch also deletes it there, if it is still the stored one.
        """
        if self._token is token:
            self._token = None
            if self.store is not None:
                self._failed = token

    def clear(self) -> None:
        """Drop whatever token is cached (here; a store keeps its own)."""
        self._token = None

    async def force_refresh(self) -> AccessToken:
        """Rotate the token now with ``force_refresh=true`` (stable source only; a leaked token).

        WeChat allows 20 a day, 30 s apart (closer calls rotate nothing); the limiter counts
        them fleet-wide through the store when there is one (else in this process) and raises
        :class:`ForceRefreshLimitError` (with ``retry_after``) instead of sending a call that
        would be wasted. The new token replaces the cached and the stored one.
        """
        source = self.source
        if not isinstance(source, StableTokenSource):
            raise ValidationError(
                f"force_refresh needs the stable token source, not {type(source).__name__}"
            )
        endpoint = self._endpoint
        if endpoint is None:
            raise ValidationError("this token cache is not attached to a client")
        key = self.store_key or f"{source.appid}:{source.store_name}"
        now = self._wall()
        wait: float | None = None
        if self.store is not None:
            try:
                wait = await self.store.take_force_refresh(key, now)
            except TokenStoreError as exc:
                self._store_failed(exc)
        if wait is None:
            wait = await self._limiter.take_force_refresh(key, now)
        if wait > 0:
            raise ForceRefreshLimitError(
                f"force_refresh refused by the limiter (WeChat allows 20 a day, 30 s apart);"
                f" next allowed in {wait:.0f}s",
                retry_after=wait,
            )
        hooks = self._hooks
        started = time.perf_counter()
        # Not fail_after: its TimeoutError would chain the cancelled frames (the secret's).
        try:
            with anyio.move_on_after(self._fetch_timeout) as bound:
                issued = await source.fetch_forced(endpoint)
        except Exception as exc:
            if hooks is not None:
                self._token_failed(hooks, started, exc)
            raise
        if bound.cancelled_caught:
            error = RequestTimeoutError(
                f"the forced token refresh took longer than {self._fetch_timeout:g}s"
            )
            if hooks is not None:
                self._token_failed(hooks, started, error)
            raise error
        self.fetch_count += 1
        stored = self._stored_from(issued)
        if self.store is not None:
            try:
                stored = await self.store.save(key, stored)
            except TokenStoreError as exc:
                self._store_failed(exc)
        token = self._publish_stored(stored)
        if hooks is not None:
            self._token_got(hooks, started, token, from_store=False, kind="refreshed")
        self._had_token = True
        return token

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
        hooks = self._hooks
        started = time.perf_counter()
        hits = self.store_hits
        try:
            # Not fail_after: its TimeoutError would chain the cancelled frames (which held
            # the secret) to the error raised, as its __context__.
            with anyio.move_on_after(self._fetch_timeout) as bound:
                if self.store is None:
                    issued = await self.source.fetch(endpoint)
                else:
                    stored = await self._through_store(endpoint)
            if bound.cancelled_caught:
                flight.error = RequestTimeoutError(
                    f"fetching an access token took longer than {self._fetch_timeout:g}s"
                )
                if hooks is not None:
                    self._token_failed(hooks, started, flight.error)
                return flight.error
            if self.store is None:
                flight.token = self._publish(issued)
            else:
                flight.token = self._publish_stored(stored)
            if hooks is not None:
                self._token_got(hooks, started, flight.token, from_store=self.store_hits > hits)
            self._had_token = True
            return flight.token
        except Exception as exc:
            flight.error = exc
            flight.error_tb = exc.__traceback__
            if hooks is not None:
                self._token_failed(hooks, started, exc)
            return exc
        finally:
            if self._flight is flight:
                self._flight = None
            flight.done.set()  # wakes every waiter at once; the token is already published

    # -- the shared store ------------------------------------------------------------------------

    async def _through_store(self, endpoint: TokenEndpoint) -> StoredToken:
        """A token via the store: adopt, or fetch under the lease, or wait for the holder's.

        Falls back to fetching alone if the store fails.
        """
        store = self.store
        key = self.store_key
        assert store is not None
        assert key is not None
        failed = self._failed
        try:
            if failed is not None:
                await store.discard(key, failed.value)
                if self._failed is failed:
                    self._failed = None
            return await self._adopt_or_lease(endpoint, store, key, failed)
        except TokenStoreError as exc:
            self._store_failed(exc)
        issued = await self.source.fetch(endpoint)
        self.fetch_count += 1
        return self._stored_from(issued)

    async def _adopt_or_lease(
        self, endpoint: TokenEndpoint, store: TokenStore, key: str, failed: AccessToken | None
    ) -> StoredToken:
        deadline = anyio.current_time() + self._lease_wait
        pause = 0.01
        waited_since: float | None = None  # set once this process waits for another's lease
        while True:
            stored = await store.load(key)
            if self._usable(stored, failed, fresh=True):
                assert stored is not None
                self.store_hits += 1
                if waited_since is not None:
                    self._lease_waited(key, waited_since, "adopted")
                return stored
            lease = await store.acquire_lease(key, self._lease_ttl)
            if lease is not None:
                if waited_since is not None:
                    self._lease_waited(key, waited_since, "acquired")
                return await self._fetch_under_lease(endpoint, store, key, failed, lease)
            # Another process is refreshing. A still valid token will do meanwhile.
            if self._usable(stored, failed, fresh=False):
                assert stored is not None
                self.store_hits += 1
                if waited_since is not None:
                    self._lease_waited(key, waited_since, "adopted")
                return stored
            if anyio.current_time() >= deadline:
                if waited_since is not None:
                    self._lease_waited(key, waited_since, "timed_out")
                raise TokenLeaseTimeoutError(
                    f"another process held the token refresh lease of {key!r} and no new token"
                    f" appeared within {self._lease_wait:g}s"
                )
            if waited_since is None:
                waited_since = time.perf_counter()
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.2)

    async def _fetch_under_lease(
        self,
        endpoint: TokenEndpoint,
        store: TokenStore,
        key: str,
        failed: AccessToken | None,
        lease: str,
    ) -> StoredToken:
        try:
            stored = await store.load(key)  # a holder that just finished: no second fetch
            if self._usable(stored, failed, fresh=True):
                assert stored is not None
                self.store_hits += 1
                return stored
            issued = await self.source.fetch(endpoint)
            self.fetch_count += 1
            fetched = self._stored_from(issued)
            try:
                return await store.save(key, fetched)
            except TokenStoreError as exc:
                self._store_failed(exc)
                return fetched
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await store.release_lease(key, lease)
                except TokenStoreError as exc:
                    self._store_failed(exc)  # the lease expires by itself

    def _usable(
        self, stored: StoredToken | None, failed: AccessToken | None, *, fresh: bool
    ) -> bool:
        """Whether ``stored`` may be used: not the refused token, and fresh (or unexpired)."""
        if stored is None or (failed is not None and stored.value == failed.value):
            return False
        return self._wall() < (stored.refresh_at if fresh else stored.expires_at)

    def _stored_from(self, issued: IssuedToken) -> StoredToken:
        now = self._wall()
        lifetime = issued.expires_in
        return StoredToken(
            value=issued.value,
            expires_at=now + lifetime,
            refresh_at=now + self._refresh_after(lifetime),
        )

    def _publish_stored(self, stored: StoredToken) -> AccessToken:
        """Cache a stored token, its epoch deadlines turned into readings of ``clock``."""
        offset = self._clock() - self._wall()
        token = AccessToken(
            value=stored.value,
            refresh_at=stored.refresh_at + offset,
            expires_at=stored.expires_at + offset,
        )
        self._token = token
        return token

    # -- hooks (called only when some are set) ---------------------------------------------------

    def _token_got(
        self,
        hooks: Hooks,
        started: float,
        token: AccessToken,
        *,
        from_store: bool,
        kind: Literal["fetched", "refreshed"] | None = None,
    ) -> None:
        emit_token(
            hooks,
            source=source_name(self.source),
            kind=kind or ("refreshed" if self._had_token else "fetched"),
            latency_s=time.perf_counter() - started,
            expires_in_s=max(0.0, token.expires_at - self._clock()),
            from_store=from_store,
        )

    def _token_failed(self, hooks: Hooks, started: float, error: BaseException) -> None:
        emit_token(
            hooks,
            source=source_name(self.source),
            kind="failed",
            latency_s=time.perf_counter() - started,
            expires_in_s=None,
            error=error,
        )

    def _lease_waited(self, key: str, since: float, outcome: LeaseWaitOutcome) -> None:
        hooks = self._hooks
        if hooks is not None:
            emit_lease_wait(
                hooks,
                source=source_name(self.source),
                key=key,
                waited_s=time.perf_counter() - since,
                outcome=outcome,
            )

    def _store_failed(self, error: TokenStoreError) -> None:
        now = self._clock()
        warned = self._store_warned_at
        if warned is None or now - warned >= STORE_WARNING_INTERVAL:
            self._store_warned_at = now
            _logger.warning(
                "token store unavailable (%s); this process fetches and keeps its own token"
                " meanwhile",
                error,
            )

    # -- publishing ------------------------------------------------------------------------------

    def _refresh_after(self, lifetime: float) -> float:
        # Never refresh later than the margin before expiry, nor sooner than half-life
        # (a token issued with a short lifetime must not cause a fetch per call).
        return max(lifetime - self._refresh_margin, lifetime / 2)

    def _publish(self, issued: IssuedToken) -> AccessToken:
        now = self._clock()
        lifetime = issued.expires_in
        token = AccessToken(
            value=issued.value,
            refresh_at=now + self._refresh_after(lifetime),
            expires_at=now + lifetime,
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


def source_key(source: TokenSource) -> str | None:
    """A source's key in a store, ``{appid}:{source}`` (the store adds its namespace), or None."""
    appid = getattr(source, "appid", None)
    name = getattr(source, "store_name", None)
    if isinstance(appid, str) and appid and isinstance(name, str) and name:
        return f"{appid}:{name}"
    return None
