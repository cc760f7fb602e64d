"""Hooks feeding OpenTelemetry metrics: a histogram of call latency and a counter of retries.

The hooks use only ``opentelemetry-api`` (``pip install opentelemetry-api``); what happens to
the measurements is the application's choice of SDK and exporter. ``main()`` wires the SDK
(``pip install opentelemetry-sdk``) to an in-memory reader and prints what was recorded,
against a mocked WeChat whose first cancel answers "system busy".

Instruments (attributes in brackets):

- ``wxlogistics.call.duration`` histogram, seconds [``wxlogistics.endpoint``,
  ``error.type`` (absent on success), ``wxlogistics.errcode``]
- ``wxlogistics.retries`` counter [``wxlogistics.endpoint``, ``wxlogistics.reason``]
- ``wxlogistics.token.fetches`` counter [``wxlogistics.token.source``,
  ``wxlogistics.token.kind``]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import httpx

from wxlogistics import AsyncLogistics, CallEvent, Hooks, RetryEvent, RetryPolicy, TokenEvent

try:
    from opentelemetry import metrics
except ImportError:  # the example then says what to install
    metrics = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter


def otel_hooks(meter: Meter) -> Hooks:
    """Hooks recording into ``meter``'s instruments (created once, here)."""
    duration = meter.create_histogram(
        "wxlogistics.call.duration", unit="s", description="Duration of WeChat API calls"
    )
    retries = meter.create_counter(
        "wxlogistics.retries", unit="{retry}", description="Attempts retried"
    )
    tokens = meter.create_counter(
        "wxlogistics.token.fetches", unit="{fetch}", description="Access-token fetches"
    )

    def on_call(event: CallEvent) -> None:
        attributes: dict[str, Any] = {"wxlogistics.endpoint": event.endpoint}
        if event.error_type is not None:
            attributes["error.type"] = event.error_type
        if event.errcode is not None:
            attributes["wxlogistics.errcode"] = event.errcode
        duration.record(event.latency_s, attributes)

    def on_retry(event: RetryEvent) -> None:
        retries.add(1, {"wxlogistics.endpoint": event.endpoint, "wxlogistics.reason": event.reason})

    def on_token(event: TokenEvent) -> None:
        tokens.add(
            1, {"wxlogistics.token.source": event.source, "wxlogistics.token.kind": event.kind}
        )

    return Hooks(on_call=on_call, on_retry=on_retry, on_token=on_token)


def fake_wechat() -> httpx.MockTransport:
    """A token endpoint, and a cancel endpoint that is busy once."""
    busy = [True]

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/stable_token":
            return httpx.Response(200, json={"access_token": "fake-token", "expires_in": 7200})
        if busy:
            busy.pop()
            return httpx.Response(200, json={"errcode": -1, "errmsg": "system busy"})
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    return httpx.MockTransport(handle)


async def run_calls(meter: Meter, calls: int = 3) -> None:
    """``calls`` cancels through a client whose hooks record into ``meter``."""
    async with AsyncLogistics(
        appid="wx1234567890abcdef",
        secret="your-app-secret",
        base_url="https://api.weixin.qq.com",
        transport=fake_wechat(),
        retry_policy=RetryPolicy(initial_delay=0.01, jitter=0),
        hooks=otel_hooks(meter),
    ) as client:
        for n in range(calls):
            await client.cancel_order(
                order_id=f"0123456789012345678{n}", delivery_id="SF", waybill_id="123456789"
            )


def main() -> None:
    """Record three calls with the SDK's in-memory reader and print the data points."""
    if metrics is None:
        print("this example needs opentelemetry-api (and opentelemetry-sdk to print)")
        return
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
    except ImportError:
        print("printing the measurements needs opentelemetry-sdk")
        return
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    anyio.run(run_calls, provider.get_meter("wxlogistics.example"))
    data = reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    if isinstance(point, HistogramDataPoint):
                        value = f"count={point.count} sum={point.sum:.4f}s"
                    else:
                        value = str(getattr(point, "value", ""))
                    print(metric.name, dict(point.attributes or {}), value)
    provider.shutdown()


if __name__ == "__main__":
    main()
