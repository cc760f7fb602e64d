"""Label printers: updatePrinter (POST printer/update) and getPrinter (GET printer/getall)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import FakeResponse, Printer, Refusal, Route, get_str, json_answer, need_str

if TYPE_CHECKING:
    from ._core import FakeWeChat

UPDATE_PATH = "/cgi-bin/express/business/printer/update"
GETALL_PATH = "/cgi-bin/express/business/printer/getall"
MAX_TAGIDS = 10


def _tagids(raw: str | None) -> list[str]:
    """A comma-separated tagid list (digits, no spaces, at most 10), else 9300533."""
    if raw is None:
        return []
    tags = raw.split(",")
    if len(tags) > MAX_TAGIDS or not all(t.isascii() and t.isdigit() for t in tags):
        raise Refusal(9300533)
    return tags


def update_printer(fake: FakeWeChat, body: dict[str, Any] | None) -> FakeResponse:
    """Bind adds (or re-tags) a printer, unbind removes it (a no-op if unknown).

    Answers 0; 9300517 update_type not bind/unbind; 9300533 bad tagid_list; 930561 missing
    openid or update_type.
    """
    assert body is not None
    openid = need_str(body, "openid")
    update_type = need_str(body, "update_type")
    tags = _tagids(get_str(body, "tagid_list", required=False))
    if update_type not in ("bind", "unbind"):
        raise Refusal(9300517)
    if update_type == "bind":
        fake._printers[openid] = Printer(openid=openid, tagid_list=tags)
    else:
        fake._printers.pop(openid, None)
    return json_answer({"errcode": 0, "errmsg": "ok"})


def get_printer(fake: FakeWeChat, _body: dict[str, Any] | None) -> FakeResponse:
    """``{"count", "openid": [...], "tagid_list": [...]}`` (no errcode, as WeChat).

    ``tagid_list`` is the sorted union of the printers' tags: the reference types it as a flat
    list of strings and does not say how it pairs with ``openid``.
    """
    printers = list(fake._printers.values())
    tags = sorted({t for p in printers for t in p.tagid_list}, key=int)
    return json_answer(
        {"count": len(printers), "openid": [p.openid for p in printers], "tagid_list": tags}
    )


ROUTES = {
    UPDATE_PATH: Route("POST", update_printer),
    GETALL_PATH: Route("GET", get_printer),
}
