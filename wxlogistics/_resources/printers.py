"""getPrinter and updatePrinter."""

from __future__ import annotations

from wxlogistics._endpoints import GET_PRINTER, UPDATE_PRINTER
from wxlogistics._models._common import ApiResult
from wxlogistics._models.printers import GetPrinterResult, UpdatePrinterRequest

from ._base import Resource

__all__ = ["PrintersResource"]


class PrintersResource(Resource):
    """The label printers (for WeChat's PC printing app)."""

    async def get_printer(self) -> GetPrinterResult:
        """The printers' openids and tagids (getPrinter; a GET without body, retried).

        Raises:
            APIError: WeChat refused; TransportError, ResponseError: after retries.
        """
        return await self._request(GET_PRINTER, None, GetPrinterResult)

    async def update_printer(
        self, *, openid: str, update_type: str, tagid_list: str | None = None
    ) -> ApiResult:
        """Bind or unbind a printer (updatePrinter). Sets a state, so retried like a read.

        ``update_type`` is ``"bind"`` or ``"unbind"``; ``tagid_list`` a comma-separated string
        of at most 10 tagids (WeChat's format).

        Raises:
            ValidationError: a missing or malformed argument (nothing is sent).
            InvalidArgumentError: 9300517 / 9300533; APIError: other refusals.
            TransportError, ResponseError: the network or the answer failed, after retries.
        """
        request = UpdatePrinterRequest(
            openid=openid, update_type=update_type, tagid_list=tagid_list
        )
        return await self._request(UPDATE_PRINTER, request, ApiResult)
