"""Request bodies and answers of the order routes (money in integer fen, points in integers)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from chalicelib.validation import ID_PATTERN, Page, QueryModel, RequestModel, ResponseModel, Timestamp

__all__ = [
    "MAX_LINES",
    "MAX_QTY",
    "OrderItem",
    "DeliveryAddress",
    "Fulfillment",
    "OrderRequest",
    "GuideOrderRequest",
    "GuidePlacedOrder",
    "PickupRequest",
    "RefundRequest",
    "Amounts",
    "Payment",
    "OrderCreated",
    "OrderView",
    "Attribution",
    "OrderPage",
    "StoreOrdersQuery",
    "StoreOrderPage",
]

MAX_LINES = 20
MAX_QTY = 99
MAX_POINTS = 100_000_000

OrderStatus = Literal[
    "pending_payment", "paid", "routed", "accepted", "ready", "delivering",
    "completed", "cancelled", "refunding", "refunded",
]
Mode = Literal["delivery", "pickup", "express"]


class OrderItem(RequestModel):
    sku_id: str = Field(pattern=ID_PATTERN)
    qty: int = Field(ge=1, le=MAX_QTY)
    # Pay the SKU's points price (积分加钱购: points plus cash) instead of its price.
    points_price: bool = False


class DeliveryAddress(RequestModel):
    name: str = Field(min_length=1, max_length=32)
    phone: str = Field(pattern=r"^1[0-9]{10}$")
    text: str = Field(min_length=1, max_length=200)
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)


class Fulfillment(RequestModel):
    mode: Mode
    store_id: str | None = Field(default=None, pattern=ID_PATTERN)
    address: DeliveryAddress | None = None

    @model_validator(mode="after")
    def _what_the_mode_needs(self) -> Fulfillment:
        if self.mode == "pickup" and self.store_id is None:
            raise ValueError("storeId is required for pickup")
        if self.mode in ("delivery", "express") and self.address is None:
            raise ValueError(f"address is required for {self.mode}")
        return self


class OrderRequest(RequestModel):
    items: list[OrderItem] = Field(min_length=1, max_length=MAX_LINES)
    fulfillment: Fulfillment
    coupon_id: str | None = Field(default=None, min_length=1, max_length=64)
    points_to_use: int = Field(default=0, ge=0, le=MAX_POINTS)
    guide_id: str | None = Field(
        default=None, pattern=ID_PATTERN,
        description="the guide whose shared product link (`g=<guideId>`) the member ordered from",
    )


class GuideOrderRequest(RequestModel):
    """代客下单: a guide places the order for a customer bound to them, who then pays it."""

    member_id: str = Field(pattern=ID_PATTERN)
    items: list[OrderItem] = Field(min_length=1, max_length=MAX_LINES)
    fulfillment: Fulfillment


class PickupRequest(RequestModel):
    pickup_code: str = Field(min_length=1, max_length=16, description="the code the member shows at the counter")


class RefundRequest(RequestModel):
    reason: str = Field(min_length=1, max_length=80)


# --- Answers -------------------------------------------------------------------------------


class Amounts(ResponseModel):
    goods: int = Field(description="fen")
    discount: int = Field(description="fen, the coupon's")
    points_deduction: int = Field(description="fen paid by points")
    delivery: int = Field(description="fen")
    payable: int = Field(description="fen to pay through WeChat Pay")


class Payment(ResponseModel):
    """What `wx.requestPayment` takes, as it names the fields."""

    time_stamp: str = Field(alias="timeStamp")
    nonce_str: str = Field(alias="nonceStr")
    package: str
    sign_type: str = Field(alias="signType")
    pay_sign: str = Field(alias="paySign")


class OrderCreated(ResponseModel):
    order_id: str
    status: OrderStatus
    amounts: Amounts
    points_used: int
    pay_deadline: Timestamp
    payment: Payment


class GuidePlacedOrder(ResponseModel):
    """The order a guide placed: the customer pays it in the mini-program (`GET /orders/{orderId}/payment`)."""

    order_id: str
    status: OrderStatus
    amounts: Amounts
    points_used: int
    pay_deadline: Timestamp


class Line(ResponseModel):
    sku_id: str
    title: str
    qty: int
    unit_price: int = Field(description="fen")
    unit_points: int


class Address(ResponseModel):
    name: str
    phone: str = Field(description="shown masked, as 138****0000: the courier has the number")
    text: str
    lat: float
    lng: float


class Courier(ResponseModel):
    name: str = Field(description="the rider, once one has taken the parcel; until then the courier service")
    phone: str | None
    status: Literal["dispatched", "accepted", "picked_up", "delivered", "cancelled"]
    service: Literal["dada", "wechat", "express"]
    waybill_id: str | None = Field(default=None, description="the courier's number (an express parcel's tracking number)")


class FulfillmentView(ResponseModel):
    mode: Mode
    store_id: str
    address: Address | None = None
    pickup_code: str | None = Field(default=None, description="only in the member's own view")
    courier: Courier | None = None


class TimelineEntry(ResponseModel):
    status: str
    at: Timestamp
    note: str | None = None


class Refund(ResponseModel):
    amount: int = Field(description="fen")
    reason: str


class Attribution(ResponseModel):
    """Who the order counts for; the acquiring and credited parts are recorded at completion."""

    promoting_guide_id: str | None = Field(description="the guide whose link the order came from, or who placed it")
    promoting_store_id: str | None
    placed_by_guide: bool
    acquiring_guide_id: str | None = Field(description="the guide the member was bound to at completion")
    acquiring_store_id: str | None
    credited_guide_id: str | None
    credited_store_id: str | None


class OrderView(ResponseModel):
    order_id: str
    status: OrderStatus
    items: list[Line]
    amounts: Amounts
    points_used: int
    coupon_id: str | None
    fulfillment: FulfillmentView
    pay_deadline: Timestamp
    paid_at: Timestamp | None
    completed_at: Timestamp | None
    refund: Refund | None
    timeline: list[TimelineEntry]
    created_at: Timestamp
    attribution: Attribution | None = Field(default=None, description="in the store's and the guide's view")


class OrderPage(Page[OrderView]):
    """`GET /members/me/orders`: newest first."""


class StoreOrdersQuery(QueryModel):
    status: OrderStatus | None = None


class StoreOrderPage(Page[OrderView]):
    """`GET /store/orders`: the staff member's store's orders, newest first."""
