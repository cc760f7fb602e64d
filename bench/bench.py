"""wxlogistics benchmark: client CPU per call against a fake WeChat on loopback.

Run with ``nox -s bench`` (or ``python bench/bench.py``). The fake WeChat runs in its own
process (pinned to the last core when there are several); each client run is a fresh
process (pinned to core 0), so import and JIT-less warm-up costs are equal for everyone and
one run cannot tune the next. Clients, concurrencies and rounds are interleaved, so machine
noise spreads over all of them alike; every figure is reported as min/median/max of the rounds.

Measured per run: client user+sys CPU (``resource.getrusage`` around the calls) per call,
calls/s, p50/p99 latency, and the fake's token-fetch count. Also a streamed
``cancel_orders`` batch (peak RSS, calls/s) and ``import wxlogistics`` against ``import httpx``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

APPID = "wxfake0000000000"
SECRET = "fake-app-secret"
CANCEL = "/cgi-bin/express/business/order/cancel"
CLIENTS = ["wxlogistics", "httpx", "aiohttp", "wxlogistics-trio", "httpx-trio"]


# -- the worker side: one client, one run, one JSON line on stdout -------------------------------


def _body(run: str, i: int) -> dict[str, str]:
    return {"order_id": f"{run}-{i}", "delivery_id": "SF", "waybill_id": f"W{i}"}


async def _drive(
    call: Callable[[int], Awaitable[None]], n: int, c: int, run: str
) -> dict[str, Any]:
    """Run n calls with c concurrent workers; measure CPU and latency around them only."""
    import anyio

    latencies: list[float] = []
    counter = iter(range(n))
    errors: list[str] = []

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            try:
                await call(i)
            except Exception as exc:  # a bare client has no retries: count, do not crash
                errors.append(type(exc).__name__)
                continue
            latencies.append(time.perf_counter() - started)

    before = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(c):
            tg.start_soon(worker)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    latencies.sort()
    return {
        "calls": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "cpu_per_call_ms": cpu / n * 1000,
        "calls_per_s": n / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def _token(url: str) -> str:
    body = json.dumps(
        {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    ).encode()
    request = urllib.request.Request(f"{url}/cgi-bin/stable_token", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["access_token"])


def _check(payload: dict[str, Any]) -> None:
    if payload.get("errcode", 0) != 0:
        raise RuntimeError(f"unexpected answer {payload}")


async def _run_wxlogistics(url: str, n: int, c: int, run: str) -> dict[str, Any]:
    from wxlogistics import AsyncLogistics

    async with AsyncLogistics(APPID, SECRET, base_url=url, max_connections=max(c, 1)) as client:

        async def call(i: int) -> None:
            await client.cancel_order(**_body(run, i))

        return await _drive(call, n, c, run)


async def _run_httpx(url: str, n: int, c: int, run: str) -> dict[str, Any]:
    import httpx

    target = f"{url}{CANCEL}?access_token={_token(url)}"
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def call(i: int) -> None:
            response = await client.post(target, json=_body(run, i))
            _check(response.json())

        return await _drive(call, n, c, run)


async def _run_aiohttp(url: str, n: int, c: int, run: str) -> dict[str, Any]:
    import aiohttp

    target = f"{url}{CANCEL}?access_token={_token(url)}"
    connector = aiohttp.TCPConnector(limit=c)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call(i: int) -> None:
            async with session.post(target, json=_body(run, i)) as response:
                _check(await response.json(content_type=None))

        return await _drive(call, n, c, run)


async def _run_batch(url: str, n: int, c: int, run: str, source: str) -> dict[str, Any]:
    from wxlogistics import AsyncLogistics, CancelOrderRequest

    def requests() -> Any:
        with open(source, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                yield CancelOrderRequest(
                    order_id=row["order_id"],
                    delivery_id=row["delivery_id"],
                    waybill_id=row["waybill_id"],
                )

    before = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter()
    done = failed = 0
    async with AsyncLogistics(APPID, SECRET, base_url=url, max_connections=c) as client:
        async with client.cancel_orders(requests(), concurrency=c) as outcomes:
            async for outcome in outcomes:
                done += 1
                failed += not outcome.ok
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "calls": done,
        "failed": failed,
        "calls_per_s": done / wall,
        "cpu_per_call_ms": cpu / max(done, 1) * 1000,
        "peak_rss_mb": after.ru_maxrss / 1024,
    }


def worker_main(args: argparse.Namespace) -> None:
    """Entry point of a client process."""
    import anyio

    backend = "trio" if args.worker.endswith("-trio") else "asyncio"
    name = args.worker.removesuffix("-trio")
    if name == "batch":
        result = anyio.run(
            _run_batch, args.url, args.n, args.c, args.run, args.source, backend=backend
        )
    else:
        runner = {"wxlogistics": _run_wxlogistics, "httpx": _run_httpx, "aiohttp": _run_aiohttp}[
            name
        ]
        result = anyio.run(runner, args.url, args.n, args.c, args.run, backend=backend)
    print(json.dumps(result))


# -- the driver side ---------------------------------------------------------------------------


def _cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return []


class Server:
    """The fake WeChat (``wxlogistics sandbox``) in its own process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wxlogistics", "sandbox", "--port", "0", "--cancel-unknown"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if not match:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        self.url = match.group(1)
        cores = _cores()
        if len(cores) > 1:
            os.sched_setaffinity(self.process.pid, {cores[-1]})

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_fake/stats", timeout=10) as response:
            return dict(json.load(response))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()


def worker_command(
    server: Server, client: str, n: int, c: int, run: str, **extra: str
) -> list[str]:
    """The command line of one client process (this script in worker mode)."""
    command = [sys.executable, __file__, "--worker", client, "--url", server.url]
    command += ["--n", str(n), "--c", str(c), "--run", run]
    for key, value in extra.items():
        command += [f"--{key}", value]
    return command


def run_client(
    server: Server, client: str, n: int, c: int, run: str, **extra: str
) -> dict[str, Any]:
    """Run one client process; returns its figures plus the token fetches it caused."""
    command = worker_command(server, client, n, c, run, **extra)
    cores = _cores()
    preexec = (lambda: os.sched_setaffinity(0, {cores[0]})) if len(cores) > 1 else None
    fetches = server.stats()["token_fetches"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, preexec_fn=preexec)
    if done.returncode:
        raise RuntimeError(f"{client} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if client.startswith("wxlogistics") or client == "batch":
        result["token_fetches"] = server.stats()["token_fetches"] - fetches
    return result


def count_instructions(server: Server, client: str, n: int, c: int, run: str) -> int:
    """Instructions the client process executes for ``n`` calls, counted by callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        command += worker_command(server, client, n, c, run)
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
        if done.returncode:
            raise RuntimeError(f"{client} under callgrind failed:\n{done.stderr[-2000:]}")
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no total")


def instructions_per_call(
    server: Server, clients: list[str], n: int, c: int
) -> dict[str, dict[str, float]]:
    """Instructions per call: runs of n and n+1000 calls, the difference over 1000.

    Start-up and imports cancel out; callgrind counts are repeatable to about 1%, where CPU
    time on a shared machine varies by 30%.
    """
    result = {}
    for client in clients:
        small = count_instructions(server, client, n, c, f"ir-{client}-{c}-a")
        large = count_instructions(server, client, n + 1000, c, f"ir-{client}-{c}-b")
        result[client] = {"per_call": (large - small) / 1000, "runs": [small, large]}
        print(
            f"instructions C={c} {client:<17} {result[client]['per_call']:,.0f} per call",
            file=sys.stderr,
            flush=True,
        )
    return result


def import_times(repeat: int) -> dict[str, Any]:
    """Median wall time of ``import X`` in a fresh interpreter, minus an empty interpreter."""
    samples: dict[str, list[float]] = {"pass": [], "httpx": [], "wxlogistics": []}
    for _ in range(repeat):
        for name in samples:
            code = "pass" if name == "pass" else f"import {name}"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            samples[name].append(time.perf_counter() - started)
    base = statistics.median(samples["pass"])
    httpx_ms = (statistics.median(samples["httpx"]) - base) * 1000
    ours_ms = (statistics.median(samples["wxlogistics"]) - base) * 1000
    return {"httpx_ms": httpx_ms, "wxlogistics_ms": ours_ms, "ratio": ours_ms / httpx_ms}


def spread(values: list[float]) -> dict[str, float]:
    """min/median/max of a list of figures."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def fmt(s: dict[str, float], digits: int = 3) -> str:
    """``median (min-max)``."""
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def rerender(path: Path) -> None:
    """Print the table of a saved bench.json again (after a change to the table's layout)."""
    report = json.loads(path.read_text())
    keys = list(report["summary"])
    clients = list(dict.fromkeys(k.split("@")[0] for k in keys))
    levels = sorted({int(k.split("@")[1]) for k in keys})
    print(render(report, clients, levels))


def main() -> None:
    """Run the whole benchmark and write the table and JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--run", default="r", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=10000, help="calls per run (C=1: a fifth)")
    parser.add_argument("--c", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", default="1,50,500", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--batch-n", type=int, default=100_000, help="0 skips the batch case")
    parser.add_argument("--import-repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--rerender", type=Path, help="print the table of a saved bench.json")
    parser.add_argument(
        "--instructions",
        type=int,
        default=1000,
        help="callgrind: base calls N (runs of N and N+1000 calls); 0 skips it",
    )
    parser.add_argument("--instructions-c", type=int, default=50, help="concurrency for it")
    args = parser.parse_args()
    if args.rerender:
        rerender(args.rerender)
        return
    if args.worker:
        worker_main(args)
        return

    clients = args.clients.split(",")
    levels = [int(x) for x in args.concurrency.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    server = Server()
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        for round_no in range(args.rounds):
            for c in levels:
                n = args.n if c > 1 else max(200, args.n // 5)
                for client in clients:
                    run = f"{client}-{c}-{round_no}"
                    result = run_client(server, client, n, c, run)
                    runs.setdefault(f"{client}@{c}", []).append(result)
                    print(
                        f"round {round_no + 1}/{args.rounds} C={c:<4} {client:<17} "
                        f"{result['cpu_per_call_ms']:.3f} ms CPU/call  {result['calls_per_s']:8.0f} calls/s",
                        file=sys.stderr,
                        flush=True,
                    )
        instructions = None
        if args.instructions:
            ir_clients = [c for c in clients if c in CLIENTS]
            instructions = {
                "c": args.instructions_c,
                "n": args.instructions,
                "clients": instructions_per_call(
                    server, ir_clients, args.instructions, args.instructions_c
                ),
            }
        batch = None
        if args.batch_n:
            with tempfile.TemporaryDirectory() as tmp:
                source = Path(tmp) / "orders.csv"
                with source.open("w", encoding="utf-8", newline="") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(["order_id", "delivery_id", "waybill_id", "openid"])
                    for i in range(args.batch_n):
                        writer.writerow([f"batch-{i}", "SF", f"W{i}", ""])
                batch = run_client(server, "batch", args.batch_n, 50, "batch", source=str(source))
            print(
                f"batch {args.batch_n}: {batch['calls_per_s']:.0f} calls/s, "
                f"peak RSS {batch['peak_rss_mb']:.1f} MB",
                file=sys.stderr,
                flush=True,
            )
    finally:
        server.stop()
    imports = import_times(args.import_repeat) if args.import_repeat else None
    load_after = os.getloadavg()

    summary: dict[str, Any] = {}
    for key, results in runs.items():
        summary[key] = {
            metric: spread([r[metric] for r in results])
            for metric in ("cpu_per_call_ms", "calls_per_s", "p50_ms", "p99_ms")
        }
        if "token_fetches" in results[0]:
            summary[key]["token_fetches"] = [r["token_fetches"] for r in results]
        summary[key]["errors"] = [r.get("errors", 0) for r in results]
        summary[key]["error_kinds"] = sorted({k for r in results for k in r.get("error_kinds", [])})

    def ratio(a: str, b: str, c: int) -> dict[str, float] | None:
        ra, rb = runs.get(f"{a}@{c}"), runs.get(f"{b}@{c}")
        if not ra or not rb:
            return None
        # Rounds are interleaved, so round k of a and of b ran side by side.
        return spread(
            [x["cpu_per_call_ms"] / y["cpu_per_call_ms"] for x, y in zip(ra, rb, strict=True)]
        )

    ratios = {
        f"C={c}": {
            "wxlogistics/aiohttp": ratio("wxlogistics", "aiohttp", c),
            "wxlogistics/httpx": ratio("wxlogistics", "httpx", c),
            "wxlogistics-trio/httpx-trio": ratio("wxlogistics-trio", "httpx-trio", c),
        }
        for c in levels
    }
    report = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cores": len(_cores()) or os.cpu_count(),
            "pinned": len(_cores()) > 1,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "n": args.n,
        "rounds": args.rounds,
        "summary": summary,
        "ratios": ratios,
        "batch": batch,
        "imports": imports,
        "instructions": instructions,
    }
    (args.out / "bench.json").write_text(json.dumps(report, indent=2))
    table = render(report, clients, levels)
    (args.out / "bench.md").write_text(table)
    print(table)


def render(report: dict[str, Any], clients: list[str], levels: list[int]) -> str:
    """The markdown table of a report."""
    lines = [
        f"CPU per call in ms, median (min-max) of {report['rounds']} interleaved rounds, "
        f"{report['n']} calls per run (C=1: {max(200, report['n'] // 5)}). Python "
        f"{report['machine']['python']}, {report['machine']['cores']} cores, "
        f"{'client and server pinned to separate cores' if report['machine']['pinned'] else 'unpinned'}, "
        f"load average {report['machine']['loadavg_before'][0]:.2f} before, "
        f"{report['machine']['loadavg_after'][0]:.2f} after.",
        "",
        "| client | C | CPU/call ms | calls/s | p50 ms | p99 ms | token fetches | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in levels:
        for client in clients:
            s = report["summary"].get(f"{client}@{c}")
            if not s:
                continue
            fetches = ",".join(str(x) for x in s.get("token_fetches", [])) or "-"
            name = client
            errors = sum(s["errors"]) if s["errors"] else 0
            kinds = f" ({', '.join(s['error_kinds'])})" if errors else ""
            lines.append(
                f"| {name} | {c} | {fmt(s['cpu_per_call_ms'])} | {fmt(s['calls_per_s'], 0)} | "
                f"{fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} | {fetches} | {errors}{kinds} |"
            )
    noise = []
    for c in levels:
        spread_of = report["summary"].get(f"aiohttp@{c}")
        if spread_of:
            cpu = spread_of["cpu_per_call_ms"]
            noise.append(f"C={c}: {(cpu['max'] - cpu['min']) / cpu['median'] * 100:.0f}%")
    if noise:
        lines += [
            "",
            "Machine noise: raw aiohttp's own CPU per call varied across rounds by "
            + ", ".join(noise)
            + " (max-min over median); read the ratios with that in mind.",
        ]
    lines += [
        "",
        "| ratio of CPU/call (per round) | " + " | ".join(f"C={c}" for c in levels) + " |",
        "|---|" + "---|" * len(levels),
    ]
    for name in ("wxlogistics/aiohttp", "wxlogistics/httpx", "wxlogistics-trio/httpx-trio"):
        cells = []
        for c in levels:
            value = report["ratios"][f"C={c}"][name]
            cells.append(fmt(value, 2) if value else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ir = report.get("instructions")
    if ir:
        per = {k: v["per_call"] for k, v in ir["clients"].items()}
        lines += [
            "",
            f"Instructions per call (valgrind callgrind, client process only, runs of "
            f"{ir['n']} and {ir['n'] + 1000} calls at C={ir['c']}, difference / 1000):",
            "",
            "| client | instructions/call | vs raw aiohttp | vs bare httpx |",
            "|---|---|---|---|",
        ]
        for name, value in per.items():
            base = "aiohttp" if not name.endswith("-trio") else None
            vs_aiohttp = f"{value / per['aiohttp']:.2f}" if base and per.get("aiohttp") else "-"
            httpx_name = "httpx-trio" if name.endswith("-trio") else "httpx"
            vs_httpx = f"{value / per[httpx_name]:.2f}" if per.get(httpx_name) else "-"
            lines.append(f"| {name} | {value:,.0f} | {vs_aiohttp} | {vs_httpx} |")
    batch = report.get("batch")
    if batch:
        lines += [
            "",
            f"Batch: `cancel_orders` over {batch['calls']:,} requests streamed from a CSV file, "
            f"concurrency 50: {batch['calls_per_s']:,.0f} calls/s, {batch['cpu_per_call_ms']:.3f} ms CPU/call, "
            f"peak RSS {batch['peak_rss_mb']:.1f} MB, {batch['failed']} failed, "
            f"{batch.get('token_fetches', '?')} token fetch.",
        ]
    imports = report.get("imports")
    if imports:
        lines += [
            "",
            f"Import: `import wxlogistics` {imports['wxlogistics_ms']:.1f} ms, "
            f"`import httpx` {imports['httpx_ms']:.1f} ms (ratio {imports['ratio']:.2f}), "
            "median of fresh interpreters minus an empty one.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
