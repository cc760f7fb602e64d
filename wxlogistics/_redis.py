"""``RedisTokenStore``: access tokens shared by processes (and hosts) through Redis.

Built on ``redis.asyncio`` (``pip install 'wxlogistics[redis]'``); the compare-and-set steps
are small Lua scripts run with redis-py's ``register_script`` (EVALSHA, loaded on demand).

Keys (``namespace`` defaults to ``wxlogistics``; no secret in any key), so a service written
in another language can share them:

- ``{namespace}:{appid}:{source}``: a hash with ``access_token``, ``expires_at`` and
  ``refresh_at`` (epoch seconds, decimal strings); the key expires with the token (PEXPIREAT).
  ``source`` is ``stable`` or ``classic`` (their tokens are distinct at WeChat).
- ``{namespace}:{appid}:{source}:lease``: the refresh lease, a random value set with
  ``SET NX PX``; deleted by its holder only if the value is still its own.
- ``{namespace}:{appid}:stable:force``: a sorted set of the epoch times of ``force_refresh``
  calls in the last 24 hours (the limiter).

Rules every writer must keep: write a token only if none expiring later is stored; delete a
token only by its value; hold the lease while asking WeChat.
"""

from __future__ import annotations

import asyncio  # noqa: TID251 - redis.asyncio is asyncio's by nature
import time
from typing import Any

import anyio

try:
    import redis.asyncio as _redis_asyncio
    from redis.exceptions import RedisError as _RedisError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "RedisTokenStore needs the redis package: pip install 'wxlogistics[redis]'"
    ) from exc

from ._exceptions import ValidationError
from ._stores import (
    DEFAULT_LEASE_TTL,
    DEFAULT_LEASE_WAIT,
    FORCE_REFRESH_INTERVAL,
    FORCE_REFRESH_PER_DAY,
    StoredToken,
    TokenStoreError,
    check_lease,
    new_lease_id,
)

__all__ = ["DEFAULT_NAMESPACE", "RedisTokenStore"]

DEFAULT_NAMESPACE = "wxlogistics"
"""The first part of every key."""
DEFAULT_OP_TIMEOUT = 2.0
"""Seconds one Redis operation may take before the client falls back to its own cache."""

_SAVE = """
local cur = redis.call('HGET', KEYS[1], 'expires_at')
if cur and tonumber(cur) > tonumber(ARGV[2]) then
  return redis.call('HMGET', KEYS[1], 'access_token', 'expires_at', 'refresh_at')
end
redis.call('HSET', KEYS[1], 'access_token', ARGV[1], 'expires_at', ARGV[2], 'refresh_at', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return {ARGV[1], ARGV[2], ARGV[3]}
"""
_DISCARD = """
if redis.call('HGET', KEYS[1], 'access_token') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# Lua numbers come back from Redis as integers: the wait is returned as a string.
_FORCE = """
local now = tonumber(ARGV[1])
local per_day = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 86400)
local wait = 0
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then wait = math.max(wait, tonumber(last[2]) + interval - now) end
local n = redis.call('ZCARD', KEYS[1])
if n >= per_day then
  local first = redis.call('ZRANGE', KEYS[1], n - per_day, n - per_day, 'WITHSCORES')
  wait = math.max(wait, tonumber(first[2]) + 86400 - now)
end
if wait > 0 then return tostring(wait) end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], 86400000)
return '0'
"""


class RedisTokenStore:
    """A :class:`TokenStore` in Redis, shared by every process that uses the same keys.

    ``redis`` is a ``redis.asyncio.Redis`` client (yours: not closed by the store) or a URL
    (``redis://host:6379/0``; the store makes the client, with connect and read timeouts of
    ``op_timeout``, and closes it in :meth:`aclose`). Every operation is bounded by
    ``op_timeout`` seconds; a failure or timeout raises :class:`TokenStoreError`, on which the
    SDK's client falls back to its own in-memory cache (logged) and keeps working.
    ``lease_ttl``: the most a process holds the refresh lease (a crashed holder's lease ends
    then); ``lease_wait``: how long the others wait for its token before
    :class:`TokenLeaseTimeoutError`.

    Runs on asyncio only (redis.asyncio); like the client, use one per event loop.

    ::

        store = RedisTokenStore("redis://localhost:6379/0")
        async with AsyncLogistics(appid, secret, token_store=store) as client:
            ...
        await store.aclose()
    """

    def __init__(
        self,
        redis: Any,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        op_timeout: float = DEFAULT_OP_TIMEOUT,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        lease_wait: float = DEFAULT_LEASE_WAIT,
    ) -> None:
        check_lease(lease_ttl, lease_wait)
        self.lease_ttl = lease_ttl
        """Seconds a process holds the refresh lease at most (longer than a token fetch)."""
        self.lease_wait = lease_wait
        """Seconds a process waits for another's refresh before TokenLeaseTimeoutError."""
        if not namespace or any(c.isspace() for c in namespace):
            raise ValidationError(f"namespace must be non-empty, without spaces: {namespace!r}")
        if not 0 < op_timeout <= 60:
            raise ValidationError(f"op_timeout must be in (0, 60] seconds: {op_timeout!r}")
        self.namespace = namespace
        """The first part of every key."""
        self._op_timeout = op_timeout
        if isinstance(redis, str):
            self._redis = _redis_asyncio.Redis.from_url(
                redis,
                socket_timeout=op_timeout,
                socket_connect_timeout=op_timeout,
                decode_responses=True,
            )
            self._owns = True
        else:
            self._redis = redis
            self._owns = False
        self._save = self._redis.register_script(_SAVE)
        self._discard = self._redis.register_script(_DISCARD)
        self._release = self._redis.register_script(_RELEASE)
        self._force = self._redis.register_script(_FORCE)

    def __repr__(self) -> str:
        return f"<RedisTokenStore namespace={self.namespace!r}>"

    @property
    def redis(self) -> Any:
        """The ``redis.asyncio.Redis`` client."""
        return self._redis

    def key(self, key: str) -> str:
        """The Redis key of ``{appid}:{source}``: ``{namespace}:{appid}:{source}``."""
        return f"{self.namespace}:{key}"

    async def aclose(self) -> None:
        """Close the Redis client if the store created it (from a URL)."""
        if self._owns:
            await self._redis.aclose()

    async def _run(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        if asyncio._get_running_loop() is None:
            raise ValidationError(
                "RedisTokenStore runs on asyncio only (redis.asyncio); on trio, use no store"
            )
        error: str
        try:
            with anyio.fail_after(self._op_timeout):
                return await call(*args, **kwargs)
        except TimeoutError:
            error = f"redis {what} took longer than {self._op_timeout:g}s"
        except (_RedisError, OSError) as exc:
            error = f"redis {what} failed: {type(exc).__name__}: {exc}"
        del args, kwargs  # they may hold a token; this frame is in the traceback
        raise TokenStoreError(error) from None

    async def load(self, key: str) -> StoredToken | None:
        """The stored token, or None (absent or expired)."""
        fields = await self._run("HMGET", self._redis.hmget, self.key(key), *_FIELDS)
        return _token_of(fields, now=time.time())

    async def save(self, key: str, token: StoredToken) -> StoredToken:
        """Store ``token`` unless one expiring later is stored; return the one stored after."""
        fields = await self._run(
            "save",
            self._save,
            keys=[self.key(key)],
            args=[
                token.value,
                repr(token.expires_at),
                repr(token.refresh_at),
                int(token.expires_at * 1000),
            ],
        )
        return _token_of(fields, now=None) or token

    async def discard(self, key: str, value: str) -> bool:
        """Delete the stored token only if its value is ``value``."""
        return bool(await self._run("discard", self._discard, keys=[self.key(key)], args=[value]))

    async def acquire_lease(self, key: str, ttl: float) -> str | None:
        """``SET {key}:lease <random> NX PX ttl``: the lease's id, or None if held."""
        lease = new_lease_id()
        done = await self._run(
            "SET NX", self._redis.set, self.key(key) + ":lease", lease, nx=True, px=_ms(ttl)
        )
        return lease if done else None

    async def release_lease(self, key: str, lease: str) -> None:
        """Delete the lease if it is still ``lease`` (a lease that expired meanwhile is kept)."""
        await self._run("release", self._release, keys=[self.key(key) + ":lease"], args=[lease])

    async def take_force_refresh(self, key: str, now: float) -> float:
        """Count one ``force_refresh`` at ``now`` fleet-wide if allowed; else seconds to wait."""
        wait = await self._run(
            "force limiter",
            self._force,
            keys=[self.key(key) + ":force"],
            args=[repr(now), FORCE_REFRESH_PER_DAY, FORCE_REFRESH_INTERVAL, new_lease_id()],
        )
        try:
            return max(0.0, float(wait))
        except (TypeError, ValueError):
            raise TokenStoreError(f"redis force limiter answered {wait!r}") from None


_FIELDS = ("access_token", "expires_at", "refresh_at")


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _token_of(fields: Any, *, now: float | None) -> StoredToken | None:
    """A token from ``[access_token, expires_at, refresh_at]``; None if absent or expired."""
    if not isinstance(fields, (list, tuple)) or len(fields) != 3:
        return None
    value, expires_at, refresh_at = (f.decode() if isinstance(f, bytes) else f for f in fields)
    if not value or expires_at is None or refresh_at is None:
        return None
    try:
        token = StoredToken(
            value=str(value), expires_at=float(expires_at), refresh_at=float(refresh_at)
        )
    except ValueError:
        return None
    if now is not None and token.expires_at <= now:
        return None
    return token
