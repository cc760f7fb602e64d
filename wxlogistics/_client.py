"""``AsyncLogistics``: the client users hold."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import AsyncIterable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from ._batch import CancelBatch
from ._constants import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    __version__,
)
from ._exceptions import ClientClosedError, CloudRunOpenAPIError, ValidationError
from ._hooks import Hooks
from ._models import CancelOrderRequest
from ._redact import install_httpx_log_filter
from ._resources import (
    AccountsResource,
    DeliveriesResource,
    OrdersResource,
    PathsResource,
    PrintersResource,
    QuotaResource,
    SandboxResource,
)
from ._retry import RetryPolicy
from ._stores import TokenStore
from ._tokens import (
    CLOUDRUN_BASE_URL,
    DEFAULT_FETCH_TIMEOUT,
    DEFAULT_REFRESH_MARGIN,
    AccessToken,
    ClassicTokenSource,
    CloudRunTokenSource,
    StableTokenSource,
    TokenCache,
    TokenSource,
    source_key,
)
from ._transport import Timeouts, Transport
from ._validate import (
    check_base_url,
    check_max_connections,
    check_max_retries,
    check_secret,
    check_timeout,
)

if TYPE_CHECKING:
    import httpx

    from ._wire import WireTransport

__all__ = ["AsyncLogistics"]


class AsyncLogistics(
    OrdersResource,
    PathsResource,
    AccountsResource,
    DeliveriesResource,
    PrintersResource,
    QuotaResource,
    SandboxResource,
):
    """An async client for WeChat's logistics API (物流助手).

    Methods, 1:1 with WeChat's APIs: ``add_order``, ``get_order``, ``batch_get_order`` (and
    ``batch_get_orders`` for any number), ``cancel_order`` (and ``cancel_orders`` for a
    stream), ``get_path``, ``get_all_delivery``, ``get_quota``, ``get_printer``,
    ``update_printer``, ``bind_account``, ``get_all_account``, ``test_update_order``.

    ::

        async with AsyncLogistics(appid="wx...", secret="...") as client:
            result = await client.cancel_order(
                order_id="01234567890123456789", delivery_id="SF", waybill_id="123456789"
            )

    One instance is safe to share between any number of concurrent tasks, and should be: it
    holds the connection pool and the access-token cache. Use it from one event loop at a
    time (asyncio or trio; one loop after another is fine), and close it with ``aclose()`` or
    ``async with``.

    Every request goes through :attr:`http_client`, an ``httpx.AsyncClient`` that the session
    creates (over :class:`WireTransport`) or that you pass in: its event hooks, auth, headers
    and mounts apply, and respx or pytest-httpx mock it.

    Args:
        appid: The mini program's AppID; defaults to the ``WX_APPID`` environment variable.
        secret: The AppSecret; defaults to ``WX_SECRET``. Never shown in reprs or errors.
        base_url: The API host (a sandbox or a proxy); defaults to ``WX_BASE_URL``, else
            WeChat's.
        timeout: Seconds allowed to send a request and to wait for its answer (connect: at
            most 5 s), or an ``httpx.Timeout`` with every part set; see docs/timeouts.md.
            Applied to every request, also on a client passed as ``http_client``. There is
            no way to turn timeouts off (waiting for a free connection is not timed).
        max_retries: Retries after the first attempt; see :class:`RetryPolicy`. Not together
            with ``retry_policy``.
        retry_policy: Full control over retries.
        token_source: ``"stable"`` (default, ``/cgi-bin/stable_token``), ``"classic"``
            (``/cgi-bin/token``), ``"cloudrun"`` (Cloud Run open-API mode: no token, requests
            to ``http://api.weixin.qq.com``; appid and secret not needed) or any
            :class:`TokenSource` (:class:`CallableTokenSource`, :class:`StaticTokenSource`...).
        token_store: A :class:`TokenStore` shared by processes (:class:`RedisTokenStore`):
            one process fleet-wide fetches, the others take its token. Default: none, the
            token is kept in this client's memory only. Not with ``"cloudrun"``.
        max_connections: Requests in flight at once; more callers queue in the client.
        http_client: An ``httpx.AsyncClient`` to send through. The session does not close it.
        transport: An httpx transport for the ``httpx.AsyncClient`` the session creates (a
            test double, another wire); default :class:`WireTransport`. Not together with
            ``http_client``.
        token_refresh_margin: Refresh a token this many seconds before it expires.
        clock: Monotonic clock for token expiry (for tests).
        hooks: :class:`Hooks`, callbacks called with an event per finished call, retry,
            token fetch and lease wait (docs/observability.md). Default: none, at no cost.
    """

    def __init__(
        self,
        appid: str | None = None,
        secret: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        token_source: TokenSource | Literal["stable", "classic", "cloudrun"] = "stable",
        token_store: TokenStore | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        token_refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        clock: Callable[[], float] | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self._closed = True  # until constructed: __del__ must not warn about a failed __init__
        self._wire: WireTransport | None = None
        error: ValidationError | None = None
        try:
            self._setup(
                appid,
                secret,
                base_url=base_url,
                timeout=timeout,
                max_retries=max_retries,
                retry_policy=retry_policy,
                token_source=token_source,
                token_store=token_store,
                max_connections=max_connections,
                http_client=http_client,
                transport=transport,
                token_refresh_margin=token_refresh_margin,
                clock=clock,
                hooks=hooks,
            )
        except ValidationError as exc:
            # Raised afresh from this frame, with the secret and the URL dropped first:
            # error trackers record the locals of every frame of a traceback.
            error = ValidationError(*exc.args)
        if error is not None:
            secret = appid = base_url = None
            raise error
        self._closed = False

    def _setup(
        self,
        appid: str | None,
        secret: str | None,
        *,
        base_url: str | None,
        timeout: float | httpx.Timeout,
        max_retries: int | None,
        retry_policy: RetryPolicy | None,
        token_source: TokenSource | Literal["stable", "classic", "cloudrun"],
        token_store: TokenStore | None,
        max_connections: int,
        http_client: httpx.AsyncClient | None,
        transport: httpx.AsyncBaseTransport | None,
        token_refresh_margin: float,
        clock: Callable[[], float] | None,
        hooks: Hooks | None = None,
    ) -> None:
        if hooks is not None and not isinstance(hooks, Hooks):
            raise ValidationError(f"hooks must be a Hooks, not {type(hooks).__name__}")
        cloudrun = token_source == "cloudrun"
        if base_url is None:
            base_url = os.environ.get("WX_BASE_URL") or (
                CLOUDRUN_BASE_URL if cloudrun else DEFAULT_BASE_URL
            )
        base_url = check_base_url(base_url)
        max_connections = check_max_connections(max_connections)
        connect, read, write, pool = check_timeout(timeout)
        resolved_timeout = Timeouts(connect=connect, read=read, write=write, pool=pool)
        if retry_policy is None:
            retry_policy = RetryPolicy(
                max_retries=check_max_retries(
                    DEFAULT_MAX_RETRIES if max_retries is None else max_retries
                )
            )
        elif max_retries is not None:
            raise ValidationError(
                "pass max_retries or retry_policy, not both "
                "(RetryPolicy(max_retries=...) sets both)"
            )
        elif not isinstance(retry_policy, RetryPolicy):
            raise ValidationError(
                f"retry_policy must be a RetryPolicy, not {type(retry_policy).__name__}"
            )

        source: TokenSource
        secrets: tuple[str, ...] = ()
        if cloudrun:
            appid = appid if appid is not None else os.environ.get("WX_APPID")
            if appid is not None:
                check_secret("appid", appid)
            if token_store is not None:
                raise ValidationError("token_store has no use with token_source='cloudrun'")
            source = CloudRunTokenSource(appid=appid)
        elif isinstance(token_source, str):
            appid = appid if appid is not None else os.environ.get("WX_APPID")
            secret = secret if secret is not None else os.environ.get("WX_SECRET")
            if appid is None or secret is None:
                raise ValidationError(
                    "appid and secret are required (arguments, or WX_APPID and WX_SECRET)"
                )
            check_secret("appid", appid)
            check_secret("secret", secret)
            if token_source == "stable":
                source = StableTokenSource(appid=appid, secret=secret)
            elif token_source == "classic":
                source = ClassicTokenSource(appid=appid, secret=secret)
            else:
                raise ValidationError(
                    "token_source must be 'stable', 'classic', 'cloudrun' or a TokenSource:"
                    f" {token_source!r}"
                )
            secrets = (secret,)
        elif isinstance(token_source, TokenSource):
            source = token_source
            secret_attr = getattr(token_source, "secret", None)
            if isinstance(secret_attr, str):
                secrets = (secret_attr,)
        else:
            raise ValidationError(
                "token_source must be 'stable', 'classic', 'cloudrun' or a TokenSource:"
                f" {token_source!r}"
            )
        key: str | None = None
        if token_store is not None:
            if not isinstance(token_store, TokenStore):
                raise ValidationError(
                    f"token_store must be a TokenStore, not {type(token_store).__name__}"
                )
            key = source_key(source)
            if key is None:
                raise ValidationError(
                    "token_store needs a token source with an appid and a store_name"
                    f" (its key in the store); {type(source).__name__} has none"
                )
        self.appid: str | None = getattr(source, "appid", None)
        """The AppID tokens are fetched for (None for sources that do not say)."""

        if http_client is not None and transport is not None:
            raise ValidationError("pass http_client or transport, not both")
        import httpx

        from ._wire import PassThroughAuth, WireTransport, skip_cookie_work_without_set_cookie

        owns_http = http_client is None
        if http_client is None:
            if transport is None:
                transport = self._wire = WireTransport(max_connections=max_connections)
            http_client = httpx.AsyncClient(
                transport=transport,
                auth=PassThroughAuth(),
                timeout=resolved_timeout.as_httpx(),
                limits=httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
            )
            skip_cookie_work_without_set_cookie(http_client.cookies)
        elif not isinstance(http_client, httpx.AsyncClient):
            raise ValidationError(
                f"http_client must be an httpx.AsyncClient, not {type(http_client).__name__}"
            )
        self._tokens = TokenCache(
            source,
            refresh_margin=token_refresh_margin,
            fetch_timeout=DEFAULT_FETCH_TIMEOUT,
            clock=clock if clock is not None else time.monotonic,
            store=token_store,
            store_key=key,
            hooks=hooks,
        )
        self._transport = Transport(
            http=http_client,
            owns_http=owns_http,
            base_url=base_url,
            timeout=resolved_timeout,
            retry=retry_policy,
            tokens=None if cloudrun else self._tokens,
            secrets=secrets,
            user_agent=f"wxlogistics/{__version__}",
            max_concurrency=max_connections,
            errcode_overrides={41001: CloudRunOpenAPIError} if cloudrun else None,
            hooks=hooks,
        )
        self._tokens.attach(self._transport)
        install_httpx_log_filter()

    # -- lifecycle -----------------------------------------------------------------------------

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<AsyncLogistics appid={self.appid!r} base_url={self.base_url!r} {state}>"

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if self._closed or self._wire is None:
            return
        if self._wire.holds_connections:
            _warn(
                f"unclosed {self!r}: close it with 'await client.aclose()' or use "
                "'async with AsyncLogistics(...) as client' (its connections are leaking)",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )

    @property
    def base_url(self) -> str:
        """The API host requests go to."""
        return self._transport.base_url

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The ``httpx.AsyncClient`` every request goes through (yours, or the session's)."""
        return self._transport.http

    @property
    def tokens(self) -> TokenCache:
        """The access-token cache (``fetch_count``, ``clear()``, ``await force_refresh()``)."""
        return self._tokens

    @property
    def is_closed(self) -> bool:
        """True after :meth:`aclose`."""
        return self._closed

    async def aclose(self) -> None:
        """Close the client. Idempotent.

        New calls raise :class:`ClientClosedError` at once; calls already sent get up to
        5 seconds to finish (those still running then end as :class:`TransportError` with
        ``may_have_been_sent=True``). Closes the ``httpx.AsyncClient`` only if the session
        created it.
        """
        if self._closed:
            return
        self._closed = True
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncLogistics:
        if self._closed:
            raise ClientClosedError("this AsyncLogistics is closed; create a new one")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- API -----------------------------------------------------------------------------------

    async def get_access_token(self) -> AccessToken:
        """The current access token, fetched if needed (its repr never shows the value).

        For calling other WeChat APIs with the same token. Do not log ``token.value``.
        """
        if self._closed:
            raise ClientClosedError("this AsyncLogistics is closed; create a new one")
        return await self._tokens.get(self._transport)

    def cancel_orders(
        self,
        requests: Iterable[CancelOrderRequest] | AsyncIterable[CancelOrderRequest],
        *,
        concurrency: int = 50,
    ) -> CancelBatch:
        """Cancel many waybills with bounded concurrency, streaming one outcome per request.

        ::

            requests = (CancelOrderRequest(order_id=o, delivery_id=d, waybill_id=w) for ...)
            async with client.cancel_orders(requests, concurrency=50) as outcomes:
                async for outcome in outcomes:  # in completion order
                    print(outcome.request.order_id, outcome.status)

        Requests are read lazily from any iterable or async iterable; a failure ends as that
        request's outcome and never stops the batch. If the block is left early, requests
        already sent are finished and their outcomes kept in ``batch.unconsumed``.
        See :class:`CancelBatch`.
        """
        return CancelBatch(self, requests, concurrency)
