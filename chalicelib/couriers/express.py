"""Express parcels through WeChat's logistics service (物流助手): the warehouse's, and any rerouted to it.

The parcel is booked with the express company WeChat names (`express_delivery_id`,
SF by default) and its tracking number comes back as the waybill id. Its path
comes as `add_express_path` message-push events; the latest action decides.
"""

from __future__ import annotations

from typing import Any

from chalicelib.config import settings
from chalicelib.couriers import CANCELLED, CourierError, Parcel, Report, Waybill, from_timestamp, post_to_wechat

__all__ = ["COURIER", "ACTIONS", "report_from_event"]

NAME = "express"
EVENT = "add_express_path"
ORDER_NOT_FOUND = 9300507
# ActionType -> the order's courier status (1xxxxx collected, 2xxxxx in transit, 3xxxxx delivery, 4xxxxx cancelled).
ACTIONS = {100001: "accepted", 200001: "picked_up", 300002: "picked_up", 300003: "delivered",
           300004: CANCELLED, 400001: CANCELLED, 400002: CANCELLED}


def _status(action_type: int) -> str | None:
    if action_type in ACTIONS:
        return ACTIONS[action_type]
    return "picked_up" if 200000 <= action_type < 300000 else None


def _post(path: str, payload: dict[str, Any]) -> dict[str, Any]:
    return post_to_wechat(NAME, path, payload, ORDER_NOT_FOUND)


def _latest(ref: str, waybill_id: Any, actions: Any) -> Report | None:
    known = [action for action in actions if isinstance(action, dict)] if isinstance(actions, list) else []
    for action in sorted(known, key=lambda a: int(a.get("ActionTime") or a.get("action_time") or 0), reverse=True):
        try:
            action_type = int(action.get("ActionType") or action.get("action_type"))
            at = from_timestamp(action.get("ActionTime") or action.get("action_time"))
        except (TypeError, ValueError):
            continue
        status = _status(action_type)
        if status is not None:
            return Report(NAME, ref, status, str(action_type), at, waybill_id=waybill_id or None)
    return None


class Express:
    name = NAME

    def dispatch(self, parcel: Parcel) -> Waybill:
        current = settings()
        sender, receiver = parcel.sender, parcel.receiver
        answer = _post("/cgi-bin/express/business/order/add", {
            "add_source": 0, "order_id": parcel.ref, "openid": parcel.openid,
            "delivery_id": current.express_delivery_id, "biz_id": current.express_biz_id,
            "sender": {"name": sender.name, "mobile": sender.phone, "address": sender.address},
            "receiver": {"name": receiver.name, "mobile": receiver.phone, "address": receiver.address},
            "cargo": {"count": 1, "weight": 1, "space_x": 20, "space_y": 15, "space_z": 10,
                      "detail_list": [{"name": parcel.description, "count": 1}]},
            "shop": {"wxa_path": f"pages/orders/detail?id={parcel.order_id}", "goods_name": parcel.description,
                     "goods_count": 1},
            "insured": {"use_insured": 0, "insured_value": 0},
            "service": {"service_type": 0, "service_name": "标准快递"},
        })
        if answer.get("errcode") or not answer.get("waybill_id"):
            raise CourierError(NAME, f"answered errcode {answer.get('errcode')}")
        return Waybill(NAME, parcel.ref, str(answer["waybill_id"]))

    def query(self, ref: str) -> Report | None:
        current = settings()
        answer = _post("/cgi-bin/express/business/path/get",
                       {"order_id": ref, "delivery_id": current.express_delivery_id, "waybill_id": ""})
        if answer.get("errcode") == ORDER_NOT_FOUND:
            return None
        return _latest(ref, answer.get("waybill_id"), answer.get("path_item_list"))


def report_from_event(event: dict[str, Any]) -> Report | None:
    """An `add_express_path` event as a report of its latest action; None for any other event."""
    if event.get("Event") != EVENT or not isinstance(event.get("OrderId"), str):
        return None
    actions = event.get("Actions")
    if isinstance(actions, dict):  # XML: <Actions> repeated, or once
        actions = actions.get("item", actions)
    if isinstance(actions, dict):
        actions = [actions]
    return _latest(event["OrderId"], event.get("WayBillId"), actions)


COURIER = Express()
