"""Hooks feeding the standard logging module: one line per call, retry and token fetch.

Runs offline against a mocked WeChat (the first cancel answers "system busy" once, so a
retry shows). Events hold no token or secret, so logging them whole is safe.
"""

from __future__ import annotations

import logging

import anyio
import httpx

from wxlogistics import (
    AsyncLogistics,
    CallEvent,
    Hooks,
    LeaseWaitEvent,
    RetryEvent,
    RetryPolicy,
    TokenEvent,
)

log = logging.getLogger("myapp.wechat")


def on_call(event: CallEvent) -> None:
    """One line per finished call; failures at WARNING."""
    level = logging.INFO if event.ok else logging.WARNING
    log.log(
        level,
        "%s errcode=%s error=%s attempts=%d %.1fms may_have_been_sent=%s",
        event.endpoint,
        event.errcode,
        event.error_type,
        event.attempts,
        event.latency_s * 1000,
        event.may_have_been_sent,
    )


def on_retry(event: RetryEvent) -> None:
    """A retry is about to be made."""
    log.info(
        "retrying %s (attempt %d in %.2fs): %s",
        event.endpoint,
        event.attempt,
        event.delay_s,
        event.reason,
    )


def on_token(event: TokenEvent) -> None:
    """A token was fetched or refreshed (never the token itself), or the fetch failed."""
    if event.kind == "failed":
        log.error("token fetch from %s failed: %s", event.source, event.error_type)
    else:
        log.info(
            "token %s from %s in %.1fms, valid %.0fs%s",
            event.kind,
            event.source,
            event.latency_s * 1000,
            event.expires_in_s,
            " (shared store)" if event.from_store else "",
        )


def on_lease_wait(event: LeaseWaitEvent) -> None:
    """This process waited for another one to refresh the shared token."""
    log.info("waited %.2fs for the token lease of %s: %s", event.waited_s, event.key, event.outcome)


HOOKS = Hooks(on_call=on_call, on_retry=on_retry, on_token=on_token, on_lease_wait=on_lease_wait)


def fake_wechat() -> httpx.MockTransport:
    """A token endpoint, and a cancel endpoint that is busy once."""
    busy = [True]

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/stable_token":
            return httpx.Response(200, json={"access_token": "fake-token", "expires_in": 7200})
        if busy:
            busy.pop()
            return httpx.Response(200, json={"errcode": -1, "errmsg": "system busy"})
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    return httpx.MockTransport(handle)


async def main() -> None:
    """Two cancels: the first is retried once, the second goes straight through."""
    async with AsyncLogistics(
        appid="wx1234567890abcdef",
        secret="your-app-secret",
        base_url="https://api.weixin.qq.com",
        transport=fake_wechat(),
        retry_policy=RetryPolicy(initial_delay=0.01, jitter=0),
        hooks=HOOKS,
    ) as client:
        for order_id in ("01234567890123456789", "01234567890123456790"):
            await client.cancel_order(order_id=order_id, delivery_id="SF", waybill_id="123456789")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its own line per request
    anyio.run(main)
