"""The client refuses bad configuration at construction, before anything is sent (issue 8,
items 8, 12, 13, 14), and its error frames hold no secret."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

import wxlogistics as wx

from .test_tokens_secrets import assert_nowhere
from .test_validate_config import (
    BAD_BASE_URLS,
    BAD_MAX_CONNECTIONS,
    BAD_MAX_RETRIES,
    BAD_TIMEOUTS,
)

SECRET = "S3CR3T-app-secret-value"


@pytest.mark.parametrize(("url", "fragment"), [r for r in BAD_BASE_URLS if r[0] is not None])
def test_bad_base_url_is_refused_at_construction(url: Any, fragment: str) -> None:
    with pytest.raises(wx.ValidationError, match="base_url"):
        wx.AsyncLogistics("wxappid", SECRET, base_url=url)


@pytest.mark.parametrize(("timeout", "fragment"), [*BAD_TIMEOUTS, (httpx.Timeout(math.inf), "")])
def test_absurd_timeouts_are_refused(timeout: Any, fragment: str) -> None:
    with pytest.raises(wx.ValidationError, match="timeout"):
        wx.AsyncLogistics("wxappid", SECRET, timeout=timeout)


@pytest.mark.parametrize(("value", "fragment"), BAD_MAX_CONNECTIONS)
def test_bad_max_connections(value: Any, fragment: str) -> None:
    with pytest.raises(wx.ValidationError, match="max_connections"):
        wx.AsyncLogistics("wxappid", SECRET, max_connections=value)


@pytest.mark.parametrize(("value", "fragment"), [r for r in BAD_MAX_RETRIES if r[0] is not None])
def test_bad_max_retries(value: Any, fragment: str) -> None:
    with pytest.raises(wx.ValidationError, match="max_retries"):
        wx.AsyncLogistics("wxappid", SECRET, max_retries=value)


def test_max_retries_with_retry_policy_is_refused() -> None:
    with pytest.raises(wx.ValidationError, match="not both"):
        wx.AsyncLogistics("wxappid", SECRET, max_retries=0, retry_policy=wx.RetryPolicy())


@pytest.mark.anyio
async def test_fake_client_honours_max_retries() -> None:
    from wxlogistics.testing import FakeWeChat

    fake = FakeWeChat()
    fake.add_waybill("o1", "SF", "W1")
    fake.fail_next(1, errcode=-1)
    async with fake.client(max_retries=0) as client:
        with pytest.raises(wx.SystemBusyError):
            await client.cancel_order(order_id="o1", delivery_id="SF", waybill_id="W1")
    cancel = "/cgi-bin/express/business/order/cancel"
    assert [c.path for c in fake.calls if c.path == cancel] == [cancel]  # no retry


@pytest.mark.parametrize(
    "secret",
    [SECRET + "\x00", SECRET + "\x1b[2J", "lone\ud800" + SECRET, " " + SECRET, SECRET + "\n"],
)
def test_bad_secret_is_refused_without_showing_it(secret: str) -> None:
    _BOX.append(secret)  # handed over so that this test's own frame holds no secret
    del secret
    with pytest.raises(wx.ValidationError) as info:
        wx.AsyncLogistics("wxappid", _BOX.pop())
    assert_nowhere(info.value, SECRET)


_BOX: list[str] = []


def test_a_bad_setting_leaves_no_secret_in_any_frame() -> None:
    with pytest.raises(wx.ValidationError) as info:
        wx.AsyncLogistics("wxappid", SECRET, timeout=math.nan)
    assert_nowhere(info.value, SECRET)
    with pytest.raises(wx.ValidationError) as info:
        wx.AsyncLogistics("wxappid", SECRET, base_url="https://user:pa55word@example.com")
    assert_nowhere(info.value, SECRET, "pa55word")


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WX_BASE_URL", "http://127.0.0.1:8080/")
    assert wx.AsyncLogistics("wxappid", SECRET).base_url == "http://127.0.0.1:8080"
    monkeypatch.setenv("WX_BASE_URL", "http://127.0.0.1:8080?x=1")
    with pytest.raises(wx.ValidationError, match="base_url"):
        wx.AsyncLogistics("wxappid", SECRET)
