"""Requests and results: frozen attrs records, converted to and from the wire by cattrs.

cancelOrder keeps its hand-tuned ``to_body``/``from_api`` (the measured hot path); every other
endpoint goes through the declared converters of :mod:`._convert`.
"""

from wxlogistics._validate import check_id as check_id  # re-exported: callers import it from here

from ._cancel import CancelOrderRequest, CancelOrderResult, CancelOutcome, CancelStatus
from ._common import ApiResult, ServiceType, WaybillData
from .accounts import Account, BindAccountRequest, GetAllAccountResult
from .deliveries import Delivery, GetAllDeliveryResult
from .orders import (
    MAX_BATCH_ORDERS,
    AddOrderRequest,
    AddOrderResult,
    Address,
    BatchGetOrderRequest,
    BatchGetOrderResult,
    BatchOrderItem,
    Cargo,
    CargoItem,
    GetOrderRequest,
    GetOrderResult,
    Insured,
    OrderRef,
    Service,
    Shop,
    ShopItem,
)
from .paths import GetPathRequest, GetPathResult, PathItem
from .printers import GetPrinterResult, UpdatePrinterRequest
from .quota import GetQuotaRequest, GetQuotaResult
from .sandbox import SANDBOX_BIZ_ID, SANDBOX_DELIVERY_ID, TestUpdateOrderRequest

__all__ = [
    "MAX_BATCH_ORDERS",
    "SANDBOX_BIZ_ID",
    "SANDBOX_DELIVERY_ID",
    "Account",
    "AddOrderRequest",
    "AddOrderResult",
    "Address",
    "BindAccountRequest",
    "ApiResult",
    "BatchGetOrderRequest",
    "BatchGetOrderResult",
    "BatchOrderItem",
    "CancelOrderRequest",
    "CancelOrderResult",
    "CancelOutcome",
    "CancelStatus",
    "Cargo",
    "CargoItem",
    "Delivery",
    "GetAllAccountResult",
    "GetAllDeliveryResult",
    "GetOrderRequest",
    "GetOrderResult",
    "GetPathRequest",
    "GetPathResult",
    "GetPrinterResult",
    "GetQuotaRequest",
    "GetQuotaResult",
    "Insured",
    "OrderRef",
    "PathItem",
    "Service",
    "ServiceType",
    "Shop",
    "ShopItem",
    "TestUpdateOrderRequest",
    "UpdatePrinterRequest",
    "WaybillData",
    "check_id",
]
