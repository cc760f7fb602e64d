"""bindAccount and getAllAccount."""

from __future__ import annotations

from wxlogistics._endpoints import BIND_ACCOUNT, GET_ALL_ACCOUNT
from wxlogistics._exceptions import ValidationError, WxLogisticsError
from wxlogistics._models._common import ApiResult
from wxlogistics._models.accounts import BindAccountRequest, GetAllAccountResult
from wxlogistics._redact import redact
from wxlogistics._transport import scrub

from ._base import Resource

__all__ = ["AccountsResource"]


class AccountsResource(Resource):
    """Carrier accounts bound to the mini program."""

    async def bind_account(
        self,
        *,
        type: str,
        biz_id: str,
        delivery_id: str,
        password: str | None = None,
        remark_content: str | None = None,
    ) -> ApiResult:
        """Bind or unbind a carrier account (bindAccount); ``type`` is ``bind`` or ``unbind``.

        Sets a state, so retried like a read; if an attempt may have been carried out and the
        retry answers 9300529 (bind) or 9300530 (unbind), the call succeeds with
        ``confirmed_by_retry=True``. ``password`` never appears in messages or reprs.

        Raises:
            ValidationError: a missing or malformed argument (nothing is sent).
            AccountAlreadyBoundError (9300529), AccountNotFoundError (9300530),
            AccountCredentialsError (9300531), AccountUnderReviewError (9300532),
            DeliveryNotFoundError, APIError: refusals.
            TransportError, ResponseError: the network or the answer failed, after retries.
        """
        error: ValidationError | None = None
        try:
            request = BindAccountRequest(
                type=type,
                biz_id=biz_id,
                delivery_id=delivery_id,
                password=password,
                remark_content=remark_content,
            )
        except ValidationError as exc:
            # Raised afresh: the frames of the model's checks hold the password.
            error = ValidationError(*exc.args)
        del password
        if error is not None:
            raise error
        try:
            return await self._request(BIND_ACCOUNT, request, ApiResult)
        except WxLogisticsError as exc:
            if request.password:
                # A carrier or gateway may echo the password bare in errmsg or in a body
                # ("wrong password hunter22"): the key-based masking cannot see it there.
                _mask(exc, request.password)
            raise

    async def get_all_account(self) -> GetAllAccountResult:
        """Every bound account with its quota and services (getAllAccount; GET, retried).

        Raises:
            APIError: WeChat refused; TransportError, ResponseError: after retries.
        """
        return await self._request(GET_ALL_ACCOUNT, None, GetAllAccountResult)


def _mask(error: WxLogisticsError, secret: str) -> None:
    """Mask ``secret`` in ``error``'s message, text attributes and payload, in place."""
    error.args = tuple(redact(a, secret) if isinstance(a, str) else a for a in error.args)
    for name, value in list(vars(error).items()):
        if isinstance(value, str):
            setattr(error, name, redact(value, secret))
        elif isinstance(value, (dict, list)):
            setattr(error, name, scrub(value, (secret,)))
