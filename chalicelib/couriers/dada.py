"""Dada (达达): same-day couriers through its open platform's order API.

Requests are signed with the app secret: md5 of the secret, then every
parameter but the signature as `key + value` in key order, then the secret
again, upper-case. Dada's callbacks are signed with no secret at all (md5
of the sorted values of `client_id`, `order_id` and `update_time`), so
`parse_callback` checks that signature for form only: a callback is a hint,
confirmed with `query` before anything acts on it.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import time
from typing import Any

from chalicelib.config import secret, settings
from chalicelib.couriers import CANCELLED, CallbackRejected, CourierError, Parcel, Report, Waybill, from_timestamp

__all__ = ["COURIER", "CALLBACK_OK", "STATUSES", "sign", "callback_signature", "parse_callback"]

NAME = "dada"
TIMEOUT_SECONDS = 5
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
CALLBACK_OK = (200, "application/json", '{"status":"ok"}')
ORDER_NOT_FOUND = 2005
# Dada's order_status -> the order's courier status.
STATUSES = {
    1: "dispatched", 8: "accepted", 2: "accepted", 100: "accepted", 3: "picked_up", 4: "delivered",
    5: CANCELLED, 7: CANCELLED, 9: CANCELLED, 10: CANCELLED, 1000: CANCELLED,
}


def sign(params: dict[str, str], app_secret: str) -> str:
    text = "".join(f"{key}{params[key]}" for key in sorted(params) if key != "signature")
    return hashlib.md5(f"{app_secret}{text}{app_secret}".encode()).hexdigest().upper()


def callback_signature(client_id: str, order_id: str, update_time: str) -> str:
    return hashlib.md5("".join(sorted([client_id, order_id, update_time])).encode()).hexdigest()


@functools.cache
def _http() -> Any:
    import requests

    return requests.Session()


def _call(path: str, body: dict[str, Any]) -> Any:
    current = settings()
    params = {
        "app_key": current.dada_app_key, "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        "format": "json", "source_id": current.dada_source_id, "timestamp": str(int(time.time())), "v": "1.0",
    }
    params["signature"] = sign(params, secret("dada_app_secret"))
    try:
        answer = _http().post(f"{current.dada_api_base}{path}", json=params, timeout=TIMEOUT_SECONDS).json()
    except Exception as exc:
        raise CourierError(NAME, "unreachable") from exc
    return answer


def _result(answer: Any) -> Any:
    if not isinstance(answer, dict) or answer.get("code") != 0:
        code = answer.get("code") if isinstance(answer, dict) else None
        raise CourierError(NAME, f"answered code {code}")
    return answer.get("result") or {}


class Dada:
    name = NAME

    def dispatch(self, parcel: Parcel) -> Waybill:
        receiver = parcel.receiver
        result = _result(_call("/api/order/addOrder", {
            "shop_no": parcel.shop_no, "origin_id": parcel.ref, "city_code": "021",
            "cargo_price": round(parcel.value_fen / 100, 2), "is_prepay": 0,
            "receiver_name": receiver.name, "receiver_address": receiver.address, "receiver_phone": receiver.phone,
            "receiver_lat": receiver.lat, "receiver_lng": receiver.lng,
            "callback": settings().dada_callback_url, "info": parcel.description,
        }))
        fee = result.get("fee")
        return Waybill(NAME, parcel.ref, str(result.get("deliveryNo") or parcel.ref),
                       round(fee * 100) if isinstance(fee, (int, float)) else None)

    def query(self, ref: str) -> Report | None:
        answer = _call("/api/order/status/query", {"order_id": ref})
        if isinstance(answer, dict) and answer.get("code") == ORDER_NOT_FOUND:
            return None
        result = _result(answer)
        code = result.get("statusCode")
        if code not in STATUSES:
            raise CourierError(NAME, f"status {code!r} is not one Dada documents")
        return Report(
            NAME, ref, STATUSES[code], str(code), _shanghai_time(result.get("updateTime")),
            waybill_id=result.get("deliveryNo"), rider_name=result.get("transporterName") or None,
            rider_phone=result.get("transporterPhone") or None,
        )


def _shanghai_time(text: Any) -> dt.datetime:
    try:
        return dt.datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI).astimezone(dt.timezone.utc)
    except ValueError:
        return dt.datetime.now(dt.timezone.utc)


def parse_callback(body: bytes) -> Report:
    """A callback as Dada posts it, checked for form; CallbackRejected says what is wrong with it."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise CallbackRejected("the body is not JSON") from exc
    if not isinstance(data, dict):
        raise CallbackRejected("the body is not a JSON object")
    values = {name: data.get(name) for name in ("client_id", "order_id", "update_time", "order_status", "signature")}
    if not all(isinstance(values[name], (str, int)) and not isinstance(values[name], bool) for name in values):
        raise CallbackRejected("client_id, order_id, order_status, update_time and signature are required")
    client_id, ref, update_time = (str(values[name]) for name in ("client_id", "order_id", "update_time"))
    if values["signature"] != callback_signature(client_id, ref, update_time):
        raise CallbackRejected("the signature does not match")
    try:
        code, at = int(values["order_status"]), from_timestamp(update_time)
    except (ValueError, OverflowError, OSError) as exc:
        raise CallbackRejected("order_status and update_time must be numbers") from exc
    if code not in STATUSES:
        raise CallbackRejected(f"order_status {code} is not one Dada documents")
    return Report(NAME, ref, STATUSES[code], str(code), at, rider_name=data.get("dm_name") or None,
                  rider_phone=data.get("dm_mobile") or None)


COURIER = Dada()
