"""Shared test constants and a helper that wires a client to a respx router."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import respx

from wxlogistics import AsyncLogistics, RetryPolicy

BASE = "https://api.weixin.qq.com"
CANCEL = "/cgi-bin/express/business/order/cancel"
STABLE = "/cgi-bin/stable_token"
CLASSIC = "/cgi-bin/token"
APPID = "wx1234567890abcdef"
SECRET = "S3CR3T-app-secret-value"
TOKEN = "ACCESS-TOKEN-one-0123456789"
TOKEN2 = "ACCESS-TOKEN-two-9876543210"
OK = {"errcode": 0, "errmsg": "ok", "delivery_resultcode": 0, "delivery_resultmsg": ""}
IDS = {"order_id": "01234567890123456789", "delivery_id": "SF", "waybill_id": "123456789"}

NO_WAIT = RetryPolicy(initial_delay=0, max_delay=0, jitter=0, max_rate_limit_wait=0)
"""Retries without sleeping (the policy's documented testing shape)."""


def token_response(token: str = TOKEN, expires_in: int = 7200) -> httpx.Response:
    return httpx.Response(200, json={"access_token": token, "expires_in": expires_in})


def make_router() -> respx.Router:
    return respx.Router(base_url=BASE, assert_all_called=False)


def body_of(request: httpx.Request) -> dict[str, Any]:
    value = json.loads(request.content)
    assert isinstance(value, dict)
    return value


@contextlib.asynccontextmanager
async def wired(router: respx.Router, **kwargs: Any) -> AsyncIterator[AsyncLogistics]:
    """An AsyncLogistics sending through ``router`` (no network), closed afterwards."""
    kwargs.setdefault("retry_policy", NO_WAIT)
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as http,
        AsyncLogistics(APPID, SECRET, http_client=http, **kwargs) as client,
    ):
        yield client
