"""getQuota."""

from __future__ import annotations

from wxlogistics._endpoints import GET_QUOTA
from wxlogistics._models.quota import GetQuotaRequest, GetQuotaResult

from ._base import Resource

__all__ = ["QuotaResource"]


class QuotaResource(Resource):
    """The waybill quota of franchise carriers."""

    async def get_quota(self, *, delivery_id: str, biz_id: str) -> GetQuotaResult:
        """The waybills left on an account (getQuota; a read, retried): ``quota_num``.

        Raises:
            ValidationError: a missing or malformed argument (nothing is sent).
            QuotaError: 9300527, this carrier has no quota to query.
            AccountNotBoundError, DeliveryNotFoundError, APIError: other refusals.
            TransportError, ResponseError: the network or the answer failed, after retries.
        """
        request = GetQuotaRequest(delivery_id=delivery_id, biz_id=biz_id)
        return await self._request(GET_QUOTA, request, GetQuotaResult)
