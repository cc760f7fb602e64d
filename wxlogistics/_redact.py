"""Keeping secrets out of text: exception messages, reprs and log records.

WeChat takes the access token in the query string, so every URL the SDK sends carries it,
and httpx logs each request's full URL at INFO level on the ``httpx`` logger. The client
installs :class:`RedactingFilter` on that logger; users can attach it to their own handlers too.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "redact"]

# access_token and secret, and a carrier account's password (bindAccount's body): a server or
# a gateway that echoes a request must not put them in an exception or a log line.
_SECRET_PARAM_RE = re.compile(r"((?:access_token|secret|password)=)[^&\s'\"]+", re.IGNORECASE)
_SECRET_JSON_RE = re.compile(
    r"(\"(?:access_token|secret|password)\"\s*:\s*\")[^\"]*", re.IGNORECASE
)
REDACTED = "***"


def redact(text: str, *secrets: str) -> str:
    """Replace access tokens and secrets in ``text`` (as query params, JSON, or the values)."""
    for secret in secrets:
        # Very short values are not real secrets; masking them would garble every message.
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, REDACTED)
    if "=" in text:
        text = _SECRET_PARAM_RE.sub(r"\1" + REDACTED, text)
    if '"' in text:
        text = _SECRET_JSON_RE.sub(r"\1" + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks ``access_token=`` and ``secret=`` values in log records.

    Installed on the ``httpx`` logger by :class:`AsyncLogistics`. To protect other loggers
    (an HTTP proxy's, your own), add it to your handlers::

        handler.addFilter(wxlogistics.RedactingFilter())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets in the record's message and arguments; never drops the record."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(
                arg if isinstance(arg, (int, float)) else _redact_arg(arg) for arg in args
            )
        return True


def _redact_arg(arg: object) -> object:
    text = str(arg)
    cleaned = redact(text)
    return arg if cleaned == text else cleaned


_installed = False


def install_httpx_log_filter() -> None:
    """Add a :class:`RedactingFilter` to the ``httpx`` logger, once per process."""
    global _installed
    if not _installed:
        logging.getLogger("httpx").addFilter(RedactingFilter())
        _installed = True
