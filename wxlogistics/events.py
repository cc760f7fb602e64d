"""Push events: verify, decrypt and parse what WeChat posts to your server.

When a waybill's track changes, WeChat posts an ``add_express_path`` event (the docs call it
``onPathUpdate``) to the URL configured for message push, as XML or JSON, in plain, compatible
or safe (encrypted) mode. :class:`PushVerifier` checks the signature and the timestamp, decrypts
safe-mode messages and returns a :class:`PathUpdateEvent`::

    verifier = PushVerifier(token="...", encoding_aes_key="...", appid="wx...")
    event = verifier.parse(body, **request_query_parameters)   # raises a PushError
    # ... then answer HTTP 200 with the body "success"

The exceptions (all :class:`PushError`, so answer any of them with an HTTP 4xx)::

    WxLogisticsError
    └── PushError               a pushed message or URL handshake was refused
        ├── PushSignatureError  signature / msg_signature / timestamp / nonce missing or wrong
        ├── PushReplayError     the timestamp is further from now than ``max_age``
        ├── PushDecryptError    safe mode: bad base64, length, padding or appid (wrong key?)
        └── PushFormatError     too large, malformed XML/JSON, a DOCTYPE, a missing field

No exception message, attribute, repr or frame local of a raised exception holds the token or
the EncodingAESKey. The cipher is AES-256-CBC from the ``cryptography`` package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Generic, Literal, TypeVar

import attrs

from ._exceptions import ValidationError, WxLogisticsError

__all__ = [
    "DEFAULT_PUSH_MAX_AGE",
    "MAX_PUSH_BYTES",
    "PATH_UPDATE_EVENT",
    "PathAction",
    "PathUpdateEvent",
    "PushDecryptError",
    "PushError",
    "PushFormatError",
    "PushReplayError",
    "PushSignatureError",
    "PushVerifier",
    "SignedPush",
    "decode_push_message",
    "parse_path_update",
]

DEFAULT_PUSH_MAX_AGE = 300.0
"""Seconds a push's ``timestamp`` may differ from the clock (either way) before it is refused."""
MAX_PUSH_BYTES = 1 << 20
"""The largest body (and decrypted message) accepted: 1 MiB. A track update is a few KiB."""
PATH_UPDATE_EVENT = "add_express_path"
"""The ``Event`` value of a waybill track update."""

_AES_KEY_CHARS = 43  # EncodingAESKey: 43 base64 characters, 32 bytes once "=" is appended
_BLOCK_BITS = 256  # WeChat pads to multiples of 32 bytes (not AES's 16): PKCS#7 with 1..32 bytes
_RANDOM_BYTES = 16
_MAX_DEPTH = 16  # nesting of XML elements turned into dicts; WeChat's messages use 2
_DECLARATION_RE = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_INT_RE = re.compile(r"\s*[+-]?[0-9]{1,19}\s*")
_LIST_TAGS = frozenset({"Actions"})  # XML elements that are a list even when they occur once
_UTF8_BOM = b"\xef\xbb\xbf"
_T = TypeVar("_T")


# --- exceptions -----------------------------------------------------------------------------


class PushError(WxLogisticsError):
    """A pushed message, or the URL handshake, was refused: answer it with an HTTP 4xx."""


class PushSignatureError(PushError):
    """A signature is missing or wrong, or a parameter it covers is missing.

    ``parameter`` names the query parameter at fault: ``"signature"``, ``"msg_signature"``,
    ``"timestamp"`` or ``"nonce"``.
    """

    def __init__(self, message: str, *, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class PushReplayError(PushError):
    """The signed timestamp is too old (or too far in the future): a replay, or a bad clock.

    Attributes: ``timestamp`` (the push's, unix seconds), ``skew`` (now minus timestamp,
    seconds; negative for the future) and ``max_age`` (the tolerance).
    """

    def __init__(self, message: str, *, timestamp: int, skew: float, max_age: float) -> None:
        super().__init__(message)
        self.timestamp = timestamp
        self.skew = skew
        self.max_age = max_age


class PushDecryptError(PushError):
    """A safe-mode message could not be decrypted.

    Bad base64, a ciphertext that is not whole AES blocks, bad PKCS#7 padding, a length prefix
    longer than the message, or an appid other than yours. A wrong EncodingAESKey shows up as
    bad padding or a wrong appid. Also raised when an encrypted message reaches a verifier
    configured without an EncodingAESKey.
    """


class PushFormatError(PushError):
    """The message is not a well-formed push.

    Too large, not UTF-8, neither XML nor a JSON object, malformed, a DOCTYPE or ENTITY
    declaration, or a field the event needs missing or of the wrong type.
    """


# --- secrets --------------------------------------------------------------------------------


class _Secret(Generic[_T]):
    """Holds a token or key; its repr shows nothing, so tracebacks and error trackers don't."""

    __slots__ = ("_value",)

    def __init__(self, value: _T) -> None:
        self._value = value

    def reveal(self) -> _T:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"


def _sha1_sorted(*parts: str) -> str:
    joined = "".join(sorted(parts))
    return hashlib.sha1(joined.encode("utf-8", "surrogatepass")).hexdigest()


def _signature_matches(token: _Secret[str], provided: str, *parts: str) -> bool:
    """Compare in constant time. Returns, never raises: the expected value stays in here."""
    expected = _sha1_sorted(token.reveal(), *parts)
    given = provided.strip().lower().encode("utf-8", "surrogatepass")
    return hmac.compare_digest(expected.encode("ascii"), given)


def _aes_key_problem(encoding_aes_key: object) -> str | None:
    if not isinstance(encoding_aes_key, str):
        return f"encoding_aes_key must be a str, not {type(encoding_aes_key).__name__}"
    if len(encoding_aes_key) != _AES_KEY_CHARS or _decode_aes_key(encoding_aes_key) is None:
        return (
            f"encoding_aes_key must be {_AES_KEY_CHARS} base64 characters "
            "(the EncodingAESKey shown in the console; it decodes to 32 bytes)"
        )
    return None


def _decode_aes_key(encoding_aes_key: str) -> bytes | None:
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == 32 else None


def _aes_encrypt(key: _Secret[bytes], plaintext: bytes) -> bytes:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    raw = key.reveal()
    padder = padding.PKCS7(_BLOCK_BITS).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(raw), modes.CBC(raw[:16])).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def _aes_decrypt(key: _Secret[bytes], ciphertext: bytes) -> bytes | None:
    """The unpadded plaintext, or None when the padding is wrong. Never raises."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    raw = key.reveal()
    decryptor = Cipher(algorithms.AES(raw), modes.CBC(raw[:16])).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        return None


def _open(key: _Secret[bytes], encrypt: str, appid: str) -> bytes | str:
    """Decrypt a safe-mode ``Encrypt`` value: the message bytes, or a str saying what is wrong.

    Failures are returned, not raised, so that no frame of a raised exception holds the key.
    """
    try:
        ciphertext = base64.b64decode(encrypt, validate=True)
    except (binascii.Error, ValueError):
        return "Encrypt is not valid base64"
    if not ciphertext or len(ciphertext) % 16:
        return f"the ciphertext is {len(ciphertext)} bytes, not whole AES blocks (truncated?)"
    plaintext = _aes_decrypt(key, ciphertext)
    if plaintext is None:
        return "bad PKCS#7 padding after decryption (wrong EncodingAESKey?)"
    if len(plaintext) < _RANDOM_BYTES + 4:
        return "the decrypted message is too short"
    length = int.from_bytes(plaintext[_RANDOM_BYTES : _RANDOM_BYTES + 4], "big")
    start = _RANDOM_BYTES + 4
    if start + length > len(plaintext):
        return "the length prefix exceeds the decrypted message (wrong EncodingAESKey?)"
    try:
        sender = plaintext[start + length :].decode("utf-8")
    except UnicodeDecodeError:
        return "the appid after the message is not UTF-8 (wrong EncodingAESKey?)"
    if sender != appid:
        return f"the message is for appid {sender[:40]!r}, not {appid!r}"
    return plaintext[start : start + length]


def _seal(key: _Secret[bytes], appid: str, message: bytes, random_prefix: bytes) -> str:
    body = random_prefix + len(message).to_bytes(4, "big") + message + appid.encode("utf-8")
    return base64.b64encode(_aes_encrypt(key, body)).decode("ascii")


# --- decoding messages ----------------------------------------------------------------------


def decode_push_message(data: bytes | str) -> dict[str, Any]:
    """Decode one push message, XML or JSON, into a dict. Verifies nothing: see PushVerifier.

    XML elements become keys with their text as value (str); repeated elements, and
    ``Actions`` always, become lists; elements with children become dicts. JSON is returned
    as decoded. The format is told by the first character (``<`` or ``{``).

    Raises:
        PushFormatError: the input is over :data:`MAX_PUSH_BYTES`, not UTF-8, neither XML nor a
            JSON object, malformed, nested too deeply, or declares a DOCTYPE or ENTITY
            (refused before parsing: no entity expansion, no "billion laughs").
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_PUSH_BYTES:
        raise PushFormatError(f"the message is {len(raw)} bytes; the limit is {MAX_PUSH_BYTES}")
    raw = raw.removeprefix(_UTF8_BOM)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PushFormatError("the message is not UTF-8") from None
    head = text.lstrip()[:1]
    if head == "<":
        return _decode_xml(raw, text)
    if head == "{":
        return _decode_json(text)
    raise PushFormatError("the message is neither XML nor a JSON object")


def _decode_xml(raw: bytes, text: str) -> dict[str, Any]:
    if _DECLARATION_RE.search(raw):
        raise PushFormatError("XML with a DOCTYPE or ENTITY declaration is refused")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise PushFormatError(f"malformed XML: {exc}") from None
    return _element_to_dict(root, 1)


def _element_to_dict(element: ET.Element, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise PushFormatError(f"XML nested deeper than {_MAX_DEPTH} elements")
    out: dict[str, Any] = {}
    for child in element:
        value: Any = (child.text or "") if len(child) == 0 else _element_to_dict(child, depth + 1)
        tag = child.tag
        if tag in out:
            previous = out[tag]
            if isinstance(previous, list):
                previous.append(value)
            else:
                out[tag] = [previous, value]
        else:
            out[tag] = [value] if tag in _LIST_TAGS else value
    return out


def _decode_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except RecursionError:
        raise PushFormatError("JSON nested too deeply") from None
    except ValueError as exc:
        raise PushFormatError(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise PushFormatError("the JSON message is not an object")
    return value


def _xml_append(parent: ET.Element, tag: str, value: Any) -> None:
    if isinstance(value, (list, tuple)):
        for item in value:
            _xml_append(parent, tag, item)
    elif isinstance(value, Mapping):
        element = ET.SubElement(parent, tag)
        for key, item in value.items():
            _xml_append(element, str(key), item)
    else:
        ET.SubElement(parent, tag).text = "" if value is None else str(value)


def _encode(message: Mapping[str, Any], data_format: Literal["xml", "json"]) -> bytes:
    if data_format == "json":
        return json.dumps(dict(message), ensure_ascii=False, separators=(",", ":")).encode()
    root = ET.Element("xml")
    for key, value in message.items():
        _xml_append(root, str(key), value)
    return ET.tostring(root, encoding="unicode").encode("utf-8")


# --- the event model ------------------------------------------------------------------------


def _field_int(message: Mapping[str, Any], name: str, where: str = "") -> int:
    value = message.get(name)
    if value is None:
        raise PushFormatError(f"{where}{name} is missing")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value):
        return int(value)
    raise PushFormatError(f"{where}{name} is not an integer: {str(value)[:40]!r}")


def _field_str(
    message: Mapping[str, Any], name: str, where: str = "", *, default: str | None = None
) -> str:
    value = message.get(name)
    if value is None and default is not None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # an id sent as a JSON number
    if value is None:
        raise PushFormatError(f"{where}{name} is missing")
    raise PushFormatError(f"{where}{name} is not a string: {str(value)[:40]!r}")


def _utc(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


_ACTION_FIELDS = ("ActionTime", "ActionType", "ActionMsg")
_EVENT_FIELDS = (
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Event",
    "DeliveryID",
    "WayBillId",
    "OrderId",
    "Version",
    "Count",
    "Actions",
)


@attrs.frozen(kw_only=True)
class PathAction:
    """One node of a waybill's track. Attribute names are WeChat's field names."""

    ActionTime: int
    """When it happened, unix seconds."""
    ActionType: int
    """What happened: 100001 picked up, 100002 pickup failed, 100003 courier assigned,
    200001 in transit, 300002 out for delivery, 300003 signed, 300004 delivery failed,
    400001 cancelled, 400002 stranded."""
    ActionMsg: str
    """The carrier's text for the node ("" when WeChat sent none)."""
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)
    """Fields of the node this model does not name (e.g. ``Lat``/``Lng``), as received."""

    @property
    def action_datetime(self) -> datetime:
        """``ActionTime`` as an aware UTC datetime."""
        return _utc(self.ActionTime)

    @classmethod
    def from_message(cls, node: object, where: str = "") -> PathAction:
        """Build a node from one decoded ``Actions`` entry.

        Raises:
            PushFormatError: the entry is not an object, or a field is missing or mistyped.
        """
        if not isinstance(node, Mapping):
            raise PushFormatError(f"{where} is not an object")
        where = f"{where}."
        return cls(
            ActionTime=_field_int(node, "ActionTime", where),
            ActionType=_field_int(node, "ActionType", where),
            ActionMsg=_field_str(node, "ActionMsg", where, default=""),
            extra={k: v for k, v in node.items() if k not in _ACTION_FIELDS},
        )

    def to_message(self) -> dict[str, Any]:
        """The node as WeChat sends it in JSON (unknown fields included)."""
        node: dict[str, Any] = {
            "ActionTime": self.ActionTime,
            "ActionType": self.ActionType,
            "ActionMsg": self.ActionMsg,
        }
        node.update((k, v) for k, v in self.extra.items() if k not in node)
        return node


@attrs.frozen(kw_only=True)
class PathUpdateEvent:
    """An ``add_express_path`` (onPathUpdate) push: a waybill's track changed.

    Attribute names are WeChat's field names, as in the docs' XML and JSON examples; times are
    unix ints (``create_datetime`` gives a datetime). Fields not modelled are kept in ``extra``.
    The same message in XML and in JSON gives equal events (unknown fields aside: XML gives
    their values as strings).
    """

    ToUserName: str
    """The mini program's original id (``gh_...``)."""
    FromUserName: str
    """The sender's openid."""
    CreateTime: int
    """When WeChat created the message, unix seconds."""
    MsgType: str
    """Always ``"event"``."""
    Event: str
    """Always ``"add_express_path"``."""
    DeliveryID: str
    """The carrier id, e.g. ``"SF"``."""
    WayBillId: str
    """The waybill id (WeChat spells it ``WayBillId``)."""
    OrderId: str | None = None
    """The order id; None when absent (the 2019 docs do not list it)."""
    Version: int
    """The track version: a later push of the same waybill has a higher one."""
    Count: int
    """The number of track nodes, as WeChat states it."""
    Actions: tuple[PathAction, ...] = ()
    """The track nodes, in the order received."""
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)
    """Top-level fields this model does not name, as received."""

    @property
    def create_datetime(self) -> datetime:
        """``CreateTime`` as an aware UTC datetime."""
        return _utc(self.CreateTime)

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> PathUpdateEvent:
        """Build the event from a decoded message (see :func:`decode_push_message`).

        Raises:
            PushFormatError: ``Event`` is not ``add_express_path``, or a field is missing or
                of the wrong type (ints may come as digit strings, as XML sends them).
        """
        event = message.get("Event")
        if event != PATH_UPDATE_EVENT:
            raise PushFormatError(f"not an {PATH_UPDATE_EVENT} event: Event={str(event)[:40]!r}")
        actions = message.get("Actions", [])
        if isinstance(actions, Mapping):
            actions = [actions]  # one node sent as an object
        if not isinstance(actions, list):
            raise PushFormatError("Actions is not a list")
        order_id = message.get("OrderId")
        return cls(
            ToUserName=_field_str(message, "ToUserName"),
            FromUserName=_field_str(message, "FromUserName"),
            CreateTime=_field_int(message, "CreateTime"),
            MsgType=_field_str(message, "MsgType"),
            Event=PATH_UPDATE_EVENT,
            DeliveryID=_field_str(message, "DeliveryID"),
            WayBillId=_field_str(message, "WayBillId"),
            OrderId=None if order_id is None else _field_str(message, "OrderId"),
            Version=_field_int(message, "Version"),
            Count=_field_int(message, "Count"),
            Actions=tuple(
                PathAction.from_message(node, f"Actions[{i}]") for i, node in enumerate(actions)
            ),
            extra={k: v for k, v in message.items() if k not in _EVENT_FIELDS},
        )

    def to_message(self) -> dict[str, Any]:
        """The event as WeChat sends it in JSON (``OrderId`` left out when None)."""
        message: dict[str, Any] = {
            "ToUserName": self.ToUserName,
            "FromUserName": self.FromUserName,
            "CreateTime": self.CreateTime,
            "MsgType": self.MsgType,
            "Event": self.Event,
            "DeliveryID": self.DeliveryID,
            "WayBillId": self.WayBillId,
        }
        if self.OrderId is not None:
            message["OrderId"] = self.OrderId
        message["Version"] = self.Version
        message["Count"] = self.Count
        message["Actions"] = [action.to_message() for action in self.Actions]
        message.update((k, v) for k, v in self.extra.items() if k not in message)
        return message


def parse_path_update(data: bytes | str) -> PathUpdateEvent:
    """Parse an already verified (and decrypted) ``add_express_path`` message, XML or JSON.

    Raises:
        PushFormatError: see :func:`decode_push_message` and :meth:`PathUpdateEvent.from_message`.
    """
    return PathUpdateEvent.from_message(decode_push_message(data))


# --- verifying ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SignedPush:
    """A push as WeChat would send it, built by :meth:`PushVerifier.build_push` for tests.

    POST ``body`` to your endpoint with ``params`` as the query string.
    """

    body: bytes
    """The request body."""
    params: dict[str, str] = attrs.field(hash=False)
    """The query parameters: ``signature``, ``timestamp``, ``nonce``, and in safe mode
    ``encrypt_type`` and ``msg_signature``."""
    content_type: str
    """``text/xml`` or ``application/json``."""


def _missing(value: str | None) -> bool:
    return value is None or value == ""


class PushVerifier:
    """Checks and opens the messages WeChat pushes to your server (and the URL handshake).

    Args:
        token: the Token set beside the push URL in the console.
        encoding_aes_key: the EncodingAESKey (43 characters), for compatible and safe mode.
            When given, every POST must be encrypted (``msg_signature`` present): a plaintext
            push is refused, since plain mode's signature does not cover the body.
        appid: your mini program's appid; required with ``encoding_aes_key``, since every
            decrypted message must name it.
        max_age: seconds the signed ``timestamp`` may be from ``clock()``, either way;
            ``None`` turns the replay check off.
        clock: the time source (unix seconds), for tests.

    The token and the key are kept out of ``repr`` and out of every exception raised.

    Raises:
        ValidationError: a missing token, a malformed key, or a key without an appid.
    """

    __slots__ = ("_appid", "_clock", "_key", "_max_age", "_token")

    def __init__(
        self,
        *,
        token: str,
        encoding_aes_key: str | None = None,
        appid: str | None = None,
        max_age: float | None = DEFAULT_PUSH_MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        problem = _config_problem(token, encoding_aes_key, appid, max_age)
        if problem is not None:
            del token, encoding_aes_key  # the frame that raises must not hold them
            raise ValidationError(problem)
        key = None if encoding_aes_key is None else _decode_aes_key(encoding_aes_key)
        self._token: _Secret[str] = _Secret(token)
        self._key: _Secret[bytes] | None = None if key is None else _Secret(key)
        self._appid = appid
        self._max_age = max_age
        self._clock = clock

    def __repr__(self) -> str:
        # getattr: this repr may run on a half-built instance (a traceback's frame locals).
        appid = getattr(self, "_appid", None)
        safe_mode = getattr(self, "_key", None) is not None
        max_age = getattr(self, "_max_age", None)
        return f"PushVerifier(appid={appid!r}, safe_mode={safe_mode}, max_age={max_age!r})"

    @property
    def appid(self) -> str | None:
        """The appid decrypted messages must name (None in plain mode)."""
        return self._appid

    @property
    def safe_mode(self) -> bool:
        """True when an EncodingAESKey is set, so every push must be encrypted."""
        return self._key is not None

    @property
    def max_age(self) -> float | None:
        """The replay tolerance in seconds (None: no check)."""
        return self._max_age

    # -- receiving --

    def verify_url(
        self,
        *,
        signature: str | None,
        timestamp: str | None,
        nonce: str | None,
        echostr: str | None,
    ) -> str:
        """Check the GET handshake WeChat sends when the push URL is saved; return ``echostr``.

        Answer the GET with the returned text, as is. The handshake is signed with
        sha1 of the sorted token, timestamp and nonce, in every mode, and ``echostr`` comes
        in plain text even when messages are encrypted (WeChat's message push docs).

        Raises:
            PushSignatureError: a parameter is missing or the signature is wrong.
            PushReplayError: the timestamp is further than ``max_age`` from now.
            PushFormatError: ``echostr`` is missing, or the timestamp is not a number.
        """
        self._check_plain(signature, timestamp, nonce)
        if echostr is None:
            raise PushFormatError("echostr is missing")
        return echostr

    def decode(
        self,
        body: bytes | str,
        *,
        timestamp: str | None,
        nonce: str | None,
        signature: str | None = None,
        msg_signature: str | None = None,
        encrypt_type: str | None = None,
    ) -> dict[str, Any]:
        """Verify a pushed message, decrypt it if encrypted, and decode it into a dict.

        Pass the request's query parameters as they came (None when absent). With
        ``encrypt_type=aes`` or a ``msg_signature``, the message is treated as encrypted:
        ``msg_signature`` (over token, timestamp, nonce and the ``Encrypt`` field) is checked,
        the timestamp is checked, and the decrypted message is decoded; in compatible mode the
        plaintext copy beside ``Encrypt`` is ignored. Otherwise ``signature`` (over token,
        timestamp and nonce only) is checked, which a verifier with an EncodingAESKey refuses.

        Use this for pushes of any event; :meth:`parse` for track updates.

        Raises:
            PushSignatureError, PushReplayError, PushDecryptError, PushFormatError.
        """
        if encrypt_type not in (None, "", "raw", "aes"):
            raise PushFormatError(f"unknown encrypt_type {str(encrypt_type)[:20]!r}")
        if encrypt_type != "aes" and _missing(msg_signature):
            if self._key is not None:
                raise PushSignatureError(
                    "msg_signature is missing: this verifier accepts encrypted pushes only",
                    parameter="msg_signature",
                )
            self._check_plain(signature, timestamp, nonce)
            return decode_push_message(body)
        return self._decode_encrypted(body, timestamp, nonce, msg_signature)

    def parse(
        self,
        body: bytes | str,
        *,
        timestamp: str | None,
        nonce: str | None,
        signature: str | None = None,
        msg_signature: str | None = None,
        encrypt_type: str | None = None,
    ) -> PathUpdateEvent:
        """Verify and decode a pushed ``add_express_path`` event (see :meth:`decode`).

        Raises:
            PushSignatureError, PushReplayError, PushDecryptError, PushFormatError (also when
            the message is another event: use :meth:`decode` to accept those).
        """
        message = self.decode(
            body,
            timestamp=timestamp,
            nonce=nonce,
            signature=signature,
            msg_signature=msg_signature,
            encrypt_type=encrypt_type,
        )
        return PathUpdateEvent.from_message(message)

    def _check_plain(self, signature: str | None, timestamp: str | None, nonce: str | None) -> None:
        timestamp, nonce = self._require(timestamp, nonce)
        if signature is None or _missing(signature):
            raise PushSignatureError("signature is missing", parameter="signature")
        if not _signature_matches(self._token, signature, timestamp, nonce):
            raise PushSignatureError("signature does not match", parameter="signature")
        self._check_fresh(timestamp)

    def _decode_encrypted(
        self, body: bytes | str, timestamp: str | None, nonce: str | None, msg_signature: str | None
    ) -> dict[str, Any]:
        timestamp, nonce = self._require(timestamp, nonce)
        if msg_signature is None or _missing(msg_signature):
            raise PushSignatureError("msg_signature is missing", parameter="msg_signature")
        if self._key is None or self._appid is None:
            raise PushDecryptError(
                "an encrypted push arrived, but this verifier has no encoding_aes_key"
            )
        outer = decode_push_message(body)
        encrypt = outer.get("Encrypt")
        if not isinstance(encrypt, str) or not encrypt:
            raise PushFormatError("the encrypted message has no Encrypt field")
        if not _signature_matches(self._token, msg_signature, timestamp, nonce, encrypt):
            raise PushSignatureError("msg_signature does not match", parameter="msg_signature")
        self._check_fresh(timestamp)
        opened = _open(self._key, encrypt, self._appid)
        if isinstance(opened, str):
            raise PushDecryptError(opened)
        return decode_push_message(opened)

    @staticmethod
    def _require(timestamp: str | None, nonce: str | None) -> tuple[str, str]:
        if timestamp is None or _missing(timestamp):
            raise PushSignatureError("timestamp is missing", parameter="timestamp")
        if nonce is None or _missing(nonce):
            raise PushSignatureError("nonce is missing", parameter="nonce")
        return timestamp, nonce

    def _check_fresh(self, timestamp: str) -> None:
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise PushFormatError(f"timestamp is not unix seconds: {timestamp[:20]!r}")
        if self._max_age is None:
            return
        sent = int(timestamp)
        skew = self._clock() - sent
        if abs(skew) > self._max_age:
            when = "old" if skew > 0 else "in the future"
            raise PushReplayError(
                f"timestamp {sent} is {abs(skew):.0f} s {when}; at most {self._max_age:g} s "
                "is allowed (a replayed push, or a wrong clock)",
                timestamp=sent,
                skew=skew,
                max_age=self._max_age,
            )

    # -- sending, for tests --

    def build_push(
        self,
        message: PathUpdateEvent | Mapping[str, Any] | str | bytes,
        *,
        data_format: Literal["xml", "json"] = "xml",
        encrypt: bool | None = None,
        timestamp: int | None = None,
        nonce: str | None = None,
        random_prefix: bytes | None = None,
    ) -> SignedPush:
        """Build a push exactly as WeChat would: signed and, in safe mode, encrypted.

        For tests of your endpoint (and of this module): a real round trip, no mocks.

        Args:
            message: an event, a message dict, or an already encoded message (str/bytes,
                sent as is, e.g. to test malformed input).
            data_format: ``"xml"`` or ``"json"`` (the console's 数据格式 setting).
            encrypt: encrypt the message; defaults to :attr:`safe_mode`.
            timestamp: unix seconds to sign; defaults to ``clock()``.
            nonce: defaults to a random number.
            random_prefix: the 16 random bytes that start the plaintext; random by default.

        Raises:
            ValidationError: ``encrypt`` without an EncodingAESKey, or a prefix not 16 bytes.
        """
        if isinstance(message, PathUpdateEvent):
            message = message.to_message()
        if isinstance(message, str):
            encoded = message.encode("utf-8")
        elif isinstance(message, bytes):
            encoded = message
        else:
            encoded = _encode(message, data_format)
        stamp = str(int(self._clock()) if timestamp is None else timestamp)
        nonce = str(secrets.randbelow(10**10)) if nonce is None else nonce
        params = {
            "signature": _sha1_sorted(self._token.reveal(), stamp, nonce),
            "timestamp": stamp,
            "nonce": nonce,
        }
        content_type = "application/json" if data_format == "json" else "text/xml"
        if not (self.safe_mode if encrypt is None else encrypt):
            return SignedPush(body=encoded, params=params, content_type=content_type)
        if self._key is None or self._appid is None:
            raise ValidationError("encrypt=True needs a verifier with an encoding_aes_key")
        prefix = secrets.token_bytes(_RANDOM_BYTES) if random_prefix is None else random_prefix
        if len(prefix) != _RANDOM_BYTES:
            raise ValidationError(f"random_prefix must be {_RANDOM_BYTES} bytes")
        sealed = _seal(self._key, self._appid, encoded, prefix)
        to_user = message.get("ToUserName", "") if isinstance(message, Mapping) else ""
        outer = {"ToUserName": to_user, "Encrypt": sealed}
        params["encrypt_type"] = "aes"
        params["msg_signature"] = _sha1_sorted(self._token.reveal(), stamp, nonce, sealed)
        return SignedPush(
            body=_encode(outer, data_format), params=params, content_type=content_type
        )

    def build_handshake(
        self, echostr: str = "echo", *, timestamp: int | None = None, nonce: str | None = None
    ) -> dict[str, str]:
        """The query parameters of WeChat's GET handshake, signed with this token (for tests)."""
        stamp = str(int(self._clock()) if timestamp is None else timestamp)
        nonce = str(secrets.randbelow(10**10)) if nonce is None else nonce
        return {
            "signature": _sha1_sorted(self._token.reveal(), stamp, nonce),
            "timestamp": stamp,
            "nonce": nonce,
            "echostr": echostr,
        }


def _config_problem(
    token: object, encoding_aes_key: object, appid: object, max_age: object
) -> str | None:
    if not isinstance(token, str) or not token:
        return "token must be a non-empty str (the Token set beside the push URL)"
    if encoding_aes_key is not None:
        problem = _aes_key_problem(encoding_aes_key)
        if problem is not None:
            return problem
        if not isinstance(appid, str) or not appid:
            return "appid is required with encoding_aes_key: decrypted messages must name it"
    elif appid is not None and not isinstance(appid, str):
        return "appid must be a str"
    if max_age is not None and (
        isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or max_age < 0
    ):
        return "max_age must be a number of seconds >= 0, or None"
    return None
