"""No access token or app secret in any message, repr, chained cause, traceback or log record."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import wxlogistics as wx

from .helpers import (
    APPID,
    CANCEL,
    CLASSIC,
    IDS,
    OK,
    SECRET,
    STABLE,
    TOKEN,
    make_router,
    token_response,
    wired,
)

pytestmark = pytest.mark.anyio


def all_text_of(exc: BaseException) -> str:
    """Everything a user, a log or an error tracker could print about ``exc``."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args), repr(vars(current))]
        if current.__traceback__ is not None:
            for frame, _ in traceback.walk_tb(current.__traceback__):
                parts.append(repr(frame.f_locals))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def leaky(kind: str) -> Callable[[httpx.Request], httpx.Response]:
    """A cancel handler whose failures all mention the URL (and so the token)."""

    def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        assert TOKEN in url
        if kind == "connect":
            raise httpx.ConnectError(f"cannot reach {url}", request=request)
        if kind == "read":
            raise httpx.ReadTimeout(f"timed out reading {url}", request=request)
        if kind == "protocol":
            raise httpx.RemoteProtocolError(f"peer closed {url}", request=request)
        if kind == "5xx":
            return httpx.Response(502, text=f"bad gateway for {url}")
        if kind == "html":
            return httpx.Response(200, text=f"<html>{url}</html>")
        if kind == "errmsg":
            return httpx.Response(200, json={"errcode": 40199, "errmsg": f"no waybill {TOKEN}"})
        if kind == "token-error":
            return httpx.Response(
                200, json={"errcode": 40001, "errmsg": f"invalid {TOKEN}", "access_token": TOKEN}
            )
        raise AssertionError(kind)

    return handler


@pytest.mark.parametrize(
    "kind", ["connect", "read", "protocol", "5xx", "html", "errmsg", "token-error"]
)
async def test_no_token_in_any_business_call_error(kind: str) -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(CANCEL).mock(side_effect=leaky(kind))
    async with wired(router, retry_policy=wx.RetryPolicy(max_retries=1, initial_delay=0)) as client:
        with pytest.raises(wx.WxLogisticsError) as info:
            await client.cancel_order(**IDS)
    text = all_text_of(info.value)
    assert TOKEN not in text
    assert SECRET not in text
    assert info.value.__context__ is None  # nothing hidden behind the scrubbed cause


@pytest.mark.parametrize("source", ["stable", "classic"])
@pytest.mark.parametrize("kind", ["connect", "5xx", "errmsg"])
async def test_no_secret_in_token_endpoint_errors(source: str, kind: str) -> None:
    path = STABLE if source == "stable" else CLASSIC

    def handler(request: httpx.Request) -> httpx.Response:
        echo = f"{request.url} {request.content.decode()}"
        assert SECRET in echo
        if kind == "connect":
            raise httpx.ConnectError(f"cannot reach {echo}", request=request)
        if kind == "5xx":
            return httpx.Response(500, text=echo)
        return httpx.Response(200, json={"errcode": 40125, "errmsg": f"invalid appsecret {SECRET}"})

    router = make_router()
    router.route(path=path).mock(side_effect=handler)
    async with wired(router, token_source=source) as client:  # type: ignore[arg-type]
        with pytest.raises(wx.WxLogisticsError) as info:
            await client.cancel_order(**IDS)
    expected = {
        "connect": wx.TransportError,
        "5xx": wx.ResponseError,
        "errmsg": wx.CredentialsError,
    }
    assert isinstance(info.value, expected[kind])
    text = all_text_of(info.value)
    assert SECRET not in text
    assert "***" in text  # the secret was there, and was masked


@pytest.mark.parametrize("source", ["stable", "classic"])
async def test_no_secret_or_token_in_logs(source: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    router = make_router()
    router.route(path=STABLE if source == "stable" else CLASSIC).mock(return_value=token_response())
    router.post(CANCEL).mock(
        side_effect=[
            httpx.Response(200, json={"errcode": 42001, "errmsg": "expired"}),
            httpx.Response(200, json={"errcode": -1}),
            httpx.Response(200, json=OK),
            httpx.Response(200, json={"errcode": 40199, "errmsg": "nope"}),
        ]
    )
    async with wired(router, token_source=source) as client:  # type: ignore[arg-type]
        await client.cancel_order(**IDS)
        with pytest.raises(wx.WaybillNotFoundError):
            await client.cancel_order(**IDS)
    messages = [record.getMessage() for record in caplog.records]
    assert any(record.name == "httpx" for record in caplog.records)  # httpx did log its URLs
    assert any(record.name == "wxlogistics" for record in caplog.records)
    joined = "\n".join(messages)
    assert TOKEN not in joined
    assert SECRET not in joined
    assert "access_token=***" in joined


def test_reprs_hide_secrets() -> None:
    client = wx.AsyncLogistics(APPID, SECRET)
    texts = [
        repr(client),
        repr(client.tokens),
        repr(wx.StableTokenSource(appid=APPID, secret=SECRET)),
        repr(wx.ClassicTokenSource(appid=APPID, secret=SECRET)),
    ]
    for text in texts:
        assert SECRET not in text
    assert APPID in texts[0]


def test_redacting_filter_on_any_logger(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.redact")
    logger.addFilter(wx.RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="tests.redact"):
            url: Any = httpx.URL(f"https://x/y?access_token={TOKEN}&secret={SECRET}")
            logger.info("GET %s -> %d", url, 200)
            logger.info(f'body {{"secret": "{SECRET}"}}')
    finally:
        logger.filters.clear()
    text = caplog.text
    assert TOKEN not in text
    assert SECRET not in text
    assert "-> 200" in text


async def test_api_error_payload_is_scrubbed_at_any_depth() -> None:
    """Item 16: a server echo of the token, nested anywhere, is masked in APIError.payload."""
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(CANCEL).respond(
        json={
            "errcode": 40199,
            "errmsg": f"no such waybill for {TOKEN}",
            "debug": {"access_token": TOKEN, "echo": [f"?access_token={TOKEN}", {"t": TOKEN}]},
        }
    )
    async with wired(router) as client:
        with pytest.raises(wx.WaybillNotFoundError) as info:
            await client.cancel_order(**IDS)
    payload = info.value.payload
    assert TOKEN not in repr(payload)
    assert payload["debug"]["access_token"] == "***"
    assert TOKEN not in all_text_of(info.value)
