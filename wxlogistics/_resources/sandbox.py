"""testUpdateOrder."""

from __future__ import annotations

from wxlogistics._endpoints import TEST_UPDATE_ORDER
from wxlogistics._models._common import ApiResult
from wxlogistics._models.sandbox import SANDBOX_BIZ_ID, SANDBOX_DELIVERY_ID, TestUpdateOrderRequest

from ._base import Resource

__all__ = ["SandboxResource"]


class SandboxResource(Resource):
    """The sandbox's track simulator."""

    async def test_update_order(
        self,
        *,
        order_id: str,
        waybill_id: str,
        action_time: int,
        action_type: int,
        action_msg: str,
        biz_id: str = SANDBOX_BIZ_ID,
        delivery_id: str = SANDBOX_DELIVERY_ID,
    ) -> ApiResult:
        """Add a track event to a sandbox order (testUpdateOrder).

        ``biz_id`` must be ``test_biz_id`` and ``delivery_id`` ``TEST`` (the defaults). Each
        call adds an event, so it is resent only when it provably never left.

        Raises:
            ValidationError: a missing or malformed argument, or a non-sandbox id.
            OrderNotFoundError: 930563, no such sandbox order; APIError: other refusals.
            TransportError, ResponseError: the network or the answer failed.
        """
        request = TestUpdateOrderRequest(
            order_id=order_id,
            waybill_id=waybill_id,
            action_time=action_time,
            action_type=action_type,
            action_msg=action_msg,
            biz_id=biz_id,
            delivery_id=delivery_id,
        )
        return await self._request(TEST_UPDATE_ORDER, request, ApiResult)
