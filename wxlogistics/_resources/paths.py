"""getPath."""

from __future__ import annotations

from wxlogistics._endpoints import GET_PATH
from wxlogistics._models.paths import GetPathRequest, GetPathResult

from ._base import Resource

__all__ = ["PathsResource"]


class PathsResource(Resource):
    """Waybill tracks."""

    async def get_path(
        self, *, order_id: str, delivery_id: str, waybill_id: str, openid: str | None = None
    ) -> GetPathResult:
        """A waybill's track events (getPath): ``result.path_item_list[0].action_type``.

        A read, retried on timeouts, 5xx and -1.

        Raises:
            ValidationError: a missing or malformed argument (nothing is sent).
            WaybillNotFoundError, OrderNotFoundError, DeliveryNotFoundError, APIError: refusals.
            TransportError, ResponseError: the network or the answer failed, after retries.
        """
        request = GetPathRequest(
            order_id=order_id, delivery_id=delivery_id, waybill_id=waybill_id, openid=openid
        )
        return await self._request(GET_PATH, request, GetPathResult)
