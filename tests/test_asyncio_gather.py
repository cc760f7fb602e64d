"""The way users batch on asyncio: ``asyncio.gather`` over one shared client (pytest-asyncio)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import wxlogistics as wx

from .helpers import CANCEL, IDS, OK, STABLE, make_router, token_response, wired


@pytest.mark.asyncio
async def test_gather_1000_cold_calls_one_token_fetch() -> None:
    router = make_router()

    async def slow_token(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return token_response()

    token_route = router.post(STABLE).mock(side_effect=slow_token)
    in_flight = peak = 0

    async def cancel(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return httpx.Response(200, json=OK)

    cancel_route = router.post(CANCEL).mock(side_effect=cancel)
    async with wired(router, max_connections=25) as client:
        results = await asyncio.gather(
            *(client.cancel_order(**{**IDS, "waybill_id": f"W{i}"}) for i in range(1000))
        )
    assert all(isinstance(r, wx.CancelOrderResult) for r in results)
    assert token_route.call_count == 1
    assert cancel_route.call_count == 1000
    assert peak == 25  # bounded by max_connections, and the bound is reached
    sent = sorted(int(c.request.content.split(b'"W')[1].split(b'"')[0]) for c in cancel_route.calls)
    assert sent == list(range(1000))
