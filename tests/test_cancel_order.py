"""cancel_order: the exact request sent and the result returned."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import wxlogistics as wx
from wxlogistics import CancelOrderRequest, CancelOrderResult

from .helpers import (
    APPID,
    CANCEL,
    IDS,
    OK,
    SECRET,
    STABLE,
    TOKEN,
    body_of,
    make_router,
    token_response,
    wired,
)

pytestmark = pytest.mark.anyio


async def test_sends_exact_request_and_returns_result() -> None:
    router = make_router()
    token_route = router.post(STABLE).mock(return_value=token_response())
    cancel_route = router.post(CANCEL).respond(json=OK)
    async with wired(router) as client:
        result = await client.cancel_order(**IDS, openid="oABC123456")

    assert token_route.call_count == 1
    assert body_of(token_route.calls.last.request) == {
        "grant_type": "client_credential",
        "appid": APPID,
        "secret": SECRET,
        "force_refresh": False,
    }
    assert cancel_route.call_count == 1
    request = cancel_route.calls.last.request
    assert request.method == "POST"
    assert request.url.path == CANCEL
    assert dict(request.url.params) == {"access_token": TOKEN}
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert body_of(request) == {**IDS, "openid": "oABC123456"}
    assert result == CancelOrderResult(
        errcode=0, errmsg="ok", delivery_resultcode=0, delivery_resultmsg="", payload=OK
    )
    assert result.payload == OK


async def test_openid_left_out_when_none() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(CANCEL).respond(json=OK)
    async with wired(router) as client:
        await client.cancel_order(**IDS)
    assert body_of(route.calls.last.request) == IDS
    assert "openid" not in route.calls.last.request.content.decode()


async def test_non_ascii_sent_as_raw_utf8_not_escaped() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(CANCEL).respond(json=OK)
    async with wired(router) as client:
        await client.cancel_order(order_id="订单-１", delivery_id="SF", waybill_id="运单9")
    raw = route.calls.last.request.content
    assert b"\\u" not in raw
    assert "订单-１".encode() in raw
    assert raw == json.dumps(
        {"order_id": "订单-１", "delivery_id": "SF", "waybill_id": "运单9"},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


async def test_success_without_errcode_and_unknown_fields_kept() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    payload = {"delivery_resultcode": 0, "new_field": {"x": 1}}
    router.post(CANCEL).respond(json=payload)
    async with wired(router) as client:
        result = await client.cancel_order(**IDS)
    assert result.errcode == 0
    assert result.errmsg == ""
    assert result.delivery_resultcode == 0
    assert result.delivery_resultmsg is None
    assert result.payload["new_field"] == {"x": 1}


async def test_body_parsed_whatever_the_content_type() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    router.post(CANCEL).respond(
        content=b'{"errcode":"0","errmsg":"ok"}', headers={"content-type": "text/plain"}
    )
    async with wired(router) as client:
        result = await client.cancel_order(**IDS)
    assert result.errcode == 0
    assert result.errmsg == "ok"


async def test_cancel_with_request_object() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(CANCEL).respond(json=OK)
    async with wired(router) as client:
        result = await client.cancel(CancelOrderRequest(**IDS, openid="o1"))
    assert result.errcode == 0
    assert body_of(route.calls.last.request) == {**IDS, "openid": "o1"}


async def test_base_url_is_honoured() -> None:
    router = make_router()
    hits: list[httpx.URL] = []

    def record(request: httpx.Request) -> httpx.Response:
        hits.append(request.url)
        if request.url.path == STABLE:
            return token_response()
        return httpx.Response(200, json=OK)

    router.route(host="sandbox.example").mock(side_effect=record)
    async with wired(router, base_url="http://sandbox.example:8080/") as client:
        await client.cancel_order(**IDS)
    assert [str(u).split("?")[0] for u in hits] == [
        "http://sandbox.example:8080/cgi-bin/stable_token",
        "http://sandbox.example:8080/cgi-bin/express/business/order/cancel",
    ]


_JSON_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.lists(st.none())
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["errcode", "errmsg", "delivery_resultcode", "delivery_resultmsg", "other"]
        ),
        _JSON_VALUE,
    )
)
def test_result_fields_from_any_payload(payload: dict[str, Any]) -> None:
    """The fast paths for the usual types give what the plain conversions give."""

    def as_int(value: object) -> int | None:
        if isinstance(value, bool | int):
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                return None
        return None

    result = wx.CancelOrderResult.from_api(payload)
    msg = payload.get("delivery_resultmsg")
    assert (
        result.errcode,
        result.errmsg,
        result.delivery_resultcode,
        result.delivery_resultmsg,
    ) == (
        as_int(payload.get("errcode")) or 0,
        str(payload.get("errmsg") or ""),
        as_int(payload.get("delivery_resultcode")),
        msg if isinstance(msg, str) else None,
    )
    assert type(result.errcode) is int
    assert result.payload is payload


@given(
    st.one_of(
        st.text(max_size=30),
        st.builds(json.dumps, st.dictionaries(st.text(max_size=5), _JSON_VALUE, max_size=4)),
        st.sampled_from(['{"a":1} ', ' {"a":1}', '{"a":1}{', '{"a":', "{}", '{"a":"\x01"}', "[1]"]),
    ),
    st.sampled_from(["utf-8", "latin-1"]),
)
def test_answer_bodies_decode_as_the_json_decoder_does(text: str, encoding: str) -> None:
    from wxlogistics._transport import decode_json

    try:
        content = text.encode(encoding)
    except UnicodeEncodeError:
        return
    decoder = json.JSONDecoder(strict=False)
    try:
        expected: Any = ("value", decoder.decode(content.decode()))
    except ValueError as exc:
        expected = ("error", type(exc))
    try:
        got: Any = ("value", decode_json(content))
    except ValueError as exc:
        got = ("error", type(exc))
    assert got == expected
