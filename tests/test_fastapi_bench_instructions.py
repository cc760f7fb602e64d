"""bench/fastapi_bench.py --instructions: report rendering and option checks (no processes)."""

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "fastapi_bench.py"


@pytest.fixture(scope="module")
def bench() -> Any:
    spec = importlib.util.spec_from_file_location("fastapi_bench_under_test", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(services: dict[str, float]) -> dict[str, Any]:
    return {
        "machine": {"python": "3.11.7"},
        "versions": {
            "uvicorn": "0.54.0",
            "fastapi": "0.165.0",
            "aiohttp": "3.14.5",
            "wxlogistics": "0.1.0",
        },
        "settings": {"uvicorn": {"http": "httptools"}, "rounds": 0},
        "runs": {kind: [] for kind in services},
        "summary": {},
        "instructions": {
            "tool": "valgrind-3.19.0 --tool=callgrind",
            "n": 300,
            "connections": 64,
            "services": {
                kind: {"per_request": value, "runs": [1, 2]} for kind, value in services.items()
            },
            "implied_ratio": services["aiohttp"] / services["wxlogistics"],
            "target": 0.8,
            "meets_target": services["aiohttp"] / services["wxlogistics"] >= 0.8,
        },
    }


def test_instructions_only_report_has_table_and_implied_ratio(bench: Any) -> None:
    text = bench.render(_report({"wxlogistics": 1_300_000.0, "aiohttp": 1_170_000.0}))

    assert "instructions only (no timed rounds)" in text
    assert "| service | instructions/request |" in text
    assert "| wxlogistics | 1,300,000 |" in text
    assert "| aiohttp | 1,170,000 |" in text
    assert "implied requests/s ratio wxlogistics/aiohttp = 0.90 (target >= 0.8): met" in (
        text.lower()
    )
    assert "runs of 300 and 1,300 requests over 64 keep-alive connections" in text
    assert "uvicorn + FastAPI alone" not in text


def test_ratio_below_target_says_not_met(bench: Any) -> None:
    text = bench.render(_report({"wxlogistics": 2_000_000.0, "aiohttp": 1_000_000.0}))

    assert "= 0.50 (target >= 0.8): NOT met" in text


def test_baseline_splits_framework_cost_from_the_call(bench: Any) -> None:
    text = bench.render(
        _report({"wxlogistics": 1_300_000.0, "aiohttp": 1_150_000.0, "none": 550_000.0})
    )

    assert "| none | 550,000 |" in text
    assert "alone (`none`: the handler calls nothing) 550,000" in text
    assert "wxlogistics 750,000, raw aiohttp 600,000 (ratio 1.25)" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rounds", "0"], "--rounds 0 measures nothing without --instructions N"),
        (["--instructions", "-1"], "take a count >= 0"),
    ],
)
def test_option_errors(argv: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 2
    assert message in done.stderr
