"""Wire <-> model conversion, declared once with cattrs for every request and result model.

Results: any attrs class with an ``extra`` field is built from WeChat's JSON by one generated
structure function per class; keys the class does not declare go to ``extra`` (WeChat adds
fields without notice). Fields marked ``local`` in their metadata are not read from the wire.
Requests: unstructured to the JSON body by one generated function per class, ``None`` fields
left out. Nested request arguments given as dicts become models through :func:`nested`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import attrs

from wxlogistics._exceptions import ResponseError, ValidationError

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "LOCAL",
    "structure_items",
    "structure_request",
    "structure_result",
    "to_body",
]

T = TypeVar("T")

LOCAL = {"local": True}
"""Field metadata: this attribute is computed by the client, never read from the wire."""

_converters: tuple[cattrs.Converter, cattrs.Converter] | None = None


def _build() -> tuple[cattrs.Converter, cattrs.Converter]:
    """The result and request converters, built on first use (cattrs costs ~10 ms to import)."""
    global _converters
    if _converters is not None:
        return _converters
    import cattrs
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

    results = cattrs.Converter(detailed_validation=False)
    # The common wire shapes, without cattrs' generic Optional/Mapping dispatch (measured:
    # getPath with two events, 31 -> about 20 µs). Wire ints stay ints; "5" becomes 5.
    fast: dict[Any, Callable[[Any, Any], Any]] = {
        dict[str, Any]: lambda value, _: value,
        Optional[int]: (  # noqa: UP045 - the type object cattrs dispatches on
            lambda value, _: value if value is None or type(value) is int else int(value)
        ),
        Optional[str]: (  # noqa: UP045
            lambda value, _: value if value is None or type(value) is str else str(value)
        ),
    }
    for shape, hook in fast.items():
        results.register_structure_hook_func(_is(shape), hook)
    requests = cattrs.Converter(detailed_validation=False, forbid_extra_keys=True)

    # Requests: primitives pass through as given; the models' validators check them and name
    # the field in their message (cattrs would silently turn "3" or 3.7 into 3).
    for primitive in (int, float, str, bool):
        requests.register_structure_hook(primitive, lambda value, _: value)

    def result_hook(cls: type[Any]) -> Callable[[Any, Any], Any]:
        fields = attrs.fields(cls)
        local = {f.name: override(omit=True) for f in fields if f.metadata.get("local")}
        wire = frozenset(f.name for f in fields if f.name not in local and f.name != "extra")
        base = make_dict_structure_fn(cls, results, **local)  # type: ignore[arg-type]

        def structure(value: Any, _: Any) -> Any:
            if not isinstance(value, Mapping):
                raise TypeError(f"{cls.__name__} expects a JSON object, not {type(value).__name__}")
            known = {key: item for key, item in value.items() if key in wire}
            known["extra"] = {key: item for key, item in value.items() if key not in wire}
            return base(known, cls)

        return structure

    def body_hook(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
        base = make_dict_unstructure_fn(cls, requests)

        def unstructure(value: Any) -> dict[str, Any]:
            return {key: item for key, item in base(value).items() if item is not None}

        return unstructure

    def request_hook(cls: type[Any]) -> Callable[[Any, Any], Any]:
        base = make_dict_structure_fn(
            cls,
            requests,
            _cattrs_forbid_extra_keys=True,
        )

        def structure(value: Any, _: Any) -> Any:
            if isinstance(value, cls):
                return value  # a model inside a dict argument is taken as it is
            if not isinstance(value, Mapping):
                raise TypeError(f"expected a {cls.__name__} or a dict, not {type(value).__name__}")
            return base(value, cls)

        return structure

    results.register_structure_hook_factory(_has_extra, result_hook)
    requests.register_structure_hook_factory(attrs.has, request_hook)
    requests.register_unstructure_hook_factory(attrs.has, body_hook)
    _converters = (results, requests)
    return _converters


def _is(shape: object) -> Callable[[Any], bool]:
    def match(candidate: Any) -> bool:
        return bool(candidate == shape)

    return match


def _has_extra(cls: type) -> bool:
    return attrs.has(cls) and any(f.name == "extra" for f in attrs.fields(cls))


def structure_result(payload: Mapping[str, Any], cls: type[T], path: str = "") -> T:
    """Build result ``cls`` from WeChat's decoded JSON; a body that does not fit: ResponseError."""
    try:
        return _build()[0].structure(payload, cls)
    except Exception as exc:  # cattrs/int()/float() errors: the answer is not what we expect
        raise ResponseError(
            f"{path or cls.__name__}: the answer does not fit {cls.__name__}: "
            f"{type(exc).__name__}: {exc}",
            status_code=200,
            path=path,
        ) from None


def to_body(request: object) -> dict[str, Any]:
    """The JSON body of a request model: its fields by WeChat's names, None fields left out."""
    body: dict[str, Any] = _build()[1].unstructure(request)
    return body


def structure_request(cls: type[T], value: object, name: str) -> T:
    """``value`` as a ``cls``: an instance as is, a dict of WeChat's field names structured."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"{name} must be a {cls.__name__} or a dict, not {type(value).__name__}"
        )
    import cattrs

    try:
        return _build()[1].structure(value, cls)
    except ValidationError:
        raise
    except KeyError as exc:
        raise ValidationError(f"{name} is missing the field {exc.args[0]!r}") from None
    except cattrs.ForbiddenExtraKeysError as exc:
        raise ValidationError(
            f"{name} has unknown fields {sorted(exc.extra_fields)!r} (WeChat's names expected)"
        ) from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValidationError(f"{name}: {exc}") from None


def structure_items(cls: type[T], value: object, name: str) -> tuple[T, ...]:
    """A list of ``cls`` (instances or dicts) as a tuple of ``cls``."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValidationError(f"{name} must be a list, not {type(value).__name__}")
    return tuple(
        structure_request(cls, item, f"{name}[{index}]") for index, item in enumerate(value)
    )
