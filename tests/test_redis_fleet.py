"""The multi-process proof: 4 worker processes share one Redis token store.

The fake WeChat is served over HTTP from this process (a thread with its own event loop), so
its counters and helpers (revoke, expire, a stalled token answer) are at hand. Each worker is a
separate Python process running an ``AsyncLogistics`` with a ``RedisTokenStore``; the test
drives them over stdin/stdout (one JSON line per event).

Figures asserted (and printed with ``-s``):
- cold cache, 4 x 500 concurrent cancels: exactly 1 token fetch at the fake;
- every token refused at once (classic: revoked, 40001; stable: expired, 42001): exactly 1
  refresh fleet-wide, 0 failed calls;
- the lease holder killed with SIGKILL while its token request hangs: the others carry on once
  the lease expires (lease_ttl 2 s), 0 of their calls lost;
- Redis stopped mid-run, tokens refused again: 0 calls lost (each process fetches alone).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from wxlogistics.testing import FakeWeChat, serve

from . import redis_fixture
from .redis_fixture import RedisServer

own_redis_server = redis_fixture.own_redis_server

LEASE_TTL = 2.0
LEASE_WAIT = 20.0
TOKEN_PATHS = {"stable": "/cgi-bin/stable_token", "classic": "/cgi-bin/token"}

WORKER = r"""
import asyncio, json, logging, os, sys
import wxlogistics as wx

base_url, redis_url, source, lease_ttl, lease_wait = sys.argv[1:6]
warnings = 0


def emit(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Count(logging.Handler):
    def emit(self, record):
        global warnings
        if record.levelno >= logging.WARNING:
            warnings += 1


logging.getLogger("wxlogistics").addHandler(Count())


class Store(wx.RedisTokenStore):
    async def acquire_lease(self, key, ttl):
        lease = await super().acquire_lease(key, ttl)
        if lease is not None:
            emit({"event": "lease", "pid": os.getpid()})
        return lease


async def main():
    store = Store(redis_url, lease_ttl=float(lease_ttl), lease_wait=float(lease_wait),
                  op_timeout=1.0)
    loop = asyncio.get_running_loop()
    async with wx.AsyncLogistics("wxfake0000000000", "fake-app-secret", base_url=base_url,
                                 token_source=source, token_store=store) as client:
        emit({"event": "ready", "pid": os.getpid()})
        batch = 0
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "quit":
                break
            batch += 1
            n = int(line.split()[1])
            ok = 0
            errors = {}

            async def one(i):
                nonlocal ok
                try:
                    await client.cancel_order(order_id=f"o{os.getpid()}x{batch}x{i}",
                                              delivery_id="SF", waybill_id=f"w{i}")
                    ok += 1
                except Exception as exc:
                    name = type(exc).__name__ + ": " + str(exc)[:120]
                    errors[name] = errors.get(name, 0) + 1

            await asyncio.gather(*(one(i) for i in range(n)))
            emit({"event": "done", "ok": ok, "failed": n - ok, "errors": errors,
                  "fetches": client.tokens.fetch_count, "hits": client.tokens.store_hits,
                  "warnings": warnings})
    await store.aclose()


asyncio.run(main())
"""


class CountingFake(FakeWeChat):
    """Counts token requests as they arrive (a stalled one included)."""

    token_requests = 0

    async def handle_async(self, method: str, path: str, query: str, body: bytes) -> Any:
        if path in TOKEN_PATHS.values():
            self.token_requests += 1
        return await super().handle_async(method, path, query, body)


class Worker:
    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "default"},
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.leases = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = json.loads(line)
            if event["event"] == "lease":
                self.leases += 1
            self.events.put(event)

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def next(self, kind: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"worker {self.process.pid}: no {kind!r} within {timeout}s")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event["event"] == kind:
                return event

    def drain(self) -> None:
        self.leases = 0
        while not self.events.empty():
            self.events.get_nowait()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("quit")
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def _batch(workers: list[Worker], n: int, timeout: float = 60) -> list[dict[str, Any]]:
    for worker in workers:
        worker.send(f"cancel {n}")
    return [worker.next("done", timeout) for worker in workers]


@pytest.mark.parametrize("source", ["stable", "classic"])
def test_four_processes_share_one_token(
    own_redis_server: RedisServer, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = CountingFake(unknown_orders="cancel")
    fake.record_calls = False
    refuse = fake.revoke_tokens if source == "classic" else fake.expire_tokens
    figures: dict[str, Any] = {"source": source}
    with start_blocking_portal() as portal:
        future, port = portal.start_task(serve, fake)
        args = [
            f"http://127.0.0.1:{port}",
            own_redis_server.url,
            source,
            str(LEASE_TTL),
            str(LEASE_WAIT),
        ]
        workers = [Worker(args) for _ in range(4)]
        try:
            for worker in workers:
                worker.next("ready", 30)

            # 1. Cold cache: 4 x 500 concurrent cancels, one token fetch fleet-wide.
            done = _batch(workers, 500)
            assert [d["failed"] for d in done] == [0, 0, 0, 0], done
            assert fake.token_requests == 1
            assert fake.token_fetches == 1
            assert sum(d["fetches"] for d in done) == 1
            assert sum(d["hits"] for d in done) == 3
            figures["cold"] = {"token_fetches": fake.token_fetches, "failed": 0}

            # 2. Every token refused at once: one refresh fleet-wide, no call fails.
            portal.call(refuse)
            done = _batch(workers, 500)
            assert [d["failed"] for d in done] == [0, 0, 0, 0], done
            assert fake.token_requests == 2
            figures["refused"] = {"refreshes": fake.token_requests - 1, "failed": 0}

            if source == "stable":
                # 3. The lease holder is killed mid-refresh (its token request hangs).
                for worker in workers:
                    worker.drain()
                portal.call(refuse)
                portal.call(lambda: fake.fail_next(latency=30.0, path=TOKEN_PATHS[source]))
                for worker in workers:
                    worker.send("cancel 200")
                # Kill once its token request has reached the fake (and hangs there).
                _wait_for(lambda: fake.token_requests == 3, timeout=30)
                holder = _first_lease(workers, timeout=30)
                killed_at = time.monotonic()
                holder.process.send_signal(signal.SIGKILL)
                holder.process.wait(10)
                survivors = [w for w in workers if w is not holder]
                done = [w.next("done", LEASE_WAIT + 30) for w in survivors]
                recovery = time.monotonic() - killed_at
                assert [d["failed"] for d in done] == [0, 0, 0], done
                assert recovery < LEASE_TTL + 8  # at most the lease time (plus a loaded host)
                assert fake.token_requests == 4  # the hung one, then one successor
                figures["kill"] = {
                    "recovery_s": round(recovery, 2),
                    "lease_ttl_s": LEASE_TTL,
                    "lost": 0,
                    "token_requests": 2,
                }

                # 4. Redis stopped mid-run; tokens refused again: every call still succeeds.
                own_redis_server.stop()
                portal.call(refuse)
                done = _batch(survivors, 500)
                assert [d["failed"] for d in done] == [0, 0, 0], done
                assert all(d["warnings"] >= 1 for d in done)
                assert 5 <= fake.token_requests <= 7  # each process fetches on its own
                figures["redis_down"] = {
                    "lost": 0,
                    "token_fetches": fake.token_requests - 4,
                }
        finally:
            for worker in workers:
                worker.stop()
            future.cancel()
    with capsys.disabled():
        print(f"\nfleet figures: {json.dumps(figures)}")


def _wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def _first_lease(workers: list[Worker], timeout: float) -> Worker:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.leases:
                return worker
        time.sleep(0.005)
    raise AssertionError("no worker took the lease")
