"""The retry policy as a table, and the request loop's retry counts."""

from __future__ import annotations

import math
from typing import Any

import attrs
import httpx
import pytest

import wxlogistics as wx
from wxlogistics._retry import is_retryable

from .helpers import CANCEL, IDS, OK, STABLE, make_router, token_response, wired

pytestmark = pytest.mark.anyio

CONNECT = wx.TransportError("connect", may_have_been_sent=False)
READ = wx.RequestTimeoutError("read timeout", may_have_been_sent=True)
POOL = wx.RequestTimeoutError("pool timeout", may_have_been_sent=False)


@pytest.mark.parametrize(
    ("error", "idempotent", "expected"),
    [
        (CONNECT, False, True),
        (POOL, False, True),
        (READ, True, True),
        (READ, False, False),
        (wx.ResponseError("x", status_code=502), True, True),
        (wx.ResponseError("x", status_code=502), False, False),
        (wx.ResponseError("x", status_code=200), True, False),
        (wx.ResponseError("x", status_code=404), True, False),
        (wx.SystemBusyError(-1), True, True),
        (wx.SystemBusyError(-1), False, False),
        (wx.RateLimitError(45009), True, False),
        (wx.RateLimitError(45011), False, True),
        (wx.RateLimitError(9300509), False, True),
        (wx.RateLimitError(9300537), True, True),
        (wx.WaybillNotFoundError(40199), True, False),
        (wx.WaybillHasTracesError(9300506), True, False),
        (wx.CredentialsError(40125), True, False),
        (wx.ValidationError("bad"), True, False),
        (wx.APIError(12345), True, False),
    ],
)
def test_is_retryable_table(error: wx.WxLogisticsError, idempotent: bool, expected: bool) -> None:
    assert is_retryable(error, idempotent=idempotent) is expected


def test_backoff_grows_and_is_capped() -> None:
    policy = wx.RetryPolicy(initial_delay=0.5, max_delay=3.0, jitter=0)
    assert [policy.backoff(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_in_bounds() -> None:
    policy = wx.RetryPolicy(initial_delay=1.0, max_delay=1.0, jitter=0.25)
    delays = {policy.backoff(0) for _ in range(200)}
    assert all(0.75 <= d <= 1.25 for d in delays)
    assert len(delays) > 1


def test_retry_delay_respects_max_retries_and_rate_limit_wait() -> None:
    policy = wx.RetryPolicy(max_retries=2, initial_delay=0.1, jitter=0, max_rate_limit_wait=5)
    busy = wx.SystemBusyError(-1)
    assert policy.retry_delay(busy, retry=0, idempotent=True) == 0.1
    assert policy.retry_delay(busy, retry=1, idempotent=True) == 0.2
    assert policy.retry_delay(busy, retry=2, idempotent=True) is None
    speed = wx.RateLimitError(9300509)
    assert policy.retry_delay(speed, retry=0, idempotent=False) == 1.0  # its retry_after
    minute = wx.RateLimitError(45011)
    minute.retry_after = 30.0
    assert policy.retry_delay(minute, retry=0, idempotent=True) is None  # too long to wait
    minute.retry_after = 2.0
    assert policy.retry_delay(minute, retry=0, idempotent=True) == 2.0


def test_policy_rejects_negative_values() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        wx.RetryPolicy(max_retries=-1)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"initial_delay": math.inf}, "initial_delay must be at least 0 and at most 3600 seconds"),
        ({"initial_delay": -0.5}, "initial_delay must be at least 0"),
        ({"initial_delay": True}, "initial_delay must be a number of seconds, not bool"),
        ({"initial_delay": "1"}, "initial_delay must be a number of seconds, not str"),
        ({"initial_delay": None}, "initial_delay must be a number of seconds, not NoneType"),
        ({"max_delay": math.nan}, "max_delay must be at least 0 and at most 3600 seconds, not nan"),
        ({"max_delay": 3601}, "max_delay must be at least 0 and at most 3600 seconds, not 3601"),
        ({"max_delay": 10**400}, "max_delay must be at least 0 and at most 3600 seconds"),
        ({"max_rate_limit_wait": math.inf}, "max_rate_limit_wait must be at least 0"),
        ({"max_rate_limit_wait": -1}, "max_rate_limit_wait must be at least 0"),
        ({"max_retries": 2.5}, "max_retries must be an int, not float"),
        ({"max_retries": True}, "max_retries must be an int, not bool"),
        ({"max_retries": math.inf}, "max_retries must be an int, not float"),
        ({"max_retries": None}, "max_retries must be an int, not NoneType"),
        ({"max_retries": -1}, "max_retries must be from 0 to 100, not -1"),
        ({"max_retries": 101}, "max_retries must be from 0 to 100, not 101"),
        ({"jitter": 1.5}, "jitter must be a number from 0 to 1, not 1.5"),
        ({"jitter": -0.1}, "jitter must be a number from 0 to 1, not -0.1"),
        ({"jitter": math.nan}, "jitter must be a number from 0 to 1, not nan"),
        ({"jitter": True}, "jitter must be a number from 0 to 1, not bool"),
    ],
    ids=repr,
)
def test_policy_rejects_bad_values(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(wx.ValidationError) as info:
        wx.RetryPolicy(**kwargs)
    assert isinstance(info.value, ValueError)  # existing `except ValueError` code keeps working
    assert words in str(info.value)


def test_evolve_is_checked_too() -> None:
    with pytest.raises(wx.ValidationError, match="initial_delay"):
        attrs.evolve(wx.RetryPolicy(), initial_delay=math.inf)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"initial_delay": 0, "max_delay": 0, "jitter": 0, "max_rate_limit_wait": 0},
        {"max_retries": 0},
        {"max_retries": 100, "initial_delay": 3600, "max_delay": 3600.0, "jitter": 1},
        {"max_rate_limit_wait": 60.5},
    ],
)
def test_policy_accepts_good_values(kwargs: dict[str, Any]) -> None:
    policy = wx.RetryPolicy(**kwargs)
    for name, value in kwargs.items():
        assert getattr(policy, name) == value


def test_backoff_of_a_large_retry_number_is_the_cap_not_an_overflow() -> None:
    policy = wx.RetryPolicy(max_retries=100, initial_delay=3600, max_delay=3600, jitter=0)
    assert policy.backoff(2000) == 3600  # 2.0**2000 alone raises OverflowError
    assert policy.retry_delay(wx.SystemBusyError(-1), retry=99, idempotent=True) == 3600


async def test_system_busy_retried_up_to_max_retries() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(CANCEL).respond(json={"errcode": -1, "errmsg": "system error"})
    policy = wx.RetryPolicy(max_retries=3, initial_delay=0)
    async with wired(router, retry_policy=policy) as client:
        with pytest.raises(wx.SystemBusyError):
            await client.cancel_order(**IDS)
    assert route.call_count == 4


async def test_system_busy_then_success() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(CANCEL).mock(
        side_effect=[
            httpx.Response(200, json={"errcode": -1}),
            httpx.Response(502),
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            httpx.Response(200, json=OK),
        ]
    )
    async with wired(router, retry_policy=wx.RetryPolicy(max_retries=4, initial_delay=0)) as client:
        result = await client.cancel_order(**IDS)
    assert result.errcode == 0
    assert route.call_count == 5


@pytest.mark.parametrize("errcode", [40199, 9300506, 9300524, 930563, 9300501, 45009, 48001])
async def test_final_errcodes_are_not_retried(errcode: int) -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(CANCEL).respond(json={"errcode": errcode, "errmsg": "x"})
    async with wired(router, retry_policy=wx.RetryPolicy(max_retries=5, initial_delay=0)) as client:
        with pytest.raises(wx.APIError) as info:
            await client.cancel_order(**IDS)
    assert info.value.errcode == errcode
    assert route.call_count == 1


async def test_speed_limit_retried_after_its_wait() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(CANCEL).mock(
        side_effect=[httpx.Response(200, json={"errcode": 9300509}), httpx.Response(200, json=OK)]
    )
    policy = wx.RetryPolicy(max_retries=1, initial_delay=0, max_rate_limit_wait=5)
    async with wired(router, retry_policy=policy) as client:
        result = await client.cancel_order(**IDS)
    assert result.errcode == 0
    assert route.call_count == 2


async def test_max_retries_zero_means_one_attempt() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(CANCEL).mock(side_effect=httpx.ConnectError("refused"))
    async with wired(router, retry_policy=wx.RetryPolicy(max_retries=0)) as client:
        with pytest.raises(wx.TransportError) as info:
            await client.cancel_order(**IDS)
    assert route.call_count == 1
    assert info.value.may_have_been_sent is False
    assert type(info.value.__cause__) is httpx.ConnectError


async def test_max_retries_argument_is_used() -> None:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(CANCEL).mock(side_effect=httpx.ReadTimeout("slow"))
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as http,
        wx.AsyncLogistics("wxappid", "secret", http_client=http, max_retries=1) as client,
    ):
        with pytest.raises(wx.RequestTimeoutError):
            await client.cancel_order(**IDS)  # one default backoff (about 0.5 s)
    assert route.call_count == 2
