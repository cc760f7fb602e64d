"""Pieces shared by the models: field validators and the small records several results hold."""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any

import attrs

from wxlogistics._exceptions import ValidationError
from wxlogistics._validate import check_id

__all__ = [
    "ApiResult",
    "ServiceType",
    "WaybillData",
    "check_int",
    "check_number",
    "one_of",
    "optional_text",
    "text",
    "unix_to_datetime",
]

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def text(max_bytes: int = 512) -> _Validator:
    """A validator: a required str id/text of at most ``max_bytes`` UTF-8 bytes (check_id)."""

    def validate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check_id(attribute.name, value, max_bytes=max_bytes)

    return validate


def optional_text(max_bytes: int = 512) -> _Validator:
    """Like :func:`text`, None allowed (the field is then left out of the body)."""

    def validate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            check_id(attribute.name, value, max_bytes=max_bytes)

    return validate


def check_int(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A validator: an int (not a bool); None too when the field's default is None."""
    if value is None and attribute.default is None:
        return
    if type(value) is not int:
        raise ValidationError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValidationError(f"{attribute.name} must not be negative: {value}")


def check_number(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A validator: a finite, non-negative int or float (not a bool)."""
    if type(value) not in (int, float):
        raise ValidationError(f"{attribute.name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:  # type: ignore[arg-type,operator]
        raise ValidationError(f"{attribute.name} must be a finite number >= 0: {value!r}")


def one_of(*allowed: object) -> _Validator:
    """A validator: one of the ``allowed`` values (None passes when it is the default)."""

    def validate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and attribute.default is None:
            return
        if type(value) not in {type(a) for a in allowed} or value not in allowed:
            raise ValidationError(f"{attribute.name} must be one of {list(allowed)!r}: {value!r}")

    return validate


def unix_to_datetime(value: int | None) -> datetime.datetime | None:
    """A unix time in seconds as an aware UTC datetime (None, and 0, stay None)."""
    if not value:
        return None
    return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)


@attrs.frozen(kw_only=True)
class WaybillData:
    """One entry of a waybill's label data: ``key`` (e.g. ``SF_bagAddr``) and ``value``."""

    key: str | None = None
    """The label field's name."""
    value: str | None = None
    """Its value."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""


@attrs.frozen(kw_only=True)
class ServiceType:
    """A carrier's service: ``service_type`` (its number) and ``service_name``."""

    service_type: int | None = None
    """The number to send as ``service.service_type``."""
    service_name: str | None = None
    """Its name, e.g. ``标准快递``."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""


@attrs.frozen(kw_only=True)
class ApiResult:
    """The answer of a call that returns nothing but ``errcode``/``errmsg``."""

    errcode: int = 0
    """0 on success (absent on the wire means 0)."""
    errmsg: str = ""
    """WeChat's message, usually ``ok``."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""
    confirmed_by_retry: bool = attrs.field(default=False, metadata={"local": True})
    """True when a retry's "already done" answer confirmed an earlier ambiguous attempt."""
