"""cancel_orders: exact outcome counts, bounded concurrency and memory, nothing lost early."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

import wxlogistics as wx
from wxlogistics.testing import FakeWeChat

pytestmark = pytest.mark.anyio


def seeded(n: int, latency: float = 0.0) -> tuple[FakeWeChat, list[wx.CancelOrderRequest]]:
    fake = FakeWeChat(latency=latency, seed=1234)
    requests = []
    for i in range(n):
        state = "has_traces" if i % 10 == 3 else "cancelled" if i % 10 == 7 else "created"
        if i % 10 != 9:  # every tenth order was never created
            fake.add_waybill(f"o{i}", "SF", f"W{i}", state=state)  # type: ignore[arg-type]
        requests.append(
            wx.CancelOrderRequest(order_id=f"o{i}", delivery_id="SF", waybill_id=f"W{i}")
        )
    return fake, requests


async def test_every_request_has_exactly_one_outcome() -> None:
    fake, requests = seeded(500)
    fake.fail_fraction(0.1, errcode=-1)  # retried by the client (7 attempts: 1e-7 to fail)
    policy = wx.RetryPolicy(max_retries=6, initial_delay=0, max_delay=0)
    async with (
        fake.client(retry_policy=policy) as client,
        client.cancel_orders(requests, concurrency=20) as outcomes,
    ):
        seen = [o async for o in outcomes]
    assert sorted(o.request.order_id for o in seen) == sorted(r.order_id for r in requests)
    assert Counter(o.status for o in seen) == {
        "cancelled": 350,
        "has_traces": 50,
        "already_cancelled": 50,
        "not_found": 50,
    }
    assert all((o.result is None) != (o.error is None) for o in seen)
    assert fake.stats()["cancelled_twice"] == []


async def test_failures_do_not_stop_the_batch() -> None:
    fake, requests = seeded(50)
    fake.fail_fraction(1.0, errcode=45009)  # never retried
    async with fake.client() as client, client.cancel_orders(requests, concurrency=5) as outcomes:
        seen = [o async for o in outcomes]
    assert len(seen) == 50
    assert {o.status for o in seen} == {"failed"}
    assert all(isinstance(o.error, wx.RateLimitError) and not o.final for o in seen)


async def test_concurrency_bound_is_reached_not_exceeded() -> None:
    fake, requests = seeded(60, latency=0.02)
    async with fake.client() as client, client.cancel_orders(requests, concurrency=7) as outcomes:
        count = len([o async for o in outcomes])
    assert count == 60
    assert fake.max_concurrent == 7


async def test_requests_are_pulled_lazily() -> None:
    fake, requests = seeded(1000, latency=0.005)
    pulled = 0

    def source() -> Iterator[wx.CancelOrderRequest]:
        nonlocal pulled
        for request in requests:
            pulled += 1
            yield request

    most_ahead = 0
    async with fake.client() as client, client.cancel_orders(source(), concurrency=10) as outcomes:
        consumed = 0
        async for _ in outcomes:
            consumed += 1
            most_ahead = max(most_ahead, pulled - consumed)
            await anyio.sleep(0.001)  # a slow consumer
    assert consumed == 1000
    # Pulled but not consumed: the ones running plus at most `concurrency` waiting outcomes.
    assert most_ahead <= 2 * 10 + 1


async def test_async_iterable_source() -> None:
    fake, requests = seeded(30)

    async def source() -> AsyncIterator[wx.CancelOrderRequest]:
        for request in requests:
            await anyio.lowlevel.checkpoint()
            yield request

    async with fake.client() as client, client.cancel_orders(source(), concurrency=4) as outcomes:
        assert len([o async for o in outcomes]) == 30


async def test_early_break_keeps_in_flight_outcomes() -> None:
    fake, requests = seeded(200, latency=0.02)
    async with fake.client() as client:
        batch = client.cancel_orders(requests, concurrency=10)
        consumed = []
        async with batch as outcomes:
            async for outcome in outcomes:
                consumed.append(outcome)
                if len(consumed) == 15:
                    break
    everything = consumed + batch.unconsumed
    assert len(everything) == batch.started == batch.finished
    assert batch.started < 200  # it stopped pulling
    assert len({o.request.order_id for o in everything}) == len(everything)
    # Every waybill the fake cancelled is accounted for by an outcome.
    cancelled_at_fake = {w.order_id for w in fake.waybills if w.cancellations}
    assert cancelled_at_fake == {o.request.order_id for o in everything if o.status == "cancelled"}


async def test_cancelled_consumer_keeps_in_flight_outcomes() -> None:
    fake, requests = seeded(200, latency=0.05)
    async with fake.client() as client:
        batch = client.cancel_orders(requests, concurrency=10)
        consumed = []
        with anyio.move_on_after(0.12) as scope:
            async with batch as outcomes:
                async for outcome in outcomes:
                    consumed.append(outcome)
        assert scope.cancelled_caught
    everything = consumed + batch.unconsumed
    assert batch.started == batch.finished == len(everything) > 0
    assert {w.order_id for w in fake.waybills if w.cancellations} == {
        o.request.order_id for o in everything if o.status == "cancelled"
    }


async def test_bad_arguments() -> None:
    fake, _ = seeded(1)
    async with fake.client() as client:
        with pytest.raises(wx.ValidationError, match="concurrency"):
            client.cancel_orders([], concurrency=0)
        batch = client.cancel_orders([], concurrency=1)
        with pytest.raises(RuntimeError, match="context manager"):
            await batch.__anext__()
        async with client.cancel_orders([], concurrency=3) as outcomes:
            assert [o async for o in outcomes] == []
