"""Token stores: where a fetched access token is kept so that several processes share it.

A :class:`TokenStore` is a small async protocol (after wechatpy's ``SessionStorage``): load,
save-unless-newer, discard-by-value, a lease so that one process refreshes, and the limiter of
``force_refresh`` calls. Expiry crosses processes, so a store keeps wall-clock time (epoch
seconds), never a monotonic reading. :class:`MemoryTokenStore` is the reference implementation
(one process); :class:`wxlogistics.RedisTokenStore` shares tokens between processes and hosts.

Without a store (the default) the client's :class:`TokenCache` keeps its token in memory on its
own, with no store call at all.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import attrs

from ._exceptions import ForceRefreshLimitError, TokenLeaseTimeoutError, TokenStoreError

__all__ = [
    "FORCE_REFRESH_INTERVAL",
    "FORCE_REFRESH_PER_DAY",
    "ForceRefreshLimitError",
    "MemoryTokenStore",
    "StoredToken",
    "TokenLeaseTimeoutError",
    "TokenStore",
    "TokenStoreError",
]

FORCE_REFRESH_PER_DAY = 20
"""WeChat's limit on ``force_refresh=true`` stable_token calls per day (counted over 24 h)."""
FORCE_REFRESH_INTERVAL = 30.0
"""Seconds WeChat requires between two ``force_refresh=true`` calls (else nothing happens)."""
_DAY = 86_400.0
DEFAULT_LEASE_TTL = 15.0
"""Seconds a process holds a store's refresh lease at most (a crashed holder's lease ends)."""
DEFAULT_LEASE_WAIT = 30.0
"""Seconds a process waits for another's refresh before :class:`TokenLeaseTimeoutError`."""


def check_lease(lease_ttl: float, lease_wait: float) -> None:
    """Refuse lease settings that would hang or never let a waiter take over."""
    from ._exceptions import ValidationError

    if not 0 < lease_ttl <= 600:
        raise ValidationError(f"lease_ttl must be in (0, 600] seconds: {lease_ttl!r}")
    if not lease_ttl < lease_wait <= 3600:
        raise ValidationError(
            f"lease_wait must be longer than lease_ttl and at most 3600 s: {lease_wait!r}"
        )


@attrs.frozen(kw_only=True)
class StoredToken:
    """A token as a store keeps it, with wall-clock (epoch seconds) deadlines."""

    value: str = attrs.field(repr=False)
    """The access token. Never shown in a repr."""
    expires_at: float
    """Epoch seconds after which the token is no longer used."""
    refresh_at: float
    """Epoch seconds after which a process should fetch a replacement."""


@runtime_checkable
class TokenStore(Protocol):
    """Where tokens are kept between fetches, shared by the processes that use the same store.

    ``key`` names one token (e.g. ``wxlogistics:wx123:stable``); it never contains a secret.
    Every method may raise :class:`TokenStoreError`; the client then falls back to its own cache.
    """

    async def load(self, key: str) -> StoredToken | None:
        """The stored token, or None (absent or expired)."""
        ...

    async def save(self, key: str, token: StoredToken) -> StoredToken:
        """Store ``token`` unless one expiring later is stored; return the one stored after."""
        ...

    async def discard(self, key: str, value: str) -> bool:
        """Delete the stored token only if its value is ``value`` (compare-and-delete)."""
        ...

    async def acquire_lease(self, key: str, ttl: float) -> str | None:
        """Take the refresh lease of ``key`` for ``ttl`` seconds: its id, or None if held."""
        ...

    async def release_lease(self, key: str, lease: str) -> None:
        """Release the lease ``lease`` if it is still held (compare-and-delete)."""
        ...

    async def take_force_refresh(self, key: str, now: float) -> float:
        """Count one ``force_refresh`` call at ``now`` (epoch) if allowed.

        Returns 0 when counted, else the seconds to wait before one is allowed (nothing
        counted). Enforces WeChat's limits: 20 a day, 30 s apart.
        """
        ...


def force_refresh_wait(times: list[float], now: float) -> float:
    """Seconds before another force refresh is allowed, given the recent ones (0: allowed)."""
    recent = [t for t in times if t > now - _DAY]
    wait = 0.0
    if recent:
        wait = max(wait, max(recent) + FORCE_REFRESH_INTERVAL - now)
    if len(recent) >= FORCE_REFRESH_PER_DAY:
        wait = max(wait, sorted(recent)[-FORCE_REFRESH_PER_DAY] + _DAY - now)
    return max(wait, 0.0)


class MemoryTokenStore:
    """A :class:`TokenStore` in this process's memory (shared by clients in one process).

    ``clock`` is wall-clock epoch seconds (injectable for tests). ``lease_ttl`` and
    ``lease_wait`` are read by the clients using the store (see :class:`TokenCache`).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        lease_wait: float = DEFAULT_LEASE_WAIT,
    ) -> None:
        check_lease(lease_ttl, lease_wait)
        self.lease_ttl = lease_ttl
        """Seconds a client holds the refresh lease at most."""
        self.lease_wait = lease_wait
        """Seconds a client waits for another's refresh before TokenLeaseTimeoutError."""
        self._clock = clock
        self._tokens: dict[str, StoredToken] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._forced: dict[str, deque[float]] = {}

    def __repr__(self) -> str:
        return f"<MemoryTokenStore keys={len(self._tokens)}>"

    async def load(self, key: str) -> StoredToken | None:
        """The stored token, or None (absent or expired)."""
        return self._current(key)

    def _current(self, key: str) -> StoredToken | None:
        token = self._tokens.get(key)
        if token is not None and token.expires_at <= self._clock():
            del self._tokens[key]
            return None
        return token

    async def save(self, key: str, token: StoredToken) -> StoredToken:
        """Store ``token`` unless one expiring later is stored; return the one stored after."""
        current = self._current(key)
        if current is None or current.expires_at <= token.expires_at:
            self._tokens[key] = token
            return token
        return current

    async def discard(self, key: str, value: str) -> bool:
        """Delete the stored token only if its value is ``value``."""
        current = self._tokens.get(key)
        if current is not None and current.value == value:
            del self._tokens[key]
            return True
        return False

    async def acquire_lease(self, key: str, ttl: float) -> str | None:
        """Take the refresh lease of ``key`` for ``ttl`` seconds: its id, or None if held."""
        now = self._clock()
        held = self._leases.get(key)
        if held is not None and held[1] > now:
            return None
        lease = os.urandom(16).hex()
        self._leases[key] = (lease, now + ttl)
        return lease

    async def release_lease(self, key: str, lease: str) -> None:
        """Release the lease ``lease`` if it is still held."""
        held = self._leases.get(key)
        if held is not None and held[0] == lease:
            del self._leases[key]

    async def take_force_refresh(self, key: str, now: float) -> float:
        """Count one ``force_refresh`` call at ``now`` if allowed; else the seconds to wait."""
        times = self._forced.setdefault(key, deque(maxlen=FORCE_REFRESH_PER_DAY))
        wait = force_refresh_wait(list(times), now)
        if wait == 0:
            times.append(now)
        return wait


def new_lease_id() -> str:
    """A unique lease value (random: a lease from another process never matches)."""
    return os.urandom(16).hex()
