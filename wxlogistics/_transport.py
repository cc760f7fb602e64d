"""The request loop: build the request, send it, decode the answer, retry, replay on token errors.

This is the only module besides ``_client`` that imports httpx. Everything it raises is a
:class:`WxLogisticsError` whose message, attributes and chained cause are free of the access
token and the app secret; exceptions are raised from frames that hold no URL.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import anyio
import attrs
import httpx

from ._exceptions import (
    AccessTokenError,
    APIError,
    RequestTimeoutError,
    ResponseError,
    TransportError,
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

# httpx failures after which the request certainly never reached the server.
_NEVER_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


@attrs.frozen
class Endpoint:
    """One WeChat API: its method, path, and whether a call may be repeated safely."""

    method: str
    path: str
    idempotent: bool
    """True when carrying the call out twice does no harm (cancel: yes; addOrder: no)."""


def encode_json(body: Mapping[str, Any]) -> bytes:
    """Encode a JSON body the way WeChat wants it: UTF-8, no escaped non-ASCII (40033)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


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


class Transport:
    """Sends API calls through an ``httpx.AsyncClient`` with tokens, retries and limits."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        timeout: httpx.Timeout,
        retry: RetryPolicy,
        tokens: TokenCache | None,
        max_concurrency: int,
        secrets: tuple[str, ...] = (),
        user_agent: str,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.tokens = tokens
        self._secrets = tuple(s for s in secrets if s)
        self._extensions = {"timeout": timeout.as_dict()}
        headers = dict(http.headers)
        headers.pop("accept-encoding", None)  # JSON answers are small; skip decompression
        headers["user-agent"] = user_agent
        headers["accept"] = "application/json"
        self._get_headers = httpx.Headers(headers)
        headers["content-type"] = "application/json; charset=utf-8"
        self._post_headers = httpx.Headers(headers)
        self._slots = anyio.Semaphore(max_concurrency, fast_acquire=True)
        # URLs embed the token, so they are built once per (token, path).
        self._url_token: AccessToken | None = None
        self._urls: dict[str, httpx.URL] = {}

    # -- public entry points ------------------------------------------------------------------

    async def call(self, endpoint: Endpoint, body: bytes | None) -> dict[str, Any]:
        """Call a business API and return its decoded JSON object (errcode 0 or absent).

        Retries per the :class:`RetryPolicy`; on a token error refreshes the token and replays
        once (a second token error raises :class:`AccessTokenError`).
        """
        tokens = self.tokens
        retries = 0
        replayed = False
        while True:
            token = await tokens.get(self) if tokens is not None else None
            started = time.perf_counter()
            outcome = await self._send(endpoint.method, self._url(endpoint.path, token), body)
            error: WxLogisticsError
            if isinstance(outcome, dict):
                errcode = _errcode_of(outcome)
                if errcode == 0:
                    if _logger.isEnabledFor(_DEBUG):
                        self._log(endpoint.path, retries, replayed, started, "errcode=0")
                    return outcome
                error = self._api_error(endpoint.path, outcome, errcode, token_endpoint=False)
            else:
                error = outcome
            del outcome  # the raw payload may echo secrets; keep it out of this frame
            if _logger.isEnabledFor(_DEBUG):
                self._log(endpoint.path, retries, replayed, started, _describe(error))
            if isinstance(error, AccessTokenError) and tokens is not None and token is not None:
                tokens.invalidate(token)
                if not replayed:
                    replayed = True
                    continue
                raise error
            delay = self.retry.retry_delay(error, retry=retries, idempotent=endpoint.idempotent)
            if delay is None:
                raise error
            retries += 1
            if _logger.isEnabledFor(_DEBUG):
                _logger.debug("retrying %s in %.2fs (retry %d)", endpoint.path, delay, retries)
            await anyio.sleep(delay)

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
        outcome = await self._token_endpoint_outcome(method, path, params, json)
        del params, json  # they hold the secret; the frame that raises must not
        if isinstance(outcome, WxLogisticsError):
            raise outcome
        return outcome

    async def _token_endpoint_outcome(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Mapping[str, Any] | None,
    ) -> dict[str, Any] | WxLogisticsError:
        url = httpx.URL(self.base_url + path + ("?" + urlencode(params) if params else ""))
        body = encode_json(json) if json is not None else None
        retries = 0
        while True:
            started = time.perf_counter()
            outcome = await self._send(method, url, body)
            error: WxLogisticsError
            if isinstance(outcome, dict):
                errcode = _errcode_of(outcome)
                if errcode == 0:
                    if _logger.isEnabledFor(_DEBUG):
                        self._log(path, retries, False, started, "errcode=0")
                    return outcome
                error = self._api_error(path, outcome, errcode, token_endpoint=True)
            else:
                error = outcome
            if _logger.isEnabledFor(_DEBUG):
                self._log(path, retries, False, started, _describe(error))
            delay = self.retry.retry_delay(error, retry=retries, idempotent=True)
            if delay is None:
                return error
            retries += 1
            await anyio.sleep(delay)

    # -- one attempt ----------------------------------------------------------------------------

    def _url(self, path: str, token: AccessToken | None) -> httpx.URL:
        if token is not self._url_token:
            self._urls = {}
            self._url_token = token
        url = self._urls.get(path)
        if url is None:
            query = "" if token is None else "?access_token=" + quote(token.value, safe="")
            url = self._urls[path] = httpx.URL(self.base_url + path + query)
        return url

    async def _send(
        self, method: str, url: httpx.URL, body: bytes | None
    ) -> dict[str, Any] | WxLogisticsError:
        """One HTTP exchange. Returns the decoded JSON object, or the error to raise.

        Errors are returned, not raised, so that the frame which raises them (``call``) holds
        no URL: error trackers that record local variables must not see the token.
        """
        request = httpx.Request(
            method,
            url,
            content=body,
            headers=self._post_headers if body is not None else self._get_headers,
            extensions=self._extensions,
        )
        failure: httpx.HTTPError
        try:
            async with self._slots:
                response = await self.http.send(request)
        except httpx.HTTPError as exc:
            failure = exc
        else:
            content = response.content
            if response.status_code == 200:
                try:
                    payload = json.loads(content, strict=False)
                except ValueError:
                    payload = None
                if type(payload) is dict:
                    return payload
            return self._response_error(response, url)
        return self._transport_error(failure, url)

    def _response_error(self, response: httpx.Response, url: httpx.URL) -> ResponseError:
        content = response.content
        status = response.status_code
        path = url.path
        if status != 200:
            message = f"HTTP {status} from {path}"
        elif not content.strip():
            message = f"{path} answered HTTP 200 with an empty body"
        else:
            message = f"{path} answered HTTP 200 with a body that is not a JSON object"
        ctype = response.headers.get("content-type")
        if ctype:
            message += f" ({ctype})"
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

    def _transport_error(self, exc: httpx.HTTPError, url: httpx.URL) -> TransportError:
        path = url.path
        detail = redact(str(exc), *self._secrets_of(url)) or type(exc).__name__
        cls = RequestTimeoutError if isinstance(exc, httpx.TimeoutException) else TransportError
        error = cls(
            f"{type(exc).__name__} on {path}: {detail}",
            path=path,
            may_have_been_sent=not isinstance(exc, _NEVER_SENT),
        )
        # A copy of the httpx error without its request (whose URL holds the token).
        try:
            cause: BaseException = type(exc)(detail)
        except Exception:  # pragma: no cover - every httpx error takes a message
            cause = RuntimeError(f"{type(exc).__name__}: {detail}")
        error.__cause__ = cause
        error.__suppress_context__ = True
        return error

    # -- helpers --------------------------------------------------------------------------------

    def _secrets_of(self, url: httpx.URL | None = None) -> tuple[str, ...]:
        """The secrets that could show up in text about a request to ``url``."""
        values = [t.value for t in (self._url_token,) if t is not None]
        if url is not None:
            values.extend(url.params.get_list("access_token"))
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


def _describe(error: WxLogisticsError) -> str:
    if isinstance(error, APIError):
        return f"errcode={error.errcode}"
    return f"{type(error).__name__}: {error}"
