"""Push events: signatures, replay, safe-mode decryption, parsing, and the FastAPI example.

Every push here is built for real (signed with sha1, encrypted with AES-256-CBC) and checked
against published vectors where one exists; nothing is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from wxlogistics import ValidationError, WxLogisticsError
from wxlogistics.events import (
    MAX_PUSH_BYTES,
    PathAction,
    PathUpdateEvent,
    PushDecryptError,
    PushError,
    PushFormatError,
    PushReplayError,
    PushSignatureError,
    PushVerifier,
    decode_push_message,
    parse_path_update,
)

TOKEN = "push-token-Zq8rT"
RAW_KEY = bytes(range(32))
AES_KEY = base64.b64encode(RAW_KEY).decode().rstrip("=")
OTHER_KEY = base64.b64encode(bytes(range(100, 132))).decode().rstrip("=")
APPID = "wx1234567890abcdef"
NOW = 1_700_000_000
PREFIX = b"0123456789abcdef"

EVENT = {
    "ToUserName": "gh_abcdef123456",
    "FromUserName": "oABCD_user_openid",
    "CreateTime": 1699999990,
    "MsgType": "event",
    "Event": "add_express_path",
    "DeliveryID": "SF",
    "WayBillId": "SF1234567890",
    "OrderId": "order-01",
    "Version": 3,
    "Count": 2,
    "Actions": [
        {"ActionTime": 1699999000, "ActionType": 100001, "ActionMsg": "小哥A揽件成功"},
        {"ActionTime": 1699999500, "ActionType": 200001, "ActionMsg": "到达广州集包地"},
    ],
}
EXPECTED = PathUpdateEvent(
    ToUserName="gh_abcdef123456",
    FromUserName="oABCD_user_openid",
    CreateTime=1699999990,
    MsgType="event",
    Event="add_express_path",
    DeliveryID="SF",
    WayBillId="SF1234567890",
    OrderId="order-01",
    Version=3,
    Count=2,
    Actions=(
        PathAction(ActionTime=1699999000, ActionType=100001, ActionMsg="小哥A揽件成功"),
        PathAction(ActionTime=1699999500, ActionType=200001, ActionMsg="到达广州集包地"),
    ),
)

# The documentation's examples, in both formats (CDATA, indentation and all).
DOC_XML = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1546924844</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[add_express_path]]></Event>
  <DeliveryID><![CDATA[SF]]></DeliveryID>
  <WayBillId><![CDATA[123456789]]></WayBillId>
  <Version>3</Version>
  <Count>2</Count>
  <Actions>
    <ActionTime>1546924840</ActionTime>
    <ActionType>100001</ActionType>
    <ActionMsg><![CDATA[小哥A揽件成功]]></ActionMsg>
  </Actions>
  <Actions>
    <ActionTime>1546924841</ActionTime>
    <ActionType>200001</ActionType>
    <ActionMsg><![CDATA[到达广州集包地]]></ActionMsg>
  </Actions>
</xml>"""
DOC_JSON = """{
  "ToUserName": "toUser", "FromUserName": "fromUser", "CreateTime": 1546924844,
  "MsgType": "event", "Event": "add_express_path", "DeliveryID": "SF",
  "WayBillId": "123456789", "Version": 3, "Count": 2,
  "Actions": [
    {"ActionTime": 1546924840, "ActionType": 100001, "ActionMsg": "小哥A揽件成功"},
    {"ActionTime": 1546924841, "ActionType": 200001, "ActionMsg": "到达广州集包地"}
  ]
}"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><ToUserName>&lol3;</ToUserName></xml>"""


def clock() -> float:
    return float(NOW)


def plain() -> PushVerifier:
    return PushVerifier(token=TOKEN, clock=clock)


def safe(*, key: str = AES_KEY, appid: str = APPID) -> PushVerifier:
    return PushVerifier(token=TOKEN, encoding_aes_key=key, appid=appid, clock=clock)


def sha1_sorted(*parts: str) -> str:
    """The signature, computed independently of the module under test."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def raw_encrypt(plaintext: bytes, key: bytes = RAW_KEY) -> str:
    """AES-256-CBC without padding: the caller pads (or mis-pads) the plaintext itself."""
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode()


def encrypted_body(encrypt: str, *, timestamp: int = NOW, nonce: str = "42") -> dict[str, Any]:
    """Arguments of ``decode``/``parse`` for an ``Encrypt`` value, correctly signed."""
    body = f"<xml><ToUserName>gh_x</ToUserName><Encrypt>{encrypt}</Encrypt></xml>"
    return {
        "body": body,
        "timestamp": str(timestamp),
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": sha1_sorted(TOKEN, str(timestamp), nonce, encrypt),
    }


def all_text_of(exc: BaseException) -> str:
    """Everything a user, a log or an error tracker could print about ``exc``."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args), repr(vars(current))]
        for frame, _ in traceback.walk_tb(current.__traceback__):
            parts.append(repr(frame.f_locals))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def caught(call: Callable[[], object]) -> BaseException:
    with pytest.raises(WxLogisticsError) as info:
        call()
    return info.value


# --- plain mode and the handshake -------------------------------------------------------------


def test_handshake_matches_the_official_example() -> None:
    """The message push docs' worked example: token AAAAA, this timestamp and nonce."""
    verifier = PushVerifier(token="AAAAA", clock=lambda: 1714036504.0)
    echo = verifier.verify_url(
        signature="f464b24fc39322e44b38aa78f5edd27bd1441696",
        timestamp="1714036504",
        nonce="1514711492",
        echostr="4375120948345356249",
    )
    assert echo == "4375120948345356249"


def test_handshake_is_plain_in_safe_mode_and_refuses_a_bad_signature() -> None:
    params = safe().build_handshake("abc", timestamp=NOW, nonce="7")
    assert params["signature"] == sha1_sorted(TOKEN, str(NOW), "7")
    assert safe().verify_url(**params) == "abc"
    with pytest.raises(PushSignatureError) as info:
        safe().verify_url(**{**params, "nonce": "8"})
    assert info.value.parameter == "signature"
    with pytest.raises(PushFormatError, match="echostr"):
        safe().verify_url(**{**params, "echostr": None})


@pytest.mark.parametrize("data_format", ["xml", "json"])
def test_plain_push_with_a_good_signature_parses(data_format: Any) -> None:
    push = plain().build_push(EVENT, data_format=data_format, nonce="99")
    assert push.params == {
        "signature": sha1_sorted(TOKEN, str(NOW), "99"),
        "timestamp": str(NOW),
        "nonce": "99",
    }
    assert plain().parse(push.body, **push.params) == EXPECTED


def test_bad_signature_is_refused() -> None:
    push = plain().build_push(EVENT)
    wrong = PushVerifier(token="another-token", clock=clock)
    with pytest.raises(PushSignatureError, match="does not match") as info:
        wrong.parse(push.body, **push.params)
    assert info.value.parameter == "signature"
    flipped = push.params["signature"][:-1] + ("0" if push.params["signature"][-1] != "0" else "1")
    with pytest.raises(PushSignatureError):
        plain().parse(push.body, **{**push.params, "signature": flipped})


@pytest.mark.parametrize("parameter", ["signature", "timestamp", "nonce"])
@pytest.mark.parametrize("absent", [None, ""])
def test_missing_parameter_is_refused(parameter: str, absent: str | None) -> None:
    push = plain().build_push(EVENT)
    with pytest.raises(PushSignatureError, match="missing") as info:
        plain().parse(push.body, **{**push.params, parameter: absent})
    assert info.value.parameter == parameter


def test_plain_mode_signature_does_not_cover_the_body() -> None:
    """Documented weakness of plain mode: why a verifier with a key refuses plaintext."""
    push = plain().build_push(EVENT)
    forged = {**EVENT, "WayBillId": "FORGED"}
    forged_body = PushVerifier(token="not-the-token").build_push(forged).body
    assert plain().parse(forged_body, **push.params).WayBillId == "FORGED"
    with pytest.raises(PushSignatureError) as info:
        safe().parse(push.body, **push.params)
    assert info.value.parameter == "msg_signature"


# --- replay -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("offset", "skew"), [(-301, 301), (301, -301), (-86400, 86400)])
def test_old_or_future_timestamp_is_refused(offset: int, skew: int) -> None:
    push = safe().build_push(EVENT, timestamp=NOW + offset)
    with pytest.raises(PushReplayError) as info:
        safe().parse(push.body, **push.params)
    assert (info.value.timestamp, info.value.skew, info.value.max_age) == (NOW + offset, skew, 300)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamp_within_tolerance_is_accepted(offset: int) -> None:
    push = safe().build_push(EVENT, timestamp=NOW + offset)
    assert safe().parse(push.body, **push.params) == EXPECTED


def test_tolerance_is_configurable() -> None:
    strict = PushVerifier(token=TOKEN, max_age=10, clock=clock)
    push = strict.build_push(EVENT, timestamp=NOW - 11)
    with pytest.raises(PushReplayError):
        strict.parse(push.body, **push.params)
    lenient = PushVerifier(token=TOKEN, max_age=None, clock=clock)
    old = lenient.build_push(EVENT, timestamp=NOW - 365 * 86400)
    assert lenient.parse(old.body, **old.params) == EXPECTED


def test_handshake_replay_is_refused() -> None:
    params = plain().build_handshake(timestamp=NOW - 1000)
    with pytest.raises(PushReplayError):
        plain().verify_url(**params)


def test_non_numeric_timestamp_is_a_format_error() -> None:
    push = plain().build_push(EVENT, timestamp=NOW)
    params = {**push.params, "timestamp": "yesterday"}
    params["signature"] = sha1_sorted(TOKEN, "yesterday", push.params["nonce"])
    with pytest.raises(PushFormatError, match="timestamp"):
        plain().parse(push.body, **params)


# --- safe mode ------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", ["xml", "json"])
def test_encrypted_round_trip(data_format: Any) -> None:
    push = safe().build_push(EVENT, data_format=data_format, nonce="5")
    assert push.params["encrypt_type"] == "aes"
    outer = decode_push_message(push.body)
    assert set(outer) == {"ToUserName", "Encrypt"}
    assert b"SF1234567890" not in push.body
    assert push.params["msg_signature"] == sha1_sorted(TOKEN, str(NOW), "5", outer["Encrypt"])
    assert len(base64.b64decode(outer["Encrypt"])) % 32 == 0  # WeChat's 32-byte padding
    assert safe().parse(push.body, **push.params) == EXPECTED


def test_encryption_matches_a_published_vector() -> None:
    """wechatpy's test vector (tests/test_crypto.py): fixed random bytes, known ciphertext."""
    verifier = PushVerifier(
        token="123456",
        encoding_aes_key="kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
        appid="wx49f0ab532d5d035a",
        clock=lambda: 1411525903.0,
    )
    reply = (
        "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
        "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n"
        "<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n"
        "<CreateTime>1411525903</CreateTime>\n</xml>"
    )
    push = verifier.build_push(reply, nonce="461056294", random_prefix=b"1234567890123456")
    assert decode_push_message(push.body)["Encrypt"] == (
        "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBq"
        "GsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFh"
        "HZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05"
        "UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3W"
        "eK2XeFYFMNMpatF9XiKzHo3"
    )
    assert push.params["msg_signature"] == "407518b7649e86ef23978113f92d27afa9296533"
    assert verifier.decode(push.body, **push.params)["Content"] == "test"


def test_decryption_of_a_published_vector() -> None:
    """wechatpy's decrypt vector: ciphertext and msg_signature made by WeChat's own code."""
    verifier = PushVerifier(
        token="123456",
        encoding_aes_key="kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
        appid="wx49f0ab532d5d035a",
        clock=lambda: 1411525903.0,
    )
    encrypt = (
        "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsT"
        "yeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+Bi"
        "YyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXU"
        "aWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqi"
        "o7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
    )
    body = (
        "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n<AgentID><![CDATA[1]]></AgentID>\n</xml>"
    )
    message = verifier.decode(
        body,
        timestamp="1411525903",
        nonce="461056294",
        msg_signature="74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
        encrypt_type="aes",
    )
    assert (message["MsgType"], message["Content"], message["FromUserName"]) == (
        "text",
        "test",
        "messense",
    )


def test_wrong_aes_key_is_a_decrypt_error() -> None:
    push = safe().build_push(EVENT, random_prefix=PREFIX, nonce="1")
    with pytest.raises(PushDecryptError):
        safe(key=OTHER_KEY).parse(push.body, **push.params)


def test_wrong_appid_in_the_plaintext_is_refused() -> None:
    push = safe(appid="wxOTHERAPP0000000").build_push(EVENT)
    with pytest.raises(PushDecryptError, match="'wxOTHERAPP0000000', not 'wx1234567890abcdef'"):
        safe().parse(push.body, **push.params)


def _framed(message: bytes, appid: str = APPID, length: int | None = None) -> bytes:
    size = len(message) if length is None else length
    return PREFIX + size.to_bytes(4, "big") + message + appid.encode()


@pytest.mark.parametrize(
    "pad",
    [
        pytest.param(lambda n: bytes([n]) * (n - 1) + b"\x00", id="zero-pad-byte"),
        pytest.param(lambda n: bytes([n - 1]) * (n - 1) + bytes([n]), id="inconsistent"),
        pytest.param(lambda n: bytes([33]) * n, id="pad-over-32"),
    ],
)
def test_bad_padding_is_a_decrypt_error(pad: Callable[[int], bytes]) -> None:
    plaintext = _framed(b'{"Event":"add_express_path"}')
    missing = 32 - len(plaintext) % 32
    encrypt = raw_encrypt(plaintext + pad(missing))
    with pytest.raises(PushDecryptError, match="padding"):
        safe().decode(**encrypted_body(encrypt))


def test_correct_manual_padding_decrypts() -> None:
    """The control for the test above: the same framing, padded right, opens."""
    plaintext = _framed(DOC_JSON.encode())
    missing = 32 - len(plaintext) % 32
    encrypt = raw_encrypt(plaintext + bytes([missing]) * missing)
    assert safe().decode(**encrypted_body(encrypt))["WayBillId"] == "123456789"


def test_truncated_ciphertext_is_a_decrypt_error() -> None:
    push = safe().build_push(EVENT, random_prefix=PREFIX)
    ciphertext = base64.b64decode(decode_push_message(push.body)["Encrypt"])
    one_block_short = base64.b64encode(ciphertext[:-16]).decode()
    with pytest.raises(PushDecryptError):
        safe().decode(**encrypted_body(one_block_short))
    ragged = base64.b64encode(ciphertext[:-5]).decode()
    with pytest.raises(PushDecryptError, match="not whole AES blocks"):
        safe().decode(**encrypted_body(ragged))
    with pytest.raises(PushDecryptError, match="base64"):
        safe().decode(**encrypted_body("not*base64"))


def test_length_prefix_longer_than_the_message_is_refused() -> None:
    plaintext = _framed(b"{}", length=10_000)
    missing = 32 - len(plaintext) % 32
    encrypt = raw_encrypt(plaintext + bytes([missing]) * missing)
    with pytest.raises(PushDecryptError, match="length prefix"):
        safe().decode(**encrypted_body(encrypt))


def test_tampered_ciphertext_fails_the_msg_signature() -> None:
    push = safe().build_push(EVENT)
    encrypt = decode_push_message(push.body)["Encrypt"]
    tampered = push.body.replace(encrypt.encode(), encrypt[::-1].encode())
    with pytest.raises(PushSignatureError) as info:
        safe().parse(tampered, **push.params)
    assert info.value.parameter == "msg_signature"
    with pytest.raises(PushSignatureError, match="msg_signature is missing"):
        safe().parse(push.body, **{**push.params, "msg_signature": None})


def test_compatible_mode_trusts_only_the_encrypted_copy() -> None:
    push = safe().build_push(EVENT, data_format="json")
    outer = decode_push_message(push.body)
    forged_plaintext = {**EVENT, "WayBillId": "FORGED", "Encrypt": outer["Encrypt"]}
    body = plain().build_push(forged_plaintext, data_format="json").body
    assert safe().parse(body, **push.params).WayBillId == "SF1234567890"


def test_encrypted_push_without_a_key_or_without_encrypt_field() -> None:
    push = safe().build_push(EVENT)
    with pytest.raises(PushDecryptError, match="no encoding_aes_key"):
        plain().parse(push.body, **push.params)
    no_encrypt = plain().build_push(EVENT).body
    with pytest.raises(PushFormatError, match="no Encrypt field"):
        safe().parse(no_encrypt, **push.params)


def test_doctype_inside_the_encrypted_message_is_refused() -> None:
    push = safe().build_push(BILLION_LAUGHS)
    with pytest.raises(PushFormatError, match="DOCTYPE"):
        safe().parse(push.body, **push.params)


# --- parsing -----------------------------------------------------------------------------------


def test_json_and_xml_give_equal_events() -> None:
    from_xml = parse_path_update(DOC_XML)
    from_json = parse_path_update(DOC_JSON.encode())
    assert from_xml == from_json
    assert hash(from_xml) == hash(from_json)
    assert from_xml.WayBillId == "123456789"
    assert from_xml.OrderId is None
    assert [a.ActionType for a in from_xml.Actions] == [100001, 200001]
    assert from_xml.Actions[0].ActionMsg == "小哥A揽件成功"
    assert from_xml.create_datetime.isoformat() == "2019-01-08T05:20:44+00:00"
    assert from_xml.Actions[1].action_datetime.timestamp() == 1546924841


def test_unknown_fields_are_kept() -> None:
    xml = DOC_XML.replace(
        "<ActionTime>1546924840</ActionTime>", "<ActionTime>1546924840</ActionTime><Lat>0</Lat>"
    ).replace("<Count>2</Count>", "<Count>2</Count><NewField>x</NewField>")
    event = parse_path_update(xml)
    assert event.extra == {"NewField": "x"}
    assert event.Actions[0].extra == {"Lat": "0"}
    assert event.Actions[1].extra == {}
    assert parse_path_update(plain().build_push(event.to_message()).body) == event


def test_a_single_action_is_still_a_tuple() -> None:
    event = parse_path_update(
        "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName>"
        "<CreateTime>1</CreateTime><MsgType>event</MsgType><Event>add_express_path</Event>"
        "<DeliveryID>SF</DeliveryID><WayBillId>W</WayBillId><Version>1</Version>"
        "<Count>1</Count><Actions><ActionTime>2</ActionTime><ActionType>100001</ActionType>"
        "<ActionMsg/></Actions></xml>"
    )
    assert event.Actions == (PathAction(ActionTime=2, ActionType=100001, ActionMsg=""),)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("<xml><ToUserName>a</xml>", "malformed XML"),
        ('{"ToUserName": ', "malformed JSON"),
        ("[1, 2]", "neither XML nor a JSON object"),
        ("ToUserName=a", "neither XML nor a JSON object"),
        (b"<xml>\xff</xml>", "not UTF-8"),
        ("{" * 5000 + "}" * 5000, "nested too deeply|malformed JSON"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
        ("<xml>" + "<a>" * 100 + "</a>" * 100 + "</xml>", "nested deeper"),
        (BILLION_LAUGHS, "DOCTYPE or ENTITY"),
        ('<!doctype xml SYSTEM "file:///etc/passwd"><xml/>', "DOCTYPE or ENTITY"),
        ("<xml/>", "not an add_express_path event"),
        (DOC_JSON.replace('"add_express_path"', '"user_enter_tempsession"'), "not an add_"),
        (DOC_JSON.replace('"CreateTime": 1546924844,', ""), "CreateTime is missing"),
        (DOC_JSON.replace('"Version": 3', '"Version": "three"'), "Version is not an integer"),
        (DOC_JSON.replace('"Version": 3', '"Version": true'), "Version is not an integer"),
        (DOC_JSON.replace('"WayBillId": "123456789"', '"WayBillId": []'), "not a string"),
        (DOC_JSON.replace('"ActionType": 100001', '"ActionType": 1.5'), r"Actions\[0\]\.Act"),
        (DOC_XML.replace("<ActionTime>1546924841</ActionTime>", ""), r"Actions\[1\]\.ActionTi"),
    ],
)
def test_malformed_input_is_a_format_error(data: str | bytes, match: str) -> None:
    with pytest.raises(PushFormatError, match=match):
        parse_path_update(data)


def test_oversized_body_is_refused_before_parsing() -> None:
    body = b"<xml>" + b" " * MAX_PUSH_BYTES + b"</xml>"
    with pytest.raises(PushFormatError, match="limit is 1048576"):
        decode_push_message(body)
    push = plain().build_push(body)
    with pytest.raises(PushFormatError, match="limit"):
        plain().parse(push.body, **push.params)


def test_doctype_is_refused_even_with_a_valid_signature() -> None:
    push = plain().build_push(BILLION_LAUGHS)
    with pytest.raises(PushFormatError, match="DOCTYPE"):
        plain().parse(push.body, **push.params)


def test_numeric_strings_and_a_bom_are_understood() -> None:
    data = "\ufeff" + DOC_JSON.replace('"Version": 3', '"Version": " 3 "').replace(
        '"WayBillId": "123456789"', '"WayBillId": 123456789'
    )
    event = parse_path_update(data)
    assert (event.Version, event.WayBillId) == (3, "123456789")


safe_text = st.text(
    st.characters(whitelist_categories=("L", "N", "P", "Zs"), max_codepoint=0xFFFF), max_size=20
)


@settings(max_examples=40, deadline=None)
@given(
    waybill=safe_text.filter(str.strip),
    version=st.integers(0, 2**31),
    actions=st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 999999), safe_text)),
    data_format=st.sampled_from(["xml", "json"]),
    order_id=st.none() | safe_text,
)
def test_any_event_survives_encryption_and_parsing(
    waybill: str, version: int, actions: list[tuple[int, int, str]], data_format: Any, order_id: Any
) -> None:
    event = PathUpdateEvent(
        ToUserName="gh_1",
        FromUserName="o1",
        CreateTime=NOW,
        MsgType="event",
        Event="add_express_path",
        DeliveryID="ZTO",
        WayBillId=waybill,
        OrderId=order_id,
        Version=version,
        Count=len(actions),
        Actions=tuple(PathAction(ActionTime=t, ActionType=k, ActionMsg=m) for t, k, m in actions),
    )
    push = safe().build_push(event, data_format=data_format)
    assert safe().parse(push.body, **push.params) == event


# --- configuration and secrets ------------------------------------------------------------------

BAD_KEY = "this-key-is-secret-but-too-short"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"token": ""}, "token"),
        ({"token": TOKEN, "encoding_aes_key": BAD_KEY, "appid": APPID}, "43 base64"),
        ({"token": TOKEN, "encoding_aes_key": AES_KEY[:-1] + "*", "appid": APPID}, "43 base64"),
        ({"token": TOKEN, "encoding_aes_key": AES_KEY}, "appid is required"),
        ({"token": TOKEN, "max_age": -1}, "max_age"),
    ],
)
def test_bad_configuration_is_a_validation_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        PushVerifier(**kwargs)


def test_build_push_refuses_to_encrypt_without_a_key() -> None:
    with pytest.raises(ValidationError, match="encoding_aes_key"):
        plain().build_push(EVENT, encrypt=True)
    with pytest.raises(ValidationError, match="16 bytes"):
        safe().build_push(EVENT, random_prefix=b"short")


def _bad_key_config() -> object:
    return PushVerifier(token=TOKEN, encoding_aes_key=BAD_KEY, appid=APPID)


def _bytes_key_config() -> object:
    return PushVerifier(token=TOKEN, encoding_aes_key=RAW_KEY, appid=APPID)  # type: ignore[arg-type]


def _bad_signature() -> object:
    push = safe().build_push(EVENT)
    return safe().parse(push.body, **{**push.params, "msg_signature": "0" * 40})


def _wrong_key() -> object:
    push = safe().build_push(EVENT, random_prefix=PREFIX)
    return safe(key=OTHER_KEY).parse(push.body, **push.params)


def _wrong_appid() -> object:
    push = safe(appid="wxOTHERAPP0000000").build_push(EVENT)
    return safe().parse(push.body, **push.params)


def _replayed() -> object:
    push = safe().build_push(EVENT, timestamp=NOW - 1000)
    return safe().parse(push.body, **push.params)


def _malformed_inside() -> object:
    push = safe().build_push("<xml><broken></xml>")
    return safe().parse(push.body, **push.params)


@pytest.mark.parametrize(
    "call",
    [
        _bad_key_config,
        _bytes_key_config,
        _bad_signature,
        _wrong_key,
        _wrong_appid,
        _replayed,
        _malformed_inside,
    ],
)
def test_no_token_or_key_in_any_error(call: Callable[[], object]) -> None:
    exc = caught(call)
    text = all_text_of(exc)
    assert "PushVerifier(appid=" in text  # the verifier is in the frames, masked
    for secret in (TOKEN, AES_KEY, OTHER_KEY, BAD_KEY, repr(RAW_KEY), RAW_KEY.hex()):
        assert secret not in text


def test_docs_python_blocks_compile() -> None:
    docs = Path(__file__).resolve().parent.parent / "docs" / "events.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 5
    for block in blocks:
        compile(block, "docs/events.md", "exec")


def test_verifier_repr_hides_the_secrets() -> None:
    text = repr(safe())
    assert text == "PushVerifier(appid='wx1234567890abcdef', safe_mode=True, max_age=300.0)"


def test_push_errors_are_wxlogistics_errors() -> None:
    for cls in (PushSignatureError, PushReplayError, PushDecryptError, PushFormatError):
        assert issubclass(cls, PushError)
    assert issubclass(PushError, WxLogisticsError)


# --- the FastAPI example ------------------------------------------------------------------------


def load_example() -> ModuleType:
    name = "wxlogistics_example_fastapi_push"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parent.parent / "examples" / "fastapi_push.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# Upstream deprecations that depend on the installed versions, not on this code: Starlette's
# TestClient up to at least 1.0 uses anyio's deprecated BlockingPortal alias (recent anyio warns),
# and recent ones warn when they run on httpx rather than httpx2 (not installable on 3.10).
upstream_deprecations = pytest.mark.filterwarnings(
    "ignore:The anyio.abc.BlockingPortal alias is deprecated:DeprecationWarning",
    "ignore:Using `httpx` with `starlette.testclient`:UserWarning",
)


@pytest.fixture
def received() -> list[PathUpdateEvent]:
    return []


@pytest.fixture
def client(received: list[PathUpdateEvent]) -> Any:
    from fastapi.testclient import TestClient

    async def collect(event: PathUpdateEvent) -> None:
        received.append(event)

    example = load_example()
    app = example.create_app(safe(), on_path_update=collect)
    with TestClient(app) as test_client:
        yield test_client


@upstream_deprecations
@pytest.mark.parametrize("data_format", ["xml", "json"])
def test_example_answers_success_to_a_signed_encrypted_push(
    client: Any, received: list[PathUpdateEvent], data_format: Any
) -> None:
    push = safe().build_push(EVENT, data_format=data_format)
    response = client.post(
        "/wechat/push",
        params=push.params,
        content=push.body,
        headers={"content-type": push.content_type},
    )
    assert (response.status_code, response.text) == (200, "success")
    assert received == [EXPECTED]


@upstream_deprecations
@upstream_deprecations
@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"msg_signature": "0" * 40}, 403, "PushSignatureError"),
        ({"msg_signature": None}, 403, "PushSignatureError"),
        ({"timestamp": str(NOW - 3600)}, 403, "PushSignatureError"),  # the signature covers it
    ],
)
def test_example_refuses_bad_signatures(
    client: Any, received: list[PathUpdateEvent], change: dict[str, Any], status: int, reason: str
) -> None:
    push = safe().build_push(EVENT)
    params = {k: v for k, v in {**push.params, **change}.items() if v is not None}
    response = client.post("/wechat/push", params=params, content=push.body)
    assert (response.status_code, response.text) == (status, reason)
    assert received == []


@upstream_deprecations
def test_example_refuses_replays_and_bad_bodies(
    client: Any, received: list[PathUpdateEvent]
) -> None:
    old = safe().build_push(EVENT, timestamp=NOW - 3600)
    response = client.post("/wechat/push", params=old.params, content=old.body)
    assert (response.status_code, response.text) == (403, "PushReplayError")
    wrong_key = safe(key=OTHER_KEY).build_push(EVENT)  # same token: only decryption fails
    response = client.post("/wechat/push", params=wrong_key.params, content=wrong_key.body)
    assert (response.status_code, response.text) == (400, "PushDecryptError")
    broken = safe().build_push("<xml><broken></xml>")
    response = client.post("/wechat/push", params=broken.params, content=broken.body)
    assert (response.status_code, response.text) == (400, "PushFormatError")
    huge = safe().build_push(EVENT)
    response = client.post("/wechat/push", params=huge.params, content=b" " * (MAX_PUSH_BYTES + 1))
    assert response.status_code == 413
    assert received == []


@upstream_deprecations
def test_example_acknowledges_other_events_without_handling_them(
    client: Any, received: list[PathUpdateEvent]
) -> None:
    push = safe().build_push({"ToUserName": "gh_1", "MsgType": "event", "Event": "other"})
    response = client.post("/wechat/push", params=push.params, content=push.body)
    assert (response.status_code, response.text) == (200, "success")
    assert received == []


@upstream_deprecations
def test_example_handshake(client: Any) -> None:
    params = safe().build_handshake("echo-1234")
    response = client.get("/wechat/push", params=params)
    assert (response.status_code, response.text) == (200, "echo-1234")
    response = client.get("/wechat/push", params={**params, "signature": "0" * 40})
    assert (response.status_code, response.text) == (403, "PushSignatureError")


def test_example_reads_its_configuration_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WXLOGISTICS_PUSH_TOKEN", TOKEN)
    monkeypatch.setenv("WXLOGISTICS_PUSH_AES_KEY", AES_KEY)
    monkeypatch.setenv("WXLOGISTICS_APPID", APPID)
    verifier = load_example().verifier_from_env()
    assert (verifier.appid, verifier.safe_mode) == (APPID, True)
    push = PushVerifier(token=TOKEN, encoding_aes_key=AES_KEY, appid=APPID).build_push(EVENT)
    assert verifier.parse(push.body, **push.params) == EXPECTED
