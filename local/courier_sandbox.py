"""The sandbox's couriers: Dada's open platform, WeChat instant delivery and WeChat's logistics service.

Each checks what the real one checks (Dada's request signature, WeChat's
access token and `delivery_sign`) and records the dispatch. `POST
/sandbox/courier/advance {orderId, status, notify?}` moves the order's latest
dispatch and sends what that courier really sends: Dada's JSON callback to the
callback URL given with the order (md5-signed with public values), or a
safe-mode message-push event (XML, AES-encrypted and signed with the app's
push token) to the API's `/webhooks/wechat`. The answer's `callback` is
exactly what was sent (with `notify: false`, what would have been).

- `GET /sandbox/couriers/dispatches?orderId=`: the order's dispatches, oldest first.
- `GET /sandbox/wechat/shipping?transactionId=`: shipping information uploaded.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import requests
from flask import Flask, jsonify, request

__all__ = ["CourierState", "register", "CODES"]

# The sandbox's status words -> each courier's own code.
CODES = {
    "dada": {"accepted": 2, "picked_up": 3, "delivered": 4, "cancelled": 5},
    "wechat": {"accepted": 201, "picked_up": 301, "delivered": 302, "cancelled": 501},
    "express": {"accepted": 100001, "picked_up": 200001, "delivered": 300003, "cancelled": 400001},
}
DADA_ACCEPTED = 1
RIDER = ("骑手王师傅", "13900001111")


@dataclass
class Dispatch:
    courier: str
    ref: str
    shop_no: str
    callback_url: str | None
    waybill_id: str
    code: int
    updated_at: int = field(default_factory=lambda: int(time.time()))
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CourierState:
    """What the couriers know; the stack fills in the secrets they share with the API and where to push."""

    dada_app_secret: str = ""
    delivery_app_secret: str = ""
    push_url: str = ""
    push_token: str = ""
    push_aes_key: str = ""
    appid: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    dispatches: list[Dispatch] = field(default_factory=list)
    shipping: list[dict[str, Any]] = field(default_factory=list)
    numbers: Any = field(default_factory=lambda: itertools.count(1))

    def find(self, courier: str, ref: str) -> Dispatch | None:
        return next((d for d in self.dispatches if d.courier == courier and d.ref == ref), None)

    def latest_of(self, order_id: str) -> Dispatch | None:
        return next((d for d in reversed(self.dispatches) if d.ref.split("-", 1)[0] == order_id), None)


def _dada_sign(params: dict[str, Any], app_secret: str) -> str:
    text = "".join(f"{key}{params[key]}" for key in sorted(params) if key != "signature")
    return hashlib.md5(f"{app_secret}{text}{app_secret}".encode()).hexdigest().upper()


def _xml(values: dict[str, Any]) -> str:
    def element(name: str, value: Any) -> str:
        if isinstance(value, dict):
            return f"<{name}>{''.join(element(k, v) for k, v in value.items())}</{name}>"
        if isinstance(value, list):
            return "".join(element(name, item) for item in value)
        if isinstance(value, str):
            return f"<{name}><![CDATA[{value}]]></{name}>"
        return f"<{name}>{escape(str(value))}</{name}>"

    return "<xml>" + "".join(element(k, v) for k, v in values.items()) + "</xml>"


def register(app: Flask, state: CourierState, valid_token: Callable[[], bool]) -> None:
    """Add the couriers' routes to the sandbox app; `valid_token` checks a WeChat access token."""

    def dada_answer(code: int, msg: str, result: Any = None) -> Any:
        return jsonify({"status": "success" if code == 0 else "fail", "code": code, "msg": msg, "result": result})

    def dada_request() -> dict[str, Any] | None:
        params = request.get_json(force=True, silent=True) or {}
        if not isinstance(params, dict) or params.get("signature") != _dada_sign(params, state.dada_app_secret):
            return None
        try:
            body = json.loads(params.get("body") or "{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @app.post("/api/order/addOrder")
    def dada_add_order() -> Any:
        body = dada_request()
        if body is None:
            return dada_answer(2003, "签名错误")
        ref = str(body.get("origin_id") or "")
        with state.lock:
            if not ref or state.find("dada", ref):
                return dada_answer(2105, "订单已存在" if ref else "origin_id 不能为空")
            state.dispatches.append(Dispatch("dada", ref, str(body.get("shop_no")), body.get("callback"),
                                             f"dada{next(state.numbers):08d}", DADA_ACCEPTED))
        return dada_answer(0, "成功", {"distance": 1520.0, "fee": 8.5, "deliverFee": 8.5})

    @app.post("/api/order/status/query")
    def dada_status() -> Any:
        body = dada_request()
        if body is None:
            return dada_answer(2003, "签名错误")
        with state.lock:
            found = state.find("dada", str(body.get("order_id")))
            if found is None:
                return dada_answer(2005, "订单不存在")
            taken = found.code not in (DADA_ACCEPTED,)
            return dada_answer(0, "成功", {
                "orderId": found.ref, "statusCode": found.code, "statusMsg": "", "deliveryNo": found.waybill_id,
                "transporterName": RIDER[0] if taken else "", "transporterPhone": RIDER[1] if taken else "",
                "updateTime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(found.updated_at + 8 * 3600)),
            })

    def wechat_error(code: int, message: str) -> Any:
        return jsonify({"errcode": code, "errmsg": message})

    def signed_delivery(body: dict[str, Any]) -> bool:
        expected = hashlib.sha1(f"{body.get('shopid')}{body.get('shop_order_id')}{state.delivery_app_secret}"
                                .encode()).hexdigest()
        return body.get("delivery_sign") == expected

    @app.post("/cgi-bin/express/local/business/order/add")
    def delivery_add() -> Any:
        if not valid_token():
            return wechat_error(40001, "invalid credential")
        body = request.get_json(force=True, silent=True) or {}
        if not signed_delivery(body):
            return wechat_error(930552, "delivery_sign error")
        ref = str(body.get("shop_order_id") or "")
        with state.lock:
            if state.find("wechat", ref):
                return wechat_error(930553, "order already exists")
            dispatch = Dispatch("wechat", ref, str(body.get("shop_no")), None, f"wx{next(state.numbers):010d}", 101)
            state.dispatches.append(dispatch)
        return jsonify({"errcode": 0, "errmsg": "ok", "fee": 11, "waybill_id": dispatch.waybill_id,
                        "order_status": 101})

    @app.post("/cgi-bin/express/local/business/order/get")
    def delivery_get() -> Any:
        if not valid_token():
            return wechat_error(40001, "invalid credential")
        body = request.get_json(force=True, silent=True) or {}
        if not signed_delivery(body):
            return wechat_error(930552, "delivery_sign error")
        with state.lock:
            found = state.find("wechat", str(body.get("shop_order_id")))
            if found is None:
                return wechat_error(930555, "order not exist")
            return jsonify({"errcode": 0, "order_status": found.code, "waybill_id": found.waybill_id,
                            "action_time": found.updated_at, "rider_name": RIDER[0], "rider_phone": RIDER[1]})

    @app.post("/cgi-bin/express/business/order/add")
    def express_add() -> Any:
        if not valid_token():
            return wechat_error(40001, "invalid credential")
        body = request.get_json(force=True, silent=True) or {}
        ref = str(body.get("order_id") or "")
        with state.lock:
            if not ref or state.find("express", ref):
                return wechat_error(9300531, "order_id already used")
            dispatch = Dispatch("express", ref, "", None, f"SF{next(state.numbers):012d}", 0)
            state.dispatches.append(dispatch)
        return jsonify({"errcode": 0, "errmsg": "ok", "order_id": ref, "waybill_id": dispatch.waybill_id})

    @app.post("/cgi-bin/express/business/path/get")
    def express_path() -> Any:
        if not valid_token():
            return wechat_error(40001, "invalid credential")
        body = request.get_json(force=True, silent=True) or {}
        with state.lock:
            found = state.find("express", str(body.get("order_id")))
            if found is None:
                return wechat_error(9300507, "order not exist")
            return jsonify({"errcode": 0, "waybill_id": found.waybill_id, "path_item_list": [
                {"action_time": a["ActionTime"], "action_type": a["ActionType"], "action_msg": a["ActionMsg"]}
                for a in found.actions]})

    @app.post("/wxa/sec/order/upload_shipping_info")
    def upload_shipping() -> Any:
        if not valid_token():
            return wechat_error(40001, "invalid credential")
        body = request.get_json(force=True, silent=True) or {}
        transaction_id = (body.get("order_key") or {}).get("transaction_id")
        if not transaction_id or body.get("logistics_type") not in (1, 2, 3, 4):
            return wechat_error(47001, "data format error")
        with state.lock:
            if any(u["order_key"]["transaction_id"] == transaction_id for u in state.shipping):
                return wechat_error(10060023, "shipping info already uploaded")
            state.shipping.append(body)
        return jsonify({"errcode": 0, "errmsg": "ok"})

    @app.get("/sandbox/wechat/shipping")
    def shipping_uploads() -> Any:
        wanted = request.args.get("transactionId")
        with state.lock:
            found = [u for u in state.shipping if wanted is None or u["order_key"]["transaction_id"] == wanted]
        return jsonify({"items": found})

    @app.get("/sandbox/couriers/dispatches")
    def list_dispatches() -> Any:
        order_id = request.args.get("orderId", "")
        with state.lock:
            found = [{"courier": d.courier, "ref": d.ref, "status": d.code, "waybillId": d.waybill_id}
                     for d in state.dispatches if d.ref.split("-", 1)[0] == order_id]
        return jsonify({"items": found})

    @app.post("/sandbox/courier/advance")
    def advance() -> Any:
        body = request.get_json(force=True, silent=True) or {}
        status = body.get("status")
        if status not in CODES["dada"]:
            return jsonify({"code": "INVALID_REQUEST", "message": "status must be one of " + ", ".join(CODES["dada"])}), 400
        with state.lock:
            dispatch = state.latest_of(str(body.get("orderId") or ""))
            if dispatch is None:
                return jsonify({"code": "NOT_FOUND", "message": "the order has no dispatch"}), 404
            dispatch.code, dispatch.updated_at = CODES[dispatch.courier][status], int(time.time())
            if dispatch.courier == "express":
                dispatch.actions.append({"ActionTime": dispatch.updated_at, "ActionType": dispatch.code,
                                         "ActionMsg": status})
            callback = _dada_callback(dispatch) if dispatch.courier == "dada" else _push(state, dispatch)
        api_status = None
        if body.get("notify", True):
            api_status = requests.post(callback["url"], params=callback["query"] or None,
                                       data=callback["body"].encode(), timeout=30).status_code
        return jsonify({"orderId": body["orderId"], "courier": dispatch.courier, "ref": dispatch.ref, "status": status,
                        "apiStatus": api_status, "callback": callback})


def _dada_callback(dispatch: Dispatch) -> dict[str, Any]:
    client_id = dispatch.waybill_id
    signature = hashlib.md5("".join(sorted([client_id, dispatch.ref, str(dispatch.updated_at)])).encode()).hexdigest()
    payload = {"client_id": client_id, "order_id": dispatch.ref, "order_status": dispatch.code,
               "cancel_reason": "", "cancel_from": 0, "update_time": dispatch.updated_at, "signature": signature,
               "dm_id": 77, "dm_name": RIDER[0], "dm_mobile": RIDER[1]}
    return {"url": dispatch.callback_url, "query": {}, "body": json.dumps(payload, ensure_ascii=False)}


def _push(state: CourierState, dispatch: Dispatch) -> dict[str, Any]:
    """The message-push event WeChat sends for this dispatch's status, safe mode."""
    from wechatpy.crypto import WeChatCrypto

    event: dict[str, Any] = {"ToUserName": state.appid, "FromUserName": "sandbox", "CreateTime": dispatch.updated_at,
                             "MsgType": "event"}
    if dispatch.courier == "wechat":
        event.update(Event="update_waybill_status", shop_order_id=dispatch.ref,
                     waybill_id=dispatch.waybill_id, action_time=dispatch.updated_at, order_status=dispatch.code,
                     agent={"name": RIDER[0], "phone": RIDER[1]})
    else:
        event.update(Event="add_express_path", DeliveryID="SF", WayBillId=dispatch.waybill_id, OrderId=dispatch.ref,
                     Version=len(dispatch.actions), Count=len(dispatch.actions), Actions=dispatch.actions)
    timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
    crypto = WeChatCrypto(state.push_token, state.push_aes_key, state.appid)
    encrypted = crypto.encrypt_message(_xml(event), nonce, timestamp)
    encrypt = encrypted.split("<Encrypt><![CDATA[", 1)[1].split("]]>", 1)[0]
    msg_signature = encrypted.split("<MsgSignature><![CDATA[", 1)[1].split("]]>", 1)[0]
    signature = hashlib.sha1("".join(sorted([state.push_token, timestamp, nonce])).encode()).hexdigest()
    body = f"<xml><ToUserName><![CDATA[{state.appid}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return {"url": state.push_url, "body": body, "query": {
        "signature": signature, "timestamp": timestamp, "nonce": nonce, "openid": "sandbox",
        "encrypt_type": "aes", "msg_signature": msg_signature}}
