"""FastAPI benchmark: requests/s of a service awaiting ``cancel_order`` against raw aiohttp.

The question (the performance issue's figure): a FastAPI service run by uvicorn with one
worker, whose handler awaits ``AsyncLogistics.cancel_order``, serves at least 0.8x the
requests/s of the same service calling WeChat with one raw ``aiohttp.ClientSession``.

Three kinds of process, each fresh:

- the fake WeChat, ``python -m wxlogistics sandbox --port 0 --cancel-unknown`` (bench.py's
  ``Server``), one for the whole run;
- the service under test: a FastAPI app served by uvicorn (one worker, ``loop="asyncio"``,
  httptools when installed, else h11), a new process per measured run;
- the load generator: ``wrk`` (one thread) when it is on PATH, else a small aiohttp client
  in its own process; N keep-alive connections, a warm-up, then a fixed time.

On a machine with two or more cores the service is pinned to the first core, alone; the fake
WeChat, the load generator and this driver share the last one. The service is then the
bottleneck (its core busy ~100%, shown per run), which is what is compared. Services are
interleaved (wxlogistics, aiohttp, wxlogistics, aiohttp, ...) so machine noise falls on both.
The headline is the median over rounds of the per-round ratio wxlogistics/aiohttp of
requests/s; the service's CPU per request is shown too (less sensitive to noise). A run with
any failed request (non-2xx, socket error) makes the script exit 1 after writing its report.

``--instructions N`` adds a figure that does not depend on the machine's load: each service
runs under ``valgrind --tool=callgrind`` twice, serving N then N+1000 requests (sent by this
driver, 2xx required), and the difference of the instructions its process executed, over
1000, is its instructions per request; their ratio aiohttp/wxlogistics is the requests/s
ratio it implies. ``--rounds 0 --instructions N`` runs that alone.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations
# (``request: Request``) at run time, and Request is imported inside the app factories.

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

SERVICES = ["wxlogistics", "aiohttp"]
BASELINE = "none"
"""``--baseline``: the same app whose handler calls nothing (uvicorn and FastAPI alone)."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
DISTURBED_PCT = 10
"""A run during which other processes used more than this % of a core is flagged."""


def _load_bench() -> Any:
    """bench/bench.py as a module: its Server, constants and helpers are reused as they are."""
    spec = importlib.util.spec_from_file_location(
        "wx_bench_core", Path(__file__).with_name("bench.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


core = _load_bench()


# -- the service side: one FastAPI app, served by uvicorn in this process ---------------------


def wxlogistics_app(url: str) -> Any:
    """(a) The handler awaits ``client.cancel_order`` on one AsyncLogistics from the lifespan."""
    from fastapi import FastAPI, HTTPException, Request

    from wxlogistics import AsyncLogistics, WxLogisticsError

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        async with AsyncLogistics(core.APPID, core.SECRET, base_url=url) as client:
            app.state.wx = client
            yield
        print("lifespan closed", flush=True)

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> Any:
        return {"ok": True}

    @app.post("/cancel/{order_id}")
    async def cancel(order_id: str, request: Request) -> Any:
        try:
            result = await request.app.state.wx.cancel_order(
                order_id=order_id, delivery_id="SF", waybill_id=f"W-{order_id}"
            )
        except WxLogisticsError as exc:
            raise HTTPException(502, type(exc).__name__) from None
        return {"order_id": order_id, "errcode": result.errcode}

    return app


def aiohttp_app(url: str) -> Any:
    """(b) The same handler over one raw ``aiohttp.ClientSession`` (token fetched once at start)."""
    import aiohttp
    from fastapi import FastAPI, HTTPException, Request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        app.state.target = f"{url}{core.CANCEL}?access_token={core._token(url)}"
        async with aiohttp.ClientSession() as session:
            app.state.session = session
            yield
        print("lifespan closed", flush=True)

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> Any:
        return {"ok": True}

    @app.post("/cancel/{order_id}")
    async def cancel(order_id: str, request: Request) -> Any:
        body = {"order_id": order_id, "delivery_id": "SF", "waybill_id": f"W-{order_id}"}
        try:
            async with request.app.state.session.post(
                request.app.state.target, json=body
            ) as answer:
                payload = await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise HTTPException(502, type(exc).__name__) from None
        if payload.get("errcode", 0) != 0:
            raise HTTPException(502, f"errcode {payload.get('errcode')}")
        return {"order_id": order_id, "errcode": payload.get("errcode", 0)}

    return app


def baseline_app(url: str) -> Any:
    """``--baseline``: the same route answering at once, to show what uvicorn + FastAPI cost."""
    from fastapi import FastAPI, Request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        print("lifespan closed", flush=True)

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> Any:
        return {"ok": True}

    @app.post("/cancel/{order_id}")
    async def cancel(order_id: str, request: Request) -> Any:
        return {"order_id": order_id, "errcode": 0}

    return app


def http_impl(requested: str) -> str:
    """uvicorn's HTTP/1.1 parser: httptools when importable (``auto``), else h11."""
    if requested != "auto":
        return requested
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def serve_main(args: argparse.Namespace) -> None:
    """Entry point of a service process: bind a loopback port, print it, serve until SIGTERM."""
    import uvicorn

    factories = {"wxlogistics": wxlogistics_app, "aiohttp": aiohttp_app, BASELINE: baseline_app}
    app = factories[args.serve](args.url)
    # proto=IPPROTO_TCP, as the sockets uvicorn binds itself have: asyncio sets TCP_NODELAY
    # only on sockets that say so. With proto 0 every answer waited ~40 ms for a delayed ACK
    # (Nagle) and the figures measured that, not the service.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        loop="asyncio",
        http=args.http,
        workers=1,
        lifespan="on",
        access_log=False,
        log_level="warning",
        backlog=2048,
    )
    print(f"serving on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


# -- the load generator: wrk, or a small aiohttp client in its own process ---------------------

WRK_SCRIPT = r"""
local counter = 0
local prefix = "r"
init = function(args)
  prefix = args[1] or "r"
end
request = function()
  counter = counter + 1
  return wrk.format("POST", "/cancel/" .. prefix .. "-" .. counter, nil, "")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%f,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"non_2xx":%d,"timeouts":%d,"p50_ms":%f,"p99_ms":%f}\n',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def run_wrk(
    url: str, connections: int, seconds: float, prefix: str, script: Path, pin: Any
) -> dict[str, Any]:
    """One wrk run (one thread, ``connections`` keep-alive connections, ``seconds``)."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        prefix,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, preexec_fn=pin
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
            result["errors"] = sum(
                result[k]
                for k in ("connect_errors", "read_errors", "write_errors", "non_2xx", "timeouts")
            )
            return result
    raise RuntimeError(
        f"wrk gave no figures (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    )


async def _aiohttp_load(url: str, connections: int, seconds: float, prefix: str) -> dict[str, Any]:
    import aiohttp
    import anyio

    latencies: list[float] = []
    errors = {"non_2xx": 0, "other": 0}
    counter = iter(range(1 << 62))
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with session.post(f"{url}/cancel/{prefix}-{next(counter)}") as answer:
                        await answer.read()
                        ok = answer.status < 400
                except (aiohttp.ClientError, TimeoutError):
                    errors["other"] += 1
                    continue
                if not ok:
                    errors["non_2xx"] += 1
                latencies.append(time.perf_counter() - started)

        wall = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(connections):
                tg.start_soon(worker)
        wall = time.perf_counter() - wall
    latencies.sort()
    count = len(latencies)
    return {
        "requests": count,
        "duration_s": wall,
        "non_2xx": errors["non_2xx"],
        "errors": errors["non_2xx"] + errors["other"],
        "p50_ms": latencies[count // 2] * 1000 if count else 0.0,
        "p99_ms": latencies[min(count - 1, int(count * 0.99))] * 1000 if count else 0.0,
    }


async def _aiohttp_count_load(url: str, connections: int, n: int, prefix: str) -> dict[str, Any]:
    """Exactly ``n`` requests, to ``/cancel/<prefix>-<i>`` for i < n, over ``connections``
    keep-alive connections (one task each, pulling the next i). For callgrind runs: a
    request count, not a duration, so that two runs differ by a known number of requests."""
    import aiohttp
    import anyio

    indices = iter(range(n))
    failures: list[str] = []
    ok = 0
    # Under valgrind the service is ~50x slower: no total deadline, a long one per read.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=600)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal ok
            for i in indices:
                try:
                    async with session.post(f"{url}/cancel/{prefix}-{i}") as answer:
                        body = await answer.read()
                        if 200 <= answer.status < 300:
                            ok += 1
                        else:
                            failures.append(f"{i}: HTTP {answer.status} {body[:200]!r}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failures.append(f"{i}: {exc!r}")

        wall = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(min(connections, n)):
                tg.start_soon(worker)
        wall = time.perf_counter() - wall
    return {"requests": n, "ok": ok, "failures": failures, "duration_s": wall}


def loadgen_main(args: argparse.Namespace) -> None:
    """Entry point of the aiohttp load generator process: one JSON line on stdout."""
    import anyio

    result = anyio.run(_aiohttp_load, args.url, args.connections, args.duration, args.prefix)
    print(json.dumps(result))


def run_aiohttp_load(
    url: str, connections: int, seconds: float, prefix: str, pin: Any
) -> dict[str, Any]:
    """One run of the aiohttp load generator in a fresh process."""
    command = [
        sys.executable,
        __file__,
        "--loadgen-worker",
        "--url",
        url,
        "--connections",
        str(connections),
        "--duration",
        str(seconds),
        "--prefix",
        prefix,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, preexec_fn=pin
    )
    if done.returncode:
        raise RuntimeError(f"load generator failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- the driver --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """user+sys CPU seconds of a live process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def core_busy(cpu: int | None) -> float:
    """Busy seconds (processes, and time stolen by a hypervisor) of one core, or of all cores
    for None, from ``/proc/stat``."""
    name = "cpu" if cpu is None else f"cpu{cpu}"
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == name:
            user, nice, system, _idle, _iowait, _irq, _softirq, steal = map(int, fields[1:9])
            # Interrupt time is left out: loopback traffic of our own processes lands there.
            return (user + nice + system + steal) / CLK_TCK
    raise RuntimeError(f"{name} not in /proc/stat")


def children_cpu() -> float:
    """user+sys CPU seconds of the waited-for children of this process (the load generator)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Service:
    """One service under test (uvicorn + FastAPI) in its own process."""

    def __init__(
        self,
        kind: str,
        sandbox_url: str,
        http: str,
        pin: Any,
        prefix: tuple[str, ...] = (),
        start_s: float = 30,
    ) -> None:
        """Start it and wait until ``/healthz`` answers, for up to ``start_s`` seconds.

        ``prefix`` goes before the command line (``valgrind --tool=callgrind ...``): under
        valgrind start-up takes tens of seconds and so may the first answer.
        """
        self.kind = kind
        # Closed by errors(), called once the service has stopped.
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                __file__,
                "--serve",
                kind,
                "--url",
                sandbox_url,
                "--http",
                http,
            ],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            preexec_fn=pin,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("serving on "):
            self.stop()
            raise RuntimeError(f"{kind} service did not start: {line!r}\n{self.errors()}")
        self.url = line.split()[-1]
        deadline = time.monotonic() + start_s
        answer_s = 5 if not prefix else start_s
        while True:  # uvicorn listens once its lifespan has started
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=answer_s) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{kind} service never answered:\n{self.errors()}") from None
                time.sleep(0.05)

    def errors(self) -> str:
        """The service's stderr, once it has stopped; closes the file."""
        with self.stderr:
            self.stderr.seek(0)
            return self.stderr.read()

    def stop(self, wait_s: float = 20) -> bool:
        """SIGTERM: uvicorn shuts down and the lifespan closes the client.

        True when the lifespan said it closed (uvicorn then re-raises SIGTERM, so the exit
        code is -15, not 0). Waits up to ``wait_s`` seconds, then kills it.
        """
        if self.process.poll() is None:
            self.process.terminate()
        try:
            rest, _ = self.process.communicate(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, _ = self.process.communicate()
        return "lifespan closed" in (rest or "")


CALLGRIND_START_S = 300
"""Start-up deadline under callgrind: imports alone take ~20 s of a quiet core there."""


def count_service_instructions(
    server: Any, kind: str, n: int, args: argparse.Namespace, run: str, pin: Any
) -> int:
    """Instructions the service process executes in its whole life, serving ``n`` requests.

    The service runs under ``valgrind --tool=callgrind`` (its usual ``--serve`` command line,
    pinned as in the timed runs); this driver sends the ``n`` requests itself, each of which
    must answer 2xx. SIGTERM then stops it as usual: uvicorn shuts down, the lifespan closes
    the client, uvicorn re-raises SIGTERM, and valgrind writes the callgrind file on the way
    out (its ``totals:`` line, checked here, is the file's last).
    """
    import anyio

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        prefix = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}")
        service = Service(kind, server.url, args.http, pin, prefix, start_s=CALLGRIND_START_S)
        try:
            result = anyio.run(_aiohttp_count_load, service.url, args.connections, n, run)
        finally:
            closed = service.stop(wait_s=CALLGRIND_START_S)
        stderr = service.errors()
        # valgrind's own lines start with ==<pid>==; the rest is the service's.
        own = "\n".join(line for line in stderr.splitlines() if not line.startswith("=="))
        if result["failures"]:
            raise RuntimeError(
                f"{kind} under callgrind: {len(result['failures'])} of {n} requests failed, "
                f"e.g. {result['failures'][:3]}\n{stderr[-2000:]}"
            )
        if not closed or "Traceback" in own or "Warning" in own:
            raise RuntimeError(
                f"{kind} under callgrind did not shut down cleanly "
                f"(exit {service.process.returncode}):\n{stderr[-3000:]}"
            )
        totals = {}
        if out.exists():
            for line in out.read_text().splitlines():
                if line.startswith(("summary:", "totals:")):
                    key, value = line.split()[:2]
                    totals[key] = int(value)
        if "totals:" not in totals:
            raise RuntimeError(f"{kind}: callgrind wrote no totals line\n{stderr[-2000:]}")
        # As bench.py: the summary line when there is one (the totals line differs by a few
        # hundred instructions, which cancel out in the difference of two runs).
        return totals.get("summary:", totals["totals:"])


def instructions_per_request(
    server: Any, kinds: list[str], n: int, args: argparse.Namespace, pin: Any
) -> dict[str, Any]:
    """Instructions per request of each service: runs of n and n+1000 requests, the
    difference over 1000, so that start-up, imports and shutdown cancel out.

    Callgrind counts are repeatable to about 1%, where CPU time on this shared machine
    varies by 30%.
    """
    services = {}
    for kind in kinds:
        started = time.perf_counter()
        small = count_service_instructions(server, kind, n, args, f"ir-{kind}-a", pin)
        large = count_service_instructions(server, kind, n + 1000, args, f"ir-{kind}-b", pin)
        services[kind] = {"per_request": (large - small) / 1000, "runs": [small, large]}
        print(
            f"instructions {kind:<12} {services[kind]['per_request']:,.0f} per request  "
            f"({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    implied = services["aiohttp"]["per_request"] / services["wxlogistics"]["per_request"]
    valgrind = subprocess.run(["valgrind", "--version"], capture_output=True, text=True)
    return {
        "tool": f"{valgrind.stdout.strip()} --tool=callgrind",
        "n": n,
        "connections": args.connections,
        "services": services,
        "implied_ratio": implied,
        "target": 0.8,
        "meets_target": implied >= 0.8,
    }


def measure(
    server: Any,
    kind: str,
    args: argparse.Namespace,
    run: str,
    pins: dict[str, Any],
    script: Path | None,
) -> dict[str, Any]:
    """Start a service, warm it up, load it for ``args.duration`` seconds, stop it."""
    fetches = server.stats()["token_fetches"]
    service = Service(kind, server.url, args.http, pins["service"])
    try:

        def load(seconds: float, prefix: str) -> dict[str, Any]:
            if script is not None:
                return run_wrk(
                    service.url, args.connections, seconds, prefix, script, pins["loadgen"]
                )
            return run_aiohttp_load(service.url, args.connections, seconds, prefix, pins["loadgen"])

        if args.warmup > 0:
            load(args.warmup, f"{run}-warm")

        def sample() -> tuple[float, ...]:
            return (
                cpu_seconds(service.process.pid),
                cpu_seconds(server.process.pid),
                children_cpu(),
                core_busy(pins["service_core"]),
                core_busy(None),
            )

        before = sample()
        result = load(args.duration, run)
        after = sample()
    finally:
        closed = service.stop()
    stderr = service.errors()
    if not closed or "Traceback" in stderr or "Warning" in stderr:
        raise RuntimeError(
            f"{kind} service did not shut down cleanly (exit {service.process.returncode}):\n{stderr}"
        )
    wall = result["duration_s"]
    service_cpu, sandbox_cpu, loadgen_cpu, core_cpu, machine_cpu = (
        b - a for a, b in zip(before, after, strict=True)
    )
    # What else ran (other processes of a shared machine; this driver's own few ms too), in
    # seconds: on the whole machine, and on the service's core when it is pinned. Near 0 on a
    # quiet machine.
    foreign = max(0.0, machine_cpu - service_cpu - sandbox_cpu - loadgen_cpu)
    foreign_service_core = (
        max(0.0, core_cpu - service_cpu) if pins["service_core"] is not None else None
    )
    requests = result["requests"]
    result.update(
        requests_per_s=requests / wall,
        service_cpu_ms_per_request=service_cpu / max(requests, 1) * 1000,
        service_core_pct=service_cpu / wall * 100,
        sandbox_core_pct=sandbox_cpu / wall * 100,
        loadgen_core_pct=loadgen_cpu / wall * 100,
        foreign_pct=foreign / wall * 100,
        foreign_on_service_core_pct=None
        if foreign_service_core is None
        else foreign_service_core / wall * 100,
        token_fetches=server.stats()["token_fetches"] - fetches,
    )
    return result


def versions() -> dict[str, str]:
    """Versions of what is measured."""
    found = {}
    for name in (
        "wxlogistics",
        "fastapi",
        "starlette",
        "uvicorn",
        "httptools",
        "h11",
        "aiohttp",
        "httpx",
        "anyio",
    ):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    if shutil.which("wrk"):
        done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
        found["wrk"] = (done.stdout or done.stderr).split()[1]
    return found


def main() -> None:
    """Run the interleaved rounds, print the markdown table, write JSON and markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=[*SERVICES, BASELINE], help=argparse.SUPPRESS)
    parser.add_argument("--loadgen-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="r", help=argparse.SUPPRESS)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of (wxlogistics, aiohttp); 0: none"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before each run")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "aiohttp"),
        default="auto",
        help="wrk when on PATH (auto), else an aiohttp client process",
    )
    parser.add_argument(
        "--http", choices=("auto", "httptools", "h11"), default="auto", help="uvicorn's parser"
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run, each round, the app with a handler that calls nothing (framework cost)",
    )
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="then count the service's instructions per request under valgrind callgrind: "
        "runs of N and N+1000 requests per service (e.g. 300); 0 skips it",
    )
    parser.add_argument("--no-pin", action="store_true", help="leave every process on every core")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round of 1 s, 0.5 s warm-up (< 30 s)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench-results"), help="writes fastapi.json and fastapi.md"
    )
    args = parser.parse_args()
    args.http = http_impl(args.http)
    if args.serve:
        serve_main(args)
        return
    if args.loadgen_worker:
        loadgen_main(args)
        return
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 1.0, 0.5
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "aiohttp"
    if loadgen == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not on PATH (Debian: apt-get install wrk)")
    if args.rounds < 0 or args.instructions < 0:
        parser.error("--rounds and --instructions take a count >= 0")
    if args.rounds == 0 and not args.instructions:
        parser.error("--rounds 0 measures nothing without --instructions N")
    if args.instructions and not shutil.which("valgrind"):
        parser.error("--instructions needs valgrind on PATH (Debian: apt-get install valgrind)")

    cores = core._cores()
    pinned = len(cores) > 1 and not args.no_pin
    pins: dict[str, Any] = {"service": None, "loadgen": None, "service_core": None}
    if pinned:
        # The service alone on the first core; the fake, the load generator and this driver
        # on the last (the fake's Server pins itself there).
        os.sched_setaffinity(0, {cores[-1]})
        pins = {
            "service": lambda: os.sched_setaffinity(0, {cores[0]}),
            "loadgen": lambda: os.sched_setaffinity(0, {cores[-1]}),
            "service_core": cores[0],
        }
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_before = os.getloadavg()
    services = [*SERVICES, BASELINE] if args.baseline else SERVICES
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in services}
    instructions = None
    with tempfile.TemporaryDirectory() as tmp:
        script = None
        if loadgen == "wrk":
            script = Path(tmp) / "cancel.lua"
            script.write_text(WRK_SCRIPT)
        server = core.Server()
        if not pinned and len(cores) > 1:
            os.sched_setaffinity(server.process.pid, set(cores))
        try:
            for round_no in range(args.rounds):
                for kind in services:
                    result = measure(server, kind, args, f"{kind}{round_no}", pins, script)
                    runs[kind].append(result)
                    print(
                        f"round {round_no + 1}/{args.rounds} {kind:<12} {result['requests_per_s']:7.0f} req/s  "
                        f"{result['service_cpu_ms_per_request']:.3f} ms service CPU/req  "
                        f"service core {result['service_core_pct']:.0f}%  errors {result['errors']}",
                        file=sys.stderr,
                        flush=True,
                    )
            if args.instructions:
                instructions = instructions_per_request(
                    server, services, args.instructions, args, pins["service"]
                )
        finally:
            server.stop()
    report = {
        "question": "FastAPI + uvicorn (1 worker) awaiting cancel_order: requests/s vs the same service on raw aiohttp",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cores": len(cores) or os.cpu_count(),
            "pinned": pinned,
            "placement": (
                f"service on core {cores[0]}; fake WeChat, load generator and driver on core {cores[-1]}"
                if pinned
                else "unpinned: all processes share all cores"
            ),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "versions": versions(),
        "settings": {
            "uvicorn": {"workers": 1, "loop": "asyncio", "http": args.http, "access_log": False},
            "loadgen": loadgen,
            "connections": args.connections,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "quick": args.quick,
        },
        "runs": runs,
        "summary": summarise(runs) if args.rounds else {},
        "wall_s": time.perf_counter() - started,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    if instructions:
        report["instructions"] = instructions
    (args.out / "fastapi.json").write_text(json.dumps(report, indent=2))
    table = render(report)
    (args.out / "fastapi.md").write_text(table)
    print(table)
    failed = {
        kind: s["errors"] for kind, s in report["summary"].items() if kind in runs and s["errors"]
    }
    if failed:
        sys.exit(
            f"failed requests {failed}: the figures are not comparable (see {args.out / 'fastapi.md'})"
        )


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per service min/median/max, and the per-round ratios (rounds ran side by side)."""
    summary: dict[str, Any] = {}
    for kind, results in runs.items():
        summary[kind] = {
            metric: core.spread([r[metric] for r in results])
            for metric in (
                "requests_per_s",
                "service_cpu_ms_per_request",
                "p50_ms",
                "p99_ms",
                "service_core_pct",
            )
        }
        summary[kind]["errors"] = sum(r["errors"] for r in results)
        summary[kind]["requests"] = sum(r["requests"] for r in results)
    a, b = runs["wxlogistics"], runs["aiohttp"]
    throughput = [x["requests_per_s"] / y["requests_per_s"] for x, y in zip(a, b, strict=True)]
    cpu = [
        x["service_cpu_ms_per_request"] / y["service_cpu_ms_per_request"]
        for x, y in zip(a, b, strict=True)
    ]
    summary["ratio_requests_per_s"] = {"per_round": throughput, **core.spread(throughput)}
    summary["ratio_service_cpu_per_request"] = {"per_round": cpu, **core.spread(cpu)}
    implied = [1 / x for x in cpu]
    summary["implied_by_cpu"] = {"per_round": implied, **core.spread(implied)}
    summary["target"] = 0.8
    summary["meets_target"] = statistics.median(throughput) >= 0.8
    summary["meets_target_implied_by_cpu"] = statistics.median(implied) >= 0.8
    summary["disturbed_runs"] = [
        {"round": i + 1, "service": kind, "foreign_pct": r["foreign_pct"]}
        for kind, results in runs.items()
        for i, r in enumerate(results)
        if r["foreign_pct"] > DISTURBED_PCT
    ]
    return summary


def render_instructions(ir: dict[str, Any]) -> list[str]:
    """The markdown lines of the callgrind figures (``--instructions``)."""
    per = {kind: value["per_request"] for kind, value in ir["services"].items()}
    lines = [
        f"Instructions per request of the service process ({ir['tool']}; runs of {ir['n']:,} "
        f"and {ir['n'] + 1000:,} requests over {ir['connections']} keep-alive connections, "
        "the difference / 1000, so start-up, imports and shutdown cancel out; repeatable to "
        "about 1%, where CPU time on a shared machine is not):",
        "",
        "| service | instructions/request |",
        "|---|---|",
    ]
    lines += [f"| {kind} | {value:,.0f} |" for kind, value in per.items()]
    lines += [
        "",
        f"**Implied requests/s ratio wxlogistics/aiohttp = {ir['implied_ratio']:.2f} "
        f"(target >= {ir['target']}): {'met' if ir['meets_target'] else 'NOT met'}.** "
        "(Instructions per request of the aiohttp service over those of the wxlogistics "
        "service: what requests/s tends to when the service's core is the limit, if both "
        "execute their instructions at the same speed.)",
    ]
    if BASELINE in per:
        ours, theirs = per["wxlogistics"] - per[BASELINE], per["aiohttp"] - per[BASELINE]
        lines += [
            "",
            f"Instructions per request: uvicorn + FastAPI alone (`{BASELINE}`: the handler "
            f"calls nothing) {per[BASELINE]:,.0f}; the call on top of it: wxlogistics "
            f"{ours:,.0f}, raw aiohttp {theirs:,.0f} (ratio {ours / theirs:.2f}).",
        ]
    return lines


def render(report: dict[str, Any]) -> str:
    """The markdown table of a report."""
    m, s, cfg = report["machine"], report["summary"], report["settings"]
    v = report["versions"]
    ir = report.get("instructions")
    if not cfg["rounds"]:  # --rounds 0: the callgrind figures alone
        return (
            "\n".join(
                [
                    f"FastAPI service awaiting `cancel_order` vs the same service on raw aiohttp, "
                    f"instructions only (no timed rounds). uvicorn {v['uvicorn']} (1 worker, "
                    f"loop=asyncio, http={cfg['uvicorn']['http']}, no access log), "
                    f"FastAPI {v['fastapi']}, aiohttp {v['aiohttp']}, wxlogistics "
                    f"{v['wxlogistics']}; Python {m['python']}.",
                    "",
                    *render_instructions(ir),
                ]
            )
            + "\n"
        )
    ratio, implied = s["ratio_requests_per_s"], s["implied_by_cpu"]
    lines = [
        f"FastAPI service awaiting `cancel_order` vs the same service on raw aiohttp: "
        f"{cfg['rounds']} interleaved round(s), {cfg['connections']} connections, "
        f"{cfg['warmup_s']:g} s warm-up then {cfg['duration_s']:g} s measured per run. "
        f"uvicorn {v['uvicorn']} (1 worker, loop=asyncio, http={cfg['uvicorn']['http']}, no access log), "
        f"FastAPI {v['fastapi']}, aiohttp {v['aiohttp']}, load from {cfg['loadgen']}"
        f"{' ' + v['wrk'] if cfg['loadgen'] == 'wrk' and 'wrk' in v else ''}. "
        f"Python {m['python']}, {m['cores']} cores, {m['placement']}; "
        f"load average {m['loadavg_before'][0]:.2f} before, {m['loadavg_after'][0]:.2f} after.",
        "",
        f"**wxlogistics/aiohttp requests/s: median {ratio['median']:.2f} "
        f"(rounds: {', '.join(f'{x:.2f}' for x in ratio['per_round'])}); target >= {s['target']}: "
        f"{'met' if s['meets_target'] else 'NOT met'}.**",
        "",
        f"**Implied by the service's CPU per request (1 / its ratio: what requests/s tends to when "
        f"the service's core is saturated and nothing else takes it): median {implied['median']:.2f} "
        f"(rounds: {', '.join(f'{x:.2f}' for x in implied['per_round'])}); target: "
        f"{'met' if s['meets_target_implied_by_cpu'] else 'NOT met'}.**",
        "",
        "| round | service | requests/s | requests | errors | p50 ms | p99 ms | service CPU ms/req | "
        "service core | fake core | load gen core | foreign load | token fetches |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    kinds = list(report["runs"])
    for round_no in range(cfg["rounds"]):
        for kind in kinds:
            r = report["runs"][kind][round_no]
            lines.append(
                f"| {round_no + 1} | {kind} | {r['requests_per_s']:,.0f} | {r['requests']:,} | {r['errors']} | "
                f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['service_cpu_ms_per_request']:.3f} | "
                f"{r['service_core_pct']:.0f}% | {r['sandbox_core_pct']:.0f}% | {r['loadgen_core_pct']:.0f}% | "
                f"{r['foreign_pct']:.0f}% | {r['token_fetches']} |"
            )
    lines += [
        "",
        "| service | requests/s | service CPU ms/req | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for kind in kinds:
        k = s[kind]
        lines.append(
            f"| {kind} | {core.fmt(k['requests_per_s'], 0)} | {core.fmt(k['service_cpu_ms_per_request'])} | "
            f"{core.fmt(k['p50_ms'], 1)} | {core.fmt(k['p99_ms'], 1)} |"
        )
    disturbed = s["disturbed_runs"]
    if disturbed:
        lines += [
            "",
            f"**Disturbed: other processes used more than {DISTURBED_PCT}% of a core during "
            f"{len(disturbed)} of {cfg['rounds'] * len(kinds)} runs ("
            + ", ".join(
                f"round {d['round']} {d['service']}: {d['foreign_pct']:.0f}%" for d in disturbed
            )
            + "). Requests/s moves with such load; CPU per request much less, so read the implied "
            "ratio, or run again on a quiet machine.**",
        ]
    cpu = s["ratio_service_cpu_per_request"]
    lines += [
        "",
        f"Per-round ratios, median (min-max): requests/s wxlogistics/aiohttp {core.fmt(ratio, 2)}; "
        f"service CPU per request wxlogistics/aiohttp {core.fmt(cpu, 2)}.",
    ]
    if BASELINE in s:
        base = s[BASELINE]["service_cpu_ms_per_request"]["median"]
        ours = s["wxlogistics"]["service_cpu_ms_per_request"]["median"] - base
        theirs = s["aiohttp"]["service_cpu_ms_per_request"]["median"] - base
        lines += [
            "",
            f"Service CPU per request, medians: uvicorn + FastAPI alone (`{BASELINE}`: the handler "
            f"calls nothing) {base:.3f} ms; the call on top of it: wxlogistics {ours:.3f} ms, raw "
            f"aiohttp {theirs:.3f} ms (ratio {ours / theirs:.2f}).",
        ]
    if ir:
        lines += ["", *render_instructions(ir)]
    lines += [
        "",
        "Caveat: one 2-core machine runs the service, the fake WeChat and the load generator. "
        + (
            "The service had a core to itself; a service core near 100% means the service was the "
            "bottleneck, as intended. "
            if m["pinned"]
            else "Nothing was pinned, so the service competed with the fake and the load generator. "
        )
        + "'foreign load' is CPU used on the machine by processes other than these three during "
        + "the run, in % of one core (of 100% per core): a machine shared with other work shows it "
        + "there, and such a run's figures are disturbed. "
        + "Absolute figures are this machine's; the ratio is the figure that carries over.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
