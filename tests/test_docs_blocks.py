"""Every ```python block of README.md and docs/*.md runs as written.

Each block is one of:

- a **program**: executed as ``__main__`` with ``WX_APPID``, ``WX_SECRET`` and ``WX_BASE_URL``
  pointing at a fake WeChat served over HTTP on loopback, exactly what a reader gets from
  ``wxlogistics sandbox --cancel-unknown`` and its ``export`` lines (so the examples run
  against the sandbox as the README says);
- a **pytest test** (it defines ``test_...``): written to a file and run by pytest in a
  subprocess, with the plugins a user has (wxlogistics', anyio's, respx's, pytest-httpx's) and
  no ``WX_*`` variables;
- **given** some names (``<!-- given: name, name (what they are) -->`` on the line before the
  fence): a fragment of a larger program (a web handler's body, say); executed like a program
  with those names supplied by :data:`GIVEN`;
- **not run** (``<!-- not run: why -->`` on the line before the fence): only compiled. Few,
  each with its reason.

A block that raises, prints a traceback, leaves a warning, or (for a test) does not pass fails
its test. Blocks that only define functions are followed by a check in :data:`FOLLOW_UPS`,
which calls what they define and checks what it prints.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest

from wxlogistics.testing import FakeWeChat, serve

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
MARKER = re.compile(r"<!-- (not run|given): (.+?) -->")
MAX_NOT_RUN = 3
"""Blocks marked not run, in all pages together: keep them few."""


@dataclass(frozen=True)
class Block:
    """One ```python block: where it is, its code, and how it is run."""

    page: str
    line: int
    code: str
    kind: str  # "program", "pytest", "given" or "not run"
    note: str  # the marker's text ("" without a marker)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def given(self) -> list[str]:
        names = self.note.split(" (")[0]
        return [name.strip() for name in names.split(",")]


def blocks_of(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    page = str(path.relative_to(ROOT))
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rpartition("\n")[2].strip()
        marker = MARKER.fullmatch(before)
        code = match.group(1)
        if marker is not None:
            kind, note = marker.group(1), marker.group(2)
        elif re.search(r"^(async )?def test_", code, re.M):
            kind, note = "pytest", ""
        else:
            kind, note = "program", ""
        line = text.count("\n", 0, match.start()) + 2  # the block's first line of code
        found.append(Block(page, line, code, kind, note))
    return found


BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def of_kind(*kinds: str) -> list[Any]:
    return [pytest.param(b, id=b.id) for b in BLOCKS if b.kind in kinds]


# -- the sandbox ------------------------------------------------------------------------------


@dataclass
class Sandbox:
    """``wxlogistics sandbox --cancel-unknown``, in this process, and its ``export`` lines."""

    fake: FakeWeChat
    url: str

    @property
    def env(self) -> dict[str, str]:
        return {"WX_APPID": self.fake.appid, "WX_SECRET": self.fake.secret, "WX_BASE_URL": self.url}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    fake = FakeWeChat(unknown_orders="cancel")
    with anyio.from_thread.start_blocking_portal() as portal:
        future, port = portal.start_task(serve, fake, "127.0.0.1", 0)
        try:
            yield Sandbox(fake, f"http://127.0.0.1:{port}")
        finally:
            future.cancel()


@pytest.fixture
def in_sandbox(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Sandbox:
    """The environment a reader has after pasting the sandbox's export lines."""
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    sandbox.fake.clear_faults()
    return sandbox


def run_program(block: Block, names: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """Execute ``block`` as ``__main__``; returns its namespace and what it printed."""
    namespace: dict[str, Any] = {"__name__": "__main__", **(names or {})}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.code, block.id, "exec"), namespace)
    return namespace, out.getvalue()


# -- what the blocks that only define things are then asked to do ------------------------------


def follow_up_gather(namespace: dict[str, Any], sandbox: Sandbox) -> str:
    sandbox.fake.add_waybill("moved", "SF", "WM", state="has_traces")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        anyio.run(namespace["cancel_all"], [("a1", "SF", "W1"), ("moved", "SF", "WM")])
    first, second = out.getvalue().splitlines()
    assert first == "a1 cancelled"
    assert second.startswith("moved failed: [9300506] waybill has traces, cannot cancel (rid: ")
    return out.getvalue()


def follow_up_fastapi(namespace: dict[str, Any], sandbox: Sandbox) -> str:
    from fastapi.testclient import TestClient

    sandbox.fake.add_waybill("f2", "SF", "WF2", state="has_traces")
    with TestClient(namespace["app"]) as http:
        ok = http.post("/orders/f1/cancel", params={"delivery_id": "SF", "waybill_id": "W"})
        moved = http.post("/orders/f2/cancel", params={"delivery_id": "SF", "waybill_id": "WF2"})
        bad = http.post("/orders/f3/cancel", params={"delivery_id": "NOPE", "waybill_id": "W"})
    assert (ok.status_code, ok.json()) == (200, {"errcode": 0, "carrier": 0})
    assert (moved.status_code, moved.json()) == (409, {"detail": "the parcel has already moved"})
    assert bad.status_code == 502
    assert bad.json()["detail"].startswith("[9300503]")
    return ""


def follow_up_logging(namespace: dict[str, Any], sandbox: Sandbox) -> str:
    import logging

    handler = namespace["handler"]
    assert handler in logging.getLogger().handlers
    logging.getLogger().removeHandler(handler)
    record = logging.LogRecord(
        "proxy", logging.INFO, __file__, 1, "GET %s", ("https://x/?access_token=T0K",), None
    )
    assert handler.filter(record)
    assert "T0K" not in record.getMessage()
    return ""


FOLLOW_UPS: dict[tuple[str, str], Callable[[dict[str, Any], Sandbox], str]] = {
    ("README.md", "async def cancel_all"): follow_up_gather,
    ("README.md", "app = FastAPI(lifespan=lifespan)"): follow_up_fastapi,
    ("docs/logging.md", "handler.addFilter"): follow_up_logging,
}
"""(page, text of the block) -> a check that calls what the block defines."""


def early_exit_output(printed: str) -> None:
    *lines, last = printed.splitlines()
    ids = [line.split()[0] for line in lines]
    assert all(line.endswith(" cancelled") for line in lines), lines
    assert len(ids) == len(set(ids)), ids  # each outcome once: read, or kept in unconsumed
    assert "o3" in ids
    assert last == f"{len(ids)} sent, {len(ids)} finished"


EXPECTED_OUTPUT: dict[tuple[str, str], list[str] | Callable[[str], None]] = {
    ("README.md", "except AlreadyCancelledError"): ["cancelled: ok 0"],
    ("docs/observability.md", "retries.append"): ["['cancelOrder'] 1 []"],
    ("docs/observability.md", "send.send_nowait(event)"): ["cancelOrder True 1"],
    ("README.md", "SENDER = Address("): lambda out: _every_endpoint(out),
    ("README.md", "async def cancel_file"): [
        "o1 cancelled",
        "o2 invalid: waybill_id must not be empty or blank",
        "o3 cancelled",
    ],
    ("docs/batch.md", "print(cancelled"): ["200 cancelled"],
    ("docs/batch.md", "break  # leave early"): early_exit_output,
    ("docs/http.md", 'event_hooks["request"]'): [
        "-> POST /cgi-bin/stable_token",
        "<- 200 /cgi-bin/stable_token",
        "-> POST /cgi-bin/express/business/order/cancel",
        "<- 200 /cgi-bin/express/business/order/cancel",
    ],
    ("docs/http.md", "WireTransport(max_connections=20)"): ["ok"],
    ("docs/http.md", "httpx.MockTransport(wechat)"): ["0 ok"],
    ("docs/http.md", 'asyncio.run(cancel("o2"))'): ["o1 ok", "o2 ok", "1 token fetch"],
    ("docs/lifecycle.md", "client.is_closed"): ["closed: True"],
    ("docs/testing.md", "fake.fail_next(1, status=502)"): [
        "refused: 9300506",
        "[('/cgi-bin/stable_token', 200), ('/cgi-bin/express/business/order/cancel', 502),"
        " ('/cgi-bin/express/business/order/cancel', 200)]",
    ],
    ("docs/testing.md", "tg.start(serve"): ["ok 1"],
    ("docs/events.md", "print(verifier)"): [
        "PushVerifier(appid='wx1234567890abcdef', safe_mode=True, max_age=300.0)"
    ],
}
"""(page, text of the block) -> the lines it prints (in any order), or a check of them."""


def _every_endpoint(out: str) -> None:
    """What README's "Every endpoint" prints (the waybill id is the sandbox's own)."""
    lines = out.splitlines()
    assert re.fullmatch(r"waybill TEST\d+ print data: True", lines[0]), lines[0]
    assert lines[1:] == [
        "track: [(100001, '揽件成功')]",
        "batch: [True]",
        "carriers: True",
        "quota left: True",
        "printers: ('oPrinter1',)",
        "accounts: ['readme-biz']",
    ]


def matching(table: dict[tuple[str, str], Any], block: Block) -> Any:
    found = [v for (page, text), v in table.items() if page == block.page and text in block.code]
    assert len(found) <= 1, block.id
    return found[0] if found else None


# -- names supplied to the "given" blocks -----------------------------------------------------

PUSH_TOKEN = "the-push-token"
PUSH_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
PUSH_APPID = "wx1234567890abcdef"
PATH_UPDATE = {
    "ToUserName": "gh_1",
    "FromUserName": "o1",
    "CreateTime": 1700000000,
    "MsgType": "event",
    "Event": "add_express_path",
    "DeliveryID": "SF",
    "WayBillId": "SF123",
    "Version": 1,
    "Count": 1,
    "Actions": [{"ActionTime": 1700000000, "ActionType": 100001, "ActionMsg": "picked up"}],
}


def push_names() -> dict[str, Any]:
    """A safe-mode verifier, and a push built by it as WeChat would send it."""
    from wxlogistics.events import PushVerifier

    verifier = PushVerifier(token=PUSH_TOKEN, encoding_aes_key=PUSH_AES_KEY, appid=PUSH_APPID)
    push = verifier.build_push(PATH_UPDATE)
    return {"verifier": verifier, "query": dict(push.params), "body": push.body}


def handshake_names() -> dict[str, Any]:
    from wxlogistics.events import PushVerifier

    verifier = PushVerifier(token=PUSH_TOKEN, encoding_aes_key=PUSH_AES_KEY, appid=PUSH_APPID)
    return {"verifier": verifier, "query": verifier.build_handshake("echo-123")}


def fastapi_push_names() -> dict[str, Any]:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "wxlogistics_docs_fastapi_push", ROOT / "examples" / "fastapi_push.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"create_app": module.create_app}


GIVEN: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("docs/events.md", "verifier.verify_url("): handshake_names,
    ("docs/events.md", "verifier.parse("): push_names,
    ("docs/events.md", "verifier.decode("): push_names,
    ("docs/events.md", "TestClient(create_app("): fastapi_push_names,
}
"""(page, text of the block) -> the names it is given."""

GIVEN_OUTPUT: dict[tuple[str, str], list[str]] = {
    ("docs/events.md", "verifier.verify_url("): ["echo-123"],
    ("docs/events.md", "verifier.parse("): ["SF123 [(100001, 'picked up')]"],
    ("docs/events.md", "verifier.decode("): ["SF123 1"],
}

# Upstream deprecations that depend on the installed versions (as in tests/test_events.py).
upstream_deprecations = pytest.mark.filterwarnings(
    "ignore:The anyio.abc.BlockingPortal alias is deprecated:DeprecationWarning",
    "ignore:Using `httpx` with `starlette.testclient`:UserWarning",
)


# -- the tests --------------------------------------------------------------------------------


def test_the_pages_have_blocks_and_every_marker_is_known() -> None:
    assert len(PAGES) >= 13
    assert len(BLOCKS) >= 25
    for block in BLOCKS:
        compile(block.code, block.id, "exec")
    not_run = [b for b in BLOCKS if b.kind == "not run"]
    assert len(not_run) <= MAX_NOT_RUN, [b.id for b in not_run]
    assert all(len(b.note) > 10 for b in not_run), "say why a block is not run"
    # Every table entry matches exactly one block, so none of them goes stale unnoticed.
    for table in (FOLLOW_UPS, EXPECTED_OUTPUT, GIVEN, GIVEN_OUTPUT):
        for page, text in table:
            hits = [b for b in BLOCKS if b.page == page and text in b.code]
            assert len(hits) == 1, (page, text, [b.id for b in hits])
    for block in BLOCKS:
        if block.kind == "given":
            supplier = matching(GIVEN, block)
            assert supplier is not None, f"{block.id}: no names for a 'given' block"
            assert sorted(supplier()) == sorted(block.given), block.id


def test_unmarked_python_fences_are_all_found() -> None:
    # A fence the pattern misses (```py, ```python3, indented) would escape these tests.
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        fences = re.findall(r"^\s*```(\w+)", text, re.M)
        assert not {"py", "python3", "pycon"} & set(fences), page
        assert text.count("```python\n") == len(blocks_of(page)), page


@upstream_deprecations
@pytest.mark.parametrize("block", of_kind("program"))
def test_program_runs(block: Block, in_sandbox: Sandbox) -> None:
    namespace, printed = run_program(block)
    expected = matching(EXPECTED_OUTPUT, block)
    if callable(expected):
        expected(printed)
    elif expected is not None:
        assert sorted(printed.splitlines()) == sorted(expected)
    follow_up = matching(FOLLOW_UPS, block)
    if follow_up is not None:
        follow_up(namespace, in_sandbox)
    assert "Traceback" not in printed


@upstream_deprecations
@pytest.mark.parametrize("block", of_kind("given"))
def test_fragment_runs_with_what_it_is_given(block: Block, in_sandbox: Sandbox) -> None:
    _, printed = run_program(block, matching(GIVEN, block)())
    expected = matching(GIVEN_OUTPUT, block)
    if expected is not None:
        assert printed.splitlines() == expected


@pytest.fixture(scope="module")
def pytest_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Run every test block with pytest, once, in a subprocess; ``{file: PASSED/FAILED...}``."""
    folder = tmp_path_factory.mktemp("doc_tests")
    (folder / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n", encoding="utf-8"
    )
    files = {}
    for block in BLOCKS:
        if block.kind == "pytest":
            name = "test_" + re.sub(r"\W", "_", block.id) + ".py"
            (folder / name).write_text(block.code, encoding="utf-8")
            files[name] = block.id
    env = {k: v for k, v in os.environ.items() if not k.startswith("WX_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q", "-W", "error"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcomes = {}
    for name in files:
        found = re.findall(
            rf"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL)\S* {re.escape(name)}", result.stdout, re.M
        )
        outcomes[name] = ",".join(found) or "not run"
    outcomes["__output__"] = result.stdout + result.stderr
    return outcomes


@pytest.mark.parametrize("block", of_kind("pytest"))
def test_test_block_passes_under_pytest(block: Block, pytest_run: dict[str, str]) -> None:
    name = "test_" + re.sub(r"\W", "_", block.id) + ".py"
    tests = len(re.findall(r"^(?:async )?def test_", block.code, re.M))
    outcomes = pytest_run[name].split(",")
    # anyio's plugin may run each test once per installed backend (asyncio, trio).
    assert set(outcomes) == {"PASSED"}, pytest_run["__output__"]
    assert len(outcomes) >= tests, pytest_run["__output__"]
