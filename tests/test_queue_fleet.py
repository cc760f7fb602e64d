"""The queue's multi-process proof: 2 arq worker processes, 5,000 cancels, faults, a SIGKILL.

The fake WeChat is served over HTTP from this process (a thread with its own event loop) with
faults injected on the cancel path (connections dropped after the cancel was carried out,
503s, errcode -1); each worker is ``python -m wxlogistics.queue worker`` as a user runs it.
One worker is killed with SIGKILL mid-run; its jobs stay in arq's queue and are run again by
the other worker once their in-progress mark expires (``--job-timeout 3``: 13 s).

Figures asserted (and printed with ``-s``): every waybill exactly one final outcome, none
cancelled twice at the fake, 1 token fetch fleet-wide, retried jobs (``job_try`` > 1) among
the outcomes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import anyio
import pytest

pytest.importorskip("arq")

from anyio.from_thread import start_blocking_portal

import wxlogistics.queue as q
from wxlogistics import CancelOrderRequest
from wxlogistics.testing import FakeWeChat, serve

from . import redis_fixture
from .redis_fixture import RedisServer

own_redis_server = redis_fixture.own_redis_server

N = 5000
CANCEL_PATH = "/cgi-bin/express/business/order/cancel"


class FaultyFake(FakeWeChat):
    """Mixed faults on cancels: 2% dropped after being carried out, 2% 503, 1% errcode -1."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._faults = random.Random(7)
        self._drop = self._fault(None, None, None, "after", 0.0, CANCEL_PATH)
        self._503 = self._fault(None, 503, None, None, 0.0, CANCEL_PATH)
        self._busy = self._fault(-1, None, None, None, 0.0, CANCEL_PATH)

    def _take_fault(self, path: str) -> Any:
        if path != CANCEL_PATH:
            return None
        roll = self._faults.random()
        if roll < 0.02:
            return self._drop
        if roll < 0.04:
            return self._503
        if roll < 0.05:
            return self._busy
        return None


def _worker(base_url: str, redis_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WX_APPID": "wxfake0000000000",
        "WX_SECRET": "fake-app-secret",
        "WX_BASE_URL": base_url,
        "PYTHONWARNINGS": "default",
    }
    command = [sys.executable, "-m", "wxlogistics.queue", "--redis", redis_url, "worker"]
    command += ["--job-timeout", "3", "--max-jobs", "10", "--concurrency", "20"]
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_two_workers_5000_cancels_with_faults_and_a_sigkill(
    own_redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FaultyFake(latency=0.005)
    fake.record_calls = False
    requests = []
    for i in range(N):
        order_id = f"q{i:05d}"
        requests.append(CancelOrderRequest(order_id=order_id, delivery_id="SF", waybill_id=f"w{i}"))
        if i % 100 == 1:
            fake.add_waybill(order_id, "SF", f"w{i}", state="has_traces")
        elif i % 100 != 2:  # i % 100 == 2: never created (not found)
            fake.add_waybill(order_id, "SF", f"w{i}")
    expected = {"cancelled": N - 2 * N // 100, "has_traces": N // 100, "not_found": N // 100}

    async def enqueue() -> str:
        redis = await q.connect(own_redis_server.url)
        try:
            return await q.enqueue_cancels(redis, requests, batch_id="fleet")
        finally:
            await redis.aclose()

    async def outcomes(wait: float) -> q.BatchReport:
        redis = await q.connect(own_redis_server.url)
        try:
            return await q.collect(redis, "fleet", wait=wait)
        finally:
            await redis.aclose()

    with start_blocking_portal() as portal:
        future, port = portal.start_task(serve, fake)
        base_url = f"http://127.0.0.1:{port}"
        workers = [_worker(base_url, own_redis_server.url) for _ in range(2)]
        try:
            anyio.run(enqueue)
            started = time.monotonic()
            # Kill worker 0 once a fifth of the batch is recorded: it is running jobs then.
            while True:
                report = anyio.run(outcomes, 0.0)
                if len(report.outcomes) >= N // 5:
                    break
                assert time.monotonic() - started < 30, "no progress"
                assert all(w.poll() is None for w in workers)
                time.sleep(0.05)
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(5)
            killed_at = time.monotonic()
            killed_wall = time.time()
            at_kill = len(report.outcomes)
            in_progress = own_redis_server.command("KEYS", "arq:in-progress:*").count(b"fleet:")
            report = anyio.run(outcomes, 45.0)
            finished = time.monotonic()
            assert workers[1].poll() is None
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                    try:
                        worker.wait(10)
                    except subprocess.TimeoutExpired:
                        worker.kill()
                        worker.wait()
        stats = fake.stats()
        future.cancel()

    counts = Counter(o.status for o in report.outcomes.values())
    retried = [o for o in report.outcomes.values() if o.job_try > 1]
    confirmed = sum(o.confirmed_by_retry for o in report.outcomes.values())
    figures = {
        "outcomes": dict(counts),
        "seconds_to_kill": round(killed_at - started, 2),
        "outcomes_at_kill": at_kill,
        "in_progress_marks_at_kill": in_progress,
        "seconds_total": round(finished - started, 2),
        "seconds_after_kill": round(finished - killed_at, 2),
        "cancels_per_s_before_kill": round(at_kill / (killed_at - started)),
        # From the first outcome recorded (the workers started, token fetched) to the kill.
        "cancels_per_s_both_running": round(
            sum(o.recorded_at <= killed_wall for o in report.outcomes.values())
            / (killed_wall - min(o.recorded_at for o in report.outcomes.values()))
        ),
        "cancel_requests": stats["cancel_requests"],
        "token_fetches": stats["token_fetches"],
        "retried_job_outcomes": len(retried),
        "confirmed_by_retry": confirmed,
    }
    with capsys.disabled():
        print("\nqueue fleet:", figures)
    assert report.done
    assert len(report.outcomes) == N == report.total
    assert set(report.outcomes) == {r.order_id for r in requests}
    assert dict(counts) == expected
    assert all(o.final for o in report.outcomes.values())
    assert stats["cancelled_twice"] == []
    assert stats["states"]["cancelled"] == expected["cancelled"]
    assert stats["token_fetches"] == 1
    assert in_progress > 0
    # A chunk the killed worker was in the middle of: the survivor finished it after the kill,
    # on a later try of the same job (arq ran it again once its in-progress mark expired).
    killed = f":{workers[0].pid}"
    chunks: dict[int, list[q.QueuedOutcome]] = {}
    for o in report.outcomes.values():
        chunks.setdefault(int(o.order_id[1:]) // q.DEFAULT_CHUNK_SIZE, []).append(o)
    resumed = [
        chunk
        for chunk in chunks.values()
        if any(o.worker.endswith(killed) for o in chunk)
        and any(
            not o.worker.endswith(killed) and o.job_try > 1 and o.recorded_at > killed_wall
            for o in chunk
        )
    ]
    figures["chunks_resumed_after_kill"] = len(resumed)
    with capsys.disabled():
        print("chunks of the killed worker finished by the other:", len(resumed))
    assert resumed
    assert retried
