"""The request loop: build the request, send it, decode the answer, retry, replay on token errors.

Every attempt is one ``httpx.AsyncClient.send()``; what carries it is the client's transport
(:mod:`._wire` by default). This module imports httpx lazily, so ``import wxlogistics`` stays
cheap. Everything raised is a :class:`WxLogisticsError` whose message, attributes and chained
cause are free of the access token and the app secret; exceptions are raised from frames that
hold no URL.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import anyio
import attrs

from ._exceptions import (
    COMMON_ERRCODES,
    AccessTokenError,
    APIError,
    ClientClosedError,
    RequestTimeoutError,
    ResponseError,
    TransportError,
    WxLogisticsError,
    api_error,
    token_endpoint_error,
)
from ._hooks import Hooks, emit_call, emit_retry, endpoint_name
from ._redact import redact
from ._retry import RetryPolicy
from ._tokens import AccessToken, TokenCache

__all__ = ["ConfirmedPayload", "Endpoint", "Timeouts", "Transport", "encode_json", "scrub"]

DEFAULT_CLOSE_GRACE = 5.0
"""Seconds ``aclose()`` waits for attempts in flight before closing the connections."""

_logger = logging.getLogger("wxlogistics")
_DEBUG = logging.DEBUG
_BODY_EXCERPT = 2000

if TYPE_CHECKING:
    import httpx


@attrs.frozen
class Timeouts:
    """Seconds allowed per attempt for each phase; all set (wxlogistics never waits forever)."""

    connect: float
    read: float
    write: float
    pool: float

    def as_httpx(self) -> httpx.Timeout:
        """The same as an ``httpx.Timeout``."""
        import httpx

        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@attrs.frozen
class Endpoint:
    """One WeChat API: its method, path, and whether a call may be repeated safely."""

    method: str
    path: str
    idempotent: bool
    """True when carrying the call out twice does no harm (cancel: yes; addOrder: no)."""
    done_errcodes: frozenset[int] = frozenset()
    """Errcodes meaning "already done": after an attempt that may have been carried out,
    such an answer to a retry is the earlier attempt's success (cancel: 9300524)."""
    errcodes: Mapping[int, type[APIError]] = attrs.field(default=COMMON_ERRCODES, eq=False)
    """This endpoint's errcode -> exception class table (codes not in it raise APIError)."""


# Built once: json.dumps/json.loads with keyword arguments build a new coder on every call.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_decoder = json.JSONDecoder(strict=False)  # tolerate control characters, as wechatpy does
_decode = _decoder.decode
_scan: Any = getattr(_decoder, "scan_once")  # noqa: B009 - typeshed does not declare it


def decode_json(content: bytes) -> Any:
    """An answer body (UTF-8 JSON) decoded as ``_decoder.decode(content.decode())`` does.

    A body that is one object with nothing around it (WeChat's answers) goes straight to the
    decoder's scanner; anything else (white space, other values, errors) through ``decode``.
    Raises ValueError (UnicodeDecodeError, JSONDecodeError) as ``decode`` does.
    """
    text = content.decode()
    if text[:1] == "{":
        try:
            value, end = _scan(text, 0)
        except StopIteration:  # what the scanner raises instead of a JSONDecodeError
            end = -1
        if end == len(text):
            return value
    return _decode(text)


def encode_json(body: Mapping[str, Any]) -> bytes:
    """Encode a JSON body the way WeChat wants it: UTF-8, no escaped non-ASCII (40033)."""
    return _encode(body).encode()


def _errcode_of(payload: dict[str, Any]) -> int | None:
    """The payload's errcode as an int (0 when absent), or None when it is not a number."""
    errcode = payload.get("errcode", 0)
    if type(errcode) is int:
        return errcode
    if isinstance(errcode, str):
        try:
            return int(errcode)
        except ValueError:
            return None
    if errcode is None:
        return 0
    return None


class ConfirmedPayload(dict):  # type: ignore[type-arg]
    """An answer the loop turned into a success ("already done" after an ambiguous attempt).

    An earlier attempt may have been carried out, and a later one was answered with an errcode
    meaning "already done" (cancel: 9300524).
    """


class Transport:
    """Sends API calls through the session's ``httpx.AsyncClient``, with tokens and retries.

    Every call, business and token alike, is one ``http.send()`` per attempt, so the client's
    event hooks, auth, mounts and transport (by default :class:`WireTransport`) see it.
    """

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        owns_http: bool,
        base_url: str,
        timeout: Timeouts,
        retry: RetryPolicy,
        tokens: TokenCache | None,
        secrets: tuple[str, ...] = (),
        user_agent: str,
        max_concurrency: int,
        close_grace: float = DEFAULT_CLOSE_GRACE,
        errcode_overrides: Mapping[int, type[APIError]] | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        from http.cookiejar import CookieJar

        import httpx

        from ._wire import (
            ADMITTED,
            RESENT,
            SAFE_TO_REPEAT,
            ResponseTooLargeError,
            ended,
            header_snapshot,
            request_factory,
            run_key,
        )

        self._resent = RESENT
        self._snapshot = header_snapshot
        self._new_request = request_factory()
        self._plain_jar: Any = CookieJar

        self._httpx = httpx
        self._too_large = ResponseTooLargeError
        self._run_key = run_key
        self._ended = ended
        self._max_concurrency = max_concurrency
        # The bound on requests in flight, one per event loop (anyio's are bound to one).
        self._slots: Any = None
        self._slots_key: object = None
        self._slots_lock = threading.Lock()
        # Failures after which the request certainly never reached the server.
        self._never_sent: tuple[type[Exception], ...] = (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            httpx.UnsupportedProtocol,
            httpx.ProxyError,
        )
        self.base_url = base_url.rstrip("/")
        self.http = http
        self._owns_http = owns_http
        self.retry = retry
        self.tokens = tokens
        self._secrets = tuple(s for s in secrets if s)
        self._user_agent = user_agent
        timeouts = timeout.as_httpx().as_dict()
        self._extensions = {"timeout": timeouts, ADMITTED: max_concurrency}
        self._safe_extensions = {**self._extensions, SAFE_TO_REPEAT: True}
        base = httpx.URL(self.base_url)
        self._host = base.netloc.decode("ascii")
        self._base_path = base.path.rstrip("/")  # a proxy's prefix, shown in errors
        self._headers_seen: tuple[Any, ...] | None = None
        self._get_headers: Any = None
        self._post_headers: dict[int, Any] = {}
        self._urls: dict[str, Any] = {}
        self._url_token: AccessToken | None = None
        self._last_token: AccessToken | None = None
        self._close_grace = close_grace
        # The client's mode may give an errcode its own class (Cloud Run: 41001).
        self._errcode_overrides = dict(errcode_overrides or {})
        self._closed = False
        self._inflight = 0
        # None unless a callback is set: the hot path checks this one attribute per call.
        self._hooks = None if hooks is None or hooks.empty else hooks
        self._drained: anyio.Event | None = None

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has started."""
        return self._closed

    async def aclose(self) -> None:
        """Refuse new calls, let attempts in flight finish (bounded), close what we own."""
        self._closed = True
        if self._inflight:
            self._drained = anyio.Event()
            with anyio.move_on_after(self._close_grace, shield=True):
                await self._drained.wait()
        if self._owns_http:
            await self.http.aclose()

    # -- requests --------------------------------------------------------------------------------

    def _headers(self, body: bytes | None) -> Any:
        """The request headers: the client's own, ours on top; rebuilt if the client's change."""
        raw = self._snapshot(self.http.headers)
        if raw != self._headers_seen:
            headers: Any = self._httpx.Headers(self.http.headers)
            headers["host"] = self._host
            headers["user-agent"] = self._user_agent
            headers["accept"] = "application/json"
            headers["accept-encoding"] = "gzip, deflate"  # what the wire decodes within a bound
            headers.pop("content-length", None)
            self._get_headers = headers
            self._post_headers = {}
            self._headers_seen = raw
        if body is None:
            return self._get_headers
        headers = self._post_headers.get(len(body))
        if headers is None:
            if len(self._post_headers) > 256:
                self._post_headers.clear()
            headers = self._httpx.Headers(self._get_headers)
            headers["content-type"] = "application/json; charset=utf-8"
            headers["content-length"] = str(len(body))
            self._post_headers[len(body)] = headers
        return headers

    # -- public entry points ------------------------------------------------------------------

    async def call(self, endpoint: Endpoint, body: bytes | None) -> dict[str, Any]:
        """Call a business API and return its decoded JSON object (errcode 0 or absent).

        Retries per the :class:`RetryPolicy`; on a token error refreshes the token and replays
        once (a second token error raises :class:`AccessTokenError`). A
        :class:`ConfirmedPayload` is returned when a retry's "already done" errcode confirmed
        that an earlier attempt was carried out.
        """
        outcome = await self.attempts(endpoint, body)
        if isinstance(outcome, WxLogisticsError):
            raise outcome  # from a frame that holds no URL, token or raw payload
        return outcome

    def attempts(
        self, endpoint: Endpoint, body: bytes | None
    ) -> Coroutine[Any, Any, dict[str, Any] | WxLogisticsError]:
        """The request loop for ``endpoint``: returns the payload, or the error to raise.

        For callers on the hot path that raise the error themselves (from a frame holding no
        URL or token), one coroutine fewer than :meth:`call`.
        """
        if self._hooks is not None:  # the only cost of hooks on a call without any
            return self._observed(endpoint, body, self._hooks)
        return self._attempts(
            endpoint.method,
            endpoint.path,
            body,
            idempotent=endpoint.idempotent,
            done=endpoint.done_errcodes,
            errcodes=endpoint.errcodes,
        )

    async def _observed(
        self, endpoint: Endpoint, body: bytes | None, hooks: Hooks
    ) -> dict[str, Any] | WxLogisticsError:
        """The request loop with hooks: retries reported as they happen, then the call."""
        name = getattr(endpoint, "name", None) or endpoint_name(endpoint.path)
        observer = _Observer(hooks, name)
        started = time.perf_counter()
        outcome = await self._attempts(
            endpoint.method,
            endpoint.path,
            body,
            idempotent=endpoint.idempotent,
            done=endpoint.done_errcodes,
            errcodes=endpoint.errcodes,
            observer=observer,
        )
        emit_call(
            hooks,
            endpoint=name,
            path=endpoint.path,
            outcome=outcome,
            attempts=observer.attempts,
            latency_s=time.perf_counter() - started,
        )
        return outcome

    async def call_token_endpoint(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Call a token endpoint (no access token sent); errcodes become :class:`CredentialsError`.

        Only -1, timeouts, connection failures and 5xx are retried (token fetches are safe to
        repeat); nothing else is.
        """
        query = "?" + urlencode(params) if params else ""
        body = encode_json(json) if json is not None else None
        del params, json  # they hold the secret; the frame that raises must not
        hooks = self._hooks
        observer = None if hooks is None else _Observer(hooks, endpoint_name(path))
        try:
            outcome = await self._attempts(
                method, path, body, idempotent=True, query=query, observer=observer
            )
        finally:
            del query, body  # also when cancelled: a deadline's TimeoutError chains that
        if isinstance(outcome, WxLogisticsError):
            raise outcome
        return outcome

    # -- the loop -------------------------------------------------------------------------------

    async def _attempts(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        idempotent: bool,
        query: str | None = None,
        done: frozenset[int] = frozenset(),
        errcodes: Mapping[int, type[APIError]] = COMMON_ERRCODES,
        observer: _Observer | None = None,
    ) -> dict[str, Any] | WxLogisticsError:
        """The one request loop: attempts, retries, the token replay. Returns what to raise.

        ``query=None`` means a business call (the access token is added); a string, a token
        endpoint call with that query (no token; errcodes mapped to credential errors).
        Errors are returned, not raised, so that the frame which raises them holds no URL or
        raw payload: error trackers that record local variables must not see a secret.
        ``errcodes`` maps a business errcode to its exception class (the endpoint's table).
        ``observer`` (only with hooks) counts the attempts and reports each retry.
        """
        tokens = self.tokens if query is None else None
        retries = 0
        replayed = False
        ambiguous = False  # an earlier attempt may have been carried out
        extensions = self._safe_extensions if idempotent else self._extensions
        while True:
            if self._closed:
                return _closed_error(ambiguous)
            slots = self._slots
            if slots is None or self._slots_key is not self._run_key():
                # Before the token cache: a second event loop must not wait on the first's.
                slots = self._new_slots()
                if isinstance(slots, WxLogisticsError):
                    return slots
            token = None
            if tokens is not None:
                token = tokens.fresh()
                if token is None:
                    try:
                        token = await tokens.get(self)
                    except WxLogisticsError as exc:
                        return self._token_failure(exc, ambiguous)
                if self._closed:
                    return _closed_error(ambiguous)
            started = time.perf_counter()
            url = self._url(path, token) if query is None else self.base_url + path + query
            request = self._new_request(method, url, self._headers(body), body or b"", extensions)
            cookies = self.http.cookies
            jar: Any = cookies.jar
            # httpx adds cookies in build_request, which we skip. len() of a CookieJar walks
            # it through a generator; the plain one keeps its cookies in a dict.
            if jar._cookies if type(jar) is self._plain_jar else len(jar):
                cookies.set_cookie_header(request)
            error: WxLogisticsError
            try:
                try:
                    slots.acquire_nowait()  # no coroutine on the fast path
                except anyio.WouldBlock:
                    await slots.acquire()
                try:
                    if self._closed:  # closed while this call waited for a free slot
                        return _closed_error(ambiguous)
                    self._inflight += 1
                    try:
                        response = await self.http.send(request)
                    finally:
                        self._finished()
                finally:
                    slots.release()
            except self._httpx.HTTPError as exc:
                error = self._transport_error(exc, self._base_path + path)
            except WxLogisticsError as exc:
                exc.__traceback__ = None  # raised beneath httpx, in frames holding the request
                error = exc
            except RuntimeError as exc:
                if not self.http.is_closed:
                    raise
                del exc
                error = ClientClosedError("the httpx client was closed; create a new client")
            except BaseException as exc:
                # Cancelled (a caller's deadline, a shutdown) or interrupted: the frames the
                # exception came up through, httpx's, the wire's and aiohttp's, hold the
                # request, whose URL carries the access token, and error trackers record every
                # frame's locals, chained exceptions included (a deadline's TimeoutError chains
                # this one). So it goes on from this frame, without the frames beneath it and
                # without this frame's request, nor the body or query of a token request
                # (they hold the app secret). An error of a user's own event hook (an
                # Exception) keeps its traceback: its frames are the user's to read.
                del request, url, body, query
                if isinstance(exc, Exception):
                    raise
                raise exc.with_traceback(None)  # noqa: B904 - the same exception, not a new one
            else:
                status = response.status_code
                content = response.content
                if response.extensions.get(self._resent):  # the first send may have been done
                    ambiguous = True
                payload = None
                if status == 200:
                    try:
                        payload = decode_json(content)
                    except ValueError:  # UnicodeDecodeError included
                        payload = None
                if type(payload) is not dict:
                    error = self._response_error(
                        status,
                        content,
                        response.headers.get("content-type", ""),
                        self._base_path + path,
                        response.headers.get("retry-after") if status in (429, 503) else None,
                    )
                else:
                    errcode = _errcode_of(payload)
                    if errcode == 0:
                        if _logger.isEnabledFor(_DEBUG):
                            self._log(path, retries, replayed, started, "errcode=0")
                        return payload
                    if ambiguous and errcode in done:
                        if _logger.isEnabledFor(_DEBUG):
                            self._log(path, retries, replayed, started, f"errcode={errcode}")
                            _logger.debug("%s: earlier attempt confirmed by the retry", path)
                        return ConfirmedPayload(payload)
                    error = self._api_error(
                        path, payload, errcode, token_endpoint=query is not None, table=errcodes
                    )
            del request, url
            if _logger.isEnabledFor(_DEBUG):
                self._log(path, retries, replayed, started, _describe(error))
            if _is_ambiguous(error):
                ambiguous = True
            if ambiguous:
                error.may_have_been_sent = True
            if isinstance(error, AccessTokenError) and tokens is not None and token is not None:
                tokens.invalidate(token)
                if not replayed:
                    replayed = True
                    if observer is not None:
                        observer.retrying(path, 0.0, error)
                    continue
                return error
            if self._closed:
                return error if ambiguous else _closed_error(False)
            delay = self.retry.retry_delay(error, retry=retries, idempotent=idempotent)
            if delay is None:
                return error
            retries += 1
            if observer is not None:
                observer.retrying(path, delay, error)
            if _logger.isEnabledFor(_DEBUG):
                _logger.debug("retrying %s in %.2fs (retry %d)", path, delay, retries)
            await anyio.sleep(delay)

    def _new_slots(self) -> Any:
        """The concurrency bound for the running event loop (made on its first call there).

        Under a thread lock: two event loops in two threads may both get here at once.
        """
        key = self._run_key()
        with self._slots_lock:
            if self._slots_key is key and self._slots is not None:
                return self._slots
            if self._slots is not None and not self._ended(self._slots_key):
                from ._wire import in_use_elsewhere

                return in_use_elsewhere()
            self._slots = anyio.Semaphore(self._max_concurrency, fast_acquire=True)
            self._slots_key = key
            return self._slots

    def _token_failure(self, exc: WxLogisticsError, ambiguous: bool) -> WxLogisticsError:
        """The error for a call whose token could not be had: nothing of this call was sent.

        The token cache hands one error to every caller that waited for the fetch, and that
        error speaks of the token request; each call gets its own copy that speaks of itself.
        """
        if self._closed:
            return _closed_error(ambiguous)
        error = type(exc).__new__(type(exc))  # a copy without __init__ (whose keywords vary)
        error.args = exc.args
        error.__dict__.update(vars(exc))
        error.__cause__ = exc.__cause__
        error.__suppress_context__ = True
        error.__traceback__ = None
        error.may_have_been_sent = ambiguous
        return error

    def _finished(self) -> None:
        self._inflight -= 1
        if self._drained is not None and not self._inflight:
            self._drained.set()

    # -- one attempt ----------------------------------------------------------------------------

    def _url(self, path: str, token: AccessToken | None) -> Any:
        """The URL of ``path`` with ``token``, built once per token and path."""
        if token is not self._url_token:
            self._urls = {}
            self._url_token = token
            self._last_token = token
        url = self._urls.get(path)
        if url is None:
            query = "" if token is None else "?access_token=" + quote(token.value, safe="")
            url = self._urls[path] = self._httpx.URL(self.base_url + path + query)
        return url

    def _response_error(
        self,
        status: int,
        content: bytes,
        content_type: str,
        path: str,
        retry_after: str | None = None,
    ) -> ResponseError:
        if status != 200:
            message = f"HTTP {status} from {path}"
        elif not content.strip():
            message = f"{path} answered HTTP 200 with an empty body"
        else:
            message = f"{path} answered HTTP 200 with a body that is not a JSON object"
        if content_type:
            message += f" ({content_type})"
        excerpt = content[:_BODY_EXCERPT].decode("utf-8", "replace")
        return ResponseError(
            message,
            status_code=status,
            path=path,
            body=redact(excerpt, *self._secrets_of()),
            retry_after=_retry_after_seconds(retry_after),
        )

    def _api_error(
        self,
        path: str,
        payload: dict[str, Any],
        errcode: int | None,
        *,
        token_endpoint: bool,
        table: Mapping[int, type[APIError]] = COMMON_ERRCODES,
    ) -> WxLogisticsError:
        if errcode is None:
            return ResponseError(
                f"{path} answered with a non-numeric errcode {payload.get('errcode')!r}",
                status_code=200,
                path=path,
            )
        payload = scrub(payload, self._secrets_of())
        errmsg = payload.get("errmsg")
        text = errmsg if isinstance(errmsg, str) else ""
        if token_endpoint:
            return token_endpoint_error(errcode, text, payload, path)
        override = self._errcode_overrides.get(errcode)
        if override is not None:
            return override(errcode, text, payload=payload, path=path)
        return api_error(errcode, text, payload, path, table)

    def _transport_error(self, exc: Exception, path: str) -> WxLogisticsError:
        """The error for an httpx failure, scrubbed, with a scrubbed copy as its cause."""
        httpx = self._httpx
        name = type(exc).__name__
        detail = redact(str(exc), *self._secrets_of()) or name
        if isinstance(exc, (self._too_large, httpx.DecodingError)):
            return ResponseError(f"{name} on {path}: {detail}", status_code=200, path=path)
        may_have_been_sent = not isinstance(exc, self._never_sent)
        if self._closed and not may_have_been_sent:
            return _closed_error(False)
        cls = RequestTimeoutError if isinstance(exc, httpx.TimeoutException) else TransportError
        error = cls(f"{name} on {path}: {detail}", path=path, may_have_been_sent=may_have_been_sent)
        # A copy of the library's error without its request (whose URL holds the token).
        cause: BaseException
        try:
            cause = type(exc)(detail)
            if detail not in str(cause):
                raise TypeError
        except Exception:
            cause = RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {detail}")
        error.__cause__ = cause
        error.__suppress_context__ = True
        return error

    # -- helpers --------------------------------------------------------------------------------

    def _secrets_of(self) -> tuple[str, ...]:
        """The secrets that could show up in text about a request."""
        token = self._last_token
        if token is None:
            return self._secrets
        return (token.value, *self._secrets)

    def _log(self, path: str, retries: int, replayed: bool, started: float, what: str) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        extra = " (token replay)" if replayed else ""
        _logger.debug("%s attempt=%d%s %s %.1fms", path, retries + 1, extra, what, elapsed)


class _Observer:
    """One call's attempts, counted for its hooks (made only when hooks are set)."""

    __slots__ = ("attempts", "hooks", "name")

    def __init__(self, hooks: Hooks, name: str) -> None:
        self.hooks = hooks
        self.name = name
        self.attempts = 1

    def retrying(self, path: str, delay: float, error: WxLogisticsError) -> None:
        """Another attempt follows ``error`` after ``delay`` seconds."""
        self.attempts += 1
        emit_retry(
            self.hooks,
            endpoint=self.name,
            path=path,
            attempt=self.attempts,
            delay_s=delay,
            error=error,
        )


def _retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 86_400))
    try:
        import email.utils  # rare (an HTTP-date Retry-After): not at import time

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, min(when.timestamp() - time.time(), 86_400.0))


def _closed_error(may_have_been_sent: bool) -> WxLogisticsError:
    if may_have_been_sent:
        return TransportError(
            "the client was closed while this call was in flight; it may have been carried out",
            may_have_been_sent=True,
        )
    return ClientClosedError("this AsyncLogistics is closed; create a new one")


def _is_ambiguous(error: WxLogisticsError) -> bool:
    """Whether the attempt that ended in ``error`` may have been carried out by WeChat."""
    if isinstance(error, TransportError):
        return error.may_have_been_sent
    if isinstance(error, ResponseError):  # a 5xx or a gateway's page: WeChat may have acted
        return error.status_code != 429  # 429: refused before anything was done
    return False


_SECRET_KEYS = frozenset({"access_token", "secret", "appsecret", "app_secret"})


def scrub(value: Any, secrets: tuple[str, ...], depth: int = 0) -> Any:
    """A copy of a decoded payload with secrets masked at any depth (keys and values)."""
    if isinstance(value, str):
        return redact(value, *secrets)
    if depth > 32:
        return "***"
    if isinstance(value, dict):
        return {
            key: "***" if str(key).lower() in _SECRET_KEYS else scrub(item, secrets, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [scrub(item, secrets, depth + 1) for item in value]
    return value


def _describe(error: WxLogisticsError) -> str:
    if isinstance(error, APIError):
        return f"errcode={error.errcode}"
    return f"{type(error).__name__}: {error}"
