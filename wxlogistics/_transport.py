"""The request loop: build the request, send it, decode the answer, retry, replay on token errors.

This module and ``_client`` are the only ones that use httpx, and both import it lazily: the
default engine on asyncio is aiohttp, so ``import wxlogistics`` stays cheap. Everything raised is a
:class:`WxLogisticsError` whose message, attributes and chained cause are free of the access
token and the app secret; exceptions are raised from frames that hold no URL.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode

import anyio
import attrs

from ._exceptions import (
    AccessTokenError,
    APIError,
    RequestTimeoutError,
    ResponseError,
    TransportError,
    ValidationError,
    WxLogisticsError,
    api_error,
    token_endpoint_error,
)
from ._redact import redact
from ._retry import RetryPolicy
from ._tokens import AccessToken, TokenCache

__all__ = ["Endpoint", "Transport", "encode_json"]

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


# Built once: json.dumps/json.loads with keyword arguments build a new coder on every call.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_decode = json.JSONDecoder(strict=False).decode  # tolerate control characters, as wechatpy does


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


def _on_trio() -> bool:
    """Whether the running event loop is trio's (else asyncio: anyio supports just these two)."""
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def respx_active() -> bool:
    """Whether respx is patching httpx right now (then requests must go through httpx)."""
    if "respx" not in sys.modules:
        return False
    try:
        from respx.mocks import Mocker

        return any(mocker._patches for mocker in Mocker.registry.values())
    except Exception:  # pragma: no cover - a respx we do not know: stay mockable
        return True


class _HttpxEngine:
    """Requests through an ``httpx.AsyncClient`` (the user's, or one we own)."""

    name = "httpx"

    def __init__(
        self, http: httpx.AsyncClient, *, timeout: Timeouts, user_agent: str, max_concurrency: int
    ) -> None:
        import httpx

        self._httpx = httpx
        # Failures after which the request certainly never reached the server.
        self._never_sent = (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            httpx.UnsupportedProtocol,
        )
        self.http = http
        self._extensions = {"timeout": timeout.as_httpx().as_dict()}
        # Requests beyond the bound wait here, not in httpcore's pool, whose queue is scanned
        # on every request and release.
        self._slots = anyio.Semaphore(max_concurrency, fast_acquire=True)
        headers = dict(http.headers)
        headers.pop("accept-encoding", None)  # JSON answers are small; skip decompression
        headers["user-agent"] = user_agent
        headers["accept"] = "application/json"
        self._get_headers = httpx.Headers(headers)
        headers["content-type"] = "application/json; charset=utf-8"
        self._post_headers = httpx.Headers(headers)
        self.urls: dict[str, Any] = {}  # path -> httpx.URL, for url_token
        self.url_token: AccessToken | None = None

    def url(self, text: str) -> httpx.URL:
        return self._httpx.URL(text)

    async def request(self, method: str, url: Any, body: bytes | None) -> tuple[int, bytes, str]:
        request = self._httpx.Request(
            method,
            url,
            content=body,
            headers=self._post_headers if body is not None else self._get_headers,
            extensions=self._extensions,
        )
        async with self._slots:
            response = await self.http.send(request)
        return response.status_code, response.content, response.headers.get("content-type", "")

    def failure(self, exc: Exception) -> tuple[bool, bool] | None:
        """(is a timeout, may have been sent) for a transport failure; None for anything else."""
        httpx = self._httpx
        if not isinstance(exc, httpx.HTTPError):
            return None
        return isinstance(exc, httpx.TimeoutException), not isinstance(exc, self._never_sent)

    async def aclose(self) -> None:
        await self.http.aclose()


def _sharded_transport(total: int, shard_size: int = 8) -> Any:
    """An httpx transport of several small connection pools, for the httpx engine we own.

    httpcore scans every connection of a pool on each request and release, so its CPU per
    request grows with the pool's size. Small pools behind an O(1) queue of free slots keep
    that scan short. The engine's semaphore admits at most ``total`` requests, and the pools
    hold ``total`` connections together, so a free slot always exists for an admitted request.
    """
    import httpx

    class _SlotStream(httpx.AsyncByteStream):
        def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
            self._inner = inner
            self._release: Callable[[], None] | None = release

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self._inner:
                yield chunk

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                if self._release is not None:
                    self._release()
                    self._release = None

    class ShardedTransport(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            count = max(1, -(-total // shard_size))
            size = -(-total // count)
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            self._pools = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(count)]
            self._free: deque[int] = deque(i for _ in range(size) for i in range(count))

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            free = self._free
            index = free.popleft() if free else 0
            try:
                response = await self._pools[index].handle_async_request(request)
            except BaseException:
                free.append(index)
                raise
            assert isinstance(response.stream, httpx.AsyncByteStream)
            response.stream = _SlotStream(response.stream, lambda: free.append(index))
            return response

        async def aclose(self) -> None:
            for pool in self._pools:
                await pool.aclose()

    return ShardedTransport()


class _AiohttpEngine:
    """Requests through an ``aiohttp.ClientSession``: asyncio only, created on first use.

    An anyio semaphore bounds requests in flight; more callers queue there, without a timeout.

    httpx's connection pool costs about ten times aiohttp's CPU per request at 50 concurrent
    requests (it scans every connection on every request); see the benchmark.
    """

    name = "aiohttp"

    def __init__(
        self,
        *,
        limit: int,
        timeout: Timeouts,
        user_agent: str,
        base_url: str,
    ) -> None:
        import aiohttp
        import yarl

        self._aiohttp = aiohttp
        self._yarl_url = yarl.URL
        self._limit = limit
        # Waiting for a free connection happens in our semaphore, without a timeout (as the
        # docs promise); so no `connect` timeout here, which would also count that wait and
        # costs a timer per request. Connecting and reading each have their own bound.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout.connect, sock_read=timeout.read
        )
        self._slots = anyio.Semaphore(limit, fast_acquire=True)
        # Session defaults: nothing to merge per request.
        self._headers = {"user-agent": user_agent, "accept": "application/json"}
        self._content_type = "application/json; charset=utf-8"
        self._session: Any = None
        # HTTP(S)_PROXY / NO_PROXY, as httpx honours them, read once: aiohttp's trust_env
        # would look them up in a worker thread on every request.
        self._proxy = _env_proxy(base_url)
        self.urls: dict[str, Any] = {}
        self.url_token: AccessToken | None = None

    def _open(self) -> Any:
        import ssl

        import certifi

        aiohttp = self._aiohttp
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=0,
            ssl=ssl.create_default_context(cafile=certifi.where()),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers=self._headers,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        return self._session

    def url(self, text: str) -> Any:
        return self._yarl_url(text, encoded=True)

    async def request(self, method: str, url: Any, body: bytes | None) -> tuple[int, bytes, str]:
        session = self._session or self._open()
        data = (
            None
            if body is None
            else self._aiohttp.BytesPayload(body, content_type=self._content_type)
        )
        async with (
            self._slots,
            session.request(
                method, url, data=data, allow_redirects=False, proxy=self._proxy
            ) as response,
        ):
            content = await response.read()
            return response.status, content, response.headers.get("Content-Type", "")

    def failure(self, exc: Exception) -> tuple[bool, bool] | None:
        """(is a timeout, may have been sent) for a transport failure; None for anything else."""
        aiohttp = self._aiohttp
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return True, False  # sock_connect fired: the request never left
        if isinstance(exc, aiohttp.ClientConnectorError):
            return False, False
        if isinstance(exc, TimeoutError):
            return True, True
        if isinstance(exc, (aiohttp.ClientError, OSError)):
            return False, True
        return None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _env_proxy(base_url: str) -> str | None:
    """The proxy the environment sets for ``base_url`` (HTTP(S)_PROXY minus NO_PROXY)."""
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(base_url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


_Engine = _HttpxEngine | _AiohttpEngine


class Transport:
    """Sends API calls with tokens, retries and a concurrency bound, through an HTTP engine.

    The engine is httpx when the user passes an ``httpx.AsyncClient`` (or a transport), on
    trio, and whenever respx is patching httpx (so tests that mock httpx never reach the
    network); otherwise (asyncio) aiohttp, which costs far less CPU per request.
    """

    def __init__(
        self,
        *,
        http: httpx.AsyncClient | None,
        owns_http: bool,
        engine: Literal["auto", "httpx", "aiohttp"],
        base_url: str,
        timeout: Timeouts,
        retry: RetryPolicy,
        tokens: TokenCache | None,
        max_concurrency: int,
        secrets: tuple[str, ...] = (),
        user_agent: str,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.tokens = tokens
        self._secrets = tuple(s for s in secrets if s)
        self._timeout = timeout
        self._user_agent = user_agent
        self._max_concurrency = max_concurrency
        self._choice = engine
        self._owns_http = owns_http
        self._httpx: _HttpxEngine | None = (
            _HttpxEngine(
                http, timeout=timeout, user_agent=user_agent, max_concurrency=max_concurrency
            )
            if http is not None
            else None
        )
        self._primary: _Engine | None = self._httpx if http is not None else None
        self._last_token: AccessToken | None = None

    @property
    def http(self) -> httpx.AsyncClient | None:
        """The httpx client in use, if any was given or has been created."""
        return self._httpx.http if self._httpx is not None else None

    @property
    def engine_name(self) -> str:
        """``"aiohttp"``, ``"httpx"``, or ``"unstarted"`` before the first request."""
        return self._primary.name if self._primary is not None else "unstarted"

    def _httpx_engine(self) -> _HttpxEngine:
        if self._httpx is None:
            import httpx

            limits = httpx.Limits(
                max_connections=self._max_concurrency,
                max_keepalive_connections=self._max_concurrency,
            )
            http = httpx.AsyncClient(
                timeout=self._timeout.as_httpx(),
                limits=limits,
                transport=_sharded_transport(self._max_concurrency),
            )
            self._httpx = _HttpxEngine(
                http,
                timeout=self._timeout,
                user_agent=self._user_agent,
                max_concurrency=self._max_concurrency,
            )
        return self._httpx

    def _start(self) -> _Engine:
        engine: _Engine
        if self._choice == "httpx" or (self._choice == "auto" and _on_trio()):
            engine = self._httpx_engine()
        else:
            if _on_trio():
                raise ValidationError(
                    "the aiohttp engine runs on asyncio only; use 'httpx' on trio"
                )
            engine = _AiohttpEngine(
                limit=self._max_concurrency,
                timeout=self._timeout,
                user_agent=self._user_agent,
                base_url=self.base_url,
            )
        self._primary = engine
        return engine

    def _engine(self) -> _Engine:
        engine = self._primary or self._start()
        if engine.name == "aiohttp" and "respx" in sys.modules and respx_active():
            return self._httpx_engine()
        return engine

    async def aclose(self) -> None:
        """Close what this transport created (never a client it was given)."""
        if isinstance(self._primary, _AiohttpEngine):
            await self._primary.aclose()
        if self._httpx is not None and self._owns_http:
            await self._httpx.aclose()

    # -- public entry points ------------------------------------------------------------------

    async def call(self, endpoint: Endpoint, body: bytes | None) -> dict[str, Any]:
        """Call a business API and return its decoded JSON object (errcode 0 or absent).

        Retries per the :class:`RetryPolicy`; on a token error refreshes the token and replays
        once (a second token error raises :class:`AccessTokenError`).
        """
        outcome = await self._attempts(
            endpoint.method, endpoint.path, body, idempotent=endpoint.idempotent
        )
        if isinstance(outcome, WxLogisticsError):
            raise outcome  # from a frame that holds no URL, token or raw payload
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
        outcome = await self._attempts(method, path, body, idempotent=True, query=query)
        del query, body
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
    ) -> dict[str, Any] | WxLogisticsError:
        """The one request loop: attempts, retries, the token replay. Returns what to raise.

        ``query=None`` means a business call (the access token is added); a string, a token
        endpoint call with that query (no token; errcodes mapped to credential errors).
        Errors are returned, not raised, so that the frame which raises them holds no URL or
        raw payload: error trackers that record local variables must not see a secret.
        """
        tokens = self.tokens if query is None else None
        retries = 0
        replayed = False
        while True:
            token = None
            if tokens is not None:
                token = tokens.fresh() or await tokens.get(self)
            started = time.perf_counter()
            engine = self._primary
            if engine is None or (engine.name == "aiohttp" and "respx" in sys.modules):
                engine = self._engine()
            url = (
                self._url(engine, path, token)
                if query is None
                else engine.url(self.base_url + path + query)
            )
            error: WxLogisticsError
            try:
                status, content, content_type = await engine.request(method, url, body)
            except Exception as exc:
                kind = engine.failure(exc)
                if kind is None:
                    raise
                error = self._transport_error(exc, url, *kind)
            else:
                payload = None
                if status == 200:
                    try:
                        payload = _decode(content.decode())
                    except ValueError:  # UnicodeDecodeError included
                        payload = None
                if type(payload) is not dict:
                    error = self._response_error(status, content, content_type, url)
                else:
                    errcode = _errcode_of(payload)
                    if errcode == 0:
                        if _logger.isEnabledFor(_DEBUG):
                            self._log(path, retries, replayed, started, "errcode=0")
                        return payload
                    error = self._api_error(
                        path, payload, errcode, token_endpoint=query is not None
                    )
            if _logger.isEnabledFor(_DEBUG):
                self._log(path, retries, replayed, started, _describe(error))
            if isinstance(error, AccessTokenError) and tokens is not None and token is not None:
                tokens.invalidate(token)
                if not replayed:
                    replayed = True
                    continue
                return error
            delay = self.retry.retry_delay(error, retry=retries, idempotent=idempotent)
            if delay is None:
                return error
            retries += 1
            if _logger.isEnabledFor(_DEBUG):
                _logger.debug("retrying %s in %.2fs (retry %d)", path, delay, retries)
            await anyio.sleep(delay)

    # -- one attempt ----------------------------------------------------------------------------

    def _url(self, engine: _Engine, path: str, token: AccessToken | None) -> Any:
        """The URL of ``path`` with ``token``, built once per token and engine."""
        if token is not engine.url_token:
            engine.urls = {}
            engine.url_token = token
            self._last_token = token
        url = engine.urls.get(path)
        if url is None:
            query = "" if token is None else "?access_token=" + quote(token.value, safe="")
            url = engine.urls[path] = engine.url(self.base_url + path + query)
        return url

    def _response_error(
        self, status: int, content: bytes, content_type: str, url: Any
    ) -> ResponseError:
        path = str(url.path)
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
            body=redact(excerpt, *self._secrets_of(url)),
        )

    def _api_error(
        self, path: str, payload: dict[str, Any], errcode: int | None, *, token_endpoint: bool
    ) -> WxLogisticsError:
        if errcode is None:
            return ResponseError(
                f"{path} answered with a non-numeric errcode {payload.get('errcode')!r}",
                status_code=200,
                path=path,
            )
        payload = self._scrub_payload(payload)
        errmsg = payload.get("errmsg")
        factory = token_endpoint_error if token_endpoint else api_error
        return factory(errcode, errmsg if isinstance(errmsg, str) else "", payload, path)

    def _transport_error(
        self, exc: Exception, url: Any, timeout: bool, may_have_been_sent: bool
    ) -> TransportError:
        path = str(url.path)
        name = type(exc).__name__
        detail = redact(str(exc), *self._secrets_of(url)) or name
        cls = RequestTimeoutError if timeout else TransportError
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

    def _secrets_of(self, url: Any = None) -> tuple[str, ...]:
        """The secrets that could show up in text about a request to ``url``."""
        values = [t.value for t in (self._last_token,) if t is not None]
        if url is not None:
            values.extend(str(v) for v in _query_values(url, "access_token"))
        return (*values, *self._secrets)

    def _scrub_payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A copy of an error payload with secrets masked in its top-level strings."""
        secrets = self._secrets_of()
        return {
            key: "***"
            if key == "access_token"
            else (redact(value, *secrets) if isinstance(value, str) else value)
            for key, value in payload.items()
        }

    def _log(self, path: str, retries: int, replayed: bool, started: float, what: str) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        extra = " (token replay)" if replayed else ""
        _logger.debug("%s attempt=%d%s %s %.1fms", path, retries + 1, extra, what, elapsed)


def _query_values(url: Any, name: str) -> list[str]:
    """Values of a query parameter of an httpx or yarl URL."""
    params = getattr(url, "params", None)
    if params is not None:  # httpx.URL
        return list(params.get_list(name))
    return list(url.query.getall(name, []))


def _describe(error: WxLogisticsError) -> str:
    if isinstance(error, APIError):
        return f"errcode={error.errcode}"
    return f"{type(error).__name__}: {error}"
