"""wxlogistics.queue: the job function, the outcomes hash and collect, on a real redis-server.

The multi-process proof (2 workers, 5,000 cancels, faults, SIGKILL) is tests/test_queue_fleet.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("arq")

from arq import Retry
from redis.exceptions import ConnectionError as RedisConnectionError

import wxlogistics.queue as q
from wxlogistics import CancelOrderRequest, ValidationError
from wxlogistics.testing import FakeWeChat

from . import redis_fixture

redis_server = redis_fixture.redis_server
redis_url = redis_fixture.redis_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # arq and redis.asyncio run on asyncio only


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[Any]:
    redis = await q.connect(redis_url)
    try:
        yield redis
    finally:
        await redis.aclose()


def _ctx(pool: Any, client: Any, job_try: int, max_tries: int = 3) -> dict[str, Any]:
    return {
        "redis": pool,
        "job_try": job_try,
        q._CLIENT: client,
        q._SETTINGS: {"concurrency": 5, "job_timeout": 30.0, "max_tries": max_tries},
    }


def _item(order_id: str) -> list[Any]:
    return [order_id, "SF", "w-" + order_id, None]


async def _stored(pool: Any, batch_id: str) -> dict[str, dict[str, Any]]:
    raw = await pool.hgetall(f"wxlogistics:queue:{batch_id}:outcomes")
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def test_import_wxlogistics_does_not_import_arq() -> None:
    code = "import sys, wxlogistics; print('arq' in sys.modules, 'redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


async def test_first_try_records_each_outcome_by_status(pool: Any) -> None:
    fake = FakeWeChat()
    fake.add_waybill("ok", "SF", "w-ok")
    fake.add_waybill("moved", "SF", "w-moved", state="has_traces")
    fake.add_waybill("gone", "SF", "w-gone", state="cancelled")
    async with fake.client() as client:
        items = [_item("ok"), _item("moved"), _item("gone"), _item("unknown")]
        counts = await q.cancel_chunk(_ctx(pool, client, job_try=1), "b1", items)
    assert counts == {"cancelled": 1, "has_traces": 1, "already_cancelled": 1, "not_found": 1}
    stored = await _stored(pool, "b1")
    assert {k: v["status"] for k, v in stored.items()} == {
        "ok": "cancelled",
        "moved": "has_traces",
        "gone": "already_cancelled",  # a first try: it was cancelled before this batch
        "unknown": "not_found",
    }
    assert stored["moved"]["errcode"] == 9300506
    assert all(v["job_try"] == 1 and v["final"] for v in stored.values())


async def test_retried_job_counts_already_cancelled_as_cancelled_and_skips_recorded(
    pool: Any,
) -> None:
    fake = FakeWeChat()
    for order_id in ("a", "b", "c"):
        fake.add_waybill(order_id, "SF", "w-" + order_id)
    # The first run of the job died after recording "a" and after WeChat carried out "b".
    await pool.hset(
        "wxlogistics:queue:b2:outcomes",
        "a",
        q.QueuedOutcome(order_id="a", status="cancelled", errcode=0).to_json(),
    )
    fake.waybill("a").state = "cancelled"
    fake.waybill("b").state = "cancelled"
    async with fake.client() as client:
        fake.reset_calls()
        counts = await q.cancel_chunk(
            _ctx(pool, client, job_try=2), "b2", [_item("a"), _item("b"), _item("c")]
        )
    assert counts == {"cancelled": 2}
    sent = [call.body["order_id"] for call in fake.calls if call.path.endswith("/order/cancel")]
    assert sorted(sent) == ["b", "c"]  # "a" was recorded: not sent again
    stored = await _stored(pool, "b2")
    assert stored["a"]["job_try"] == 1  # HSETNX: the first outcome stays
    assert {k: v for k, v in stored["b"].items() if k not in ("error", "recorded_at")} == {
        "order_id": "b",
        "status": "cancelled",
        "errcode": 9300524,
        "confirmed_by_retry": True,
        "job_try": 2,
        "final": True,
        "worker": "",  # the start-up hook sets host:pid; this ctx has none
    }
    assert stored["b"]["error"].startswith("AlreadyCancelledError")
    assert stored["c"]["status"] == "cancelled"
    assert stored["c"]["confirmed_by_retry"] is False
    assert fake.stats()["cancelled_twice"] == []


async def test_transient_failure_asks_the_queue_to_retry_then_gives_up_on_the_last_try(
    pool: Any,
) -> None:
    fake = FakeWeChat()
    fake.add_waybill("x", "SF", "w-x")
    fake.add_waybill("y", "SF", "w-y")
    async with fake.client(max_retries=0) as client:
        fake.fail_next(1, status=503)  # "x" or "y", whichever is sent first
        with pytest.raises(Retry):
            await q.cancel_chunk(_ctx(pool, client, job_try=1), "b3", [_item("x"), _item("y")])
        stored = await _stored(pool, "b3")
        assert len(stored) == 1  # the other one is recorded, the failed one is not
        (failed,) = {"x", "y"} - set(stored)
        fake.fail_next(1, status=503)
        counts = await q.cancel_chunk(_ctx(pool, client, job_try=3), "b3", [_item("x"), _item("y")])
    assert counts == {"failed": 1}
    stored = await _stored(pool, "b3")
    assert stored[failed]["status"] == "failed"
    assert stored[failed]["final"] is False
    assert stored[failed]["job_try"] == 3
    assert "503" in stored[failed]["error"]


async def test_enqueue_refuses_duplicate_order_ids_and_is_idempotent(pool: Any) -> None:
    requests = [
        CancelOrderRequest(order_id=f"o{i}", delivery_id="SF", waybill_id=f"w{i}") for i in range(7)
    ]
    with pytest.raises(ValidationError, match="o1"):
        await q.enqueue_cancels(pool, [*requests, requests[1]], batch_id="dup")
    assert await pool.zcard(q.QUEUE_NAME) == 0
    assert await q.enqueue_cancels(pool, requests, batch_id="b4", chunk_size=3) == "b4"
    await q.enqueue_cancels(pool, requests, batch_id="b4", chunk_size=3)
    assert await pool.zcard(q.QUEUE_NAME) == 3  # 3 + 3 + 1 waybills; the second call added none
    report = await q.collect(pool, "b4")
    assert (report.total, len(report.outcomes), report.done) == (7, 0, False)


async def test_collect_fills_in_the_waybills_of_a_job_that_failed_as_a_whole(
    pool: Any, redis_url: str
) -> None:
    from arq.worker import Worker

    requests = [
        CancelOrderRequest(order_id=f"o{i}", delivery_id="SF", waybill_id=f"w{i}") for i in range(4)
    ]
    await q.enqueue_cancels(pool, requests, batch_id="b5", chunk_size=2)

    async def broken(ctx: dict[str, Any], *args: Any) -> None:
        raise RuntimeError("no client")

    from arq.worker import func

    worker = Worker(
        functions=[func(broken, name=q.JOB_FUNCTION)],
        queue_name=q.QUEUE_NAME,
        redis_pool=pool,
        burst=True,
        poll_delay=0.05,
        handle_signals=False,
    )
    await worker.async_run()
    report = await q.collect(pool, "b5")
    assert report.done
    assert report.counts() == {"failed": 4}
    assert all(o.job_try == 0 and not o.final for o in report.outcomes.values())
    assert report.outcomes["o0"].error == "job failed: RuntimeError: no client"


def test_example_runs_as_it_is(redis_url: str) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "queue_cancel.py"
    out = subprocess.run(
        [sys.executable, str(example), "--redis", redis_url, "--count", "300"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].endswith("300/300 outcomes {'cancelled': 300}")
    assert lines[2] == "token fetches at WeChat: 1"


async def test_worker_keeps_the_secret_out_of_settings_and_ctx(redis_url: str) -> None:
    settings = q.worker_settings(
        redis_url=redis_url, appid="wxfake0000000000", secret="s3cr3t-value", base_url=None
    )
    assert "s3cr3t-value" not in repr(settings)
    ctx: dict[str, Any] = {}
    await settings["on_startup"](ctx)
    try:
        # ctx is a frame local of every job (error trackers record it): no secret in it.
        assert "s3cr3t-value" not in repr({k: v for k, v in ctx.items() if k != q._CLIENT})
        assert "s3cr3t-value" not in repr(ctx[q._CLIENT])
        assert ctx[q._WORKER].endswith(f":{os.getpid()}")
    finally:
        await settings["on_shutdown"](ctx)
    assert ctx == {q._SETTINGS: ctx[q._SETTINGS], q._WORKER: ctx[q._WORKER]}


def test_stored_outcome_round_trips_and_ignores_fields_of_a_newer_worker() -> None:
    outcome = q.QueuedOutcome(order_id="o", status="cancelled", errcode=0, job_try=2)
    assert q.QueuedOutcome.from_json(outcome.to_json()) == outcome
    newer = json.dumps({**json.loads(outcome.to_json()), "carrier_ref": "x"})
    assert q.QueuedOutcome.from_json(newer.encode()) == outcome


async def test_a_job_stops_at_its_deadline_cutting_a_hung_cancel_then_the_retry_settles_it(
    pool: Any,
) -> None:
    fake = FakeWeChat()
    fake.add_waybill("fast", "SF", "w-fast")
    fake.add_waybill("hung", "SF", "w-hung")
    async with fake.client() as client:
        await client.get_access_token()
        fake.fail_next(1, latency=30.0)  # the first cancel sent hangs 30 s
        ctx = _ctx(pool, client, job_try=1)
        ctx[q._SETTINGS]["job_timeout"] = 1.0
        ctx[q._SETTINGS]["concurrency"] = 1  # "hung" is sent first, alone
        with anyio.fail_after(5):  # 0.75 s, not 30 s: the hung cancel is cut
            with pytest.raises(Retry):
                await q.cancel_chunk(ctx, "b6", [_item("hung"), _item("fast")])
        assert await _stored(pool, "b6") == {}  # "fast" never started: the deadline came first
        counts = await q.cancel_chunk(
            _ctx(pool, client, job_try=2), "b6", [_item("hung"), _item("fast")]
        )
    assert counts == {"cancelled": 2}
    assert fake.stats()["cancelled_twice"] == []


class _RedisDownFor:
    """The worker's Redis, failing the write of one order_id's outcome (a dropped connection)."""

    def __init__(self, pool: Any, order_id: str) -> None:
        self._pool = pool
        self._order_id = order_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def pipeline(self, **kwargs: Any) -> Any:
        return _Pipe(self._pool.pipeline(**kwargs), self._order_id)


class _Pipe:
    def __init__(self, pipe: Any, order_id: str) -> None:
        self._pipe = pipe
        self._order_id = order_id
        self._fail = False

    async def __aenter__(self) -> _Pipe:
        await self._pipe.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._pipe.__aexit__(*exc)

    def hsetnx(self, key: str, field: str, value: str) -> None:
        self._fail |= field == self._order_id
        self._pipe.hsetnx(key, field, value)

    def expire(self, key: str, seconds: int) -> None:
        self._pipe.expire(key, seconds)

    async def execute(self) -> Any:
        if self._fail:
            raise RedisConnectionError("Connection closed by server.")
        return await self._pipe.execute()


async def test_an_outcome_redis_could_not_record_is_retried_by_the_queue(pool: Any) -> None:
    fake = FakeWeChat()
    fake.add_waybill("good", "SF", "w-good")
    fake.add_waybill("lost", "SF", "w-lost")
    async with fake.client() as client:
        ctx = _ctx(pool, client, job_try=1)
        ctx["redis"] = _RedisDownFor(pool, "lost")
        with pytest.raises(Retry):
            await q.cancel_chunk(ctx, "b7", [_item("good"), _item("lost")])
        assert set(await _stored(pool, "b7")) == {"good"}
        assert fake.waybill("lost").state == "cancelled"  # carried out, not recorded
        counts = await q.cancel_chunk(
            _ctx(pool, client, job_try=2), "b7", [_item("good"), _item("lost")]
        )
    assert counts == {"cancelled": 1}
    stored = await _stored(pool, "b7")
    assert stored["lost"]["confirmed_by_retry"] is True
    assert stored["lost"]["errcode"] == 9300524
    assert await pool.ttl("wxlogistics:queue:b7:outcomes") > 0
