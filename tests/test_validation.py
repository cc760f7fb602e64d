"""Bad arguments raise ValidationError before any request or token fetch."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wxlogistics as wx

from .helpers import IDS, make_router, wired

pytestmark = pytest.mark.anyio

BAD_VALUES: list[Any] = [
    None,
    "",
    " ",
    "\t\n",
    123,
    b"bytes",
    ["x"],
    " padded",
    "padded ",
    "x" * 513,
    "\x00",
    "a\x07b",  # WeChat answers 40033 for control characters: refused before sending
    "ab\x1b[0m",
    "a\x7f",
    "a\x85b",
    "lone\ud800",  # used to raise a raw UnicodeEncodeError
]


@pytest.mark.parametrize("field", ["order_id", "delivery_id", "waybill_id"])
@pytest.mark.parametrize("value", BAD_VALUES)
async def test_bad_required_id_raises_before_any_request(field: str, value: Any) -> None:
    router = make_router()  # no routes: any request would fail the test with a different error
    async with wired(router) as client:
        with pytest.raises(wx.ValidationError, match=field):
            await client.cancel_order(**{**IDS, field: value})
        assert client.tokens.fetch_count == 0
    assert router.calls.call_count == 0


@pytest.mark.parametrize("value", [v for v in BAD_VALUES if v is not None])
async def test_bad_openid_raises(value: Any) -> None:
    router = make_router()
    async with wired(router) as client:
        with pytest.raises(wx.ValidationError, match="openid"):
            await client.cancel_order(**IDS, openid=value)
    assert router.calls.call_count == 0


async def test_missing_argument_is_a_type_error_not_a_request() -> None:
    router = make_router()
    async with wired(router) as client:
        with pytest.raises(TypeError):
            await client.cancel_order(order_id="1", delivery_id="SF")  # type: ignore[call-arg]
    assert router.calls.call_count == 0


def test_validation_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="waybill_id"):
        wx.CancelOrderRequest(order_id="1", delivery_id="SF", waybill_id="")


@given(
    st.one_of(
        st.integers(), st.floats(), st.binary(), st.lists(st.text()), st.none(), st.booleans()
    )
)
def test_any_non_str_id_is_rejected(value: object) -> None:
    with pytest.raises(wx.ValidationError):
        wx.CancelOrderRequest(order_id=value, delivery_id="SF", waybill_id="w")  # type: ignore[arg-type]


# Any text but control characters (category Cc: C0, DEL, C1) and lone surrogates (Cs).
@given(
    st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=100).filter(
        lambda s: s.strip() == s and not s.isspace()
    )
)
def test_any_trimmed_non_blank_text_without_controls_is_accepted(value: str) -> None:
    request = wx.CancelOrderRequest(order_id=value, delivery_id="SF", waybill_id="w")
    assert request.to_body() == {"order_id": value, "delivery_id": "SF", "waybill_id": "w"}


_ANY_ID = st.one_of(
    st.sampled_from(BAD_VALUES),
    st.text(max_size=20),
    st.sampled_from(['a"b', "a\\b", "中文 id", "\u2028x", "x\ty"]),  # quoted or escaped
    st.integers(),
    st.none(),
)


@given(_ANY_ID, _ANY_ID, _ANY_ID, st.one_of(st.none(), _ANY_ID))
def test_cancel_orders_fast_body_agrees_with_the_request_record(
    order_id: Any, delivery_id: Any, waybill_id: Any, openid: Any
) -> None:
    """cancel_order builds its body without the record: the same bytes or the same error."""
    from wxlogistics._models._cancel import cancel_json
    from wxlogistics._transport import encode_json

    ids = (order_id, delivery_id, waybill_id, openid)
    try:
        expected: Any = encode_json(
            wx.CancelOrderRequest(
                order_id=order_id, delivery_id=delivery_id, waybill_id=waybill_id, openid=openid
            ).to_body()
        )
    except wx.ValidationError as exc:
        expected = ("error", str(exc))
    try:
        got: Any = cancel_json(*ids)
    except wx.ValidationError as exc:
        got = ("error", str(exc))
    assert got == expected


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"appid": None, "secret": "s"}, "appid and secret"),
        ({"appid": "", "secret": "s"}, "appid"),
        ({"appid": "wx1", "secret": " "}, "secret"),
        ({"appid": "wx1", "secret": "s", "base_url": "ftp://x"}, "base_url"),
        ({"appid": "wx1", "secret": "s", "max_connections": 0}, "max_connections"),
        ({"appid": "wx1", "secret": "s", "max_retries": -1}, "max_retries"),
        ({"appid": "wx1", "secret": "s", "token_source": "nope"}, "token_source"),
    ],
)
def test_bad_client_configuration(
    kwargs: dict[str, Any], fragment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WX_APPID", raising=False)
    monkeypatch.delenv("WX_SECRET", raising=False)
    with pytest.raises(wx.ValidationError, match=fragment):
        wx.AsyncLogistics(**kwargs)


@pytest.mark.parametrize("field", ["appid", "secret"])
@pytest.mark.parametrize("bad", ["se\x07cret", "se\x00cret", "se\ud800cret"])
def test_control_characters_and_surrogates_in_credentials(field: str, bad: str) -> None:
    kwargs = {"appid": "wx1", "secret": "s", field: bad}
    with pytest.raises(wx.ValidationError, match=field):
        wx.AsyncLogistics(**kwargs)


@pytest.mark.skipif(os.name != "posix", reason="os.environb exists on POSIX only")
def test_undecodable_secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.environ hands over an undecodable byte as a lone surrogate: refuse it at once."""
    monkeypatch.setenv("WX_APPID", "wxfromenv")
    monkeypatch.setitem(os.environb, b"WX_SECRET", b"s3cr\xffet")
    with pytest.raises(wx.ValidationError, match="secret"):
        wx.AsyncLogistics()


async def test_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WX_APPID", "wxfromenv")
    monkeypatch.setenv("WX_SECRET", "secret-from-env")
    async with wx.AsyncLogistics() as client:
        assert client.appid == "wxfromenv"
        assert "secret-from-env" not in repr(client)
