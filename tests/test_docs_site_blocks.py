"""Every ```python block of the site's pages in docs/ subfolders runs as written.

``tests/test_docs_blocks.py`` runs the blocks of README.md and of the pages directly in docs/;
this file runs those of docs/start/, docs/howto/ and docs/reference/, the same way (and with
the same sandbox: a fake WeChat served over HTTP on loopback, ``WX_APPID``, ``WX_SECRET`` and
``WX_BASE_URL`` set as ``wxlogistics sandbox --cancel-unknown`` prints them):

- a **program** is executed as ``__main__``; what it prints is checked where
  :data:`EXPECTED_OUTPUT` says, and :data:`FOLLOW_UPS` call what it defines;
- a **pytest test** (it defines ``test_...``) is run by pytest in a subprocess, in a folder
  holding the page's **files**;
- a **file** (``<!-- file: service.py -->`` on the line before the fence) is a program the page
  tells the reader to save under that name: it is run as a program and written there for the
  page's tests to import;
- **not run** (``<!-- not run: why -->``): only compiled. Few, each with its reason.

Shell blocks marked ``<!-- runs: in the sandbox's environment -->`` (the operators' how-to)
are run by bash, in order, in one fresh folder per page, with the sandbox's ``export`` lines
set; what they print is checked where :data:`SHELL_OUTPUT` says.

``test_every_page_is_covered`` checks that the two files together cover every page.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.test_docs_blocks import PAGES as TOP_LEVEL_PAGES
from tests.test_docs_blocks import Sandbox, in_sandbox, sandbox, upstream_deprecations

__all__ = ["in_sandbox", "sandbox"]  # the fixtures, imported for pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if p.parent != DOCS and "_generated" not in p.parts)
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
MARKER = re.compile(r"<!-- (not run|file): (.+?) -->")
MAX_NOT_RUN = 2


@dataclass(frozen=True)
class Block:
    """One ```python block: where it is, its code, and how it is run."""

    page: str
    line: int
    code: str
    kind: str  # "program", "pytest" or "not run"
    file: str  # the name the page saves it under ("" if none)
    note: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


SHELL = re.compile(r"^<!-- runs: in the sandbox's environment -->\n```sh\n(.*?)^```", re.S | re.M)


def shell_blocks_of(path: Path) -> list[str]:
    return SHELL.findall(path.read_text(encoding="utf-8"))


SHELL_PAGES = [p for p in PAGES if shell_blocks_of(p)]


def blocks_of(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    page = str(path.relative_to(ROOT))
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rpartition("\n")[2].strip()
        marker = MARKER.fullmatch(before)
        code = match.group(1)
        kind, file, note = "program", "", ""
        if marker is not None and marker.group(1) == "not run":
            kind, note = "not run", marker.group(2)
        elif marker is not None:
            file = marker.group(2)
        elif re.search(r"^(async )?def test_", code, re.M):
            kind = "pytest"
        line = text.count("\n", 0, match.start()) + 2
        found.append(Block(page, line, code, kind, file, note))
    return found


BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def of_kind(*kinds: str) -> list[Any]:
    return [pytest.param(b, id=b.id) for b in BLOCKS if b.kind in kinds]


def run_program(block: Block) -> tuple[dict[str, Any], str]:
    """Execute ``block`` as ``__main__``; returns its namespace and what it printed."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.code, block.id, "exec"), namespace)
    return namespace, out.getvalue()


# -- what is checked ------------------------------------------------------------------------


def follow_up_fastapi(namespace: dict[str, Any], sandbox: Sandbox) -> str:
    """The service of howto/fastapi.md, against the sandbox (its tests use the fake)."""
    from fastapi.testclient import TestClient

    sandbox.fake.add_waybill("svc-moved", "SF", "WSM", state="has_traces")
    with TestClient(namespace["app"]) as http:
        ok = http.post("/orders/svc-1/cancel", json={"delivery_id": "SF", "waybill_id": "W1"})
        moved = http.post(
            "/orders/svc-moved/cancel", json={"delivery_id": "SF", "waybill_id": "WSM"}
        )
        track = http.get(
            "/orders/svc-moved/track", params={"delivery_id": "SF", "waybill_id": "WSM"}
        )
    assert (ok.status_code, ok.json()) == (
        200,
        {"status": "cancelled", "confirmed_by_retry": False},
    )
    assert moved.status_code == 409
    assert moved.json()["detail"]["errcode"] == 9300506
    assert track.status_code == 200
    assert [e["action_type"] for e in track.json()["events"]] == [100001]
    return ""


FOLLOW_UPS: dict[tuple[str, str], Callable[[dict[str, Any], Sandbox], str]] = {
    ("docs/howto/fastapi.md", "def create_app"): follow_up_fastapi,
}
"""(page, text of the block) -> a check that calls what the block defines."""

EXPECTED_OUTPUT: dict[tuple[str, str], list[str] | Callable[[str], None]] = {
    ("docs/start/quickstart.md", "fake.add_waybill"): [
        "order-1: 0 ok",
        "order-2: refused, 9300506",
        "order-2 track: [100001]",
        "fake state: cancelled has_traces",
    ],
    ("docs/start/quickstart.md", "get_all_delivery"): ["carriers: True", "cancelled: 0"],
    ("docs/start/quickstart.md", "get_access_token"): lambda printed: check(
        re.fullmatch(r"credentials ok; token of \d+ characters\n", printed), printed
    ),
    ("docs/start/concepts.md", "tg.start_soon"): ["calls: 20, token fetches: 1"],
    ("docs/start/concepts.md", "idempotent"): ["after aclose: ClientClosedError sent: False"],
    ("docs/howto/batches.md", "asyncio.gather"): ["g1 cancelled", "g2 cancelled", "g3 cancelled"],
    ("docs/howto/batches.md", "requests_from"): [
        "bad skipped: waybill_id must not be empty or blank",
        "{'cancelled': 500} to retry: 0",
    ],
    ("docs/howto/workers.md", "consume"): ["30 jobs, {'cancelled'} | token fetches: 1"],
    ("docs/howto/workers.md", "def cancel_job"): [
        "job 0 errcode 0",
        "job 1 errcode 0",
        "job 2 errcode 0",
        "token fetches: 1",
    ],
    ("docs/howto/processes.md", "same token"): ["same token: True"],
    ("docs/howto/processes.md", "class TokenService"): ["cancelled: 0 | token fetches: 1"],
}
"""(page, text of the block) -> the lines it prints (in any order), or a check of them."""


SHELL_OUTPUT: dict[str, list[str]] = {
    "docs/howto/cli.md": [
        # 2. the credentials
        "access token: ",
        "exit code: 0",
        # 3. one cancel, then an unknown carrier
        "cancelled: order O1001, waybill SF1001 (ok, carrier code 0)",
        "error (errcode 9300503): the delivery_id is not a known carrier",
        "exit code: 1",
        # 4. the batch: two cancelled, one bad row
        "orders.csv:4: skipped: missing waybill_id",
        "cancelled                     2",
        "invalid rows                  1",
        "2",
        # 5. the re-run skips both
        "skipped (done before)         2",
    ],
}
"""page -> lines its shell blocks print, in this order (other lines may come between)."""


def token_service_url(sandbox: Sandbox) -> dict[str, str]:
    """The reader's "token service": the sandbox's classic token endpoint answers the same JSON."""
    query = f"grant_type=client_credential&appid={sandbox.fake.appid}&secret={sandbox.fake.secret}"
    return {"TOKEN_SERVICE_URL": f"{sandbox.url}/cgi-bin/token?{query}"}


ENVIRONMENT: dict[tuple[str, str], Callable[[Sandbox], dict[str, str]]] = {
    ("docs/howto/processes.md", "TOKEN_SERVICE_URL"): token_service_url,
}
"""(page, text of the block) -> environment variables the page tells the reader to set."""


def check(condition: object, printed: str) -> None:
    assert condition, printed


def matching(table: dict[tuple[str, str], Any], block: Block) -> Any:
    found = [v for (page, text), v in table.items() if page == block.page and text in block.code]
    assert len(found) <= 1, block.id
    return found[0] if found else None


# -- the tests --------------------------------------------------------------------------------


def test_every_page_is_covered() -> None:
    every = set(DOCS.rglob("*.md")) - set(DOCS.glob("reference/_generated/*.md"))
    assert every == set(PAGES) | {p for p in TOP_LEVEL_PAGES if p.parent == DOCS}
    assert len(PAGES) >= 20
    assert len(BLOCKS) >= 15
    for block in BLOCKS:
        compile(block.code, block.id, "exec")
    assert {str(p.relative_to(ROOT)) for p in SHELL_PAGES} == set(SHELL_OUTPUT)
    not_run = [b for b in BLOCKS if b.kind == "not run"]
    assert len(not_run) <= MAX_NOT_RUN, [b.id for b in not_run]
    assert all(len(b.note) > 10 for b in not_run), "say why a block is not run"
    for table in (FOLLOW_UPS, EXPECTED_OUTPUT, ENVIRONMENT):
        for page, text in table:
            hits = [b for b in BLOCKS if b.page == page and text in b.code]
            assert len(hits) == 1, (page, text, [b.id for b in hits])
    for page in PAGES:  # a fence the pattern misses would escape these tests
        text = page.read_text(encoding="utf-8")
        assert not {"py", "python3", "pycon"} & set(re.findall(r"^\s*```(\w+)", text, re.M))
        assert text.count("```python\n") == len(blocks_of(page)), page


@upstream_deprecations
@pytest.mark.parametrize("block", of_kind("program"))
def test_program_runs(block: Block, in_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = matching(ENVIRONMENT, block)
    for name, value in (environment(in_sandbox) if environment else {}).items():
        monkeypatch.setenv(name, value)
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


@pytest.mark.parametrize("page", SHELL_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_blocks_run_in_order(page: Path, in_sandbox: Sandbox, tmp_path: Path) -> None:
    # "wxlogistics" is this interpreter's (the console script may not be on PATH).
    shim = f'wxlogistics() {{ "{sys.executable}" -m wxlogistics "$@"; }}\n'
    printed = []
    for code in shell_blocks_of(page):
        done = subprocess.run(
            ["bash", "-c", shim + code],
            cwd=tmp_path,
            env={**os.environ, **in_sandbox.env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream, in the order a terminal shows it
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout  # its last command succeeded
        assert "Traceback" not in done.stdout
        printed += done.stdout.splitlines()
    expected = SHELL_OUTPUT[str(page.relative_to(ROOT))]
    remaining = iter(printed)
    for wanted in expected:  # in order, each on a line of its own or starting one
        assert any(line.startswith(wanted) for line in remaining), (wanted, printed)


@pytest.fixture(scope="module")
def pytest_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Run every test block with pytest, once, in a subprocess; ``{file: PASSED/FAILED...}``.

    Each page gets its own folder, holding its ``file`` blocks under their names.
    """
    root = tmp_path_factory.mktemp("site_doc_tests")
    (root / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        # Every warning is an error, but upstream deprecations that depend on the installed
        # versions (Starlette's TestClient without httpx2, on Python 3.10: a UserWarning
        # subclass). Later lines win; a -W option would override them all.
        "filterwarnings =\n"
        "    error\n"
        "    ignore:The anyio.abc.BlockingPortal alias is deprecated:DeprecationWarning\n"
        "    ignore:Using `httpx` with `starlette.testclient`:UserWarning\n",
        encoding="utf-8",
    )
    names = {}
    for block in BLOCKS:
        folder = root / re.sub(r"\W", "_", block.page)
        folder.mkdir(exist_ok=True)
        if block.file:
            (folder / block.file).write_text(block.code, encoding="utf-8")
        if block.kind == "pytest":
            name = "test_" + re.sub(r"\W", "_", block.id) + ".py"
            (folder / name).write_text(block.code, encoding="utf-8")
            names[block.id] = name
    env = {k: v for k, v in os.environ.items() if not k.startswith("WX_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    outcomes = {}
    output = []
    folders = {root / re.sub(r"\W", "_", b.page) for b in BLOCKS if b.kind == "pytest"}
    for folder in sorted(folders):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-rA",
                "-q",
                "--rootdir",
                str(folder),
                "-c",
                str(root / "pytest.ini"),
                str(folder),
            ],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        output.append(result.stdout + result.stderr)
        for block_id, name in names.items():
            found = re.findall(
                rf"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL)\S* \S*{re.escape(name)}",
                result.stdout,
                re.M,
            )
            if found:
                outcomes[block_id] = ",".join(found)
    outcomes["__output__"] = "\n".join(output)
    return outcomes


@pytest.mark.parametrize("block", of_kind("pytest"))
def test_test_block_passes_under_pytest(block: Block, pytest_run: dict[str, str]) -> None:
    tests = len(re.findall(r"^(?:async )?def test_", block.code, re.M))
    outcomes = pytest_run.get(block.id, "not run").split(",")
    assert set(outcomes) == {"PASSED"}, pytest_run["__output__"]
    assert len(outcomes) >= tests, pytest_run["__output__"]
