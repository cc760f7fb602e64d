"""addOrder, getOrder, batchGetOrder and cancelOrder."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from wxlogistics._endpoints import ADD_ORDER, BATCH_GET_ORDER, CANCEL_ORDER, GET_ORDER
from wxlogistics._exceptions import (
    APIError,
    ClientClosedError,
    OrderNotFoundError,
    OutcomeUnknownError,
    ResponseError,
    ValidationError,
    WaybillNotFoundError,
    WxLogisticsError,
)
from wxlogistics._models._cancel import CancelOrderRequest, CancelOrderResult, cancel_json
from wxlogistics._models._convert import structure_items, structure_result, to_body
from wxlogistics._models.orders import (
    MAX_BATCH_ORDERS,
    AddOrderRequest,
    AddOrderResult,
    Address,
    BatchGetOrderRequest,
    BatchGetOrderResult,
    BatchOrderItem,
    Cargo,
    GetOrderRequest,
    GetOrderResult,
    Insured,
    OrderRef,
    Service,
    Shop,
)
from wxlogistics._transport import encode_json

from ._base import Resource

__all__ = ["OrdersResource", "needs_reconcile"]

_Nested = Mapping[str, Any]


def needs_reconcile(error: WxLogisticsError) -> bool:
    """Whether addOrder's ``error`` leaves its outcome unclear, so getOrder must tell.

    True after an attempt that may have been carried out (read timeout, connection dropped
    after sending, 5xx) and for addOrder's reconcile errcodes (-1, 9300508, 9300521, 9300522,
    9909001); False when the request provably never reached WeChat or was refused.
    """
    if error.may_have_been_sent:
        return True
    return isinstance(error, APIError) and error.errcode in ADD_ORDER.reconcile_errcodes


class OrdersResource(Resource):
    """Waybills: create, read, cancel."""

    async def add_order(
        self,
        *,
        order_id: str,
        delivery_id: str,
        biz_id: str,
        sender: Address | _Nested,
        receiver: Address | _Nested,
        cargo: Cargo | _Nested,
        shop: Shop | _Nested,
        insured: Insured | _Nested,
        service: Service | _Nested,
        add_source: int = 0,
        wx_appid: str | None = None,
        openid: str | None = None,
        custom_remark: str | None = None,
        tagid: int | None = None,
        expect_time: int | None = None,
    ) -> AddOrderResult:
        """Create a waybill (addOrder); nested arguments take models or dicts of WeChat's fields.

        Not safe to repeat: the request is resent only when it provably never reached WeChat.
        When the outcome is unclear (a timeout or dropped connection after sending, a 5xx,
        -1, or 9300508 / 9300521 / 9300522 "order id already used"), the order is looked up
        with getOrder for the same ``order_id`` and that waybill returned, with
        ``reconciled=True``; a second waybill is never created.

        Raises:
            ValidationError: a missing or malformed argument (byte lengths, sandbox ids...).
            OutcomeUnknownError: the outcome was unclear and getOrder found no waybill: retry
                later with the **same** ``order_id``.
            CarrierError: 9300501 / 9300502 (``delivery_resultcode``, ``delivery_resultmsg``).
            QuotaError, AccountNotBoundError, InvalidServiceError, DeliveryNotFoundError,
            ShopBannedError, InvalidArgumentError, APIError: other refusals.
            TransportError: the request never reached WeChat, after retries.
        """
        request = AddOrderRequest(
            order_id=order_id,
            delivery_id=delivery_id,
            biz_id=biz_id,
            sender=sender,
            receiver=receiver,
            cargo=cargo,
            shop=shop,
            insured=insured,
            service=service,
            add_source=add_source,
            wx_appid=wx_appid,
            openid=openid,
            custom_remark=custom_remark,
            tagid=tagid,
            expect_time=expect_time,
        )
        self._check_open()
        outcome = await self._transport.attempts(ADD_ORDER, encode_json(to_body(request)))
        if not isinstance(outcome, WxLogisticsError):
            try:
                return structure_result(outcome, AddOrderResult, ADD_ORDER.path)
            except ResponseError as exc:
                # WeChat said yes (errcode 0) in a shape we cannot read: the waybill exists,
                # so look it up rather than let the caller create a second one.
                exc.may_have_been_sent = True
                outcome = exc
        elif not needs_reconcile(outcome):
            raise outcome  # this frame holds no URL, token or raw payload
        return await self._reconcile(request, outcome)

    async def _reconcile(self, request: AddOrderRequest, error: WxLogisticsError) -> AddOrderResult:
        """GetOrder for the order whose addOrder ended in ``error``; its waybill, or raise."""
        lookup_error: WxLogisticsError | None = None
        found: GetOrderResult | None = None
        try:
            found = await self.get_order(
                order_id=request.order_id, delivery_id=request.delivery_id, openid=request.openid
            )
        except (OrderNotFoundError, WaybillNotFoundError):
            pass  # nothing found
        except WxLogisticsError as exc:
            lookup_error = exc
        if found is not None and found.waybill_id and found.order_status == 1:
            # The order id belongs to a cancelled waybill: nothing to ship against.
            raise error
        if found is not None and found.waybill_id:
            return AddOrderResult(
                order_id=found.order_id or request.order_id,
                waybill_id=found.waybill_id,
                waybill_data=found.waybill_data,
                errmsg=found.errmsg,
                extra=found.extra,
                reconciled=True,
                order_status=found.order_status,
            )
        how = "the lookup failed" if lookup_error is not None else "getOrder found no waybill"
        unknown = OutcomeUnknownError(
            f"addOrder for order_id {request.order_id!r} may have created a waybill ({error}), "
            f"and {how}: look it up later with get_order, or call add_order again with the "
            "same order_id (never a new one)",
            order_id=request.order_id,
            lookup_error=lookup_error,
        )
        raise unknown from error

    async def get_order(
        self,
        *,
        order_id: str,
        delivery_id: str,
        waybill_id: str | None = None,
        openid: str | None = None,
        print_type: int | None = None,
    ) -> GetOrderResult:
        """A waybill with its label (getOrder). A read, retried on timeouts, 5xx and -1.

        Raises:
            ValidationError: a missing or malformed argument (nothing is sent).
            WaybillNotFoundError (9300528), OrderNotFoundError (930563),
            DeliveryNotFoundError, APIError: refusals.
            TransportError, ResponseError: the network or the answer failed, after retries.
        """
        request = GetOrderRequest(
            order_id=order_id,
            delivery_id=delivery_id,
            waybill_id=waybill_id,
            openid=openid,
            print_type=print_type,
        )
        return await self._request(GET_ORDER, request, GetOrderResult)

    async def batch_get_order(
        self, *, order_list: Iterable[OrderRef | _Nested]
    ) -> BatchGetOrderResult:
        """Up to 100 waybills in one call (batchGetOrder). A read, retried.

        Each item of ``result.order_list`` has its own ``errcode``: check ``item.ok`` /
        ``item.error``; an item's error never raises for the whole batch.
        :meth:`batch_get_orders` takes any number of orders.

        Raises:
            ValidationError: no order, more than 100, or a malformed one (nothing is sent).
            APIError: the whole call was refused.
            TransportError, ResponseError: the network or the answer failed, after retries.
        """
        request = BatchGetOrderRequest(order_list=order_list)
        return await self._request(BATCH_GET_ORDER, request, BatchGetOrderResult)

    async def batch_get_orders(
        self, order_list: Iterable[OrderRef | _Nested], *, chunk_size: int = MAX_BATCH_ORDERS
    ) -> list[BatchOrderItem]:
        """Any number of waybills: batchGetOrder calls of ``chunk_size`` (<= 100), in order.

        Returns every item, in the order given, each with its own ``errcode``. All orders are
        validated before the first call. A call that fails raises (items of earlier calls are
        then lost: use :meth:`batch_get_order` to keep them).
        """
        if type(chunk_size) is not int or not 1 <= chunk_size <= MAX_BATCH_ORDERS:
            raise ValidationError(f"chunk_size must be an int from 1 to 100: {chunk_size!r}")
        refs = structure_items(OrderRef, order_list, "order_list")
        items: list[BatchOrderItem] = []
        for start in range(0, len(refs), chunk_size):
            result = await self.batch_get_order(order_list=refs[start : start + chunk_size])
            items.extend(result.order_list)
        return items

    async def cancel_order(
        self,
        *,
        order_id: str,
        delivery_id: str,
        waybill_id: str,
        openid: str | None = None,
    ) -> CancelOrderResult:
        """Cancel a waybill (cancelOrder).

        Sends ``POST /cgi-bin/express/business/order/cancel`` with exactly these fields
        (``openid`` left out when None). Safe to repeat, so timeouts, 5xx and -1 are retried.

        Raises:
            ValidationError: an id is missing, empty, blank or not a str (nothing is sent).
            WaybillHasTracesError: 9300506, the parcel already moved.
            AlreadyCancelledError: 9300524, already cancelled (also after a retried success).
            WaybillNotFoundError, OrderNotFoundError, CarrierError, APIError: other refusals.
            TransportError, ResponseError: the network or the answer failed, after retries.
        """
        body = cancel_json(order_id, delivery_id, waybill_id, openid)
        if self._closed:
            raise ClientClosedError("this AsyncLogistics is closed; create a new one")
        # Not via self.cancel() nor Transport.call(): two coroutines fewer on the hot path.
        outcome = await self._transport.attempts(CANCEL_ORDER, body)
        if isinstance(outcome, WxLogisticsError):
            raise outcome  # this frame holds no URL, token or raw payload
        return CancelOrderResult.from_api(outcome)

    async def cancel(self, request: CancelOrderRequest) -> CancelOrderResult:
        """Cancel the waybill described by an already-validated :class:`CancelOrderRequest`."""
        if self._closed:
            raise ClientClosedError("this AsyncLogistics is closed; create a new one")
        payload = await self._transport.call(CANCEL_ORDER, encode_json(request.to_body()))
        return CancelOrderResult.from_api(payload)
