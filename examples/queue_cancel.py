"""Cancel waybills with 2 queue workers against the sandbox: run it as it is.

    pip install 'wxlogistics[queue]'
    redis-server --port 6379 &            # any Redis you can reach
    python examples/queue_cancel.py --redis redis://localhost:6379/0 --count 2000

It serves a fake WeChat (``wxlogistics.testing``) on loopback with the waybills to cancel,
enqueues them (``wxlogistics.queue.enqueue_cancels``), starts 2 workers as separate processes
(``python -m wxlogistics.queue worker``, exactly what you would run on each host), collects
the outcomes from Redis and prints the counts, the token fetches and the rate. Against real
WeChat, run the workers with your ``WX_APPID``/``WX_SECRET`` and leave ``WX_BASE_URL`` unset.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import anyio
from anyio.from_thread import start_blocking_portal

import wxlogistics.queue as q
from wxlogistics import CancelOrderRequest
from wxlogistics.testing import FakeWeChat, serve


def _workers(base_url: str, redis_url: str, n: int) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "WX_APPID": "wxfake0000000000",
        "WX_SECRET": "fake-app-secret",
        "WX_BASE_URL": base_url,
    }
    command = [sys.executable, "-m", "wxlogistics.queue", "--redis", redis_url, "worker"]
    return [subprocess.Popen(command, env=env) for _ in range(n)]


def main() -> int:
    """Enqueue ``--count`` cancels, run 2 workers, print what came back."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--redis", default=os.environ.get("WXL_REDIS_URL", "redis://localhost:6379/0")
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    fake = FakeWeChat(latency=0.005)  # WeChat answers in milliseconds, not microseconds
    fake.record_calls = False
    requests = []
    for i in range(args.count):
        order_id = f"demo{time.time_ns()}-{i}"
        fake.add_waybill(order_id, "SF", f"w{i}")
        requests.append(CancelOrderRequest(order_id=order_id, delivery_id="SF", waybill_id=f"w{i}"))

    async def enqueue() -> str:
        redis = await q.connect(args.redis)
        try:
            return await q.enqueue_cancels(redis, requests)
        finally:
            await redis.aclose()

    async def results(batch_id: str) -> q.BatchReport:
        redis = await q.connect(args.redis)
        try:
            return await q.collect(redis, batch_id, wait=120)
        finally:
            await redis.aclose()

    with start_blocking_portal() as portal:
        future, port = portal.start_task(serve, fake)
        workers = _workers(f"http://127.0.0.1:{port}", args.redis, args.workers)
        try:
            batch_id = anyio.run(enqueue)
            started = time.monotonic()
            report = anyio.run(results, batch_id)
            elapsed = time.monotonic() - started
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(30)
        stats = fake.stats()
        future.cancel()
    print(f"batch {batch_id}: {len(report.outcomes)}/{report.total} outcomes {report.counts()}")
    print(f"{args.workers} workers, {elapsed:.1f} s, {report.total / elapsed:.0f} cancels/s")
    print(f"token fetches at WeChat: {stats['token_fetches']}")
    return 0 if report.done else 1


if __name__ == "__main__":
    sys.exit(main())
