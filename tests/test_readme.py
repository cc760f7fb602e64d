"""The README's examples send exactly what they should (respx sees every request).

tests/test_docs_blocks.py runs every block of the README and docs/ as written, against the
sandbox; here the requests themselves are checked, through respx.
"""

from __future__ import annotations

import asyncio
import re
import runpy
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from .helpers import BASE, CANCEL, OK, STABLE, body_of, token_response

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def block_containing(marker: str) -> str:
    (block,) = [b for b in blocks() if marker in b]
    return block


def test_every_python_block_compiles() -> None:
    assert len(blocks()) >= 4
    for block in blocks():
        compile(block, "README.md", "exec")


def test_quickstart_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WX_APPID", "wxenvappid")
    monkeypatch.setenv("WX_SECRET", "env-secret")
    monkeypatch.delenv("WX_BASE_URL", raising=False)
    with respx.mock(base_url=BASE, assert_all_called=True) as router:
        token_route = router.post(STABLE).mock(return_value=token_response())
        route = router.post(CANCEL).respond(json=OK)
        exec(block_containing("except AlreadyCancelledError"), {"__name__": "readme"})
    assert body_of(token_route.calls.last.request) == {
        "grant_type": "client_credential",
        "appid": "wxenvappid",
        "secret": "env-secret",
        "force_refresh": False,
    }
    assert body_of(route.calls.last.request) == {
        "order_id": "01234567890123456789",
        "openid": "oABC123456",
        "delivery_id": "SF",
        "waybill_id": "123456789",
    }
    assert capsys.readouterr().out == "cancelled: ok 0\n"


def test_batch_example_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WX_APPID", "wxenvappid")
    monkeypatch.setenv("WX_SECRET", "env-secret")
    monkeypatch.delenv("WX_BASE_URL", raising=False)
    namespace: dict[str, Any] = {}
    exec(block_containing("async def cancel_all"), namespace)  # not __main__: defines only

    def cancel(request: httpx.Request) -> httpx.Response:
        if body_of(request)["waybill_id"] == "W2":
            return httpx.Response(200, json={"errcode": 9300506, "errmsg": "has traces"})
        return httpx.Response(200, json=OK)

    with respx.mock(base_url=BASE) as router:
        token_route = router.post(STABLE).mock(return_value=token_response())
        router.post(CANCEL).mock(side_effect=cancel)
        asyncio.run(
            namespace["cancel_all"]([("o1", "SF", "W1"), ("o2", "SF", "W2"), ("o3", "SF", "W3")])
        )
    assert token_route.call_count == 1
    assert capsys.readouterr().out.splitlines() == [
        "o1 cancelled",
        "o2 failed: [9300506] has traces",
        "o3 cancelled",
    ]


def test_cancel_orders_example_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WX_APPID", "wxenvappid")
    monkeypatch.setenv("WX_SECRET", "env-secret")
    monkeypatch.delenv("WX_BASE_URL", raising=False)
    namespace: dict[str, Any] = {}
    exec(block_containing("async def cancel_file"), namespace)  # not __main__: defines only
    with respx.mock(base_url=BASE) as router:
        router.post(STABLE).mock(return_value=token_response())
        router.post(CANCEL).respond(json=OK)
        asyncio.run(namespace["cancel_file"]([("o1", "SF", "W1"), ("o2", "SF", "W2")]))
    assert sorted(capsys.readouterr().out.splitlines()) == ["o1 cancelled", "o2 cancelled"]


def test_testing_example_runs() -> None:
    from wxlogistics.testing import FakeWeChat

    namespace: dict[str, Any] = {}
    exec(block_containing("wxlogistics_fake.add_waybill"), namespace)
    fake = FakeWeChat()
    asyncio.run(namespace["test_cancel"](fake, fake.client()))
    assert fake.waybill("o1").cancellations == 1


def test_http_engine_is_gone_from_the_docs() -> None:
    docs = [README, *sorted((README.parent / "docs").glob("*.md"))]
    for page in docs:
        text = page.read_text(encoding="utf-8")
        for stale in ("http_engine", "client.engine", "aiohttp engine", "httpx engine"):
            assert stale not in text, (page.name, stale)


def test_offline_quickstart_example_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WX_BASE_URL", "http://127.0.0.1:9")  # ignored: the example names WeChat
    runpy.run_path(str(README.parent / "examples" / "quickstart_offline.py"), run_name="__main__")
    assert capsys.readouterr().out.splitlines() == [
        "WeChat received: POST /cgi-bin/express/business/order/cancel "
        '{"order_id":"01234567890123456789","delivery_id":"SF","waybill_id":"123456789",'
        '"openid":"oABC123456"}',
        "cancelled: ok 0",
    ]
