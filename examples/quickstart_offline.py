"""The README quickstart, run against a mocked WeChat: no credentials, no network.

The session's ``httpx.AsyncClient`` runs over the transport given as ``transport=``; here an
``httpx.MockTransport`` that plays WeChat, so this shows exactly what is sent.
"""

from __future__ import annotations

import anyio
import httpx

from wxlogistics import AlreadyCancelledError, AsyncLogistics, WaybillHasTracesError


def fake_wechat(request: httpx.Request) -> httpx.Response:
    """Issue a token, and cancel any waybill."""
    if request.url.path == "/cgi-bin/stable_token":
        return httpx.Response(200, json={"access_token": "fake-token", "expires_in": 7200})
    print(f"WeChat received: {request.method} {request.url.path} {request.content.decode()}")
    return httpx.Response(
        200, json={"errcode": 0, "errmsg": "ok", "delivery_resultcode": 0, "delivery_resultmsg": ""}
    )


async def main() -> None:
    """The quickstart, verbatim but for the credentials and the mocked transport."""
    async with AsyncLogistics(
        appid="wx1234567890abcdef",
        secret="your-app-secret",
        base_url="https://api.weixin.qq.com",  # not WX_BASE_URL: the mock answers for WeChat
        transport=httpx.MockTransport(fake_wechat),
    ) as client:
        try:
            result = await client.cancel_order(
                order_id="01234567890123456789",
                openid="oABC123456",  # optional
                delivery_id="SF",
                waybill_id="123456789",
            )
        except AlreadyCancelledError:
            print("already cancelled")
        except WaybillHasTracesError:
            print("too late: the parcel has moved")
        else:
            print("cancelled:", result.errmsg, result.delivery_resultcode)


if __name__ == "__main__":
    anyio.run(main)
