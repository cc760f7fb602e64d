"""The ``wxlogistics`` command: cancel one or many waybills, serve a sandbox, run a demo.

Credentials come from ``--appid/--secret`` or ``WX_APPID``/``WX_SECRET``. Neither the secret
nor a token is ever printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

import anyio

from ._client import AsyncLogistics
from ._constants import DEFAULT_BASE_URL, __version__
from ._exceptions import (
    AccessTokenError,
    AlreadyCancelledError,
    APIError,
    CarrierError,
    ClientClosedError,
    CredentialsError,
    DeliveryNotFoundError,
    InvalidArgumentError,
    OrderNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ResponseError,
    SystemBusyError,
    TransportError,
    ValidationError,
    WaybillHasTracesError,
    WaybillNotFoundError,
    WxLogisticsError,
)
from ._models import CancelOrderRequest, CancelOutcome

if TYPE_CHECKING:
    from .testing import FakeWeChat, WaybillState

__all__ = ["main"]

EXIT_OK = 0
EXIT_REFUSED = 1  # WeChat answered with an errcode (or some batch rows failed)
EXIT_USAGE = 2  # bad arguments, bad input
EXIT_UNREACHABLE = 3  # network or unexpected answer
EXIT_CREDENTIALS = 4  # the token endpoint refused the appid/secret
EXIT_INTERRUPTED = 130

OUTCOMES = ("cancelled", "already_cancelled", "not_found", "has_traces", "failed")

_PLAIN: list[tuple[type[WxLogisticsError], str]] = [
    (ValidationError, "an argument is missing or malformed"),
    (WaybillHasTracesError, "the parcel has already moved, so the waybill cannot be cancelled"),
    (AlreadyCancelledError, "the waybill was already cancelled"),
    (OrderNotFoundError, "WeChat knows no such order"),
    (WaybillNotFoundError, "WeChat knows no such waybill for this order"),
    (DeliveryNotFoundError, "the delivery_id is not a known carrier"),
    (CarrierError, "the carrier refused the cancel"),
    (InvalidArgumentError, "WeChat rejected an argument"),
    (CredentialsError, "WeChat refused the appid/secret (or this machine's IP)"),
    (AccessTokenError, "WeChat kept rejecting the access token"),
    (PermissionDeniedError, "this account may not use the logistics API"),
    (RateLimitError, "a WeChat rate limit or quota was hit; try again later"),
    (SystemBusyError, "WeChat was busy, even after retries"),
    (RequestTimeoutError, "WeChat did not answer in time, even after retries"),
    (TransportError, "WeChat could not be reached"),
    (ResponseError, "WeChat's answer was not understood"),
    (ClientClosedError, "internal error: the client was closed"),
    (APIError, "WeChat refused the request"),
]


def plain_language(error: WxLogisticsError) -> str:
    """A one-line explanation of ``error`` for people."""
    for cls, text in _PLAIN:
        if isinstance(error, cls):
            return text
    return "the request failed"


def exit_code_for(error: WxLogisticsError) -> int:
    """The process exit code that reports ``error``."""
    if isinstance(error, ValidationError):
        return EXIT_USAGE
    if isinstance(error, CredentialsError):
        return EXIT_CREDENTIALS
    if isinstance(error, (TransportError, ResponseError)):
        return EXIT_UNREACHABLE
    return EXIT_REFUSED


# -- argument parsing ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wxlogistics",
        description="Cancel WeChat logistics waybills (物流助手) from the shell.",
    )
    parser.add_argument("--version", action="version", version=f"wxlogistics {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    creds = argparse.ArgumentParser(add_help=False)
    creds.add_argument("--appid", default=os.environ.get("WX_APPID"), help="default: $WX_APPID")
    creds.add_argument("--secret", default=None, help="default: $WX_SECRET (never printed)")
    creds.add_argument("--base-url", default=DEFAULT_BASE_URL, help="API host, e.g. a sandbox")
    creds.add_argument("--timeout", type=float, default=10.0, help="seconds per attempt")
    creds.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")

    cancel = sub.add_parser("cancel", parents=[creds], help="cancel one waybill")
    cancel.add_argument("--order-id", required=True)
    cancel.add_argument("--delivery-id", required=True)
    cancel.add_argument("--waybill-id", required=True)
    cancel.add_argument("--openid")

    batch = sub.add_parser(
        "cancel-batch", parents=[creds], help="cancel every waybill listed in a CSV/JSONL file"
    )
    batch.add_argument(
        "file", type=Path, help="CSV (order_id,delivery_id,waybill_id,openid) or JSONL"
    )
    batch.add_argument("--concurrency", type=int, default=50)
    batch.add_argument(
        "--output",
        type=Path,
        help="JSONL results, appended and resumed (default: FILE.results.jsonl)",
    )
    batch.add_argument("--format", choices=("csv", "jsonl"), help="default: from the file name")

    sandbox = sub.add_parser("sandbox", help="serve a fake WeChat over HTTP on loopback")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--appid", default="wxfake0000000000")
    sandbox.add_argument("--secret", default="fake-app-secret", help="the sandbox's secret")
    sandbox.add_argument("--latency", type=float, default=0.0, help="seconds added per API call")
    sandbox.add_argument("--preload", type=Path, help="CSV/JSONL of waybills to create")
    sandbox.add_argument(
        "--cancel-unknown",
        action="store_true",
        help="answer 0 for unknown orders without storing them (load tests)",
    )
    sandbox.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")

    demo = sub.add_parser("demo", help="batch-cancel a few hundred waybills on an in-process fake")
    demo.add_argument("--orders", type=int, default=400)
    demo.add_argument("--concurrency", type=int, default=50)
    demo.add_argument("--latency", type=float, default=0.01, help="fake WeChat's answer time")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")

    token = sub.add_parser("token", parents=[creds], help="fetch a token; show it redacted")
    del token
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used as the console script)."""
    args = _parser().parse_args(argv)
    if hasattr(args, "secret") and args.command != "sandbox" and args.secret is None:
        args.secret = os.environ.get("WX_SECRET")
    handler: Callable[[argparse.Namespace], Any] = {
        "cancel": _cancel,
        "cancel-batch": _cancel_batch,
        "sandbox": _sandbox,
        "demo": _demo,
        "token": _token,
    }[args.command]
    try:
        code: int = anyio.run(handler, args, backend=args.backend)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    return code


def _client(args: argparse.Namespace, **kwargs: Any) -> AsyncLogistics:
    return AsyncLogistics(
        args.appid, args.secret, base_url=args.base_url, timeout=args.timeout, **kwargs
    )


def _report(error: WxLogisticsError) -> int:
    stream = sys.stderr
    errcode = f" (errcode {error.errcode})" if isinstance(error, APIError) else ""
    print(f"error{errcode}: {plain_language(error)}", file=stream)
    print(f"  {type(error).__name__}: {error}", file=stream)
    return exit_code_for(error)


# -- cancel -------------------------------------------------------------------------------------


async def _cancel(args: argparse.Namespace) -> int:
    try:
        request = CancelOrderRequest(
            order_id=args.order_id,
            delivery_id=args.delivery_id,
            waybill_id=args.waybill_id,
            openid=args.openid,
        )
        async with _client(args) as client:
            result = await client.cancel(request)
    except WxLogisticsError as error:
        return _report(error)
    carrier = (
        "" if result.delivery_resultcode is None else f", carrier code {result.delivery_resultcode}"
    )
    message = result.errmsg or "ok"
    print(f"cancelled: order {request.order_id}, waybill {request.waybill_id} ({message}{carrier})")
    return EXIT_OK


# -- token --------------------------------------------------------------------------------------


async def _token(args: argparse.Namespace) -> int:
    try:
        async with _client(args) as client:
            token = await client.get_access_token()
            remaining = token.expires_at - time.monotonic()
    except WxLogisticsError as error:
        return _report(error)
    shown = f"{token.value[:4]}…{token.value[-4:]}" if len(token.value) > 16 else "****"
    print(f"access token {shown} ({len(token.value)} chars), valid for {remaining:.0f}s more")
    return EXIT_OK


# -- batch input and output ---------------------------------------------------------------------


class BadRow(Exception):
    """A row of the input that is not a usable request."""


def read_requests(
    path: Path, fmt: str | None, on_bad_row: Callable[[int, str], None]
) -> Iterator[tuple[int, CancelOrderRequest]]:
    """Yield (line number, request) from a CSV or JSONL file, lazily; report bad rows."""
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = _csv_rows(handle) if fmt == "csv" else _jsonl_rows(handle)
        for line, row in rows:
            if isinstance(row, str):
                on_bad_row(line, row)
                continue
            try:
                yield line, _to_request(row)
            except (ValidationError, BadRow) as exc:
                on_bad_row(line, str(exc))


def _to_request(row: dict[str, Any]) -> CancelOrderRequest:
    missing = [k for k in ("order_id", "delivery_id", "waybill_id") if not row.get(k)]
    if missing:
        raise BadRow(f"missing {', '.join(missing)}")
    openid = row.get("openid") or None
    return CancelOrderRequest(
        order_id=row["order_id"],
        delivery_id=row["delivery_id"],
        waybill_id=row["waybill_id"],
        openid=openid,
    )


def _csv_rows(handle: IO[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.reader(handle)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    required = {"order_id", "delivery_id", "waybill_id"}
    if not required <= set(header):
        yield 1, f"header must name {', '.join(sorted(required))} (got {', '.join(header)})"
        return
    try:
        for cells in reader:
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                yield reader.line_num, f"{len(cells)} cells for {len(header)} columns"
                continue
            values = [c.strip() for c in cells] + [""] * (len(header) - len(cells))
            yield reader.line_num, dict(zip(header, values, strict=True))
    except csv.Error as exc:
        yield reader.line_num, f"malformed CSV: {exc}"


def _jsonl_rows(handle: IO[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except ValueError as exc:
            yield number, f"malformed JSON: {exc.args[0]}"
            continue
        if not isinstance(row, dict):
            yield number, "not a JSON object"
            continue
        yield number, row


def _key(order_id: str, delivery_id: str, waybill_id: str) -> tuple[str, str, str]:
    return (order_id, delivery_id, waybill_id)


def load_finished(output: Path) -> set[tuple[str, str, str]]:
    """Keys of the orders the output file records as finished; mends a torn last line."""
    finished: set[tuple[str, str, str]] = set()
    if not output.exists():
        return finished
    with output.open("rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            # The previous run was killed mid-line: drop the torn line so appends stay valid.
            cut = data.rfind(b"\n") + 1
            handle.truncate(cut)
            data = data[:cut]
    for raw in data.splitlines():
        try:
            row = json.loads(raw)
            key = _key(row["order_id"], row["delivery_id"], row["waybill_id"])
        except (ValueError, KeyError, TypeError):
            continue
        if row.get("final", row.get("outcome") != "failed"):
            finished.add(key)
    return finished


def outcome_line(outcome: CancelOutcome, line: int) -> str:
    """The JSON line recorded for one outcome."""
    request, error = outcome.request, outcome.error
    record: dict[str, Any] = {
        "order_id": request.order_id,
        "delivery_id": request.delivery_id,
        "waybill_id": request.waybill_id,
        "outcome": outcome.status,
        "errcode": error.errcode if isinstance(error, APIError) else (0 if error is None else None),
        "errmsg": (outcome.result.errmsg if outcome.result else "ok")
        if error is None
        else str(error),
        "final": outcome.final,
        "line": line,
    }
    return json.dumps(record, ensure_ascii=False) + "\n"


class _Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int | None, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.enabled = stream.isatty()
        self._last = 0.0

    def update(self, done: int, counts: Counter[str], force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        if self.total:
            width = 30
            filled = min(width, int(width * done / self.total))
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}"
        else:
            bar = f"{done} done"
        failed = counts.get("failed", 0)
        self.stream.write(f"\r{bar}  cancelled {counts.get('cancelled', 0)}  failed {failed} ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _count_rows(path: Path) -> int | None:
    try:
        with path.open("rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return None
    return max(0, lines - (1 if path.suffix.lower() == ".csv" else 0))


def print_summary(
    counts: Counter[str], extra: dict[str, int], elapsed: float, stream: TextIO
) -> None:
    """The table printed at the end of a batch."""
    rows = [(name, counts.get(name, 0)) for name in OUTCOMES] + list(extra.items())
    processed = sum(counts.get(name, 0) for name in OUTCOMES)
    width = max(len(name) for name, _ in rows) + 2
    print(f"{'outcome':<{width}}{'count':>8}", file=stream)
    print("-" * (width + 8), file=stream)
    for name, count in rows:
        print(f"{name:<{width}}{count:>8}", file=stream)
    print("-" * (width + 8), file=stream)
    rate = processed / elapsed if elapsed > 0 else math.inf
    print(
        f"{'processed':<{width}}{processed:>8}   in {elapsed:.2f}s ({rate:,.0f} orders/s)",
        file=stream,
    )


async def run_batch(
    client: AsyncLogistics,
    input_path: Path,
    output: Path,
    *,
    concurrency: int,
    fmt: str | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Cancel every order in ``input_path``, appending outcomes to ``output``; resumable."""
    finished = load_finished(output)
    counts: Counter[str] = Counter()
    extra = {"skipped (done before)": 0, "skipped (duplicate)": 0, "invalid rows": 0}
    lines: dict[tuple[str, str, str], int] = {}
    seen: set[tuple[str, str, str]] = set()

    def bad_row(line: int, reason: str) -> None:
        extra["invalid rows"] += 1
        print(f"{input_path}:{line}: skipped: {reason}", file=err)

    def pending() -> Iterator[CancelOrderRequest]:
        for line, request in read_requests(input_path, fmt, bad_row):
            key = _key(request.order_id, request.delivery_id, request.waybill_id)
            if key in finished:
                extra["skipped (done before)"] += 1
                continue
            if key in seen:
                extra["skipped (duplicate)"] += 1
                print(f"{input_path}:{line}: skipped: duplicate of line {lines.get(key)}", file=err)
                continue
            seen.add(key)
            lines[key] = line
            yield request

    progress = _Progress(_count_rows(input_path) if err.isatty() else None, err)
    started = time.perf_counter()
    interrupted = False
    with output.open("a", encoding="utf-8") as sink:

        def record(outcome: CancelOutcome) -> None:
            key = _key(
                outcome.request.order_id, outcome.request.delivery_id, outcome.request.waybill_id
            )
            sink.write(outcome_line(outcome, lines.pop(key, 0)))
            sink.flush()  # a crash loses at most the requests in flight, never a written line
            counts[outcome.status] += 1

        batch = client.cancel_orders(pending(), concurrency=concurrency)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_signal, tg.cancel_scope)
            try:
                async with batch as outcomes:
                    async for outcome in outcomes:
                        record(outcome)
                        progress.update(sum(counts.values()), counts)
            finally:
                for outcome in batch.unconsumed:
                    record(outcome)
                interrupted = tg.cancel_scope.cancel_called
                tg.cancel_scope.cancel()
    progress.update(sum(counts.values()), counts, force=True)
    progress.close()
    print_summary(counts, extra, time.perf_counter() - started, out)
    if interrupted:
        print(f"interrupted: run the same command again to resume ({output})", file=err)
        return EXIT_INTERRUPTED
    return EXIT_REFUSED if counts.get("failed") or extra["invalid rows"] else EXIT_OK


async def _cancel_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def _cancel_batch(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"error: no such file: {args.file}", file=sys.stderr)
        return EXIT_USAGE
    if args.concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    output = args.output or args.file.with_name(args.file.name + ".results.jsonl")
    try:
        async with _client(args, max_connections=args.concurrency) as client:
            code = await run_batch(
                client,
                args.file,
                output,
                concurrency=args.concurrency,
                fmt=args.format,
                out=sys.stdout,
                err=sys.stderr,
            )
    except WxLogisticsError as error:
        return _report(error)
    print(f"results: {output}", file=sys.stderr)
    return code


# -- sandbox and demo ---------------------------------------------------------------------------


async def _sandbox(args: argparse.Namespace) -> int:
    from .testing import FakeWeChat, serve

    fake = FakeWeChat(
        appid=args.appid,
        secret=args.secret,
        latency=args.latency,
        unknown_orders="cancel" if args.cancel_unknown else "not_found",
    )
    fake.record_calls = False  # a long-running server keeps counters, not a request log
    if args.preload:
        loaded = _preload(fake, args.preload)
        if loaded is None:
            return EXIT_USAGE
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, fake, args.host, args.port)
        print(
            f"fake WeChat serving on http://{args.host}:{port} (appid {fake.appid}, "
            f"{len(fake.waybills)} waybills); Ctrl-C stops it",
            flush=True,
        )
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                tg.cancel_scope.cancel()
                break
    return EXIT_OK


_STATES: dict[str, WaybillState] = {
    "created": "created",
    "has_traces": "has_traces",
    "cancelled": "cancelled",
}


def _preload(fake: FakeWeChat, path: Path) -> int | None:
    """Create the waybills listed in ``path`` (with an optional ``state`` column)."""
    if not path.is_file():
        print(f"error: no such file: {path}", file=sys.stderr)
        return None
    count = 0
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = _csv_rows(handle) if path.suffix.lower() == ".csv" else _jsonl_rows(handle)
        for line, row in rows:
            try:
                if isinstance(row, str):
                    raise BadRow(row)
                request = _to_request(row)
                state = _STATES.get(row.get("state") or "created")
                if state is None:
                    raise BadRow(f"unknown state {row.get('state')!r}")
                fake.add_waybill(
                    request.order_id, request.delivery_id, request.waybill_id, state=state
                )
                count += 1
            except (BadRow, ValidationError, ValueError) as exc:
                print(f"{path}:{line}: skipped: {exc}", file=sys.stderr)
    return count


async def _demo(args: argparse.Namespace) -> int:
    from .testing import FakeWeChat

    rng = random.Random(args.seed)
    fake = FakeWeChat(latency=args.latency, seed=args.seed)
    requests: list[CancelOrderRequest] = []
    for i in range(args.orders):
        order_id = f"DEMO{i:05d}"
        delivery_id = rng.choice(["SF", "YTO", "ZTO", "JD"])
        roll = rng.random()
        if roll < 0.05:  # never created: WeChat answers 930563
            requests.append(
                CancelOrderRequest(order_id=order_id, delivery_id=delivery_id, waybill_id=f"W{i}")
            )
            continue
        state: WaybillState = (
            "has_traces" if roll < 0.15 else "cancelled" if roll < 0.25 else "created"
        )
        waybill = fake.add_waybill(order_id, delivery_id, f"W{i}", state=state)
        requests.append(
            CancelOrderRequest(
                order_id=order_id, delivery_id=delivery_id, waybill_id=waybill.waybill_id
            )
        )
    fake.fail_fraction(0.05, errcode=-1)  # WeChat "system busy" now and then: retried
    print(
        f"demo: {args.orders} waybills on an in-process fake WeChat ({args.latency * 1000:.0f} ms "
        f"per answer, 5% 'system busy'), cancelled with concurrency {args.concurrency}"
    )
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    async with (
        fake.client(max_connections=args.concurrency) as client,
        client.cancel_orders(requests, concurrency=args.concurrency) as outcomes,
    ):
        async for outcome in outcomes:
            counts[outcome.status] += 1
    elapsed = time.perf_counter() - started
    print()
    print_summary(counts, {}, elapsed, sys.stdout)
    stats = fake.stats()
    print(
        f"\nfake WeChat saw: {stats['cancel_requests']} cancel requests reaching a waybill, "
        f"{stats['token_fetches']} token fetch, "
        f"at most {stats['max_concurrent']} requests at once; "
        f"cancelled twice: {len(stats['cancelled_twice'])}"
    )
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
