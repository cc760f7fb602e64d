"""check_id and check_secret: what they refuse, what they say, and what they never say."""

from __future__ import annotations

import os
import re
import traceback
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import wxlogistics
from wxlogistics import ValidationError
from wxlogistics._models import check_id as reexported_check_id
from wxlogistics._validate import DEFAULT_MAX_ID_BYTES, check_id, check_secret

CONTROL_OR_SURROGATE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
PACKAGE = str(Path(wxlogistics.__file__).parent)

# (value, words the message must contain). Every one of these is sent as-is today, or raises
# something other than ValidationError.
BAD_IDS: list[tuple[Any, str]] = [
    (None, "must be a str, not NoneType"),
    (123, "must be a str, not int"),
    (b"bytes", "must be a str, not bytes"),
    ("", "empty or blank"),
    (" ", "empty or blank"),
    ("\t\n", "empty or blank"),
    (" padded", "must not start with white space"),
    ("padded ", "must not end with white space"),
    ("\x00", "control character (U+0000) at position 0"),
    ("a\x07b", "control character (U+0007) at position 1"),
    ("ab\x1b[31m", "control character (U+001B) at position 2"),
    ("a\tb", "control character (U+0009) at position 1"),
    ("a\r\nb", "control character (U+000D) at position 1"),
    ("a\x7f", "control character (U+007F) at position 1"),
    ("a\x85b", "control character (U+0085) at position 1"),
    ("a\x9fb", "control character (U+009F) at position 1"),
    ("lone\ud800", "undecodable byte (lone surrogate U+D800"),
    ("lone\udfffx", "at position 4"),
    ("x" * 513, "longer than 512 bytes"),
    ("é" * 257, "longer than 512 bytes"),  # 257 characters, 514 bytes
    ("中" * 171, "longer than 512 bytes"),  # 513 bytes
    ("😀" * 129, "longer than 512 bytes"),  # 516 bytes
]

GOOD_IDS = [
    "0",
    "01234567890123456789",
    "SF",
    "order 42",  # inner space: WeChat accepts it
    "订单-42",
    "x" * 512,
    "é" * 256,  # exactly 512 bytes
    "😀" * 128,  # exactly 512 bytes
    "a\u00a0b",  # no-break space inside: not a control character
]


@pytest.mark.parametrize(("value", "words"), BAD_IDS)
def test_check_id_refuses(value: Any, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_id("order_id", value)
    message = str(info.value)
    assert message.startswith("order_id ")
    assert words in message


@pytest.mark.parametrize("value", GOOD_IDS)
def test_check_id_returns_good_ids_unchanged(value: str) -> None:
    assert check_id("order_id", value) is value


def test_check_id_message_quotes_at_most_a_preview() -> None:
    with pytest.raises(ValidationError) as info:
        check_id("order_id", " " + "x" * 100_000)
    assert len(str(info.value)) < 200
    assert "100001 characters" in str(info.value)


@pytest.mark.parametrize(
    ("max_bytes", "accepted", "refused"),
    [
        (64, "x" * 64, "x" * 65),
        (64, "é" * 32, "é" * 32 + "x"),
        (512, "x" * 512, "x" * 513),
        (1024, "x" * 1024, "x" * 1025),
        (1024, "中" * 341, "中" * 342),
    ],
)
def test_check_id_max_bytes(max_bytes: int, accepted: str, refused: str) -> None:
    assert check_id("waybill_id", accepted, max_bytes=max_bytes) == accepted
    with pytest.raises(ValidationError, match=f"waybill_id is longer than {max_bytes} bytes"):
        check_id("waybill_id", refused, max_bytes=max_bytes)


def test_models_reexports_the_same_function() -> None:
    assert reexported_check_id is check_id


@pytest.mark.parametrize("value", ["a\x07b", "lone\ud800", "x\x1b"])
def test_cancel_request_refuses_control_characters_and_surrogates(value: str) -> None:
    with pytest.raises(ValidationError, match="waybill_id contains"):
        wxlogistics.CancelOrderRequest(order_id="1", delivery_id="SF", waybill_id=value)


# Any text: plain, with controls and lone surrogates, and long multi-byte text near the limits.
ANY_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=())),
    st.text(st.sampled_from(" \t\n\x00\x07\x1b\x7f\x85\x9f\ud800\udcffaé中😀\u00a0"), max_size=20),
    st.text(st.sampled_from("aé中😀"), min_size=100, max_size=1100),
)


@given(value=ANY_TEXT, max_bytes=st.sampled_from([1, 4, 64, 512, 1024]))
@example(value="lone\ud800", max_bytes=512)
@example(value="a\x07b", max_bytes=512)
@example(value="😀" * 16, max_bytes=64)
@example(value="😀" * 16 + "a", max_bytes=64)
def test_check_id_accepts_unchanged_or_raises_validation_error(value: str, max_bytes: int) -> None:
    error: ValidationError | None = None
    try:
        result = check_id("order_id", value, max_bytes=max_bytes)
    except ValidationError as exc:  # anything else fails the test
        error = exc
    if error is not None:
        assert str(error).startswith("order_id ")
        return
    assert result is value
    assert len(value.encode("utf-8")) <= max_bytes
    assert CONTROL_OR_SURROGATE.search(value) is None
    assert value
    assert value.strip() == value


@given(value=ANY_TEXT)
def test_check_secret_agrees_with_check_id(value: str) -> None:
    """Same rules; only the messages differ."""
    try:
        check_id("x", value)
    except ValidationError:
        with pytest.raises(ValidationError):
            check_secret("secret", value)
    else:
        assert check_secret("secret", value) is value


# A secret-looking value around each bad part, so that a message quoting any of it is caught.
SECRET_BODY = "9f3c1d2e7a6b5c4d"
BAD_SECRETS: list[tuple[str, str]] = [
    (" " + SECRET_BODY, "secret must not start with white space"),
    (SECRET_BODY + "\n", "secret must not end with white space"),
    (
        SECRET_BODY[:5] + "\x07" + SECRET_BODY[5:],
        "secret contains a control character at position 5",
    ),
    (SECRET_BODY + "\x1b", "secret contains a control character at position 16"),
    (SECRET_BODY[:3] + "\ud800" + SECRET_BODY[3:], "secret contains an undecodable byte"),
    (SECRET_BODY * 40, "secret is longer than 512 bytes"),
]


def _fragments(secret: str) -> list[str]:
    """Every 6-character piece of the secret's printable part, and its repr."""
    clean = CONTROL_OR_SURROGATE.sub("", secret).strip()
    return [clean[i : i + 6] for i in range(len(clean) - 5)] + [repr(secret)[1:-1]]


@pytest.mark.parametrize(("secret", "expected"), BAD_SECRETS)
def test_check_secret_message_never_quotes_the_secret(secret: str, expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_secret("secret", secret)
    message = str(info.value)
    assert message.startswith(expected)
    texts = [message, repr(info.value), repr(info.value.args)]
    # Frame locals of the library's frames in the traceback (error trackers record them).
    for frame, _ in traceback.walk_tb(info.value.__traceback__):
        if frame.f_code.co_filename.startswith(PACKAGE):
            texts.append(repr(frame.f_locals))
            assert secret not in frame.f_locals.values()
    for text in texts:
        for fragment in _fragments(secret):
            assert fragment not in text


def test_check_secret_does_not_show_the_code_point_of_an_undecodable_byte() -> None:
    # surrogateescape maps byte 0xE9 to U+DCE9: the code point would give the byte away.
    secret = os.fsdecode(b"abc\xe9def") if os.name == "posix" else "abc\udce9def"
    with pytest.raises(ValidationError) as info:
        check_secret("secret", secret)
    assert "position 3" in str(info.value)
    assert "DCE9" not in str(info.value).upper()


@pytest.mark.skipif(os.name != "posix", reason="os.environb exists on POSIX only")
def test_secret_from_the_environment_with_undecodable_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(os.environb, b"WX_VALIDATE_TEST_SECRET", b"s3cr\xffet")
    secret = os.environ["WX_VALIDATE_TEST_SECRET"]
    assert "\udcff" in secret  # how os.environ hands over a byte it cannot decode
    with pytest.raises(ValidationError, match="secret contains an undecodable byte"):
        check_secret("secret", secret)
    # The same value through check_id: a ValidationError too, not UnicodeEncodeError.
    with pytest.raises(ValidationError):
        check_id("appid", secret)


@pytest.mark.parametrize("value", [None, 42, b"secret", ["s"]])
def test_check_secret_names_the_type_not_the_value(value: Any) -> None:
    with pytest.raises(ValidationError, match=f"appid must be a str, not {type(value).__name__}"):
        check_secret("appid", value)


@pytest.mark.parametrize("value", ["wx1234567890abcdef", "0123456789abcdef0123456789abcdef"])
def test_check_secret_returns_good_values_unchanged(value: str) -> None:
    assert check_secret("secret", value) is value


def test_default_limit_is_512_bytes() -> None:
    assert DEFAULT_MAX_ID_BYTES == 512
