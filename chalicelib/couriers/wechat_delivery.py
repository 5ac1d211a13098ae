"""WeChat instant delivery (即时配送): the mini-program's same-day couriers through WeChat.

Orders are placed and asked about with the app's access token and a
`delivery_sign` (sha1 of the shop id, the shop's order id and the shop's app
secret). Statuses come back as `update_waybill_status` message-push events,
which WeChat signs and encrypts (chalicelib.wechat.push): they are believed
as they come.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chalicelib.config import secret, settings
from chalicelib.couriers import CANCELLED, CourierError, Parcel, Report, Waybill, from_timestamp, post_to_wechat

__all__ = ["COURIER", "STATUSES", "delivery_sign", "report_from_event"]

NAME = "wechat"
EVENT = "update_waybill_status"
ORDER_NOT_FOUND = 930555
# order_status -> the order's courier status; 103, 203, 204, 205, 401, 501 and 502 end a dispatch.
STATUSES = {
    101: "dispatched", 102: "dispatched", 201: "accepted", 202: "accepted", 301: "picked_up", 302: "delivered",
    103: CANCELLED, 203: CANCELLED, 204: CANCELLED, 205: CANCELLED, 401: CANCELLED, 501: CANCELLED, 502: CANCELLED,
}


def delivery_sign(shopid: str, shop_order_id: str, app_secret: str) -> str:
    return hashlib.sha1(f"{shopid}{shop_order_id}{app_secret}".encode()).hexdigest()


def _signed(ref: str) -> dict[str, str]:
    shopid = settings().wechat_delivery_shopid
    return {"shopid": shopid, "shop_order_id": ref,
            "delivery_sign": delivery_sign(shopid, ref, secret("wechat_delivery_app_secret"))}


def _post(path: str, payload: dict[str, Any]) -> dict[str, Any]:
    return post_to_wechat(NAME, path, payload, ORDER_NOT_FOUND)


def _report(ref: str, code: Any, at: Any, waybill_id: Any, rider_name: Any, rider_phone: Any) -> Report | None:
    if not isinstance(code, int) or code not in STATUSES:
        return None
    return Report(NAME, ref, STATUSES[code], str(code), from_timestamp(at), waybill_id=waybill_id or None,
                  rider_name=rider_name or None, rider_phone=rider_phone or None)


class WechatDelivery:
    name = NAME

    def dispatch(self, parcel: Parcel) -> Waybill:
        sender, receiver = parcel.sender, parcel.receiver
        answer = _post("/cgi-bin/express/local/business/order/add", {
            **_signed(parcel.ref), "shop_no": parcel.shop_no, "delivery_id": settings().wechat_delivery_id,
            "openid": parcel.openid,
            "sender": {"name": sender.name, "phone": sender.phone, "address": sender.address,
                       "lat": sender.lat, "lng": sender.lng, "coordinate_type": 0},
            "receiver": {"name": receiver.name, "phone": receiver.phone, "address": receiver.address,
                         "lat": receiver.lat, "lng": receiver.lng, "coordinate_type": 0},
            "cargo": {"goods_value": round(parcel.value_fen / 100, 2), "goods_weight": 1, "cargo_first_class": "数码产品",
                      "cargo_second_class": "数码配件", "goods_detail": {"goods": [{"good_name": parcel.description,
                                                                                    "good_count": 1}]}},
            "order_info": {"order_type": 0, "is_insured": 0},
            "shop": {"wxa_path": f"pages/orders/detail?id={parcel.order_id}", "img_url": "",
                     "goods_name": parcel.description, "goods_count": 1},
        })
        if answer.get("errcode"):
            raise CourierError(NAME, f"answered errcode {answer['errcode']}")
        fee = answer.get("fee")
        return Waybill(NAME, parcel.ref, str(answer.get("waybill_id") or parcel.ref),
                       round(fee * 100) if isinstance(fee, (int, float)) else None)

    def query(self, ref: str) -> Report | None:
        answer = _post("/cgi-bin/express/local/business/order/get", _signed(ref))
        if answer.get("errcode") == ORDER_NOT_FOUND:
            return None
        return _report(ref, answer.get("order_status"), answer.get("action_time") or 0, answer.get("waybill_id"),
                       answer.get("rider_name"), answer.get("rider_phone"))


def report_from_event(event: dict[str, Any]) -> Report | None:
    """An `update_waybill_status` event as a report; None for any other event or an unknown status."""
    if event.get("Event") != EVENT or not isinstance(event.get("shop_order_id"), str):
        return None
    if event.get("shopid") not in (None, settings().wechat_delivery_shopid):
        return None
    agent = event.get("agent") if isinstance(event.get("agent"), dict) else {}
    try:
        code, at = int(event.get("order_status")), int(event.get("action_time"))
    except (TypeError, ValueError):
        return None
    return _report(event["shop_order_id"], code, at, event.get("waybill_id"), agent.get("name"), agent.get("phone"))


COURIER = WechatDelivery()
