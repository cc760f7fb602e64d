"""What every resource mixin shares: the call of one declared endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import attrs

from wxlogistics._exceptions import ClientClosedError, WxLogisticsError
from wxlogistics._models._convert import structure_result, to_body
from wxlogistics._transport import ConfirmedPayload, encode_json

if TYPE_CHECKING:
    from wxlogistics._endpoints import ApiEndpoint
    from wxlogistics._transport import Transport

__all__ = ["Resource"]

R = TypeVar("R")


class Resource:
    """Base of the resource mixins: holds nothing, uses the client's transport."""

    _transport: Transport
    _closed: bool

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this AsyncLogistics is closed; create a new one")

    async def _request(self, endpoint: ApiEndpoint, request: object | None, result: type[R]) -> R:
        """Send ``request`` (a request model; None: no body, for GET) to ``endpoint``.

        Returns ``result`` built from the answer. The caller has validated the arguments
        already (ValidationError before any request). No local of this frame holds the body
        as a dict (bindAccount's password): the models' reprs leave it out.
        """
        self._check_open()
        outcome = await self._transport.attempts(
            endpoint, None if request is None else encode_json(to_body(request))
        )
        if isinstance(outcome, WxLogisticsError):
            raise outcome  # this frame holds no URL, token or raw payload
        parsed = structure_result(outcome, result, endpoint.path)
        if type(outcome) is ConfirmedPayload and hasattr(parsed, "confirmed_by_retry"):
            parsed = attrs.evolve(parsed, confirmed_by_retry=True)  # type: ignore[misc]
        return parsed
