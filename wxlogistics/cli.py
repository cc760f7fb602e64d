"""The ``wxlogistics`` command: cancel one or many waybills, serve a sandbox, run a demo.

Credentials come from ``--appid/--secret`` or ``WX_APPID``/``WX_SECRET``, the host from
``--base-url`` or ``WX_BASE_URL``. The secret is never printed, nor is a token unless
``wxlogistics token --show`` asks for it. (The sandbox prints its own secret: it is fake.)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import shlex
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from itertools import chain
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO, cast

import anyio

from ._batch import CancelBatch
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
from ._models import CancelOrderRequest, CancelOrderResult, CancelOutcome

if TYPE_CHECKING:
    from .testing import FakeWeChat, WaybillState

__all__ = ["main"]

EXIT_OK = 0
EXIT_REFUSED = 1  # WeChat answered with an errcode (or some batch rows failed)
EXIT_USAGE = 2  # bad arguments, bad input
EXIT_UNREACHABLE = 3  # network or unexpected answer
EXIT_CREDENTIALS = 4  # the appid/secret was refused, or the account may not use the API
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
    if isinstance(error, (CredentialsError, PermissionDeniedError)):
        return EXIT_CREDENTIALS
    if isinstance(error, (TransportError, ResponseError)):
        return EXIT_UNREACHABLE
    return EXIT_REFUSED


def stops_batch(error: WxLogisticsError) -> bool:
    """True when ``error`` is about the configuration or the account, not about one row.

    Every further row would fail the same way, so a batch stops at once: the appid/secret
    or this machine's IP refused (:class:`CredentialsError`), the API not allowed for this
    account (:class:`PermissionDeniedError`), the host unreachable even after retries (a
    :class:`TransportError` whose request never left: connection refused, DNS, connect
    timeout), a base URL that is not WeChat's (an HTTP 4xx other than 429), and the daily
    quota (45009, until tomorrow).
    """
    if isinstance(error, (CredentialsError, PermissionDeniedError)):
        return True
    if isinstance(error, TransportError):
        return not error.may_have_been_sent
    if isinstance(error, ResponseError):
        return 400 <= error.status_code < 500 and error.status_code != 429
    return isinstance(error, RateLimitError) and error.errcode == 45009


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
    creds.add_argument(
        "--base-url",
        default=os.environ.get("WX_BASE_URL") or DEFAULT_BASE_URL,
        help=f"API host, e.g. a sandbox (default: $WX_BASE_URL, else {DEFAULT_BASE_URL})",
    )
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

    path = sub.add_parser("path", parents=[creds], help="print a waybill's track as a table")
    path.add_argument("--order-id", required=True)
    path.add_argument("--delivery-id", required=True)
    path.add_argument("--waybill-id", required=True)
    path.add_argument("--openid")
    path.add_argument("--json", action="store_true", help="print WeChat's fields as JSON")

    deliveries = sub.add_parser(
        "deliveries", parents=[creds], help="list the carriers and their service types"
    )
    deliveries.add_argument("--json", action="store_true", help="print WeChat's fields as JSON")

    token = sub.add_parser(
        "token", parents=[creds], help="fetch a token; print its length and lifetime"
    )
    token.add_argument(
        "--show",
        action="store_true",
        help="print the token itself on stdout (it is a secret: mind your terminal's history)",
    )
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
        "path": _path,
        "deliveries": _deliveries,
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


def _report(error: WxLogisticsError, stream: TextIO | None = None) -> int:
    stream = stream or sys.stderr
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


# -- path and deliveries ------------------------------------------------------------------------


def _table(rows: Sequence[tuple[str, ...]], out: TextIO) -> None:
    """Print rows as aligned columns (the first row is the header)."""
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        cells = [
            cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=True)
        ]
        print("  ".join(cells).rstrip(), file=out)
        if number == 0:
            print("  ".join("-" * width for width in widths), file=out)


def _width(text: str) -> int:
    """Columns a string takes in a terminal (CJK characters take two)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


async def _path(args: argparse.Namespace) -> int:
    try:
        async with _client(args) as client:
            result = await client.get_path(
                order_id=args.order_id,
                delivery_id=args.delivery_id,
                waybill_id=args.waybill_id,
                openid=args.openid,
            )
    except WxLogisticsError as error:
        return _report(error)
    if args.json:
        items = [
            {"action_time": i.action_time, "action_type": i.action_type, "action_msg": i.action_msg}
            for i in result.path_item_list
        ]
        print(
            json.dumps(
                {"waybill_id": result.waybill_id, "path_item_list": items}, ensure_ascii=False
            )
        )
        return EXIT_OK
    print(f"waybill {args.waybill_id} ({args.delivery_id}): {len(result.path_item_list)} events")
    if result.path_item_list:
        rows = [("time (UTC)", "type", "event")]
        for item in result.path_item_list:
            when = item.action_datetime
            rows.append(
                (
                    when.strftime("%Y-%m-%d %H:%M:%S") if when else "-",
                    str(item.action_type if item.action_type is not None else "-"),
                    item.action_msg or "",
                )
            )
        _table(rows, sys.stdout)
    return EXIT_OK


async def _deliveries(args: argparse.Namespace) -> int:
    try:
        async with _client(args) as client:
            result = await client.get_all_delivery()
    except WxLogisticsError as error:
        return _report(error)
    if args.json:
        data = [
            {
                "delivery_id": d.delivery_id,
                "delivery_name": d.delivery_name,
                "service_type": [
                    {"service_type": s.service_type, "service_name": s.service_name}
                    for s in d.service_type
                ],
            }
            for d in result.data
        ]
        print(json.dumps({"data": data}, ensure_ascii=False))
        return EXIT_OK
    rows = [("delivery_id", "name", "service types")]
    for delivery in result.data:
        services = ", ".join(
            f"{s.service_type} {s.service_name or ''}".strip() for s in delivery.service_type
        )
        rows.append((delivery.delivery_id or "-", delivery.delivery_name or "", services))
    _table(rows, sys.stdout)
    return EXIT_OK


# -- token --------------------------------------------------------------------------------------


async def _token(args: argparse.Namespace) -> int:
    try:
        async with _client(args) as client:
            token = await client.get_access_token()
            remaining = token.expires_at - time.monotonic()
    except WxLogisticsError as error:
        return _report(error)
    about = f"access token: {len(token.value)} chars, valid for {remaining:.0f}s more"
    if args.show:
        # The token alone on stdout, so that TOKEN=$(wxlogistics token --show) works.
        print(token.value)
        print(about, file=sys.stderr)
    else:
        print(about)
    return EXIT_OK


# -- batch input and output ---------------------------------------------------------------------


class BadRow(Exception):
    """A row of the input that is not a usable request."""


_REQUIRED = ("order_id", "delivery_id", "waybill_id")


def _format_of(path: Path, fmt: str | None) -> str:
    return fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")


def check_input(path: Path, fmt: str | None) -> tuple[int, str] | None:
    """(line, reason) if the file as a whole is unusable, else None. Reads it once, streaming.

    A bad row only skips that row; this finds what would corrupt every row after it: a CSV
    header without the required columns, a quote that is never closed (the CSV reader would
    take the rest of the file as one field) or closed lines later (the rows between would
    vanish into one field), text that is not UTF-8.
    """
    start = 1
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if _format_of(path, fmt) != "csv":
                for _ in handle:  # JSONL lines are independent: only the encoding matters
                    pass
                return None
            reader = csv.reader(handle)
            for cells in reader:
                if start == 1:
                    header = {cell.strip() for cell in cells}
                    if not set(_REQUIRED) <= header:
                        return 1, (
                            f"the header must name {', '.join(_REQUIRED)} "
                            f"(got {', '.join(c.strip() for c in cells)})"
                        )
                if reader.line_num != start:
                    # A quoted field holds a line end. Refused even in an extra column: a stray
                    # quote closed lines later looks the same, and hides the rows between.
                    end = reader.line_num
                    if next(reader, None) is None:
                        return start, (
                            "a quote opened on this line is never closed: "
                            "the rest of the file would be read as one field"
                        )
                    return start, (
                        f"a quoted field opened on this line runs on to line {end}: "
                        "a quote is not closed"
                    )
                start = reader.line_num + 1
    except csv.Error as exc:  # e.g. the rest of the file taken as one field overflows a limit
        return start, f"malformed CSV ({exc}): is a quote not closed?"
    except UnicodeDecodeError:
        return _undecodable_line(path), "not UTF-8 text"
    return None


def _undecodable_line(path: Path) -> int:
    """The number of the first line of ``path`` that is not UTF-8 (text is read in chunks)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0  # pragma: no cover (only called after a decoding error)


def read_requests(
    path: Path, fmt: str | None, on_bad_row: Callable[[int, str], None]
) -> Generator[tuple[int, CancelOrderRequest], None, None]:
    """Yield (line number, request) from a CSV or JSONL file, lazily; report bad rows.

    Run :func:`check_input` first: this reports a broken file as bad rows, one at a time.
    """
    fmt = _format_of(path, fmt)
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
    missing = [k for k in _REQUIRED if not row.get(k)]
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
    if not set(_REQUIRED) <= set(header):
        yield 1, f"header must name {', '.join(_REQUIRED)} (got {', '.join(header)})"
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
    """The JSON line recorded for one outcome.

    ``final`` is false for an error that stops the batch (:func:`stops_batch`), whatever the
    library says, so that a resume after fixing the configuration tries the row again.
    """
    request, error, result = outcome.request, outcome.error, outcome.result
    record: dict[str, Any] = {
        "order_id": request.order_id,
        "delivery_id": request.delivery_id,
        "waybill_id": request.waybill_id,
        "outcome": outcome.status,
        "errcode": error.errcode if isinstance(error, APIError) else (0 if error is None else None),
        "errmsg": (result.errmsg if result else "ok") if error is None else str(error),
        "final": outcome.final and (error is None or not stops_batch(error)),
        "line": line,
    }
    if result is not None and getattr(result, "confirmed_by_retry", False):
        # The first attempt's answer was lost; its retry found the waybill cancelled.
        record["confirmed_by_retry"] = True
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


class _Gate:
    """What the batch calls instead of the client: notes the first error that stops it.

    It notes the error in the worker that meets it, before the worker asks for its next row,
    so no row is pulled after it (the consumer would see it too late: by then every free
    worker has pulled a row and, with a wrong secret, fetched a token again).
    """

    def __init__(self, client: AsyncLogistics) -> None:
        self._client = client
        self.error: WxLogisticsError | None = None
        """The first error of the batch for which :func:`stops_batch` is true."""

    @property
    def is_closed(self) -> bool:
        """Whether the client is closed (the batch stops pulling rows then)."""
        return self._client.is_closed

    async def cancel(self, request: CancelOrderRequest) -> CancelOrderResult:
        """``client.cancel(request)``, noting an error that stops the batch."""
        try:
            return await self._client.cancel(request)
        except WxLogisticsError as error:
            if self.error is None and stops_batch(error):
                self.error = error
            raise


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
    """Cancel every order in ``input_path``, appending outcomes to ``output``; resumable.

    The input is checked as a whole first (:func:`check_input`), and a token is fetched
    before the first cancel: either failing sends nothing and records nothing. An error that
    is about the configuration, not the row (:func:`stops_batch`), stops the batch: no
    further row is pulled, the rows in flight finish, and the rows it failed are recorded
    with ``"final": false`` so that running the same command again retries them.
    """
    broken = check_input(input_path, fmt)
    if broken is not None:
        line, reason = broken
        print(f"{input_path}:{line}: error: {reason}", file=err)
        print("nothing was sent: fix the file and run the same command again", file=err)
        return EXIT_USAGE
    finished = load_finished(output)
    counts: Counter[str] = Counter()
    extra = {"skipped (done before)": 0, "skipped (duplicate)": 0, "invalid rows": 0}
    first_line: dict[tuple[str, str, str], int] = {}  # the line of every key sent in this run
    gate = _Gate(client)
    last_line = 0

    def bad_row(line: int, reason: str) -> None:
        extra["invalid rows"] += 1
        print(f"{input_path}:{line}: skipped: {reason}", file=err)

    def pending() -> Generator[CancelOrderRequest, None, None]:
        nonlocal last_line
        with closing(read_requests(input_path, fmt, bad_row)) as rows:
            while gate.error is None:  # checked before each row is read
                item = next(rows, None)
                if item is None:
                    return
                line, request = item
                key = _key(request.order_id, request.delivery_id, request.waybill_id)
                if key in finished:
                    extra["skipped (done before)"] += 1
                    continue
                first = first_line.get(key)
                if first is not None:
                    extra["skipped (duplicate)"] += 1
                    print(f"{input_path}:{line}: skipped: duplicate of line {first}", file=err)
                    continue
                first_line[key] = line
                last_line = line
                yield request

    requests = pending()
    head = next(requests, None)
    if head is not None:
        try:
            # One token request tells a wrong secret or host from a bad row, before any row.
            await client.get_access_token()
        except WxLogisticsError as error:
            requests.close()
            _report(error, err)
            print(
                "stopped before the first cancel: nothing was sent or recorded; "
                "fix this and run the same command again",
                file=err,
            )
            return exit_code_for(error)

    progress = _Progress(_count_rows(input_path) if err.isatty() else None, err)
    started = time.perf_counter()
    interrupted = False
    with output.open("a", encoding="utf-8") as sink:

        def record(outcome: CancelOutcome) -> None:
            request = outcome.request
            key = _key(request.order_id, request.delivery_id, request.waybill_id)
            sink.write(outcome_line(outcome, first_line.get(key, 0)))
            sink.flush()  # a crash loses at most the requests in flight, never a written line
            counts[outcome.status] += 1

        if head is not None:
            # CancelBatch calls nothing but ``cancel`` on its client: the gate stands in.
            batch = CancelBatch(cast("AsyncLogistics", gate), chain([head], requests), concurrency)
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
    if gate.error is not None:
        _report(gate.error, err)
        print(
            f"stopped after line {last_line}: this is about the configuration, not a row, so no "
            'further row was sent. The rows it failed are recorded with "final": false; fix '
            f"this and run the same command again to resume ({output})",
            file=err,
        )
        return exit_code_for(gate.error)
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
    if output.exists():
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
        print(sandbox_banner(fake, args.host, port), flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                tg.cancel_scope.cancel()
                break
    return EXIT_OK


def sandbox_banner(fake: FakeWeChat, host: str, port: int) -> str:
    """What ``wxlogistics sandbox`` prints once it serves: where, and its (fake) credentials.

    The first line names the URL; the export lines point the README examples and this
    command at the sandbox from another shell.
    """
    shown = f"[{host}]" if ":" in host else host
    # A wildcard address is served on every interface; loopback reaches it from here.
    local = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, shown)
    lines = [
        f"fake WeChat serving on http://{shown}:{port} ({len(fake.waybills)} waybills); "
        "Ctrl-C stops it",
        "Its credentials are fake. To use it from another shell (README examples, this CLI):",
        f"  export WX_APPID={shlex.quote(fake.appid)}",
        f"  export WX_SECRET={shlex.quote(fake.secret)}",
        f"  export WX_BASE_URL={shlex.quote(f'http://{local}:{port}')}",
    ]
    return "\n".join(lines)


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
    broken = check_input(path, None)
    if broken is not None:
        print(f"{path}:{broken[0]}: error: {broken[1]}", file=sys.stderr)
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
