"""cancel_orders when something fails besides a cancel: the source, the block, the client.

Every test checks the same ledger: the requests that reached the fake WeChat, the requests
pulled from the source, and the outcomes (delivered in the loop plus ``batch.unconsumed``)
match exactly, and the error comes out as itself, not wrapped in exception groups.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path

import anyio
import pytest

import wxlogistics as wx
from wxlogistics.testing import FakeWeChat

if sys.version_info >= (3, 11):
    from builtins import ExceptionGroup
else:
    from exceptiongroup import ExceptionGroup

pytestmark = pytest.mark.anyio

CANCEL_PATH = "/cgi-bin/express/business/order/cancel"


class GatedFake(FakeWeChat):
    """A fake WeChat that counts cancels as they arrive and holds some until released.

    ``hold``: the order ids to hold, or a number: hold the first that many to arrive.
    """

    def __init__(self, hold: Iterable[str] | int = (), **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.hold = hold if isinstance(hold, int) else set(hold)
        self.release = anyio.Event()
        self.arrived: list[str] = []  # order ids, in arrival order (before any answer)
        self.held: list[str] = []
        self.all_held = anyio.Event()  # set when every order to hold has arrived

    async def handle_async(
        self, method: str, path: str, query: str, body: bytes
    ) -> wx.testing.FakeResponse:
        if path == CANCEL_PATH:
            order_id = json.loads(body)["order_id"]
            self.arrived.append(order_id)
            hold = self.hold
            if len(self.arrived) <= hold if isinstance(hold, int) else order_id in hold:
                self.held.append(order_id)
                if len(self.held) == (hold if isinstance(hold, int) else len(hold)):
                    self.all_held.set()
                await self.release.wait()
        return await super().handle_async(method, path, query, body)


def rows(n: int, bad: int | None = None) -> list[tuple[str, str, str]]:
    """``n`` rows of (order_id, delivery_id, waybill_id); row ``bad`` has an empty waybill."""
    return [(f"o{i}", "SF", "" if i == bad else f"W{i}") for i in range(n)]


def fake_for(table: list[tuple[str, str, str]], hold: Iterable[str] | int = ()) -> GatedFake:
    fake = GatedFake(hold=hold)
    for order_id, delivery_id, waybill_id in table:
        if waybill_id:
            fake.add_waybill(order_id, delivery_id, waybill_id)
    return fake


def ids(outcomes: Iterable[wx.CancelOutcome]) -> list[str]:
    return sorted((o.request.order_id for o in outcomes), key=lambda i: int(i[1:]))


async def drive(
    batch: wx.CancelBatch,
    delivered: list[wx.CancelOutcome],
    step: Callable[[wx.CancelOutcome], Awaitable[bool]] | None = None,
) -> None:
    """The usual block: read every outcome into ``delivered``; ``step`` False leaves early."""
    async with batch as outcomes:
        async for outcome in outcomes:
            delivered.append(outcome)
            if step is not None and not await step(outcome):
                break


async def read_into(seen: list[wx.CancelOutcome], outcomes: wx.CancelBatch) -> None:
    async for outcome in outcomes:
        seen.append(outcome)


def frames_of(exc: BaseException) -> list[str]:
    return [frame.f_code.co_name for frame, _ in traceback.walk_tb(exc.__traceback__)]


# -- the source raises ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_source_error_comes_out_as_itself_and_sent_requests_are_kept(kind: str) -> None:
    # The README's first pattern: a generator expression building CancelOrderRequest, with
    # one bad row (25). Rows 21-24 are held at the fake until the row before the bad one is
    # pulled, so they are certainly in flight when the source raises.
    table = rows(40, bad=25)
    fake = fake_for(table, hold=[f"o{i}" for i in range(21, 25)])

    def releasing() -> Iterator[tuple[str, str, str]]:
        for i, row in enumerate(table):
            if i == 25:
                fake.release.set()
            yield row

    async def async_source() -> AsyncIterator[wx.CancelOrderRequest]:
        rows_left = releasing()
        while True:
            await anyio.lowlevel.checkpoint()  # an async source awaits between rows
            row = next(rows_left, None)  # releases the held rows just before the bad one
            if row is None:
                return
            o, d, w = row
            yield wx.CancelOrderRequest(order_id=o, delivery_id=d, waybill_id=w)

    requests = (
        (wx.CancelOrderRequest(order_id=o, delivery_id=d, waybill_id=w) for o, d, w in releasing())
        if kind == "sync"
        else async_source()
    )
    delivered: list[wx.CancelOutcome] = []
    async with fake.client() as client:
        batch = client.cancel_orders(requests, concurrency=5)
        with pytest.raises(wx.ValidationError, match="waybill_id must not be empty") as info:
            await drive(batch, delivered)
    assert info.type is wx.ValidationError  # not an ExceptionGroup around it
    assert batch.stopped_by is info.value
    # The row's own frame is in the traceback, as if the loop had built the request itself.
    assert ("<genexpr>" if kind == "sync" else "async_source") in frames_of(info.value)
    # Rows 0-24 were sent, each has exactly one outcome, and the held ones finished late.
    expected = [f"o{i}" for i in range(25)]
    assert sorted(fake.arrived, key=lambda i: int(i[1:])) == expected
    assert ids(delivered + batch.unconsumed) == expected
    assert batch.started == batch.finished == 25
    assert {f"o{i}" for i in range(21, 25)} <= set(ids(batch.unconsumed))
    assert all(o.status == "cancelled" for o in delivered + batch.unconsumed)
    assert [w.cancellations for w in fake.waybills] == [1] * 25 + [0] * 14


async def test_source_error_at_the_first_row() -> None:
    fake = fake_for(rows(3))

    def source() -> Iterator[wx.CancelOrderRequest]:
        raise OSError("orders.csv: permission denied")
        yield  # pragma: no cover

    delivered: list[wx.CancelOutcome] = []
    async with fake.client() as client:
        batch = client.cancel_orders(source(), concurrency=4)
        with pytest.raises(OSError, match="permission denied") as info:
            await drive(batch, delivered)
    assert info.type is OSError
    assert fake.arrived == []
    assert delivered == batch.unconsumed == []
    assert batch.started == 0


async def test_a_bad_item_stops_the_batch_with_a_type_error() -> None:
    # None is not the end of the source: it is a bad item like any other.
    table = rows(6)
    fake = fake_for(table)
    good = [wx.CancelOrderRequest(order_id=o, delivery_id=d, waybill_id=w) for o, d, w in table]
    async with fake.client() as client:
        batch = client.cancel_orders([*good[:3], None, *good[3:]], concurrency=1)  # type: ignore[list-item]
        delivered: list[wx.CancelOutcome] = []
        with pytest.raises(TypeError, match="not NoneType") as info:
            await drive(batch, delivered)
    assert info.type is TypeError
    assert fake.arrived == ["o0", "o1", "o2"]
    assert ids(delivered + batch.unconsumed) == ["o0", "o1", "o2"]


async def test_source_error_is_raised_when_the_block_is_left_before_seeing_it() -> None:
    table = rows(30, bad=5)
    fake = fake_for(table)
    failed = anyio.Event()

    def source() -> Iterator[wx.CancelOrderRequest]:
        for i, (o, d, w) in enumerate(table):
            if i == 5:
                failed.set()
            yield wx.CancelOrderRequest(order_id=o, delivery_id=d, waybill_id=w)

    async def leave(_: wx.CancelOutcome) -> bool:
        await failed.wait()
        return False  # leaves without asking for the next outcome

    delivered: list[wx.CancelOutcome] = []
    async with fake.client() as client:
        batch = client.cancel_orders(source(), concurrency=3)
        with pytest.raises(wx.ValidationError) as info:
            await drive(batch, delivered, leave)
    assert info.type is wx.ValidationError
    assert len(fake.arrived) == batch.started == len(delivered) + len(batch.unconsumed) == 5
    assert ids(delivered + batch.unconsumed) == [f"o{i}" for i in range(5)]


async def test_the_block_may_catch_the_source_error_and_read_the_rest() -> None:
    table = rows(30, bad=12)
    fake = fake_for(table)
    requests = (wx.CancelOrderRequest(order_id=o, delivery_id=d, waybill_id=w) for o, d, w in table)
    seen: list[wx.CancelOutcome] = []
    async with fake.client() as client:
        batch = client.cancel_orders(requests, concurrency=4)
        async with batch as outcomes:
            with pytest.raises(wx.ValidationError):
                await read_into(seen, outcomes)  # stops at the error
            await read_into(seen, outcomes)  # what was still in flight, then the end
    assert batch.unconsumed == []
    assert (
        ids(seen) == sorted(fake.arrived, key=lambda i: int(i[1:])) == [f"o{i}" for i in range(12)]
    )


async def test_block_error_and_source_error_together_make_a_group() -> None:
    table = rows(30, bad=5)
    fake = fake_for(table)
    failed = anyio.Event()

    def source() -> Iterator[wx.CancelOrderRequest]:
        for i, (o, d, w) in enumerate(table):
            if i == 5:
                failed.set()
            yield wx.CancelOrderRequest(order_id=o, delivery_id=d, waybill_id=w)

    async def fail(_: wx.CancelOutcome) -> bool:
        await failed.wait()
        raise LookupError("the consumer's own bug")

    delivered: list[wx.CancelOutcome] = []
    async with fake.client() as client:
        batch = client.cancel_orders(source(), concurrency=3)
        with pytest.raises(ExceptionGroup) as info:
            await drive(batch, delivered, fail)
    assert [type(e) for e in info.value.exceptions] == [LookupError, wx.ValidationError]
    assert len(fake.arrived) == len(delivered) + len(batch.unconsumed) == 5


async def test_cancellation_wins_over_a_source_error_which_is_kept() -> None:
    table = rows(30, bad=5)
    fake = fake_for(table)
    failed = anyio.Event()

    def source() -> Iterator[wx.CancelOrderRequest]:
        for i, (o, d, w) in enumerate(table):
            if i == 5:
                failed.set()
            yield wx.CancelOrderRequest(order_id=o, delivery_id=d, waybill_id=w)

    delivered: list[wx.CancelOutcome] = []
    async with fake.client() as client:
        batch = client.cancel_orders(source(), concurrency=3)
        with anyio.CancelScope() as scope:
            async with batch as outcomes:
                async for outcome in outcomes:
                    delivered.append(outcome)
                    await failed.wait()
                    scope.cancel()
                    await anyio.lowlevel.checkpoint()  # the cancellation lands here
        assert scope.cancelled_caught
    assert isinstance(batch.stopped_by, wx.ValidationError)
    assert len(fake.arrived) == len(delivered) + len(batch.unconsumed) == 5


# -- the block raises ----------------------------------------------------------------------------


async def test_block_error_comes_out_as_itself() -> None:
    table = rows(60)
    fake = fake_for(table, hold=["o20", "o21", "o22"])
    requests = [wx.CancelOrderRequest(order_id=o, delivery_id=d, waybill_id=w) for o, d, w in table]

    async def fail_once_all_are_held(_: wx.CancelOutcome) -> bool:
        if fake.all_held.is_set():
            fake.release.set()
            raise LookupError("consumer")
        return True

    delivered: list[wx.CancelOutcome] = []
    async with fake.client() as client:
        batch = client.cancel_orders(requests, concurrency=4)
        with pytest.raises(LookupError, match="consumer") as info:
            await drive(batch, delivered, fail_once_all_are_held)
    assert info.type is LookupError
    assert batch.stopped_by is None
    assert len(fake.arrived) == batch.started == len(delivered) + len(batch.unconsumed) < 60
    assert ids(delivered + batch.unconsumed) == sorted(fake.arrived, key=lambda i: int(i[1:]))
    assert {"o20", "o21", "o22"} <= set(ids(batch.unconsumed))


async def test_a_source_error_leaks_no_secret_or_token() -> None:
    table = rows(10, bad=5)
    fake = fake_for(table)
    requests = (wx.CancelOrderRequest(order_id=o, delivery_id=d, waybill_id=w) for o, d, w in table)
    async with fake.client() as client:
        with pytest.raises(wx.ValidationError) as info:
            await drive(client.cancel_orders(requests, concurrency=2), [])
        token = (await client.get_access_token()).value  # the one the batch used
    assert fake.token_fetches == 1
    text = "".join(traceback.format_exception(info.value))
    package = str(Path(wx.__file__).parent)
    sdk_frames = [
        frame
        for frame, _ in traceback.walk_tb(info.value.__traceback__)
        if frame.f_code.co_filename.startswith(package)  # this test's own frame holds `token`
    ]
    assert {"__anext__", "_work"} <= {frame.f_code.co_name for frame in sdk_frames}
    text += "".join(repr(frame.f_locals) for frame in sdk_frames)
    assert fake.secret not in text
    assert token not in text


# -- the client is closed while the batch runs ---------------------------------------------------


def pulled_from(
    table: list[tuple[str, str, str]], client: wx.AsyncLogistics, pulled: list[bool]
) -> Iterator[wx.CancelOrderRequest]:
    """The requests of ``table``; records, for each one pulled, whether the client was closed."""
    for o, d, w in table:
        pulled.append(client.is_closed)
        yield wx.CancelOrderRequest(order_id=o, delivery_id=d, waybill_id=w)


async def close_once_all_are_held(fake: GatedFake, client: wx.AsyncLogistics) -> None:
    """Another task closes the client while the held requests are in flight."""
    await fake.all_held.wait()
    fake.release.set()  # they may answer now, but resume only after the client is closed:
    await client.aclose()  # aclose() marks it closed before its first await


def sent_and_answered(outcome: wx.CancelOutcome) -> bool:
    """Finished normally, or cut short after possibly reaching WeChat (not a lost outcome)."""
    error = outcome.error
    return error is None or (isinstance(error, wx.TransportError) and error.may_have_been_sent)


async def test_closing_the_client_stops_the_batch_and_loses_no_outcome() -> None:
    # Five workers, five requests held in flight (o10-o14) when another task closes the client.
    table = rows(40)
    fake = fake_for(table, hold=[f"o{i}" for i in range(10, 15)])
    pulled: list[bool] = []
    delivered: list[wx.CancelOutcome] = []
    async with fake.client() as client, anyio.create_task_group() as tg:
        tg.start_soon(close_once_all_are_held, fake, client)
        batch = client.cancel_orders(pulled_from(table, client, pulled), concurrency=5)
        with pytest.raises(wx.ClientClosedError, match="closed while cancel_orders ran") as info:
            await drive(batch, delivered)
    assert info.type is wx.ClientClosedError
    assert pulled == [False] * 15  # nothing pulled once the client was closed
    assert sorted(fake.arrived, key=lambda i: int(i[1:])) == [f"o{i}" for i in range(15)]
    assert batch.started == batch.finished == 15
    assert ids(delivered + batch.unconsumed) == [f"o{i}" for i in range(15)]
    assert all(sent_and_answered(o) for o in delivered + batch.unconsumed)


async def test_closing_the_client_with_queued_calls_loses_no_outcome() -> None:
    # Two connections, six workers: two requests are held at the fake, four wait for a
    # connection in the client when it is closed. The two finish; the four end as
    # ClientClosedError outcomes (they never left), and nothing more is pulled.
    # Until AsyncLogistics.aclose() ends queued calls with ClientClosedError, they go on into
    # the closed HTTP client, which raises RuntimeError: those four are left without an outcome.
    table = rows(40)
    fake = fake_for(table, hold=2)
    pulled: list[bool] = []
    delivered: list[wx.CancelOutcome] = []
    async with fake.client(max_connections=2) as client, anyio.create_task_group() as tg:
        tg.start_soon(close_once_all_are_held, fake, client)
        batch = client.cancel_orders(pulled_from(table, client, pulled), concurrency=6)
        with pytest.raises(wx.ClientClosedError, match="closed while cancel_orders ran"):
            await drive(batch, delivered)
    everything = delivered + batch.unconsumed
    assert pulled == [False] * 6
    assert batch.started == batch.finished == len(everything) == 6
    assert ids(everything) == [f"o{i}" for i in range(6)]
    sent = [o for o in everything if not isinstance(o.error, wx.ClientClosedError)]
    assert sorted(o.request.order_id for o in sent) == sorted(fake.arrived) == sorted(fake.held)
    assert len(sent) == 2
    assert all(sent_and_answered(o) for o in sent)


async def test_a_batch_on_a_closed_client_pulls_nothing() -> None:
    table = rows(10)
    fake = fake_for(table)
    client = fake.client()
    await client.aclose()
    pulled: list[bool] = []
    delivered: list[wx.CancelOutcome] = []
    batch = client.cancel_orders(pulled_from(table, client, pulled), concurrency=3)
    with pytest.raises(wx.ClientClosedError) as info:
        await drive(batch, delivered)
    assert info.type is wx.ClientClosedError
    assert pulled == []
    assert delivered == batch.unconsumed == []
    assert fake.arrived == []
