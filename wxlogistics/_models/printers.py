"""Models of getPrinter (reference section 3.7)."""

from __future__ import annotations

from typing import Any

import attrs

from wxlogistics._exceptions import ValidationError

from ._common import one_of, optional_text, text

__all__ = ["MAX_TAGIDS", "GetPrinterResult", "UpdatePrinterRequest"]


@attrs.frozen(kw_only=True)
class GetPrinterResult:
    """The printers: ``count``, their ``openid`` list and ``tagid_list``."""

    count: int | None = None
    """How many printers."""
    openid: tuple[str, ...] = ()
    """The printers' openids."""
    tagid_list: tuple[str, ...] = ()
    """Tenant tags (platform-type mini programs)."""
    errcode: int = 0
    """0 (absent on the wire means 0)."""
    errmsg: str = ""
    """WeChat's message."""
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    """Fields WeChat sent that this model does not declare."""


MAX_TAGIDS = 10
"""Most tagids in ``tagid_list``."""


@attrs.frozen(kw_only=True)
class UpdatePrinterRequest:
    """The arguments of :meth:`AsyncLogistics.update_printer`."""

    openid: str = attrs.field(validator=text())
    """The printer's openid."""
    update_type: str = attrs.field(validator=one_of("bind", "unbind"))
    """``bind`` or ``unbind``."""
    tagid_list: str | None = attrs.field(default=None, validator=optional_text())
    """Comma-separated tagids, no spaces, at most 10 (platform-type mini programs)."""

    @tagid_list.validator
    def _tags(self, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is None:
            return
        tags = value.split(",")
        if len(tags) > MAX_TAGIDS or any(not t or t.strip() != t or " " in t for t in tags):
            raise ValidationError(
                f"tagid_list must be at most {MAX_TAGIDS} comma-separated tagids without "
                f"spaces: {value!r}"
            )
