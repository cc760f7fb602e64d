"""No access token or app secret in the frame locals of token-fetch errors.

Error trackers (Sentry and the like) record every local of every frame of a traceback, for the
exception and for its ``__cause__`` and ``__context__`` chain. ``assert_nowhere`` checks exactly
that, and is meant to be reused for any exception the SDK raises.
"""

from __future__ import annotations

import reprlib
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

import anyio
import httpx
import pytest

import wxlogistics as wx

from .helpers import APPID, CANCEL, CLASSIC, IDS, OK, SECRET, STABLE, TOKEN, make_router, wired

pytestmark = pytest.mark.anyio


def _exceptions_in(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception reachable through causes, contexts and groups."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += list(getattr(current, "exceptions", ()))


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken repr is no leak; say so and go on
        return f"<repr failed: {exc!r}>"


def _texts_of(value: object) -> Iterator[str]:
    """The repr of ``value`` and, one level down, of what a container holds."""
    yield _safe_repr(value)
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield _safe_repr(key)
            yield _safe_repr(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield _safe_repr(item)


def leaks(exc: BaseException, secret: str) -> list[str]:
    """Where ``secret`` shows in ``exc``'s chain: messages, attributes and frame locals."""
    found = []
    for current in _exceptions_in(exc):
        name = type(current).__name__
        own = [str(current), repr(current), _safe_repr(current.args)]
        own += [_safe_repr(v) for v in getattr(current, "__dict__", {}).values()]
        if any(secret in text for text in own):
            found.append(f"{name}: its message, args or attributes")
        for frame, lineno in traceback.walk_tb(current.__traceback__):
            for local, value in frame.f_locals.items():
                if any(secret in text for text in _texts_of(value)):
                    where = f"{frame.f_code.co_filename}:{lineno} {frame.f_code.co_name}"
                    found.append(f"{name}: local {local!r} of {where}")
    return found


def assert_nowhere(exc: BaseException, *secrets: str) -> None:
    """Fail if any of ``secrets`` appears in ``exc``, its causes, contexts or frame locals."""
    for secret in secrets:
        where = leaks(exc, secret)
        assert not where, f"{reprlib.repr(secret)} leaks through: " + "; ".join(where)


# -- the helper itself --------------------------------------------------------------------------


def test_helper_finds_a_secret_in_a_frame_local_of_a_chained_context() -> None:
    def holds(secret: str) -> None:
        payload = {"nested": [secret]}  # noqa: F841 - the local under test
        raise KeyError("inner")

    try:
        try:
            holds(SECRET)
        except KeyError:
            raise ValueError("outer") from None  # suppressed context: still recorded
    except ValueError as exc:
        where = leaks(exc, SECRET)
        assert len(where) == 2  # the argument ``secret`` and the dict ``payload``
        assert all(w.startswith("KeyError: local ") for w in where)
        absent = leaks(exc, "no such text")  # not in an assert: pytest keeps its operands
        assert absent == []


# -- unusable expires_in: the token must not stay in the payload frames -------------------------

BAD_EXPIRES_IN = ["0", "-5", "null", '"7200"', "true", "Infinity", "NaN", "1e400"]


@pytest.mark.parametrize("source", ["stable", "classic"])
@pytest.mark.parametrize("expires_in", BAD_EXPIRES_IN)
async def test_unusable_expires_in_leaves_no_token_or_secret_in_frames(
    source: str, expires_in: str
) -> None:
    path = STABLE if source == "stable" else CLASSIC
    router = make_router()
    body = f'{{"access_token": "{TOKEN}", "expires_in": {expires_in}}}'
    token_route = router.route(path=path).respond(200, text=body)
    del body  # this frame is in the traceback too
    router.post(CANCEL).respond(json=OK)
    async with wired(router, token_source=source) as client:  # type: ignore[arg-type]
        with pytest.raises(wx.ResponseError) as info:
            await client.cancel_order(**IDS)
    assert (info.value.status_code, info.value.path) == (200, path)
    assert str(info.value) == (
        "token endpoint answered without a usable access_token/expires_in"
        " (keys: access_token, expires_in)"
    )
    assert token_route.call_count == 1  # a bad answer is not retried
    assert_nowhere(info.value, TOKEN, SECRET)


@pytest.mark.parametrize("source_class", [wx.StableTokenSource, wx.ClassicTokenSource])
async def test_source_fetch_error_holds_no_token(source_class: Any) -> None:
    class Answers:
        async def call_token_endpoint(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
            return {"access_token": TOKEN, "expires_in": -1}

    with pytest.raises(wx.ResponseError) as info:
        await source_class(appid=APPID, secret=SECRET).fetch(Answers())
    assert_nowhere(info.value, TOKEN, SECRET)


# -- the fetch bound: no cancellation of secret-holding frames in the chain ---------------------


@pytest.mark.parametrize("source", ["stable", "classic"])
async def test_fetch_timeout_leaves_no_secret_in_frames(source: str) -> None:
    path = STABLE if source == "stable" else CLASSIC
    router = make_router()
    entered = anyio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        entered.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    router.route(path=path).mock(side_effect=hang)
    token_source: wx.TokenSource = (
        wx.StableTokenSource(appid=APPID, secret=SECRET)
        if source == "stable"
        else wx.ClassicTokenSource(appid=APPID, secret=SECRET)
    )
    cache = wx.TokenCache(token_source, fetch_timeout=0.2)
    async with wired(router) as client:
        with anyio.fail_after(5), pytest.raises(wx.RequestTimeoutError) as info:
            await cache.get(client._transport)
    assert entered.is_set()  # the request was in flight, holding the secret, when cut
    assert_nowhere(info.value, SECRET)


# -- a caller's deadline or cancellation during a call: no token in the frames ------------------

WIRE_TOKEN = "TOP-SECRET-TOKEN-in-the-url-42"


class _FixedToken:
    async def fetch(self, endpoint: wx.TokenEndpoint) -> wx.IssuedToken:
        return wx.IssuedToken(value=WIRE_TOKEN, expires_in=7200)


async def _cut_call(url: str, cut: str) -> BaseException:
    """A cancel on the default wire, cut while in flight; what the caller caught.

    Apart from the test's own frame: that one holds the server, which saw the token.
    """
    import asyncio

    async with wx.AsyncLogistics(base_url=url, token_source=_FixedToken()) as client:
        if cut == "fail_after":
            with pytest.raises(TimeoutError) as info, anyio.fail_after(0.5):
                await client.cancel_order(**IDS)
            return info.value
        if cut == "wait_for":
            # asyncio.TimeoutError: not the builtin TimeoutError on Python 3.10.
            with pytest.raises((TimeoutError, asyncio.TimeoutError)) as info:
                await asyncio.wait_for(client.cancel_order(**IDS), 0.5)
            return info.value
        task = asyncio.ensure_future(client.cancel_order(**IDS))
        await anyio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as cancelled:
            await task
        return cancelled.value


async def _hang(req: Any, stream: Any) -> bool:
    await anyio.sleep_forever()
    return False


async def test_a_callers_deadline_leaves_no_token_in_frames() -> None:
    """Cut by anyio.fail_after while the cancel is on a real socket (asyncio and trio)."""
    from .wire_server import wire_server

    async with wire_server(_hang) as server:
        caught = await _cut_call(server.url, "fail_after")
        assert WIRE_TOKEN in server.requests[0].target  # the token was on the wire
    assert_nowhere(caught, WIRE_TOKEN)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("cut", ["wait_for", "cancel"])
async def test_a_cancelled_task_leaves_no_token_in_frames(cut: str) -> None:
    from .wire_server import wire_server

    async with wire_server(_hang) as server:
        caught = await _cut_call(server.url, cut)
        assert WIRE_TOKEN in server.requests[0].target
    assert_nowhere(caught, WIRE_TOKEN)


# -- a caller's deadline during the token fetch: no app secret in the frames ----------------


@pytest.mark.parametrize("source", ["stable", "classic"])
async def test_a_callers_deadline_during_the_token_fetch_leaves_no_secret_in_frames(
    source: str,
) -> None:
    """The fetch runs in the caller's task: the frames the cancellation goes up through held
    the app secret (the token request's ``body``: stable's JSON with ``"secret"``; ``query``:
    classic's ``&secret=``), chained into fail_after's TimeoutError."""
    from .wire_server import wire_server

    async with wire_server(_hang) as server:
        caught = await _cut_during_the_fetch(server.url, source)
        assert "token" in server.requests[0].path  # cut while the fetch was on the wire
    assert_nowhere(caught, SECRET)


async def _cut_during_the_fetch(url: str, source: str) -> BaseException:
    """What the caller caught (this frame, unlike the test's, holds no server that saw it)."""
    async with wx.AsyncLogistics(
        APPID,
        SECRET,
        base_url=url,
        token_source=source,  # type: ignore[arg-type]
    ) as client:
        with pytest.raises(TimeoutError) as info, anyio.fail_after(0.5):
            await client.cancel_order(**IDS)
    return info.value
