"""Cancels spread over worker processes: an arq job queue on Redis, one access token fleet-wide.

``pip install 'wxlogistics[queue]'`` (arq, redis). Not imported by ``import wxlogistics``.

- **Enqueue** (:func:`enqueue_cancels`): the waybills are cut into chunks (``chunk_size``,
  default 50); each chunk is one arq job with a deterministic id, so enqueueing the same batch
  twice adds nothing.
- **Work** (:func:`worker_settings`, :data:`WorkerSettings`, ``python -m wxlogistics.queue
  worker``): every worker process makes one :class:`AsyncLogistics` in arq's start-up hook,
  sharing its token through a :class:`RedisTokenStore` (one fetch for the whole fleet), and
  runs each chunk's cancels concurrently.
- **Results** (:func:`collect`): each waybill's outcome is written, as soon as it is known,
  to the Redis hash ``{namespace}:queue:{batch_id}:outcomes`` (order_id -> JSON) with
  ``HSETNX``: the first final outcome wins, a retry never overwrites it.

Retries are the queue's. A job whose worker dies (SIGKILL, a lost host) is run again by
another worker once arq's in-progress mark expires (``job_timeout`` + 10 s); a chunk cut short
by a transient failure (network, busy WeChat, after the client's own retries) asks arq to run
it again later (``Retry``) for its waybills without an outcome. A retry skips the waybills
already recorded, and a cancel answered 9300524 (already cancelled) on a retried job
(``job_try > 1``) counts as **cancelled**: the earlier try carried it out. On the last try
(``max_tries``) what is still transient is recorded as ``failed`` (``final`` false).
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251 - arq runs on asyncio only
import contextlib
import json
import os
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import anyio
import attrs

try:
    from arq import Retry
    from arq.connections import ArqRedis, RedisSettings, create_pool
    from arq.jobs import Job, JobStatus
    from arq.worker import Worker, func
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("wxlogistics.queue needs arq: pip install 'wxlogistics[queue]'") from exc

from ._client import AsyncLogistics
from ._exceptions import AlreadyCancelledError, ValidationError, WxLogisticsError
from ._models import CancelOrderRequest, CancelOutcome
from ._redis import DEFAULT_NAMESPACE, RedisTokenStore

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_JOB_TIMEOUT",
    "DEFAULT_MAX_TRIES",
    "JOB_FUNCTION",
    "QUEUE_NAME",
    "BatchReport",
    "QueuedOutcome",
    "WorkerSettings",
    "cancel_chunk",
    "collect",
    "connect",
    "enqueue_cancels",
    "main",
    "worker_settings",
]

QUEUE_NAME = "wxlogistics:queue"
"""The arq queue (a Redis sorted set) the jobs go to: apart from any other arq queue."""
JOB_FUNCTION = "wxlogistics_cancel_chunk"
"""The name the job function is registered under in the worker."""
DEFAULT_CHUNK_SIZE = 50
"""Waybills per job."""
DEFAULT_JOB_TIMEOUT = 60.0
"""Seconds one job may run; a dead worker's job is run again this + 10 s after it started."""
DEFAULT_MAX_TRIES = 5
"""Runs of one job at most (the first included)."""
DEFAULT_RESULT_TTL = 86400
"""Seconds the outcomes of a batch are kept in Redis."""
_CLIENT = "wxlogistics_client"
_STORE = "wxlogistics_store"
_SETTINGS = "wxlogistics_queue"
_WORKER = "wxlogistics_worker"


@attrs.frozen(kw_only=True)
class QueuedOutcome:
    """The final outcome of one waybill of a queued batch (as stored in Redis, as JSON)."""

    order_id: str
    """The waybill's order_id (the key in the outcomes hash)."""
    status: str
    """``cancelled``, ``already_cancelled``, ``not_found``, ``has_traces`` or ``failed``."""
    errcode: int | None = None
    """WeChat's errcode of the answer that decided it (9300524 for a retry's confirmation)."""
    error: str | None = None
    """The error (class and message) when it did not succeed at first."""
    confirmed_by_retry: bool = False
    """True when a retry (the client's, or the queue's ``job_try > 1``) answered 9300524."""
    job_try: int = 1
    """The run of the job that recorded it (arq's ``job_try``; 0 when filled in by collect)."""
    final: bool = True
    """False when asking again later could end differently (gave up on a transient failure)."""
    worker: str = ""
    """``host:pid`` of the worker that recorded it (empty when filled in by collect)."""
    recorded_at: float = 0.0
    """When it was recorded (epoch seconds)."""

    def to_json(self) -> str:
        """The JSON stored in the outcomes hash."""
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | bytes) -> QueuedOutcome:
        """Read one stored outcome back (fields it does not know, from a newer worker, ignored)."""
        known = {field.name for field in attrs.fields(cls)}
        return cls(**{k: v for k, v in json.loads(data).items() if k in known})


@attrs.frozen(kw_only=True)
class BatchReport:
    """What :func:`collect` found: the outcomes recorded so far and how many are missing."""

    batch_id: str
    """The batch's id."""
    total: int
    """Waybills enqueued."""
    outcomes: dict[str, QueuedOutcome]
    """Order_id -> outcome, for every waybill recorded so far."""

    @property
    def done(self) -> bool:
        """True when every waybill has its outcome."""
        return len(self.outcomes) >= self.total

    def counts(self) -> dict[str, int]:
        """Waybills per status."""
        return dict(Counter(o.status for o in self.outcomes.values()))


def _keys(namespace: str, batch_id: str) -> tuple[str, str]:
    base = f"{namespace}:queue:{batch_id}"
    return base + ":outcomes", base + ":jobs"


async def connect(redis_url: str) -> ArqRedis:
    """An arq Redis pool for ``redis_url`` (``redis://host:6379/0``); close it with ``aclose``."""
    return await create_pool(RedisSettings.from_dsn(redis_url))


async def enqueue_cancels(
    redis: ArqRedis,
    requests: Iterable[CancelOrderRequest],
    *,
    batch_id: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    namespace: str = DEFAULT_NAMESPACE,
    result_ttl: int = DEFAULT_RESULT_TTL,
) -> str:
    """Enqueue one job per ``chunk_size`` waybills; return the batch id (for :func:`collect`).

    Order ids must be unique in a batch (they key the outcomes): a repeat raises
    :class:`ValidationError` before anything is enqueued. Enqueueing the same ``batch_id``
    again adds no job (arq refuses a job id it already holds).
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValidationError(f"chunk_size must be an int >= 1: {chunk_size!r}")
    items: list[list[Any]] = []
    seen: set[str] = set()
    for request in requests:
        if request.order_id in seen:
            raise ValidationError(f"order_id {request.order_id!r} appears twice in the batch")
        seen.add(request.order_id)
        items.append([request.order_id, request.delivery_id, request.waybill_id, request.openid])
    batch_id = batch_id or uuid.uuid4().hex
    _, jobs_key = _keys(namespace, batch_id)
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    job_ids = [f"{namespace}:{batch_id}:{i}" for i in range(len(chunks))]
    # The membership first: collect() needs it to account for a job that failed as a whole.
    async with redis.pipeline(transaction=True) as pipe:
        for job_id, chunk in zip(job_ids, chunks, strict=True):
            pipe.hsetnx(jobs_key, job_id, json.dumps([item[0] for item in chunk]))
        pipe.expire(jobs_key, result_ttl)
        await pipe.execute()
    for job_id, chunk in zip(job_ids, chunks, strict=True):
        await redis.enqueue_job(
            JOB_FUNCTION,
            batch_id,
            chunk,
            namespace,
            result_ttl,
            _job_id=job_id,
            _queue_name=QUEUE_NAME,
        )
    return batch_id


async def collect(
    redis: ArqRedis,
    batch_id: str,
    *,
    wait: float = 0.0,
    namespace: str = DEFAULT_NAMESPACE,
    poll: float = 0.2,
) -> BatchReport:
    """The outcomes of a batch; wait up to ``wait`` seconds for every one of them.

    A job that arq gave up on as a whole (its tries exhausted by dying workers, or failed
    outside the SDK) leaves its unrecorded waybills as ``failed`` outcomes (``final`` false,
    ``job_try`` 0), written here with ``HSETNX`` like the workers' own: every waybill ends
    with exactly one outcome.
    """
    pool: Any = redis  # redis-py's own types make every command "Awaitable | value"
    outcomes_key, jobs_key = _keys(namespace, batch_id)
    deadline = time.monotonic() + wait
    while True:
        jobs = await pool.hgetall(jobs_key)
        members = {_text(job_id): json.loads(ids) for job_id, ids in jobs.items()}
        total = sum(len(ids) for ids in members.values())
        raw = await pool.hgetall(outcomes_key)
        outcomes = {_text(k): QueuedOutcome.from_json(v) for k, v in raw.items()}
        if len(outcomes) < total:
            filled = await _fill_failed_jobs(redis, members, outcomes, outcomes_key)
            if filled:
                continue
        report = BatchReport(batch_id=batch_id, total=total, outcomes=outcomes)
        if report.done or time.monotonic() >= deadline:
            return report
        await anyio.sleep(poll)


async def _fill_failed_jobs(
    redis: ArqRedis,
    members: dict[str, list[str]],
    outcomes: dict[str, QueuedOutcome],
    outcomes_key: str,
) -> bool:
    pool: Any = redis
    filled = False
    for job_id, ids in members.items():
        missing = [i for i in ids if i not in outcomes]
        if not missing:
            continue
        job = Job(job_id, redis, _queue_name=QUEUE_NAME)
        if await job.status() != JobStatus.complete:
            continue
        info = await job.result_info()
        if info is None or info.success:
            # A finished job records every waybill before it returns; a success without
            # them cannot happen, so leave them missing rather than invent an outcome.
            continue
        why = f"job failed: {type(info.result).__name__}: {info.result}"
        for order_id in missing:
            outcome = QueuedOutcome(
                order_id=order_id,
                status="failed",
                error=why,
                job_try=0,
                final=False,
                recorded_at=time.time(),
            )
            await pool.hsetnx(outcomes_key, order_id, outcome.to_json())
        filled = True
    return filled


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _outcome_of(outcome: CancelOutcome, job_try: int, worker: str) -> QueuedOutcome | None:
    """The outcome to record, or None if it is transient (the job is retried for it)."""
    order_id = outcome.request.order_id
    stamp: dict[str, Any] = {"job_try": job_try, "worker": worker, "recorded_at": time.time()}
    result, error = outcome.result, outcome.error
    if result is not None:
        return QueuedOutcome(
            order_id=order_id,
            status="cancelled",
            errcode=result.errcode,
            confirmed_by_retry=result.confirmed_by_retry,
            **stamp,
        )
    assert error is not None
    text = f"{type(error).__name__}: {error}"
    errcode = getattr(error, "errcode", None)
    if isinstance(error, AlreadyCancelledError) and job_try > 1:
        # An earlier run of this job may have carried the cancel out before it died.
        return QueuedOutcome(
            order_id=order_id,
            status="cancelled",
            errcode=errcode,
            error=text,
            confirmed_by_retry=True,
            **stamp,
        )
    if not outcome.final:
        return None
    return QueuedOutcome(
        order_id=order_id, status=outcome.status, errcode=errcode, error=text, **stamp
    )


async def cancel_chunk(
    ctx: dict[str, Any],
    batch_id: str,
    items: list[list[Any]],
    namespace: str = DEFAULT_NAMESPACE,
    result_ttl: int = DEFAULT_RESULT_TTL,
) -> dict[str, int]:
    """The job: cancel one chunk, recording each waybill's outcome as soon as it is known.

    ``ctx`` is arq's (``redis``, ``job_try``) with the client made by the start-up hook.
    Waybills already recorded (by an earlier run) are skipped. Transient failures make the job
    ask arq to run it again (``Retry``), up to the last try, which records them as ``failed``.
    At 75% of its timeout the job stops, cancels in flight included, and asks for a retry for
    the waybills without an outcome.
    Returns the number of outcomes this run recorded, per status.
    """
    client: AsyncLogistics = ctx[_CLIENT]
    settings: dict[str, Any] = ctx[_SETTINGS]
    redis: Any = ctx["redis"]  # an ArqRedis
    job_try: int = ctx.get("job_try", 1)
    worker: str = ctx.get(_WORKER, "")
    last_try = job_try >= settings["max_tries"]
    outcomes_key, _ = _keys(namespace, batch_id)
    recorded = await redis.hmget(outcomes_key, [item[0] for item in items])
    todo = [
        CancelOrderRequest(order_id=o, delivery_id=d, waybill_id=w, openid=openid)
        for (o, d, w, openid), done in zip(items, recorded, strict=True)
        if done is None
    ]
    counts: Counter[str] = Counter()
    transient: dict[str, str] = {}

    async def record(outcome: QueuedOutcome) -> None:
        async with redis.pipeline(transaction=False) as pipe:  # one round trip
            pipe.hsetnx(outcomes_key, outcome.order_id, outcome.to_json())
            pipe.expire(outcomes_key, result_ttl)
            added, _ = await pipe.execute()
        if added:  # else another run recorded it first (HSETNX): that one stands
            counts[outcome.status] += 1

    async def take(outcome: CancelOutcome) -> None:
        order_id = outcome.request.order_id
        queued = _outcome_of(outcome, job_try, worker)
        if queued is None:
            transient[order_id] = f"{type(outcome.error).__name__}: {outcome.error}"
            return
        try:
            await record(queued)
        except (RedisError, OSError) as exc:  # Redis down: the queue's retry records it later
            transient[order_id] = f"could not record the outcome: {type(exc).__name__}: {exc}"

    limiter = anyio.CapacityLimiter(settings["concurrency"])

    async def one(request: CancelOrderRequest) -> None:
        async with limiter:
            try:
                result = await client.cancel_order(
                    order_id=request.order_id,
                    delivery_id=request.delivery_id,
                    waybill_id=request.waybill_id,
                    openid=request.openid,
                )
            except WxLogisticsError as exc:
                outcome = CancelOutcome(request=request, error=exc)
            else:
                outcome = CancelOutcome(request=request, result=result)
        await take(outcome)

    # Not client.cancel_orders: it lets the cancels in flight finish (shielded), which with
    # the client's retries can outlast arq's timeout, and arq fails a timed-out job for good.
    # Here the job's deadline cuts them: the queue's retry settles them (9300524 -> cancelled).
    with anyio.move_on_after(settings["job_timeout"] * 0.75):
        async with anyio.create_task_group() as tg:
            for request in todo:
                tg.start_soon(one, request)
    left = [r.order_id for r in todo if r.order_id not in transient]
    if left:
        still = await redis.hmget(outcomes_key, left)
        left = [order_id for order_id, done in zip(left, still, strict=True) if done is None]
    pending = list(transient) + left
    if pending and not last_try:
        raise Retry(defer=min(2.0 ** (job_try - 1), 30.0))
    for order_id in pending:
        why = transient.get(order_id, "not finished within the job's time")
        await record(
            QueuedOutcome(
                order_id=order_id,
                status="failed",
                error=why,
                job_try=job_try,
                final=False,
                worker=worker,
                recorded_at=time.time(),
            )
        )
    return dict(counts)


class _Secret:
    """Keeps the app secret out of reprs and of arq's ctx (a frame local of every job)."""

    __slots__ = ("value",)

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


def worker_settings(
    *,
    redis_url: str | None = None,
    appid: str | None = None,
    secret: str | None = None,
    base_url: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    max_jobs: int = 10,
    concurrency: int = 20,
    job_timeout: float = DEFAULT_JOB_TIMEOUT,
    max_tries: int = DEFAULT_MAX_TRIES,
    token_source: str = "stable",
) -> dict[str, Any]:
    """The keyword arguments of ``arq.worker.Worker`` for a cancel worker.

    ``redis_url`` defaults to ``$WXL_REDIS_URL`` (else ``redis://localhost:6379/0``);
    ``appid``/``secret``/``base_url`` to ``$WX_APPID``/``$WX_SECRET``/``$WX_BASE_URL`` (as the
    client does). ``max_jobs`` chunks run at once per worker, each with ``concurrency``
    cancels in flight. ``job_timeout``: seconds a job may run (a dead worker's jobs are run
    again ``job_timeout`` + 10 s after they started).
    """
    url = redis_url or os.environ.get("WXL_REDIS_URL") or "redis://localhost:6379/0"
    hidden = _Secret(secret)
    options = {
        "namespace": namespace,
        "concurrency": concurrency,
        "job_timeout": job_timeout,
        "max_tries": max_tries,
    }

    async def startup(ctx: dict[str, Any]) -> None:
        store = RedisTokenStore(url, namespace=namespace)
        ctx[_STORE] = store
        ctx[_SETTINGS] = options
        ctx[_WORKER] = f"{socket.gethostname()}:{os.getpid()}"
        ctx[_CLIENT] = AsyncLogistics(
            appid,
            hidden.value,
            base_url=base_url,
            token_store=store,
            token_source=token_source,  # type: ignore[arg-type]
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        client = ctx.pop(_CLIENT, None)
        if client is not None:
            await client.aclose()
        store = ctx.pop(_STORE, None)
        if store is not None:
            await store.aclose()

    return {
        "functions": [
            func(cancel_chunk, name=JOB_FUNCTION, timeout=job_timeout, max_tries=max_tries)
        ],
        "queue_name": QUEUE_NAME,
        "redis_settings": RedisSettings.from_dsn(url),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "max_jobs": max_jobs,
        "job_timeout": job_timeout,
        "max_tries": max_tries,
        "keep_result": 3600,
        "poll_delay": 0.1,
    }


class WorkerSettings:
    """For arq's own command line: ``arq wxlogistics.queue.WorkerSettings``.

    Configured from the environment only (see :func:`worker_settings`); read at import.
    """

    functions: list[Any]
    queue_name: str
    redis_settings: RedisSettings
    on_startup: Any
    on_shutdown: Any
    max_jobs: int
    job_timeout: float
    max_tries: int
    keep_result: int
    poll_delay: float


for _name, _value in worker_settings().items():
    setattr(WorkerSettings, _name, _value)


async def _run_worker(settings: dict[str, Any], burst: bool) -> int:
    worker = Worker(**settings, burst=burst)
    try:
        await worker.async_run()
    except asyncio.CancelledError:  # SIGINT/SIGTERM: arq cancels its main task
        pass
    finally:
        await worker.close()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wxlogistics.queue",
        description="Cancel waybills through an arq job queue on Redis (see docs/queue.md).",
    )
    parser.add_argument("--redis", default=None, help="default: $WXL_REDIS_URL or localhost")
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    sub = parser.add_subparsers(dest="command", required=True)
    work = sub.add_parser("worker", help="run a worker (WX_APPID, WX_SECRET, WX_BASE_URL)")
    work.add_argument("--max-jobs", type=int, default=10, help="chunks at once (10)")
    work.add_argument("--concurrency", type=int, default=20, help="cancels per chunk (20)")
    work.add_argument("--job-timeout", type=float, default=DEFAULT_JOB_TIMEOUT)
    work.add_argument("--max-tries", type=int, default=DEFAULT_MAX_TRIES)
    work.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    enqueue = sub.add_parser("enqueue", help="enqueue a CSV/JSONL file; prints the batch id")
    enqueue.add_argument("file")
    enqueue.add_argument("--batch-id", default=None)
    enqueue.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    results = sub.add_parser("collect", help="print a batch's outcomes as JSON lines")
    results.add_argument("batch_id")
    results.add_argument("--wait", type=float, default=0.0, help="seconds to wait for all")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wxlogistics.queue worker | enqueue FILE | collect BATCH_ID``.

    Exit codes: 0 done, 1 ``collect`` found outcomes missing, 2 a bad input file.
    """
    args = _parser().parse_args(argv)
    url = args.redis or os.environ.get("WXL_REDIS_URL") or "redis://localhost:6379/0"
    if args.command == "worker":
        settings = worker_settings(
            redis_url=url,
            appid=os.environ.get("WX_APPID"),
            secret=os.environ.get("WX_SECRET"),
            base_url=os.environ.get("WX_BASE_URL"),
            namespace=args.namespace,
            max_jobs=args.max_jobs,
            concurrency=args.concurrency,
            job_timeout=args.job_timeout,
            max_tries=args.max_tries,
        )
        return asyncio.run(_run_worker(settings, args.burst))
    return asyncio.run(_client_command(args, url))


async def _client_command(args: argparse.Namespace, url: str) -> int:
    from pathlib import Path

    from .cli import check_input, read_requests

    redis = await connect(url)
    try:
        if args.command == "enqueue":
            path = Path(args.file)
            exists = await anyio.Path(path).is_file()
            broken = check_input(path, None) if exists else (0, "no such file")
            if broken is not None:
                print(f"{path}:{broken[0]}: error: {broken[1]}", file=sys.stderr)
                return 2
            bad: list[str] = []
            requests = [
                r for _, r in read_requests(path, None, lambda n, why: bad.append(f"{n}: {why}"))
            ]
            for line in bad:
                print(f"{path}:{line} skipped", file=sys.stderr)
            batch_id = await enqueue_cancels(
                redis,
                requests,
                batch_id=args.batch_id,
                chunk_size=args.chunk_size,
                namespace=args.namespace,
            )
            print(batch_id)
            print(f"enqueued {len(requests)} waybills", file=sys.stderr)
            return 0
        report = await collect(redis, args.batch_id, wait=args.wait, namespace=args.namespace)
        for outcome in report.outcomes.values():
            print(outcome.to_json())
        counts = " ".join(f"{k}={v}" for k, v in sorted(report.counts().items()))
        print(f"{len(report.outcomes)}/{report.total} outcomes: {counts}", file=sys.stderr)
        return 0 if report.done else 1
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
