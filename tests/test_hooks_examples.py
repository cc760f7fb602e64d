"""The hooks examples run, and record what they say they record."""

from __future__ import annotations

import logging
import runpy
from pathlib import Path
from typing import Any

import anyio
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_logging_example_logs_the_retry_and_the_calls(caplog: pytest.LogCaptureFixture) -> None:
    namespace = runpy.run_path(str(EXAMPLES / "hooks_logging.py"))
    caplog.set_level(logging.INFO, logger="myapp.wechat")
    anyio.run(namespace["main"])
    lines = [r.getMessage() for r in caplog.records if r.name == "myapp.wechat"]
    assert lines[0].startswith("token fetched from stable in ")
    assert lines[1] == "retrying cancelOrder (attempt 2 in 0.01s): SystemBusyError errcode=-1"
    assert lines[2].startswith("cancelOrder errcode=0 error=None attempts=2 ")
    assert lines[3].startswith("cancelOrder errcode=0 error=None attempts=1 ")
    assert len(lines) == 4
    assert "fake-token" not in caplog.text
    assert "your-app-secret" not in caplog.text


def test_otel_example_records_a_histogram_and_a_counter() -> None:
    pytest.importorskip("opentelemetry.metrics")
    sdk_metrics = pytest.importorskip("opentelemetry.sdk.metrics")
    from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

    namespace = runpy.run_path(str(EXAMPLES / "hooks_otel.py"))
    reader = InMemoryMetricReader()
    provider = sdk_metrics.MeterProvider(metric_readers=[reader])
    anyio.run(namespace["run_calls"], provider.get_meter("test"), 3)
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points[metric.name] = list(metric.data.data_points)
    provider.shutdown()
    (duration,) = points["wxlogistics.call.duration"]
    assert isinstance(duration, HistogramDataPoint)
    assert duration.count == 3
    assert dict(duration.attributes or {}) == {
        "wxlogistics.endpoint": "cancelOrder",
        "wxlogistics.errcode": 0,
    }
    (retries,) = points["wxlogistics.retries"]
    assert retries.value == 1
    assert dict(retries.attributes or {}) == {
        "wxlogistics.endpoint": "cancelOrder",
        "wxlogistics.reason": "SystemBusyError errcode=-1",
    }
    (fetches,) = points["wxlogistics.token.fetches"]
    assert fetches.value == 1


def test_otel_example_main_prints_the_points(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("opentelemetry.sdk.metrics")
    runpy.run_path(str(EXAMPLES / "hooks_otel.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "wxlogistics.call.duration {'wxlogistics.endpoint': 'cancelOrder'" in out
    assert "count=3" in out
    assert "wxlogistics.retries" in out
