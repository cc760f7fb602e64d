"""Errcodes per endpoint: each modelled code raises its class, and only from its endpoint."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from wxlogistics import (
    APIError,
    CarrierError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    SystemBusyError,
)
from wxlogistics._endpoints import ADD_ORDER, COMMON_ERRCODES, ENDPOINTS, ApiEndpoint

from .helpers import STABLE, make_router, token_response, wired
from .test_contract import ROWS

pytestmark = pytest.mark.anyio


def _own_codes() -> list[tuple[ApiEndpoint, int, type[APIError]]]:
    cases = []
    for endpoint in ENDPOINTS:
        for code, cls in sorted(endpoint.errcodes.items()):
            if code in COMMON_ERRCODES or code in endpoint.reconcile_errcodes:
                continue  # common codes below; add_order's reconcile codes in test_api_add_order
            cases.append((endpoint, code, cls))
    return cases


async def _answer(endpoint: ApiEndpoint, payload: dict[str, Any], **kwargs: Any) -> Any:
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.route(method=endpoint.method, path=endpoint.path).respond(json=payload)
    async with wired(router, **kwargs) as client:
        try:
            return await getattr(client, endpoint.method_name)(**ROWS[endpoint.method_name].kwargs)
        finally:
            assert route.call_count >= 1


@pytest.mark.parametrize(
    ("endpoint", "code", "cls"),
    _own_codes(),
    ids=lambda v: v.method_name if isinstance(v, ApiEndpoint) else str(v),
)
async def test_own_errcode_raises_its_class(
    endpoint: ApiEndpoint, code: int, cls: type[APIError]
) -> None:
    errmsg = f"refused rid: 6a1b-{code}"
    with pytest.raises(APIError) as info:
        await _answer(endpoint, {"errcode": code, "errmsg": errmsg})
    assert type(info.value) is cls
    assert info.value.errcode == code
    assert info.value.rid == f"6a1b-{code}"
    assert info.value.path == endpoint.path


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.method_name)
@pytest.mark.parametrize(("code", "cls"), [(48001, PermissionDeniedError), (45009, RateLimitError)])
async def test_common_errcodes_on_every_endpoint(
    endpoint: ApiEndpoint, code: int, cls: type[APIError]
) -> None:
    with pytest.raises(cls) as info:
        await _answer(endpoint, {"errcode": code, "errmsg": "no"})
    assert info.value.errcode == code


@pytest.mark.parametrize("code", [9300506, 9300524])
@pytest.mark.parametrize(
    "endpoint",
    [e for e in ENDPOINTS if e.method_name != "cancel_order"],
    ids=lambda e: e.method_name,
)
async def test_cancel_only_codes_are_plain_elsewhere(endpoint: ApiEndpoint, code: int) -> None:
    with pytest.raises(APIError) as info:
        await _answer(endpoint, {"errcode": code, "errmsg": "x"})
    assert type(info.value) is APIError


async def test_carrier_refusal_carries_delivery_result() -> None:
    payload = {
        "errcode": 9300501,
        "errmsg": "delivery logic fail",
        "delivery_resultcode": 10002,
        "delivery_resultmsg": "客户密码不正确",
    }
    with pytest.raises(CarrierError) as info:
        await _answer(ADD_ORDER, payload)
    assert info.value.delivery_resultcode == 10002
    assert info.value.delivery_resultmsg == "客户密码不正确"
    assert "carrier said [10002] 客户密码不正确" in str(info.value)
    assert info.value.may_have_been_sent is False


def _timeout_then(payload: dict[str, Any]) -> list[Any]:
    return [httpx.ReadTimeout("slow"), httpx.Response(200, json=payload)]


@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if e.idempotent], ids=lambda e: e.method_name
)
async def test_safe_endpoints_retry_a_read_timeout(endpoint: ApiEndpoint) -> None:
    row = ROWS[endpoint.method_name]
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.route(method=endpoint.method, path=endpoint.path)
    route.side_effect = _timeout_then(row.answer)
    async with wired(router) as client:
        result = await getattr(client, endpoint.method_name)(**row.kwargs)
    assert route.call_count == 2
    row.check(result)


async def test_safe_endpoints_retry_system_busy() -> None:
    row = ROWS["get_path"]
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(row.path)
    route.side_effect = [
        httpx.Response(200, json={"errcode": -1, "errmsg": "system error"}),
        httpx.Response(200, json=row.answer),
    ]
    async with wired(router) as client:
        await client.get_path(**row.kwargs)
    assert route.call_count == 2


async def test_test_update_order_is_not_resent_after_a_read_timeout() -> None:
    row = ROWS["test_update_order"]
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(row.path)
    route.side_effect = _timeout_then(row.answer)
    async with wired(router) as client:
        with pytest.raises(RequestTimeoutError) as info:
            await client.test_update_order(**row.kwargs)
    assert route.call_count == 1
    assert info.value.may_have_been_sent is True


async def test_test_update_order_is_resent_when_it_never_left() -> None:
    row = ROWS["test_update_order"]
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(row.path)
    route.side_effect = [httpx.ConnectError("refused"), httpx.Response(200, json=row.answer)]
    async with wired(router) as client:
        result = await client.test_update_order(**row.kwargs)
    assert route.call_count == 2
    assert result.errcode == 0


async def test_system_busy_is_not_retried_for_test_update_order() -> None:
    row = ROWS["test_update_order"]
    router = make_router()
    router.post(STABLE).mock(return_value=token_response())
    route = router.post(row.path).respond(json={"errcode": -1, "errmsg": "busy"})
    async with wired(router) as client:
        with pytest.raises(SystemBusyError):
            await client.test_update_order(**row.kwargs)
    assert route.call_count == 1
