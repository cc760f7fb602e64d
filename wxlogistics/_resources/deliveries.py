"""getAllDelivery."""

from __future__ import annotations

from wxlogistics._endpoints import GET_ALL_DELIVERY
from wxlogistics._models.deliveries import GetAllDeliveryResult

from ._base import Resource

__all__ = ["DeliveriesResource"]


class DeliveriesResource(Resource):
    """The carriers WeChat supports."""

    async def get_all_delivery(self) -> GetAllDeliveryResult:
        """Every carrier and its services (getAllDelivery; a GET without body, retried).

        Raises:
            APIError: WeChat refused; TransportError, ResponseError: after retries.
        """
        return await self._request(GET_ALL_DELIVERY, None, GetAllDeliveryResult)
