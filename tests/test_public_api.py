"""The public surface: every name exported, documented and typed."""

from __future__ import annotations

import inspect

import wxlogistics


def test_all_public_names_are_exported() -> None:
    public = {name for name in dir(wxlogistics) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(wxlogistics, name))}
    assert public - modules == set(wxlogistics.__all__) - {"__version__"}


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for name in wxlogistics.__all__:
        obj = getattr(wxlogistics, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if not inspect.getdoc(obj):
                missing.append(name)
            for member_name, member in vars(obj).items():
                if member_name.startswith("_") or not callable(member):
                    continue
                if not inspect.getdoc(member):
                    missing.append(f"{name}.{member_name}")
    assert missing == []


def test_import_is_lazy() -> None:
    """``import wxlogistics`` loads neither HTTP library: each engine imports its own on use."""
    import subprocess
    import sys

    code = (
        "import sys, wxlogistics; "
        "print(sorted(m for m in ('httpx', 'aiohttp') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


_ASYNCIO_CALL = """
import sys
import anyio
import wxlogistics as wx
from wxlogistics.testing import FakeWeChat, serve


async def main() -> None:
    fake = FakeWeChat()
    fake.add_waybill("o1", "SF", "W1")
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, fake)
        url = f"http://127.0.0.1:{port}"
        async with wx.AsyncLogistics(fake.appid, fake.secret, base_url=url) as client:
            await client.cancel_order(order_id="o1", delivery_id="SF", waybill_id="W1")
        tg.cancel_scope.cancel()
    print(sorted(m for m in ("aiohttp", "httpcore", "h11", "trio") if m in sys.modules))


anyio.run(main)
"""


def test_calls_on_asyncio_import_neither_httpcore_nor_trio() -> None:
    """The aiohttp wire needs neither; httpcore imports trio when trio is installed (~5 MB)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _ASYNCIO_CALL], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "['aiohttp']"
