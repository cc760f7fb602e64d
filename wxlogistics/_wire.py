"""The wire beneath the session's ``httpx.AsyncClient``: :class:`WireTransport`.

httpx is the HTTP API of wxlogistics (event hooks, auth, mounts, headers, respx); this module
is what carries its requests, as an ``httpx.AsyncBaseTransport``:

- on asyncio, an aiohttp session per running event loop (created on first use there), which
  costs a fraction of httpcore's CPU per request at high concurrency;
- on trio, httpcore through ``httpx.AsyncHTTPTransport``, split into small pools (httpcore
  scans every connection of a pool on each request) behind a stack of free slots, so idle
  connections are reused first and a sequential client uses one connection.

Whatever runs beneath, the transport behaves the same: failures are raised as httpx
exceptions (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``RemoteProtocolError``...),
gzip and deflate answers are decoded within a size bound, response headers may be up to
64 KiB, each attempt has one total deadline, a request marked safe to repeat that fails
before any byte of its answer arrived is sent once more at once, and proxies come from the
environment as httpx reads them. Per-run state (sessions, pools, the concurrency bound) is
closed when its event loop ends, so one client works across ``asyncio.run`` calls and on
asyncio then trio.

This module imports httpx, and aiohttp on first use on asyncio or httpcore (through httpx's
own transport) on first use on trio; ``import wxlogistics`` does not import it.
"""

from __future__ import annotations

import asyncio  # noqa: TID251 - the aiohttp wire is asyncio's by nature; trio uses anyio
import contextlib
import functools
import logging
import ssl
import sys
import threading
import urllib.parse
import urllib.request
import zlib
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from typing import Any

import anyio
import httpx

from ._constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT
from ._exceptions import WxLogisticsError

__all__ = [
    "ADMITTED",
    "RESENT",
    "ended",
    "run_key",
    "skip_cookie_work_without_set_cookie",
    "header_snapshot",
    "request_factory",
    "PassThroughAuth",
    "MAX_HEADER_BYTES",
    "MAX_RESPONSE_BYTES",
    "SAFE_TO_REPEAT",
    "ResponseTooLargeError",
    "WireTransport",
]

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
"""The largest answer body accepted (after decoding); larger ones fail the attempt."""
MAX_HEADER_BYTES = 64 * 1024
"""The largest response header line accepted."""
SAFE_TO_REPEAT = "wxlogistics.safe_to_repeat"
"""Request extension: True when the request may be sent twice (a stale connection is resent)."""
RESENT = "wxlogistics.resent"
"""Response extension: True when the request was sent twice (its first connection died before
any byte of the answer arrived, after the request may have been written)."""
ADMITTED = "wxlogistics.admitted"
"""Request extension: the caller's own bound on requests in flight (it queues callers)."""

_logger = logging.getLogger("wxlogistics")
_SHARD_SIZE = 8
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class ResponseTooLargeError(httpx.DecodingError):
    """The answer's body (after decoding) is larger than the transport accepts."""


class _ClosedTransportError(httpx.ConnectError):
    """The transport was closed before this request could be sent (it was not sent)."""


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying SSL context per process (certifi's CAs, as httpx), built on first use."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


_ORIGINALS: list[Any] = [None, None]  # httpx's and httpcore's methods, once seen unpatched


def _mocked() -> bool:
    """Whether a test double (respx, pytest-httpx) patches httpx's or httpcore's transport.

    httpcore is looked at only once something imported it (respx does, to patch it): the
    aiohttp wire does not need it, and importing it imports trio when trio is installed
    (about 5 MB and 45 ms).
    """
    httpx_method = httpx.AsyncHTTPTransport.handle_async_request
    core = sys.modules.get("httpcore")
    httpcore_method = None if core is None else core.AsyncConnectionPool.handle_async_request
    if httpx_method is _ORIGINALS[0] and httpcore_method is _ORIGINALS[1]:
        return False
    patched = not (
        getattr(httpx_method, "__module__", "").startswith("httpx.")
        and (
            httpcore_method is None
            or getattr(httpcore_method, "__module__", "").startswith("httpcore.")
        )
    )
    if not patched:
        _ORIGINALS[:] = [httpx_method, httpcore_method]
    return patched


def skip_cookie_work_without_set_cookie(cookies: httpx.Cookies) -> None:
    """Make ``cookies.extract_cookies`` return at once for answers without Set-Cookie.

    httpx extracts cookies from every response through urllib's cookie machinery, which
    wraps the request and the response first (about a sixth of a call's CPU here) even when
    there is nothing to extract. WeChat sets no cookies; the session's own client skips that
    work then, and extracts as usual when a Set-Cookie (or Set-Cookie2) header is present.
    """
    extract = cookies.extract_cookies

    def extract_cookies(response: httpx.Response) -> None:
        headers = response.headers
        if _header_list_works():
            # httpx's own item list holds each name lowercased: no list is built per answer.
            for item in headers._list:
                if item[1] in _SET_COOKIE:
                    extract(response)
                    return
            return
        for key, _ in headers.raw:
            if key.lower() in _SET_COOKIE:
                extract(response)
                return

    cookies.extract_cookies = extract_cookies  # type: ignore[method-assign]


_SET_COOKIE = (b"set-cookie", b"set-cookie2")


@functools.cache
def _header_list_works() -> bool:
    """Whether ``httpx.Headers._list`` holds (name, lowercased name, value) byte triples.

    Reading it costs nothing; ``Headers.raw`` builds a new list on every call (about 5,000
    instructions per call here, twice per request). Checked once; the public ``raw`` is used
    when a future httpx keeps its headers otherwise.
    """
    headers = httpx.Headers([("X-One", "1"), ("x-two", "2"), ("X-One", "3")])
    return getattr(headers, "_list", None) == [
        (b"X-One", b"x-one", b"1"),
        (b"x-two", b"x-two", b"2"),
        (b"X-One", b"x-one", b"3"),
    ]


def header_snapshot(headers: httpx.Headers) -> tuple[Any, ...]:
    """A value that changes whenever ``headers`` do: a cheap cache key for a header list."""
    if _header_list_works():
        return tuple(headers._list)
    return tuple(headers.raw)


class PassThroughAuth(httpx.Auth):
    """The session-owned client's auth: send the request as it is, as httpx's default does.

    httpx runs every request through an auth flow; with no auth set it builds an ``Auth()``
    and drives two generators per request (about 15,000 instructions). This one hands the
    request over in one step. Setting ``client.http_client.auth`` replaces it as usual.
    """

    def async_auth_flow(self, request: httpx.Request) -> Any:
        """The flow httpx drives: one request, no retry on the answer."""
        return _OneRequestFlow(request)

    def __repr__(self) -> str:
        return "PassThroughAuth()"


class _OneRequestFlow:
    """What ``httpx.Auth.async_auth_flow`` returns, for a flow of exactly one request."""

    __slots__ = ("_request",)

    def __init__(self, request: httpx.Request) -> None:
        self._request = request

    async def __anext__(self) -> httpx.Request:
        return self._request

    async def asend(self, response: httpx.Response) -> httpx.Request:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        return None


def _env_proxies() -> dict[str, str]:
    """Proxies from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY), as httpx reads them."""
    proxies = urllib.request.getproxies()
    result = {}
    for scheme in ("http", "https"):
        url = proxies.get(scheme) or proxies.get("all")
        if not url:
            continue
        url = url if "://" in url else "http://" + url
        if not url.lower().startswith(("http://", "https://")):
            # A SOCKS proxy needs a library we do not ship: say so once, connect directly.
            _logger.warning(
                "ignoring the %s proxy from the environment: only http(s) proxies are "
                "supported (pass WireTransport(proxy=...) or unset it)",
                url.split("://", 1)[0],
            )
            continue
        result[scheme] = url
    return result


class WireTransport(httpx.AsyncBaseTransport):
    """The default transport of an :class:`AsyncLogistics` session's ``httpx.AsyncClient``.

    Use it under a client of your own to keep the fast wire::

        http = httpx.AsyncClient(transport=wxlogistics.WireTransport(), event_hooks=...)
        client = wxlogistics.AsyncLogistics(http_client=http)

    Args:
        max_connections: Requests in flight at once (per event loop); more wait their turn,
            without a timeout.
        verify: ``True`` (certifi's CAs; one context per process), ``False``, or an
            ``ssl.SSLContext``.
        trust_env: Read ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY``.
        proxy: A proxy URL for every request (overrides the environment).
        max_response_bytes: Larger answers fail with :class:`ResponseTooLargeError`.
        keepalive_expiry: Seconds an idle connection is kept.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = True,
        proxy: str | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self.max_connections = max_connections
        self._verify = verify
        self._proxies = {"http": proxy, "https": proxy} if proxy else {}
        if not proxy and trust_env:
            self._proxies = _env_proxies()
        self._proxy_cache: dict[tuple[str, str], str | None] = {}
        self.max_response_bytes = max_response_bytes
        self._keepalive_expiry = keepalive_expiry
        self._runs: dict[object, _Run] = {}
        self._lock = threading.Lock()
        self._extensions: dict[tuple[int, str | None], dict[str, Any]] = {}
        self._response_headers: dict[tuple[tuple[bytes, bytes], ...], httpx.Headers] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"<WireTransport max_connections={self.max_connections}>"

    @property
    def holds_connections(self) -> bool:
        """True while some event loop's wire is open (until that loop ends or aclose())."""
        return bool(self._runs)

    # -- what httpx calls ---------------------------------------------------------------------

    def handle_async_request(self, request: httpx.Request) -> Coroutine[Any, Any, httpx.Response]:
        """Send ``request`` on the running event loop's wire and return the read response.

        Not ``async def``: it hands over the wire's own coroutine, one frame fewer per call.
        """
        loop = asyncio._get_running_loop()
        run = self._runs.get(loop if loop is not None else _trio_run())
        if run is None or _mocked():
            return self._slow_path(request, loop)
        return run.send(request)

    async def _slow_path(self, request: httpx.Request, loop: Any) -> httpx.Response:
        """The first request on an event loop, or any request while a mock patches httpx."""
        run = self._runs.get(loop if loop is not None else _trio_run())
        if run is None:
            run = await self._start_run(loop)
        if _mocked():
            return await self._send_mocked(request, run)
        return await run.send(request)

    async def aclose(self) -> None:
        """Close the transport: the running event loop's wire now; other loops' as they end."""
        self._closed = True
        loop = asyncio._get_running_loop()
        key = loop if loop is not None else _trio_run()
        run = self._runs.get(key)
        if run is not None:
            await run.lifetime.aclose()  # its finally block closes the wire

    # -- per event loop ------------------------------------------------------------------------

    async def _start_run(self, loop: Any) -> _Run:
        """Open the wire for the running loop (asyncio) or run (trio), closed when it ends."""
        if self._closed:
            raise _ClosedTransportError("the transport is closed")
        key = loop if loop is not None else _trio_run()
        with self._lock:
            for other in list(self._runs):
                if other is not key and not ended(other):
                    raise in_use_elsewhere()
                self._runs.pop(other, None)  # its loop ended without telling us
            run: _Run = _AiohttpRun(self, loop) if loop is not None else _TrioRun(self)
            self._runs[key] = run
        # An async generator parked at its first yield is finalised by the event loop when
        # it ends (asyncio.run's shutdown_asyncgens, trio's end of run): that closes the wire.
        run.lifetime = self._lifetime(key, run)
        await run.lifetime.asend(None)
        return run

    async def _lifetime(self, key: object, run: _Run) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if self._runs.get(key) is run:
                    del self._runs[key]
            with anyio.CancelScope(shield=True):
                await run.aclose()
                if run.fallback is not None:
                    await run.fallback.aclose()

    async def _send_mocked(self, request: httpx.Request, run: _Run) -> httpx.Response:
        """Route through httpx's own transport, so that respx or pytest-httpx sees the request.

        One per event loop, like the wire (a request respx passes through really connects).
        """
        if run.fallback is None:
            run.fallback = httpx.AsyncHTTPTransport(verify=self._ssl_context(), trust_env=False)
        return await run.fallback.handle_async_request(request)

    # -- shared by the wires -------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        verify = self._verify
        if isinstance(verify, ssl.SSLContext):
            return verify
        if verify:
            return shared_ssl_context()
        return _unverified_ssl_context()

    def proxy_for(self, url: httpx.URL) -> str | None:
        """The proxy for ``url`` (None: connect directly); NO_PROXY is honoured."""
        if not self._proxies:
            return None
        key = (url.scheme, url.host)
        if key not in self._proxy_cache:
            proxy = self._proxies.get(url.scheme)
            if proxy and urllib.request.proxy_bypass(url.host):
                proxy = None
            self._proxy_cache[key] = proxy
        return self._proxy_cache[key]

    def finish(
        self,
        status: int,
        raw_headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        content_encoding: str | None,
        reason: str | None = None,
        *,
        resent: bool = False,
    ) -> httpx.Response:
        """The httpx response for a read answer: body decoded (gzip, deflate) within the bound."""
        limit = self.max_response_bytes
        encoding = content_encoding.strip().lower() if content_encoding else None
        if encoding in _ENCODINGS:
            body = _inflate(body, _ENCODINGS[encoding], limit)
            raw_headers = [
                (k, v)
                for k, v in raw_headers
                if k.lower() not in (b"content-encoding", b"content-length")
            ]
        elif len(body) > limit:
            raise ResponseTooLargeError(f"the answer is larger than {limit} bytes")
        extensions = self._extensions.get((status, reason))
        if extensions is None:
            # httpx logs each response's reason phrase; without one it looks it up in an enum.
            phrase = reason if reason is not None else _reason_phrase(status)
            extensions = {
                "http_version": b"HTTP/1.1",
                "reason_phrase": phrase.encode("latin-1", "replace"),  # 200 成功 happens
            }
            if len(self._extensions) < 64:
                self._extensions[(status, reason)] = extensions
        if resent:
            extensions = {**extensions, RESENT: True}
        # Normalising a header list costs a third of building a response; answers repeat
        # theirs (WeChat's change with the Date header, once a second), and each response
        # gets its own copy of the cached Headers.
        key = raw_headers if type(raw_headers) is tuple else tuple(raw_headers)
        headers = self._response_headers.get(key)
        if headers is None:
            if len(self._response_headers) > 64:
                self._response_headers.clear()
            headers = self._response_headers[key] = httpx.Headers(key)
        return _read_response(status, headers, body, extensions)


def _reason_phrase(status: int) -> str:
    return str(httpx.codes.get_reason_phrase(status))


def _read_response(
    status: int,
    raw_headers: httpx.Headers,
    body: bytes,
    extensions: dict[str, Any],
) -> httpx.Response:
    """An ``httpx.Response`` whose body is already read: ``Response(content=...)`` semantics.

    ``Response(content=...)`` pushes the body through httpx's decoder and chunker generators
    and adds default headers: about 119k instructions per answer, a seventh of a call. When
    this httpx version keeps a read body in ``_content`` (checked once, see
    :func:`_content_slot_works`), the response is built from a stream and given its content
    directly; otherwise the public constructor is used.
    """
    if _content_slot_works():
        response = httpx.Response(
            status, headers=raw_headers, stream=httpx.ByteStream(body), extensions=extensions
        )
        response._content = body
        return response
    return httpx.Response(status, headers=raw_headers, content=body, extensions=extensions)


RequestFactory = Callable[
    [str, "httpx.URL | str", httpx.Headers, bytes, dict[str, Any]], httpx.Request
]


@functools.cache
def request_factory() -> RequestFactory:
    """The function that builds each attempt's read ``httpx.Request``.

    It takes (method, url, headers, body, extensions) and returns what
    ``httpx.Request(..., stream=ByteStream(body))`` then ``read()`` would. The constructor
    binds a dozen keyword arguments and rewraps the URL, and ``read()`` checks the stream
    against ``typing.Iterable`` and joins it through a generator: about 8,000 instructions
    per request for a body the caller already holds. When this httpx version builds exactly
    the same object field by field (checked once, here), that is what is used; otherwise
    the constructor and ``read()``.
    """
    request_class, url_class = httpx.Request, httpx.URL
    headers_class, byte_stream = httpx.Headers, httpx.ByteStream
    new = object.__new__

    def public(
        method: str, url: httpx.URL | str, headers: httpx.Headers, body: bytes, ext: dict[str, Any]
    ) -> httpx.Request:
        request = request_class(
            method, url, headers=headers, stream=byte_stream(body), extensions=ext
        )
        request.read()
        return request

    def direct(
        method: str, url: httpx.URL | str, headers: httpx.Headers, body: bytes, ext: dict[str, Any]
    ) -> httpx.Request:
        request: Any = new(request_class)
        request.method = method.upper()
        request.url = url if type(url) is url_class else url_class(url)
        request.headers = headers_class(headers)
        request.extensions = dict(ext)
        request.stream = byte_stream(body)
        request._content = body
        return request  # type: ignore[no-any-return]

    try:
        headers = headers_class([("Host", "x"), ("Content-Length", "8")])
        args = ("post", url_class("http://x/p?q=1"), headers, b'{"x": 1}', {"timeout": None})
        built, made = public(*args), direct(*args)
        same = (
            vars(built).keys() == vars(made).keys()
            and all(
                getattr(built, name) == getattr(made, name)
                for name in ("method", "url", "headers", "extensions", "content")
            )
            and type(built.stream) is type(made.stream)
            and made.read() == b'{"x": 1}'
            and b"".join(made.stream) == b'{"x": 1}'  # type: ignore[arg-type]
            and made.headers is not headers
        )
    except Exception:  # pragma: no cover - a future httpx: the constructor
        same = False
    return direct if same else public


@functools.cache
def _content_slot_works() -> bool:
    """Whether httpx reads a response's body from ``_content`` when it is set (httpx 0.2x)."""

    class Refusing(httpx.ByteStream):
        def __iter__(self) -> Any:
            raise RuntimeError("the stream was read")

        async def __aiter__(self) -> Any:
            raise RuntimeError("the stream was read")
            yield b""  # pragma: no cover

    try:
        response = httpx.Response(200, headers=[(b"a", b"b")], stream=Refusing(b"{}"))
        response._content = b'{"x": 1}'
        return response.read() == b'{"x": 1}' and response.json() == {"x": 1}
    except Exception:  # pragma: no cover - a future httpx: use the public constructor
        return False


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    try:
        decoder = zlib.decompressobj(wbits)
        data = decoder.decompress(body, limit + 1)
        if len(data) > limit or decoder.unconsumed_tail:
            raise ResponseTooLargeError(f"the decoded answer is larger than {limit} bytes")
        return data + decoder.flush()
    except zlib.error as exc:
        if wbits == zlib.MAX_WBITS:  # "deflate" is sometimes sent without its zlib header
            return _inflate(body, -zlib.MAX_WBITS, limit)
        raise httpx.DecodingError(f"the answer's body could not be decoded: {exc}") from None


@functools.cache
def _plain_ssl_context() -> ssl.SSLContext:
    """A context that loads no CA file (cheap), for pools that only ever see http:// hosts."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


@functools.cache
def _unverified_ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _trio_run() -> object:
    """The running trio run (its root task), the key of its wire."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return trio.lowlevel.current_root_task()
        except RuntimeError:
            pass
    raise WxLogisticsError("wxlogistics must be used inside a running asyncio or trio event loop")


def in_use_elsewhere() -> WxLogisticsError:
    """The error for a client used from a second event loop while the first still runs."""
    return WxLogisticsError(
        "this client is in use by another event loop that is still running; create one "
        "AsyncLogistics per event loop (for example one per thread, or inside each asyncio.run)"
    )


def run_key() -> object:
    """What identifies the running event loop (asyncio) or run (trio)."""
    loop = asyncio._get_running_loop()
    return loop if loop is not None else _trio_run()


def ended(key: object) -> bool:
    """Whether the loop (asyncio) or run (trio) that ``key`` names has ended."""
    if isinstance(key, asyncio.AbstractEventLoop):
        return key.is_closed() or not key.is_running()
    coro = getattr(key, "coro", None)  # a trio run's root task: its coroutine ends with the run
    return getattr(coro, "cr_frame", None) is None


class _Run:
    """The wire of one event loop: its connections and its concurrency bound."""

    lifetime: AsyncGenerator[None, None]
    fallback: httpx.AsyncHTTPTransport | None = None

    async def send(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


def _timeouts(request: httpx.Request) -> tuple[float, float]:
    """(connect timeout, total deadline of the attempt) from the request's timeout extension."""
    timeout = request.extensions.get("timeout") or _NO_TIMEOUTS
    cached = _TIMEOUTS.get(id(timeout))
    if cached is not None and cached[0] is timeout:
        return cached[1]
    # A part left unset (None) still gets a bound: the package's defaults.
    connect = timeout.get("connect") or DEFAULT_CONNECT_TIMEOUT
    read = timeout.get("read") or DEFAULT_TIMEOUT
    write = timeout.get("write") or read
    result = (connect, connect + max(read, write))
    if len(_TIMEOUTS) > 64:
        _TIMEOUTS.clear()
    _TIMEOUTS[id(timeout)] = (timeout, result)
    return result


_TIMEOUTS: dict[int, tuple[Any, tuple[float, float]]] = {}  # a client sends one dict each time
_NO_TIMEOUTS: dict[str, Any] = {}


class _AiohttpRun(_Run):
    """aiohttp on one asyncio event loop."""

    def __init__(self, owner: WireTransport, loop: Any) -> None:
        import aiohttp
        import multidict
        import yarl

        self._aiohttp = aiohttp
        self._yarl_url = yarl.URL
        self._owner = owner
        self._slots = asyncio.Semaphore(owner.max_connections)
        connector = aiohttp.TCPConnector(
            limit=owner.max_connections,
            limit_per_host=0,
            keepalive_timeout=owner._keepalive_expiry,
            ssl=False,  # set per https request: no SSL context is built for an http:// host
        )
        # No session-wide skip_auto_headers: aiohttp would rebuild that set into a multidict
        # on every request. Headers aiohttp would add that the request lacks are skipped per
        # request instead (see _AiohttpHeaders), so exactly httpx's headers are sent.
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
            trust_env=False,  # proxies are resolved once, by WireTransport
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
            requote_redirect_url=False,
        )
        self._timeouts: dict[tuple[float, float], Any] = {}
        self._urls: dict[str, Any] = {}
        self._last_parsed: object = None
        self._last_yurl: Any = None
        self._headers: dict[tuple[Any, ...], _AiohttpHeaders] = {}
        self._multidict = multidict.CIMultiDict
        self._failure = _aiohttp_failure_mapper(aiohttp)

    def _yarl(self, url: httpx.URL) -> Any:
        # httpx makes a new URL object per request, over the parsed URL it was made from:
        # when that is the last one seen, no text is built (str() costs about 3,000
        # instructions); else the text is the key.
        parsed = getattr(url, "_uri_reference", None)
        if parsed is not None and parsed is self._last_parsed:
            return self._last_yurl
        yurl = self._yarl_of_text(url)
        self._last_parsed, self._last_yurl = parsed, yurl
        return yurl

    def _yarl_of_text(self, url: httpx.URL) -> Any:
        text = str(url)
        yurl = self._urls.get(text)
        if yurl is None:
            if len(self._urls) > 512:
                self._urls.clear()
            yurl = self._yarl_url(text, encoded=True)
            if yurl.raw_user is not None or yurl.raw_password is not None:
                # httpx turned them into an Authorization header; aiohttp would refuse both.
                yurl = yurl.with_user(None)
            self._urls[text] = yurl
        return yurl

    async def send(self, request: httpx.Request) -> httpx.Response:
        owner = self._owner
        extensions = request.extensions
        key = _timeouts(request)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = self._aiohttp.ClientTimeout(
                total=key[1], sock_connect=key[0]
            )
        url = request.url
        snapshot = header_snapshot(request.headers)
        prepared = self._headers.get(snapshot)
        if prepared is None:
            if len(self._headers) > 64:
                self._headers.clear()
            prepared = _AiohttpHeaders(tuple(request.headers.raw), self._multidict)
            self._headers[snapshot] = prepared
        body = request.content if hasattr(request, "_content") else await request.aread()
        yurl = self._yarl(url)
        headers, skip = prepared.for_request(yurl, request.method, body)
        ssl_context: Any = owner._ssl_context() if url.scheme == "https" else False
        proxy = owner.proxy_for(url) if owner._proxies else None
        resend = extensions.get(SAFE_TO_REPEAT, False)
        first_failure: httpx.HTTPError | None = None
        # A caller that already bounds its requests to our size needs no second queue.
        slots = None if extensions.get(ADMITTED, 1 << 30) <= owner.max_connections else self._slots
        if slots is not None:
            await slots.acquire()
        try:
            if owner._closed:
                raise _ClosedTransportError("the transport was closed before sending")
            while True:
                try:
                    # Awaited, not ``async with``: one coroutine fewer per call; the
                    # response is released below as the context manager would.
                    response = await self._session.request(
                        request.method,
                        yurl,
                        data=body or None,
                        headers=headers,
                        skip_auto_headers=skip,
                        chunked=prepared.chunked or None,
                        allow_redirects=False,
                        timeout=timeout,
                        ssl=ssl_context,
                        proxy=proxy,
                    )
                    try:
                        length = response.content_length
                        if length is not None and length <= owner.max_response_bytes:
                            content = await response.read()  # the common case, inline
                        else:
                            content = await self._read(response)
                    except Exception as exc:
                        raise self._failure(exc, answered=True) from exc
                    finally:
                        response.release()
                    return owner.finish(
                        response.status,
                        response.raw_headers,
                        content,
                        response.headers.get("Content-Encoding"),
                        response.reason,
                        resent=not resend and bool(extensions.get(SAFE_TO_REPEAT)),
                    )
                except httpx.HTTPError:
                    raise
                except Exception as exc:
                    error = self._failure(exc, answered=False)
                    if first_failure is not None:
                        # The resend failed too: the first send may have been carried out,
                        # and its failure says so (a connect error now would say "not sent").
                        raise first_failure from None
                    if resend and isinstance(error, _STALE) and not owner._closed:
                        resend = False
                        first_failure = error
                        continue
                    raise error from exc
        finally:
            if slots is not None:
                slots.release()

    async def _read(self, response: Any) -> bytes:
        limit = self._owner.max_response_bytes
        length = response.content_length
        if length is not None and length <= limit:
            data: bytes = await response.read()
            return data
        if length is not None:
            raise ResponseTooLargeError(f"the answer is larger than {limit} bytes")
        chunks = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLargeError(f"the answer is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        await self._session.close()


class _AiohttpHeaders:
    """One httpx header list as aiohttp should get it, prepared once per distinct list.

    aiohttp writes ``Host`` from the URL and ``Content-Length`` from a bytes body itself, and
    adds ``Accept``, ``Accept-Encoding``, ``User-Agent`` and (with a body, or on POST, PUT and
    PATCH) ``Content-Type`` unless told to skip them. Passing a header aiohttp would write
    anyway costs a multidict operation or two each, so the two it derives are left out when
    they carry the value aiohttp would write; the auto headers the request lacks are skipped,
    so the server sees httpx's headers and no others. aiohttp writes header text as UTF-8,
    which is how httpx stores a text value; a chunked body (``Transfer-Encoding: chunked``,
    httpx's framing for a body of unknown length) is framed by aiohttp, told so.
    """

    __slots__ = ("all", "chunked", "host", "lean", "length", "skip", "skip_with_body")

    def __init__(self, raw: tuple[tuple[bytes, bytes], ...], multidict: Any) -> None:
        try:
            pairs = [(k.decode(), v.decode()) for k, v in raw]
        except UnicodeDecodeError:
            raise httpx.LocalProtocolError(
                "a request header is not UTF-8 text, which the aiohttp wire cannot send as is"
            ) from None
        self.chunked = any(
            k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in pairs
        )
        if self.chunked:  # aiohttp writes its own when told the body is chunked
            pairs = [(k, v) for k, v in pairs if k.lower() != "transfer-encoding"]
        self.all = multidict(pairs)
        names = {k.lower() for k, _ in pairs}
        host = [v for k, v in pairs if k.lower() == "host"]
        length = [v for k, v in pairs if k.lower() == "content-length"]
        # Only a single Host / Content-Length header is left to aiohttp to write.
        self.host = host[0] if len(host) == 1 else None
        self.length = length[0] if len(length) == 1 else None
        lean = [
            (k, v)
            for k, v in pairs
            if not (k.lower() == "host" and self.host is not None)
            and not (k.lower() == "content-length" and self.length is not None)
        ]
        self.lean = multidict(lean)
        skip = [n for n in ("accept", "accept-encoding", "user-agent") if n not in names]
        self.skip = tuple(skip) or None
        if "content-type" not in names:
            skip.append("content-type")
        self.skip_with_body = tuple(skip) or None

    def for_request(self, url: Any, method: str, body: bytes) -> tuple[Any, tuple[str, ...] | None]:
        """(headers, skip_auto_headers) for aiohttp, sending ``body`` to ``url``."""
        # aiohttp adds a Content-Type to a POST, PUT or PATCH even without a body.
        skip = self.skip_with_body if body or method in _BODY_METHODS else self.skip
        if (self.host is None or self.host == url.host_port_subcomponent) and (
            self.length is None or (body and self.length == str(len(body)))
        ):
            return self.lean, skip
        return self.all, skip


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # aiohttp's ClientRequest.POST_METHODS


# Failures before any byte of the answer that a stale keep-alive connection causes.
_STALE = (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError)


def _aiohttp_failure_mapper(aiohttp: Any) -> Callable[..., httpx.HTTPError]:
    """A function mapping an aiohttp (or OS) failure to the matching httpx exception."""

    def failure(exc: BaseException, *, answered: bool) -> httpx.HTTPError:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, httpx.HTTPError):
            return exc
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return httpx.ConnectTimeout(text)
        if isinstance(exc, (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError)):
            return httpx.ProxyError(text)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return httpx.ConnectError(text)
        if isinstance(exc, asyncio.TimeoutError):  # the attempt's deadline (3.10: not builtin)
            return httpx.ReadTimeout(text)
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return httpx.RemoteProtocolError(text)
        if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ClientResponseError)):
            return httpx.RemoteProtocolError(text)
        if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
            return httpx.UnsupportedProtocol(text)
        if isinstance(exc, RuntimeError) and "closed" in str(exc).lower():
            return _ClosedTransportError(text)
        if isinstance(exc, (aiohttp.ClientError, OSError)):
            if not answered and "write" in str(exc).lower():
                return httpx.WriteError(text)
            return httpx.ReadError(text)
        return httpx.TransportError(text)

    return failure


class _TrioRun(_Run):
    """httpcore (through ``httpx.AsyncHTTPTransport``) on one trio run.

    Connections live in small pools (httpcore scans a pool's connections on every request and
    release); a stack of free slots hands out the most recently released one first, so idle
    connections are reused before new ones are opened and a sequential client uses one.
    """

    def __init__(self, owner: WireTransport) -> None:
        self._owner = owner
        total = owner.max_connections
        self._slots = anyio.Semaphore(total, fast_acquire=True)
        count = max(1, -(-total // _SHARD_SIZE))
        size = -(-total // count)
        self._count = count
        self._size = size
        # Per (proxy, https): the pools and a stack of free slots, each naming its pool.
        self._pools: dict[tuple[str | None, bool], list[httpx.AsyncHTTPTransport | None]] = {}
        self._free: dict[tuple[str | None, bool], list[int]] = {}

    def _pool_set(
        self, key: tuple[str | None, bool]
    ) -> tuple[list[httpx.AsyncHTTPTransport | None], list[int]]:
        pools = self._pools.get(key)
        if pools is None:
            # Pools are made when first handed out: max_connections=10,000 costs nothing upfront.
            pools = self._pools[key] = [None] * self._count
            # Pool 0's slots on top, so that light traffic stays on pool 0.
            self._free[key] = [j for j in reversed(range(self._count)) for _ in range(self._size)]
        return pools, self._free[key]

    def _make_pool(
        self,
        pools: list[httpx.AsyncHTTPTransport | None],
        index: int,
        proxy: str | None,
        https: bool,
    ) -> httpx.AsyncHTTPTransport:
        limits = httpx.Limits(
            max_connections=self._size,
            max_keepalive_connections=self._size,
            keepalive_expiry=self._owner._keepalive_expiry,
        )
        pool = pools[index] = httpx.AsyncHTTPTransport(
            verify=self._owner._ssl_context() if https else _plain_ssl_context(),
            limits=limits,
            proxy=proxy,
            trust_env=False,
        )
        return pool

    async def send(self, request: httpx.Request) -> httpx.Response:
        owner = self._owner
        deadline = _timeouts(request)[1]
        resend = request.extensions.get(SAFE_TO_REPEAT, False)
        first_failure: httpx.HTTPError | None = None
        proxy = owner.proxy_for(request.url) if owner._proxies else None
        admitted = request.extensions.get(ADMITTED, 1 << 30) <= owner.max_connections
        async with contextlib.nullcontext() if admitted else self._slots:
            if owner._closed:
                raise _ClosedTransportError("the transport was closed before sending")
            https = request.url.scheme == "https"
            pools, free = self._pool_set((proxy, https))
            index = free.pop() if free else 0
            pool = pools[index] or self._make_pool(pools, index, proxy, https)
            try:
                with anyio.fail_after(deadline):
                    while True:
                        try:
                            response = await pool.handle_async_request(request)
                        except _STALE as exc:
                            if not resend or owner._closed:
                                raise
                            resend = False
                            first_failure = exc
                            continue
                        except httpx.HTTPError:
                            if first_failure is not None:
                                raise first_failure from None  # as on the aiohttp wire
                            raise
                        stream = response.stream
                        assert isinstance(stream, httpx.AsyncByteStream)
                        try:
                            limit = owner.max_response_bytes
                            length = response.headers.get("content-length", "")
                            if length.isdigit() and int(length) > limit:
                                raise ResponseTooLargeError(
                                    f"the answer is larger than {limit} bytes"
                                )
                            body = await _read_stream(stream, limit)
                        finally:
                            await stream.aclose()
                        return owner.finish(
                            response.status_code,
                            response.headers.raw,
                            body,
                            response.headers.get("content-encoding"),
                            resent=not resend and bool(request.extensions.get(SAFE_TO_REPEAT)),
                        )
            except TimeoutError:
                raise httpx.ReadTimeout("the attempt's deadline passed") from None
            finally:
                free.append(index)

    async def aclose(self) -> None:
        for pools in self._pools.values():
            for pool in pools:
                if pool is not None:
                    await pool.aclose()


async def _read_stream(stream: httpx.AsyncByteStream, limit: int) -> bytes:
    chunks = []
    size = 0
    iterator: Any = stream.__aiter__()
    try:
        async for chunk in iterator:
            size += len(chunk)
            if size > limit:
                raise ResponseTooLargeError(f"the answer is larger than {limit} bytes")
            chunks.append(chunk)
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()  # an async generator left early must be closed, not collected
    return b"".join(chunks)
