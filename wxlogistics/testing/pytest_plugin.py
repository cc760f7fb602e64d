"""pytest fixtures for code that uses wxlogistics (registered through the ``pytest11`` entry point).

::

    async def test_cancel(wxlogistics_fake, wxlogistics_client):
        wxlogistics_fake.add_waybill("o1", "SF", "WB1")
        await wxlogistics_client.cancel_order(order_id="o1", delivery_id="SF", waybill_id="WB1")
        assert wxlogistics_fake.waybill("o1").state == "cancelled"

Run the test with your async plugin of choice (pytest-asyncio, or anyio's ``anyio`` marker).
"""

from __future__ import annotations

import pytest

from wxlogistics import AsyncLogistics

from ._fake import FakeWeChat


@pytest.fixture
def wxlogistics_fake() -> FakeWeChat:
    """A fresh in-memory fake WeChat logistics service."""
    return FakeWeChat()


@pytest.fixture
def wxlogistics_client(wxlogistics_fake: FakeWeChat) -> AsyncLogistics:
    """An AsyncLogistics wired to ``wxlogistics_fake`` (in process; retries do not sleep).

    Its transport holds no sockets, so a test need not close it.
    """
    return wxlogistics_fake.client()
