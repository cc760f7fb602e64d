"""The batch examples of README.md and docs/batch.md run, and skip a bad row as documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import respx

from .helpers import BASE, CANCEL, OK, STABLE, body_of, token_response

ROOT = Path(__file__).resolve().parent.parent
ROWS = [("o1", "SF", "W1"), ("o2", "SF", " "), ("o3", "SF", "W3")]  # o2: a blank waybill_id


def block(path: Path, marker: str) -> str:
    found = [
        b
        for b in re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)
        if marker in b
    ]
    assert len(found) == 1, (path, marker)
    return found[0]


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_readme_batch_example_skips_a_bad_row(
    backend: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WX_APPID", "wxenvappid")
    monkeypatch.setenv("WX_SECRET", "env-secret")
    namespace: dict[str, Any] = {}
    exec(block(ROOT / "README.md", "async def cancel_file"), namespace)
    with respx.mock(base_url=BASE) as router:
        router.post(STABLE).mock(return_value=token_response())
        route = router.post(CANCEL).respond(json=OK)
        anyio.run(namespace["cancel_file"], ROWS, backend=backend)
    assert sorted(body_of(call.request)["order_id"] for call in route.calls) == ["o1", "o3"]
    assert sorted(capsys.readouterr().out.splitlines()) == [
        "o1 cancelled",
        "o2 invalid: waybill_id must not be empty or blank",
        "o3 cancelled",
    ]


def test_readme_batch_example_reports_sent_requests_after_an_early_exit(
    backend: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rows themselves fail (a file that cannot be read any more): the batch stops, the
    # error comes out as itself, and the `finally` still prints what was sent.
    monkeypatch.setenv("WX_APPID", "wxenvappid")
    monkeypatch.setenv("WX_SECRET", "env-secret")
    namespace: dict[str, Any] = {}
    exec(block(ROOT / "README.md", "async def cancel_file"), namespace)

    def rows() -> Any:
        yield from ROWS[:1]
        raise OSError("orders.csv: input/output error")

    def cancel(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=OK)

    with respx.mock(base_url=BASE) as router:
        router.post(STABLE).mock(return_value=token_response())
        route = router.post(CANCEL).mock(side_effect=cancel)
        with pytest.raises(OSError, match="input/output error") as info:
            anyio.run(namespace["cancel_file"], rows(), backend=backend)
    assert info.type is OSError
    assert route.call_count == 1
    assert capsys.readouterr().out.splitlines() == ["o1 cancelled"]


def test_docs_bad_row_generator_skips_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {}
    exec(block(ROOT / "docs" / "batch.md", "def requests_from"), namespace)
    requests = list(namespace["requests_from"](ROWS))
    assert [r.order_id for r in requests] == ["o1", "o3"]
    assert capsys.readouterr().out == "o2 invalid: waybill_id must not be empty or blank\n"
