"""The wxlogistics command, end to end against `wxlogistics sandbox` in another process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from wxlogistics import cli
from wxlogistics.testing import FakeWeChat

ENV = {**os.environ, "WX_APPID": "wxfake0000000000", "WX_SECRET": "fake-app-secret"}


class Sandbox:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def stats(self) -> dict[str, object]:
        value = httpx.get(f"{self.url}/_fake/stats", timeout=5).json()
        assert isinstance(value, dict)
        return value

    def add(self, waybills: list[dict[str, str]]) -> None:
        httpx.post(f"{self.url}/_fake/waybills", json=waybills, timeout=30).raise_for_status()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    process = subprocess.Popen(
        [sys.executable, "-m", "wxlogistics", "sandbox", "--port", "0", "--latency", "0.002"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert match, line + (process.stderr.read() if process.stderr else "")
    try:
        yield Sandbox(process, f"http://127.0.0.1:{match.group(1)}")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wxlogistics", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- single cancel ------------------------------------------------------------------------------


def test_cancel_success_and_failures(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WX_APPID", "wxfake0000000000")
    monkeypatch.setenv("WX_SECRET", "fake-app-secret")
    sandbox.add(
        [
            {"order_id": "A1", "delivery_id": "SF", "waybill_id": "W1"},
            {"order_id": "A2", "delivery_id": "SF", "waybill_id": "W2", "state": "has_traces"},
        ]
    )
    base = ["--base-url", sandbox.url]
    assert (
        cli.main(["cancel", *base, "--order-id", "A1", "--delivery-id", "SF", "--waybill-id", "W1"])
        == 0
    )
    assert "cancelled: order A1, waybill W1" in capsys.readouterr().out

    code = cli.main(
        ["cancel", *base, "--order-id", "A2", "--delivery-id", "SF", "--waybill-id", "W2"]
    )
    err = capsys.readouterr().err
    assert code == cli.EXIT_REFUSED
    assert "errcode 9300506" in err
    assert "already moved" in err

    code = cli.main(
        ["cancel", *base, "--order-id", " ", "--delivery-id", "SF", "--waybill-id", "W2"]
    )
    assert code == cli.EXIT_USAGE
    assert "order_id" in capsys.readouterr().err

    code = cli.main(
        [
            "cancel",
            *base,
            "--secret",
            "wrong-secret",
            "--order-id",
            "A1",
            "--delivery-id",
            "SF",
            "--waybill-id",
            "W1",
        ]
    )
    captured = capsys.readouterr()
    assert code == cli.EXIT_CREDENTIALS
    assert "wrong-secret" not in captured.out + captured.err
    assert "fake-app-secret" not in captured.out + captured.err


def sandbox_token(sandbox: Sandbox) -> str:
    """The sandbox's current token (its stable endpoint hands out the same one while valid)."""
    body = {"grant_type": "client_credential", "appid": ENV["WX_APPID"], "secret": ENV["WX_SECRET"]}
    value = httpx.post(f"{sandbox.url}/cgi-bin/stable_token", json=body, timeout=5).json()
    return str(value["access_token"])


def test_token_command_prints_length_and_lifetime_only(sandbox: Sandbox) -> None:
    done = run_cli("token", "--base-url", sandbox.url)
    assert done.returncode == 0, done.stderr
    token = sandbox_token(sandbox)
    match = re.fullmatch(r"access token: (\d+) chars, valid for (\d+)s more\n", done.stdout)
    assert match, done.stdout
    assert int(match.group(1)) == len(token)
    assert 7000 < int(match.group(2)) <= 7200
    # Not the token, nor its first or last characters (the old output showed "stab…x9Qz").
    assert token[:4] not in done.stdout + done.stderr
    assert token[-4:] not in done.stdout + done.stderr
    assert "fake-app-secret" not in done.stdout + done.stderr


def test_token_command_show_prints_the_token_alone_on_stdout(sandbox: Sandbox) -> None:
    done = run_cli("token", "--show", "--base-url", sandbox.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == sandbox_token(sandbox) + "\n"
    assert re.fullmatch(r"access token: \d+ chars, valid for \d+s more\n", done.stderr)
    assert "fake-app-secret" not in done.stdout + done.stderr


def test_unreachable_host_exit_code() -> None:
    done = run_cli(
        "cancel",
        "--base-url",
        "http://127.0.0.1:9",
        "--timeout",
        "2",
        "--order-id",
        "A",
        "--delivery-id",
        "SF",
        "--waybill-id",
        "W",
    )
    assert done.returncode == cli.EXIT_UNREACHABLE
    assert "could not be reached" in done.stderr


# -- batch --------------------------------------------------------------------------------------


def write_orders(path: Path, n: int) -> tuple[list[dict[str, str]], set[str]]:
    """A CSV of n orders plus bad rows; returns the waybills to create and the valid order ids."""
    waybills: list[dict[str, str]] = []
    valid: set[str] = set()
    lines = ["order_id,delivery_id,waybill_id,openid"]
    for i in range(n):
        order_id = f"B{i:05d}"
        if i % 100 == 42:
            lines.append(f",SF,W{i},")  # missing order_id
            continue
        if i % 100 == 43:
            lines.append(f"{order_id},SF,W{i},o,EXTRA,CELLS")  # malformed
            continue
        state = "has_traces" if i % 10 == 1 else "cancelled" if i % 10 == 2 else "created"
        if i % 10 != 3:  # never created: 930563
            waybills.append(
                {"order_id": order_id, "delivery_id": "SF", "waybill_id": f"W{i}", "state": state}
            )
        lines.append(f"{order_id},SF,W{i},")
        valid.add(order_id)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return waybills, valid


def read_results(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_batch_interrupted_then_resumed(
    sandbox: Sandbox, tmp_path: Path, how: signal.Signals
) -> None:
    orders = tmp_path / "orders.csv"
    results = tmp_path / "results.jsonl"
    waybills, valid = write_orders(orders, 1000)
    sandbox.add(waybills)

    command = [
        sys.executable,
        "-m",
        "wxlogistics",
        "cancel-batch",
        str(orders),
        "--output",
        str(results),
        "--base-url",
        sandbox.url,
        "--concurrency",
        "8",
    ]
    first = subprocess.Popen(
        command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if results.exists() and results.read_text().count("\n") >= 150:
            break
        time.sleep(0.01)
    first.send_signal(how)
    _, err = first.communicate(timeout=60)
    if how == signal.SIGINT:
        assert first.returncode == cli.EXIT_INTERRUPTED, err
        assert "run the same command again to resume" in err
    else:
        assert first.returncode == -signal.SIGKILL
    partial = read_results(results) if results.read_text().strip() else []
    assert 0 < len(partial) < len(valid)

    second = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=120)
    assert second.returncode == cli.EXIT_REFUSED  # the bad rows are reported
    assert re.search(r"orders\.csv:44: skipped: missing order_id", second.stderr)
    assert re.search(r"orders\.csv:45: skipped: 6 cells for 4 columns", second.stderr)
    assert re.search(r"skipped \(done before\)\s+\d+", second.stdout)

    final = read_results(results)
    per_order = Counter(str(r["order_id"]) for r in final)
    assert set(per_order) == valid
    assert set(per_order.values()) == {1}, [k for k, v in per_order.items() if v > 1]
    statuses = Counter(str(r["outcome"]) for r in final)
    traced = sum(w["state"] == "has_traces" for w in waybills)
    assert statuses["has_traces"] == traced == 100
    assert statuses["not_found"] == len(valid) - len(waybills) == 90
    assert statuses["failed"] == 0
    # A request in flight at the kill is sent again on resume and answers 9300524, so it is
    # recorded as already_cancelled: cancelled + already_cancelled covers every cancellable one.
    assert statuses["cancelled"] + statuses["already_cancelled"] == len(waybills) - traced
    stats = sandbox.stats()
    assert stats["cancelled_twice"] == []
    assert stats["states"] == {"cancelled": len(waybills) - traced, "has_traces": traced}


def test_torn_last_line_is_mended(tmp_path: Path) -> None:
    output = tmp_path / "r.jsonl"
    good = json.dumps(
        {
            "order_id": "a",
            "delivery_id": "SF",
            "waybill_id": "w",
            "outcome": "cancelled",
            "final": True,
        }
    )
    retry = json.dumps(
        {
            "order_id": "b",
            "delivery_id": "SF",
            "waybill_id": "w",
            "outcome": "failed",
            "final": False,
        }
    )
    output.write_text(good + "\n" + retry + "\n" + '{"order_id": "c", "deliv', encoding="utf-8")
    assert cli.load_finished(output) == {("a", "SF", "w")}
    assert output.read_text(encoding="utf-8") == good + "\n" + retry + "\n"


def test_jsonl_input_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"order_id": "a", "delivery_id": "SF", "waybill_id": "w"}\n'
        "not json\n"
        "\n"
        '["list"]\n'
        '{"order_id": "b", "delivery_id": "SF", "waybill_id": 5}\n'
        '{"order_id": "c", "delivery_id": "SF", "waybill_id": "w", "openid": "o"}\n',
        encoding="utf-8",
    )
    bad: list[tuple[int, str]] = []
    rows = list(cli.read_requests(path, None, lambda line, why: bad.append((line, why))))
    assert [(line, r.order_id, r.openid) for line, r in rows] == [(1, "a", None), (6, "c", "o")]
    assert [line for line, _ in bad] == [2, 4, 5]
    assert "waybill_id must be a str" in bad[2][1]


def test_progress_bar_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        progress = cli._Progress(10, stream)
        progress.update(5, Counter(cancelled=4, failed=1), force=True)
        progress.close()
    assert "[###############...............] 5/10  cancelled 4  failed 1" in tty.getvalue()
    assert pipe.getvalue() == ""


def test_demo_runs_offline(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--orders", "120", "--latency", "0"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"processed\s+120", out)
    assert "1 token fetch" in out
    assert "cancelled twice: 0" in out


def test_demo_on_trio(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--orders", "50", "--latency", "0", "--backend", "trio"]) == 0
    assert re.search(r"processed\s+50", capsys.readouterr().out)


def test_sandbox_preload_with_states(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pre.csv"
    path.write_text(
        "order_id,delivery_id,waybill_id,openid,state\n"
        "A1,SF,W1,,\nA2,SF,W2,,has_traces\nA3,SF,W3,,cancelled\nA4,SF,W4,,bogus\n,SF,W5,,\n",
        encoding="utf-8",
    )
    fake = FakeWeChat()
    assert cli._preload(fake, path) == 3
    assert [(w.order_id, w.state) for w in fake.waybills] == [
        ("A1", "created"),
        ("A2", "has_traces"),
        ("A3", "cancelled"),
    ]
    err = capsys.readouterr().err
    assert "pre.csv:5: skipped: unknown state 'bogus'" in err
    assert "pre.csv:6: skipped: missing order_id" in err


def read_lines(stream: IO[str], n: int, timeout: float = 20) -> list[str]:
    """The next ``n`` lines of ``stream``; fails (instead of hanging) if they do not come."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        with contextlib.suppress(ValueError):  # the stream closed by the test's clean-up
            for _ in range(n):
                lines.put(stream.readline())

    threading.Thread(target=read, daemon=True).start()
    try:
        return [lines.get(timeout=timeout) for _ in range(n)]
    except queue.Empty:
        pytest.fail(f"fewer than {n} lines came within {timeout}s")


def test_sandbox_banner_exports_its_credentials_and_url() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wxlogistics",
            "sandbox",
            "--port",
            "0",
            "--appid",
            "wxbanner00000000",
            "--secret",
            "a fake secret; with $pecial chars",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        banner = read_lines(process.stdout, 5)
        url = re.search(r"http://127\.0\.0\.1:\d+", banner[0])
        assert url, banner
        assert banner[2:] == [
            "  export WX_APPID=wxbanner00000000\n",
            "  export WX_SECRET='a fake secret; with $pecial chars'\n",
            f"  export WX_BASE_URL={url.group(0)}\n",
        ]
        # What a user pastes into another shell is enough to use the sandbox: no flags.
        exports = "".join(banner[2:])
        script = f"{exports}\nexec {shlex.quote(sys.executable)} -m wxlogistics token"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WX_")}
        done = subprocess.run(
            ["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("access token: ")
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8765"),
        ("0.0.0.0", "http://127.0.0.1:8765"),
        ("::", "'http://[::1]:8765'"),  # quoted: brackets are a glob in sh
        ("::1", "'http://[::1]:8765'"),
        ("localhost", "http://localhost:8765"),
    ],
)
def test_sandbox_banner_url_is_reachable_from_this_machine(host: str, url: str) -> None:
    banner = cli.sandbox_banner(FakeWeChat(), host, 8765).splitlines()
    assert banner[-1] == f"  export WX_BASE_URL={url}"
