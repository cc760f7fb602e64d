"""The retry policy: which failures are retried, and how long to wait. Pure functions only.

WeChat has no idempotency key, so whether a failure may be retried depends on whether the
request may have been carried out:

==================================================  =====================  ==================
failure                                             safe-to-repeat call    other calls
==================================================  =====================  ==================
connect error/timeout, pool timeout (never left)    retry                  retry
read/write timeout, dropped connection              retry                  raise
HTTP 5xx                                            retry                  raise
-1 system busy                                      retry                  raise
9300509 / 9300537 speed limits (request refused)    retry                  retry
45011 per-minute quota (request refused)            retry if the wait to the next minute is at
                                                    most ``max_rate_limit_wait``, else raise
45009 daily quota                                   never                  never
any other errcode, bad body, validation, creds      never                  never
==================================================  =====================  ==================

Token errors (40001, 40014, 42001) are not retries: the loop refreshes the token and replays
the call once, outside this count.

A policy is checked when it is built: ``max_retries`` is an ``int`` from 0 to 100
(:data:`~wxlogistics._validate.MAX_RETRIES`), each delay a number of seconds from 0 to 3600
(:data:`~wxlogistics._validate.MAX_DELAY`; infinity and NaN refused), ``jitter`` from 0 to 1;
``bool`` is not a number here. A bad value raises :class:`ValidationError`, a ``ValueError``.
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from ._exceptions import (
    RateLimitError,
    ResponseError,
    SystemBusyError,
    TransportError,
    WxLogisticsError,
)
from ._validate import check_delay, check_fraction, check_max_retries

__all__ = ["RetryPolicy"]


def _max_retries(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_max_retries(value)


def _delay(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_delay(attribute.name, value)


def _fraction(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_fraction(attribute.name, value)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How many times, and how patiently, failed calls are retried.

    Delays grow as ``initial_delay * 2**retry``, capped at ``max_delay``, each multiplied by a
    random factor in ``[1 - jitter, 1 + jitter]``. ``RetryPolicy(initial_delay=0, max_delay=0,
    max_rate_limit_wait=0)`` retries without sleeping, for tests.

    Checked on construction (and by ``attrs.evolve``): ``max_retries`` is an ``int`` from 0
    to 100, each delay a finite number of seconds from 0 to 3600, ``jitter`` from 0 to 1;
    anything else raises :class:`ValidationError` (a ``ValueError``).
    """

    max_retries: int = attrs.field(default=2, validator=_max_retries)
    """Retries after the first attempt (so at most ``max_retries + 1`` attempts)."""
    initial_delay: float = attrs.field(default=0.5, validator=_delay)
    """Seconds before the first retry, before jitter."""
    max_delay: float = attrs.field(default=8.0, validator=_delay)
    """Cap on one backoff delay, before jitter."""
    jitter: float = attrs.field(default=0.25, validator=_fraction)
    """Relative jitter (0.25 = plus or minus 25%)."""
    max_rate_limit_wait: float = attrs.field(default=15.0, validator=_delay)
    """The longest wait for a rate limit's ``retry_after`` that is still retried."""

    def backoff(self, retry: int) -> float:
        """Seconds to sleep before retry number ``retry`` (0-based)."""
        # The exponent is capped: 2.0**1024 raises OverflowError, and 2**64 times any allowed
        # initial_delay is already past every allowed max_delay.
        base = min(self.max_delay, self.initial_delay * (2.0 ** min(retry, 64)))
        if self.jitter and base:
            base *= random.uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return max(0.0, base)

    def retry_delay(self, error: WxLogisticsError, *, retry: int, idempotent: bool) -> float | None:
        """Seconds to wait before retrying after ``error``, or None to raise it.

        ``retry`` is how many retries were already made; ``idempotent`` says whether the call
        is safe to repeat when it may already have been carried out.
        """
        if retry >= self.max_retries:
            return None
        if not is_retryable(error, idempotent=idempotent):
            return None
        delay = self.backoff(retry)
        if isinstance(error, RateLimitError):
            if error.retry_after is None or error.retry_after > self.max_rate_limit_wait:
                return None
            delay = max(delay, error.retry_after)
        elif isinstance(error, ResponseError) and error.retry_after is not None:
            if error.retry_after > self.max_rate_limit_wait:
                return None  # the server asks for longer than we wait: raise, it says how long
            delay = max(delay, error.retry_after)
        return delay


def is_retryable(error: WxLogisticsError, *, idempotent: bool) -> bool:
    """Whether ``error`` may be retried at all (the table in this module's docstring)."""
    if isinstance(error, TransportError):
        return idempotent or not error.may_have_been_sent
    if isinstance(error, ResponseError):
        return idempotent and (error.status_code >= 500 or error.status_code == 429)
    if isinstance(error, SystemBusyError):
        return idempotent
    if isinstance(error, RateLimitError):
        return error.retry_after is not None
    return False
