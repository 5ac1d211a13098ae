"""The sandbox's WeChat Pay APIv3: the merchant API under /v3/, the member's side under /sandbox/wxpay/.

It checks every merchant request's signature with the merchant's public key and
signs every answer and notification with its own platform key, as WeChat Pay
does, so `chalicelib.wechat.pay` runs its production code against it. The keys
are made per stack (`WxPayKeys.generate()`) and given to the API as its
SIYU_WXPAY_* settings (`WxPayKeys.environment`).

- `POST /sandbox/wxpay/pay {"orderId"}`: the member pays; the API gets a signed,
  encrypted TRANSACTION.SUCCESS. `"notify": false` pays and loses the notification.
- `POST /sandbox/wxpay/notify {"orderId"}`: the same notification body again.
- `GET /sandbox/wxpay/refunds?orderId=`: the order's refunds; each turns SUCCESS
  about 0.1 s after it is asked for and the API gets a REFUND.SUCCESS.

Bills. `GET /v3/bill/tradebill?bill_date=&bill_type=ALL` and
`GET /v3/bill/fundflowbill?bill_date=&account_type=BASIC` answer
`{hash_type: "SHA1", hash_value, download_url}` (400 NO_STATEMENT_EXIST for a day
without a line); `GET /v3/billdownload/file?token=` serves the file, merchant-signed
like every /v3 call and, as WeChat Pay's, answered unsigned. A day's bill holds
every paid order and every successful refund whose success time falls on that
Shanghai day, then what the day's plan changes; both bills are made from the
same lines, so they agree unless a plan says otherwise.

- `POST /sandbox/wxpay/bill`: plan a day's bill (changes add up over calls):

      {"date": "2031-05-06",                     required
       "assign": ["<out_trade_no>", ...],        these orders (their payment and refunds) succeeded on
                                                 that day: their success times move onto it, now and
                                                 when a refund settles later (tests freeze our clock,
                                                 the sandbox keeps the real one)
       "add": [{"type": "payment" | "refund", "outTradeNo": "...", "amount": 1999,
                "transactionId"?: "...", "outRefundNo"?: "...", "time"?: "HH:MM:SS"}],
                                                 lines WeChat Pay has and the API never saw
       "alter": {"<out_trade_no>": {"amount"?: fen, "refundAmount"?: fen}},
                                                 the payment's (refunds') amount as the bill shows it
       "drop": ["<out_trade_no>"],               the order's payment and refunds are not on the bill
       "dropRefunds": ["<out_trade_no>"],        only its refunds are not
       "fundFlowAdd": [{"type": "income" | "expense", "amount": fen}],
                                                 money on the fund flow that no trade line explains
       "tamper": ["tradebill" | "fundflowbill"], that file is served changed after it was hashed
       "reset": true}                            forget the day's earlier plan first (not assignments)

  Answer `{date, lines, fundFlow}`: the day's lines as both bills will show them.
- `GET /sandbox/wxpay/bill?date=`: the same answer without changing anything.

Tests forge notifications with `WxPayKeys.notification`.
"""

from __future__ import annotations

import base64
import copy
import csv
import datetime as dt
import functools
import hashlib
import io
import json
import re
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Flask, Response, g, jsonify, request

__all__ = ["WxPayKeys", "WxPayState", "register"]

MCHID = "1900000001"
AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
AEAD = "AEAD_AES_256_GCM"
SIGNATURE_WINDOW_SECONDS = 300
REFUND_SETTLES_AFTER_SECONDS = 0.1
NOTIFY_TIMEOUT_SECONDS = 30
SHANGHAI = dt.timezone(dt.timedelta(hours=8))

NOTPAY, SUCCESS, CLOSED, REFUND = "NOTPAY", "SUCCESS", "CLOSED", "REFUND"
PAID_STATES = (SUCCESS, REFUND)
TRADE_STATE_DESC = {NOTPAY: "订单未支付", SUCCESS: "支付成功", CLOSED: "订单已关闭", REFUND: "订单发生过退款"}
SUMMARIES = {"TRANSACTION.SUCCESS": "支付成功", "REFUND.SUCCESS": "退款成功",
             "REFUND.ABNORMAL": "退款异常", "REFUND.CLOSED": "退款关闭"}

_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')

BILL_DOWNLOAD_PATH = "/v3/billdownload/file"
TRADE_BILL, FUND_FLOW_BILL = "tradebill", "fundflowbill"
PAYMENT_LINE, REFUND_LINE = "payment", "refund"
FEE_PER_MILLE = 6  # 0.60%
TRADE_BILL_HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
                     "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
                     "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注")
TRADE_SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
FUND_FLOW_HEADER = ("记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额（元）,账户结余（元）,"
                    "资金变更提交申请人,备注,业务凭证号")
FUND_FLOW_SUMMARY_HEADER = "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额"


@dataclass(frozen=True)
class WxPayKeys:
    """The merchant's key pair, WeChat Pay's platform key pair and the APIv3 key of one sandbox."""

    merchant_private_pem: str
    merchant_public_pem: str
    platform_private_pem: str
    platform_public_pem: str
    apiv3_key: str
    public_key_id: str
    merchant_serial: str
    mchid: str = MCHID

    @classmethod
    def generate(cls) -> WxPayKeys:
        merchant_private, merchant_public = _rsa_pair()
        platform_private, platform_public = _rsa_pair()
        return cls(
            merchant_private_pem=merchant_private,
            merchant_public_pem=merchant_public,
            platform_private_pem=platform_private,
            platform_public_pem=platform_public,
            apiv3_key=secrets.token_hex(16),
            public_key_id="PUB_KEY_ID_0114" + "".join(secrets.choice(string.digits) for _ in range(28)),
            merchant_serial=secrets.token_hex(20).upper(),
        )

    def environment(self, notify_url: str, api_base: str | None = None) -> dict[str, str]:
        """The SIYU_WXPAY_* settings under which the API pays through this sandbox."""
        environment = {
            "SIYU_WXPAY_MCHID": self.mchid,
            "SIYU_WXPAY_MERCHANT_SERIAL": self.merchant_serial,
            "SIYU_WXPAY_MERCHANT_KEY": self.merchant_private_pem,
            "SIYU_WXPAY_APIV3_KEY": self.apiv3_key,
            "SIYU_WXPAY_PUBLIC_KEY": self.platform_public_pem,
            "SIYU_WXPAY_PUBLIC_KEY_ID": self.public_key_id,
            "SIYU_WXPAY_NOTIFY_URL": notify_url,
        }
        if api_base is not None:
            environment["SIYU_WXPAY_API_BASE"] = api_base
        return environment

    def sign(self, message: bytes) -> str:
        """WeChat Pay's signature (the platform key) over `message`."""
        signature = _private_key(self.platform_private_pem).sign(message, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def merchant_signed(self, message: bytes, signature: str) -> bool:
        """Whether the merchant's key made `signature` over `message`."""
        try:
            _public_key(self.merchant_public_pem).verify(
                base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True

    def signature_headers(self, body: bytes, *, timestamp: int | None = None,
                          nonce: str | None = None) -> dict[str, str]:
        """The headers with which WeChat Pay signs an answer or a notification carrying `body`."""
        timestamp = int(time.time()) if timestamp is None else timestamp
        nonce = nonce or secrets.token_hex(16)
        return {
            "Wechatpay-Timestamp": str(timestamp),
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": self.sign(f"{timestamp}\n{nonce}\n".encode() + body + b"\n"),
            "Wechatpay-Serial": self.public_key_id,
        }

    def notification_headers(self, body: bytes, *, timestamp: int | None = None,
                             nonce: str | None = None) -> dict[str, str]:
        return {
            **self.signature_headers(body, timestamp=timestamp, nonce=nonce),
            "Wechatpay-Signature-Type": AUTH_SCHEME,
            "Content-Type": "application/json",
        }

    def encrypt(self, plaintext: dict[str, Any], associated_data: str) -> dict[str, str]:
        """A notification's `resource`: the JSON sealed with the APIv3 key, the tag after the ciphertext."""
        nonce = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(12))
        sealed = AESGCM(self.apiv3_key.encode()).encrypt(
            nonce.encode(), json.dumps(plaintext, ensure_ascii=False).encode(), associated_data.encode())
        return {"algorithm": AEAD, "ciphertext": base64.b64encode(sealed).decode(),
                "associated_data": associated_data, "nonce": nonce}

    def notification(self, event_type: str, resource: dict[str, Any], *, timestamp: int | None = None,
                     nonce: str | None = None) -> tuple[dict[str, str], bytes]:
        """(headers, body) of a notification as WeChat Pay signs and encrypts it."""
        kind = "refund" if event_type.startswith("REFUND.") else "transaction"
        body = json.dumps({
            "id": str(uuid.uuid4()),
            "create_time": _rfc3339(),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": SUMMARIES.get(event_type, event_type),
            "resource": {"original_type": kind, **self.encrypt(resource, associated_data=kind)},
        }, ensure_ascii=False).encode()
        return self.notification_headers(body, timestamp=timestamp, nonce=nonce), body


@dataclass
class BillPlan:
    """What a test changed on one day's bills (`POST /sandbox/wxpay/bill`)."""

    add: list[dict[str, Any]]
    alter: dict[str, dict[str, int]]
    drop: set[str]
    drop_refunds: set[str]
    fund_flow_add: list[dict[str, Any]]
    tamper: set[str]

    @classmethod
    def empty(cls) -> BillPlan:
        return cls(add=[], alter={}, drop=set(), drop_refunds=set(), fund_flow_add=[], tamper=set())


class WxPayState:
    """What the sandbox's WeChat Pay holds: orders, refunds and what it sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.orders: dict[str, dict[str, Any]] = {}  # out_trade_no -> the order
        self.refunds: dict[str, dict[str, Any]] = {}  # out_refund_no -> the refund as WeChat Pay answers it
        self.refund_requests: list[dict[str, Any]] = []  # every refund request's body, repeats included
        self.payment_notifications: dict[str, bytes] = {}  # out_trade_no -> its TRANSACTION.SUCCESS body
        self.deliveries: list[dict[str, Any]] = []  # every notification sent: event, order, the API's status
        self.bill_days: dict[str, str] = {}  # out_trade_no -> the day its payment and refunds succeeded on
        self.bill_plans: dict[str, BillPlan] = {}  # day -> what the tests changed on its bills
        self.bill_files: dict[str, bytes] = {}  # download token -> the file as served

    def order(self, out_trade_no: str) -> dict[str, Any] | None:
        with self.lock:
            return copy.deepcopy(self.orders.get(out_trade_no))

    def refunds_of(self, out_trade_no: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(r) for r in self.refunds.values()
                    if out_trade_no is None or r["out_trade_no"] == out_trade_no]

    def payment_notification(self, out_trade_no: str) -> bytes | None:
        """The body of the TRANSACTION.SUCCESS made when the order was paid, sent or not."""
        with self.lock:
            return self.payment_notifications.get(out_trade_no)


def register(app: Flask, keys: WxPayKeys, state: WxPayState) -> None:
    """Add WeChat Pay's routes to the sandbox app."""
    _register_signatures(app, keys)
    _register_payments(app, keys, state)
    _register_refunds(app, keys, state)
    _register_member_side(app, keys, state)
    _register_bills(app, keys, state)


def _register_signatures(app: Flask, keys: WxPayKeys) -> None:
    @app.before_request
    def wxpay_check_merchant_signature() -> Any:
        if not request.path.startswith("/v3/"):
            return None
        problem = _merchant_signature_problem(keys)
        if problem:
            return _refuse(401, "SIGN_ERROR", problem)
        g.wxpay_signed = True
        return None

    @app.after_request
    def wxpay_sign_answer(response: Response) -> Response:
        # WeChat Pay signs only answers to requests whose signature it accepted (and never a bill file).
        if getattr(g, "wxpay_signed", False) and not request.path.startswith(BILL_DOWNLOAD_PATH):
            response.headers.update(keys.signature_headers(response.get_data()))
        return response


def _merchant_signature_problem(keys: WxPayKeys) -> str | None:
    scheme, _, rest = request.headers.get("Authorization", "").partition(" ")
    if scheme != AUTH_SCHEME:
        return f"Authorization is not {AUTH_SCHEME}"
    fields = dict(_AUTH_FIELD.findall(rest))
    for name in ("mchid", "nonce_str", "signature", "timestamp", "serial_no"):
        if not fields.get(name):
            return f"Authorization lacks {name}"
    if fields["mchid"] != keys.mchid:
        return "mchid is not the merchant's"
    if fields["serial_no"] != keys.merchant_serial:
        return "serial_no is not the merchant certificate's"
    timestamp = fields["timestamp"]
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
        return "timestamp is not within 5 minutes"
    # The path as sent, not as Flask decoded it: the merchant signed the raw one.
    path = request.environ.get("RAW_URI") or request.full_path.rstrip("?")
    message = f"{request.method}\n{path}\n{timestamp}\n{fields['nonce_str']}\n".encode() + request.get_data() + b"\n"
    if not keys.merchant_signed(message, fields["signature"]):
        return "sign not match"
    return None


def _register_payments(app: Flask, keys: WxPayKeys, state: WxPayState) -> None:
    @app.post("/v3/pay/transactions/jsapi")
    def wxpay_jsapi() -> Any:
        body = request.get_json(silent=True)
        missing = _missing(body, ("appid", "mchid", "description", "out_trade_no", "notify_url",
                                  "amount.total", "payer.openid"))
        if missing:
            return _refuse(400, "PARAM_ERROR", f"{missing} is required")
        total = body["amount"]["total"]
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            return _refuse(400, "PARAM_ERROR", "amount.total must be a positive integer (fen)")
        if body["mchid"] != keys.mchid:
            return _refuse(400, "PARAM_ERROR", "mchid is not the merchant's")
        number = body["out_trade_no"]
        with state.lock:
            order = state.orders.setdefault(number, _new_order(body))
            if order["amount"] != total:
                return _refuse(400, "INVALID_REQUEST", "out_trade_no already used with other parameters")
            if order["trade_state"] in PAID_STATES:
                return _refuse(400, "ORDERPAID", "该订单已支付")
            if order["trade_state"] == CLOSED:
                return _refuse(400, "ORDER_CLOSED", "该订单已关闭")
            return jsonify({"prepay_id": order["prepay_id"]})

    @app.get("/v3/pay/transactions/out-trade-no/<number>")
    def wxpay_query_order(number: str) -> Any:
        if request.args.get("mchid") != keys.mchid:
            return _refuse(400, "PARAM_ERROR", "mchid is required and must be the merchant's")
        with state.lock:
            order = state.orders.get(number)
            if order is None:
                return _refuse(404, "ORDER_NOT_EXIST", "订单不存在")
            return jsonify(_transaction(order, keys.mchid))

    @app.post("/v3/pay/transactions/out-trade-no/<number>/close")
    def wxpay_close_order(number: str) -> Any:
        if (request.get_json(silent=True) or {}).get("mchid") != keys.mchid:
            return _refuse(400, "PARAM_ERROR", "mchid is required and must be the merchant's")
        with state.lock:
            order = state.orders.get(number)
            if order is None:
                return _refuse(404, "ORDER_NOT_EXIST", "订单不存在")
            if order["trade_state"] in PAID_STATES:
                return _refuse(400, "ORDERPAID", "订单已支付")
            order["trade_state"] = CLOSED
        return "", 204


def _register_refunds(app: Flask, keys: WxPayKeys, state: WxPayState) -> None:
    @app.post("/v3/refund/domestic/refunds")
    def wxpay_refund() -> Any:
        body = request.get_json(silent=True)
        missing = _missing(body, ("out_trade_no", "out_refund_no", "amount.refund", "amount.total", "amount.currency"))
        if missing:
            return _refuse(400, "PARAM_ERROR", f"{missing} is required")
        amount = body["amount"]
        if not all(isinstance(amount[name], int) and amount[name] > 0 for name in ("refund", "total")):
            return _refuse(400, "PARAM_ERROR", "amount.refund and amount.total must be positive integers (fen)")
        with state.lock:
            state.refund_requests.append(copy.deepcopy(body))
            refused = _refund_refusal(state, body)
            if refused:
                return refused
            refund = state.refunds.get(body["out_refund_no"])
            if refund is None:
                refund = state.refunds[body["out_refund_no"]] = _new_refund(state.orders[body["out_trade_no"]], body)
                state.orders[body["out_trade_no"]]["trade_state"] = REFUND
                _later(REFUND_SETTLES_AFTER_SECONDS, lambda: _settle_refund(keys, state, body["out_refund_no"]))
            return jsonify(_refund_view(refund))

    @app.get("/v3/refund/domestic/refunds/<number>")
    def wxpay_query_refund(number: str) -> Any:
        with state.lock:
            refund = state.refunds.get(number)
            if refund is None:
                return _refuse(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return jsonify(_refund_view(refund))


def _refund_refusal(state: WxPayState, body: dict[str, Any]) -> Any:
    """Why WeChat Pay would not take this refund request (None when it would); under the state's lock."""
    refund_fen = body["amount"]["refund"]
    existing = state.refunds.get(body["out_refund_no"])
    if existing is not None:
        if existing["out_trade_no"] != body["out_trade_no"] or existing["amount"]["refund"] != refund_fen:
            return _refuse(400, "INVALID_REQUEST", "out_refund_no already used with other parameters")
        return None
    order = state.orders.get(body["out_trade_no"])
    if order is None:
        return _refuse(404, "RESOURCE_NOT_EXISTS", "订单不存在")
    if order["trade_state"] not in PAID_STATES:
        return _refuse(400, "INVALID_REQUEST", "the order is not paid")
    if body["amount"]["total"] != order["amount"]:
        return _refuse(400, "INVALID_REQUEST", "amount.total is not the order's total")
    refunded = sum(r["amount"]["refund"] for r in state.refunds.values()
                   if r["out_trade_no"] == order["out_trade_no"] and r["status"] != CLOSED)
    if refund_fen > order["amount"] - refunded:
        return _refuse(400, "NOT_ENOUGH", "the refund is more than what is left to refund")
    return None


def _settle_refund(keys: WxPayKeys, state: WxPayState, out_refund_no: str) -> None:
    with state.lock:
        refund = state.refunds[out_refund_no]
        refund["status"] = SUCCESS
        refund["success_time"] = _on_bill_day(state, refund["out_trade_no"], _rfc3339())
        order = state.orders[refund["out_trade_no"]]
        notify_url = refund["notify_url"] or order["notify_url"]
        resource = {
            "mchid": keys.mchid,
            "out_trade_no": refund["out_trade_no"],
            "transaction_id": refund["transaction_id"],
            "out_refund_no": out_refund_no,
            "refund_id": refund["refund_id"],
            "refund_status": SUCCESS,
            "success_time": refund["success_time"],
            "user_received_account": refund["user_received_account"],
            "amount": {name: refund["amount"][name] for name in ("total", "refund", "payer_total", "payer_refund")},
        }
    headers, body = keys.notification("REFUND.SUCCESS", resource)
    _deliver(state, notify_url, headers, body, "REFUND.SUCCESS", refund["out_trade_no"])


def _register_member_side(app: Flask, keys: WxPayKeys, state: WxPayState) -> None:
    @app.post("/sandbox/wxpay/pay")
    def wxpay_member_pays() -> Any:
        body = request.get_json(force=True, silent=True) or {}
        order_id, notify = body.get("orderId"), body.get("notify", True)
        if not isinstance(order_id, str) or not isinstance(notify, bool):
            return _refuse(400, "INVALID_REQUEST", "orderId (the out_trade_no) is required; notify is a boolean")
        with state.lock:
            order = state.orders.get(order_id)
            if order is None:
                return _refuse(404, "NOT_FOUND", "WeChat Pay has no such order")
            if order["trade_state"] in PAID_STATES:
                return _refuse(409, "ALREADY_PAID", "the order is paid already")
            if order["trade_state"] == CLOSED:
                return _refuse(409, "ORDER_CLOSED", "the order is closed")
            order.update(trade_state=SUCCESS, transaction_id=_transaction_id(),
                         success_time=_on_bill_day(state, order_id, _rfc3339()))
            transaction = _transaction(order, keys.mchid)
            notify_url = order["notify_url"]
        headers, sent = keys.notification("TRANSACTION.SUCCESS", transaction)
        with state.lock:
            state.payment_notifications[order_id] = sent
        if not notify:
            return jsonify({"notified": False, "apiStatus": None})
        status = _deliver(state, notify_url, headers, sent, "TRANSACTION.SUCCESS", order_id)
        return jsonify({"notified": status is not None, "apiStatus": status})

    @app.post("/sandbox/wxpay/notify")
    def wxpay_notify_again() -> Any:
        order_id = (request.get_json(force=True, silent=True) or {}).get("orderId")
        order = state.order(order_id) if isinstance(order_id, str) else None
        sent = state.payment_notification(order_id) if order is not None else None
        if order is None or sent is None:
            return _refuse(404, "NOT_FOUND", "no payment notification was made for this order")
        # The same body, signed anew as WeChat Pay's retries are.
        status = _deliver(state, order["notify_url"], keys.notification_headers(sent), sent,
                          "TRANSACTION.SUCCESS", order_id)
        return jsonify({"notified": status is not None, "apiStatus": status})

    @app.get("/sandbox/wxpay/refunds")
    def wxpay_refunds() -> Any:
        return jsonify({"items": [_refund_view(r) for r in state.refunds_of(request.args.get("orderId"))]})


def _register_bills(app: Flask, keys: WxPayKeys, state: WxPayState) -> None:
    @app.get("/v3/bill/tradebill")
    def wxpay_trade_bill() -> Any:
        if request.args.get("bill_type", "ALL") != "ALL":
            return _refuse(400, "PARAM_ERROR", "the sandbox serves bill_type ALL only")
        return _apply_for_bill(keys, state, TRADE_BILL)

    @app.get("/v3/bill/fundflowbill")
    def wxpay_fund_flow_bill() -> Any:
        if request.args.get("account_type", "BASIC") != "BASIC":
            return _refuse(400, "PARAM_ERROR", "the sandbox serves account_type BASIC only")
        return _apply_for_bill(keys, state, FUND_FLOW_BILL)

    @app.get(BILL_DOWNLOAD_PATH)
    def wxpay_bill_download() -> Any:
        with state.lock:
            content = state.bill_files.get(request.args.get("token", ""))
        if content is None:
            return _refuse(400, "INVALID_REQUEST", "the download token is unknown")
        return Response(content, content_type="application/octet-stream")

    @app.post("/sandbox/wxpay/bill")
    def wxpay_plan_bill() -> Any:
        try:
            day, assign, change, reset = _parsed_plan(request.get_json(force=True, silent=True), state)
            with state.lock:
                _apply_plan(state, day, assign, change, reset)
                return jsonify(_bill_view(state, day))
        except BillPlanError as exc:
            return _refuse(400, "INVALID_REQUEST", str(exc))

    @app.get("/sandbox/wxpay/bill")
    def wxpay_planned_bill() -> Any:
        try:
            day = _bill_day_field(request.args.get("date"), "date")
        except BillPlanError as exc:
            return _refuse(400, "INVALID_REQUEST", str(exc))
        with state.lock:
            return jsonify(_bill_view(state, day))


class BillPlanError(ValueError):
    """A bill plan the test got wrong; the message names the field."""


def _apply_for_bill(keys: WxPayKeys, state: WxPayState, kind: str) -> Any:
    """The answer to a bill application: the file's hash and where to download it."""
    try:
        day = _bill_day_field(request.args.get("bill_date"), "bill_date")
    except BillPlanError as exc:
        return _refuse(400, "PARAM_ERROR", str(exc))
    with state.lock:
        lines = _day_lines(state, day)
        plan = state.bill_plans.get(day) or BillPlan.empty()
        if kind == TRADE_BILL:
            content = _trade_bill_file(lines, keys.mchid) if lines else None
        else:
            flow = _fund_flow_lines(lines, plan)
            content = _fund_flow_file(flow) if flow else None
        if content is None:
            return _refuse(400, "NO_STATEMENT_EXIST", "账单文件不存在")
        token = secrets.token_urlsafe(24)
        state.bill_files[token] = _tampered(content) if kind in plan.tamper else content
    return jsonify({"hash_type": "SHA1", "hash_value": hashlib.sha1(content).hexdigest(),
                    "download_url": f"{request.host_url.rstrip('/')}{BILL_DOWNLOAD_PATH}?token={token}"})


def _parsed_plan(body: Any, state: WxPayState) -> tuple[str, list[str], BillPlan, bool]:
    """(day, orders assigned to it, the change, whether to forget the earlier plan), all checked before any is made."""
    if not isinstance(body, dict):
        raise BillPlanError("body must be a JSON object")
    day = _bill_day_field(body.get("date"), "date")
    assign = _strings(body.get("assign", []), "assign")
    with state.lock:
        unknown = [number for number in assign if number not in state.orders]
    if unknown:
        raise BillPlanError(f"assign: WeChat Pay has no order {unknown[0]}")
    alter = body.get("alter", {})
    if not isinstance(alter, dict) or not all(isinstance(value, dict) for value in alter.values()):
        raise BillPlanError("alter must map out_trade_no to {amount?, refundAmount?}")
    change = BillPlan(
        add=[_added_line(line, f"add[{at}]", state) for at, line in enumerate(_list(body.get("add", []), "add"))],
        alter={number: {field: _fen(value, f"alter.{number}.{field}") for field, value in fields.items()
                        if field in ("amount", "refundAmount")} for number, fields in alter.items()},
        drop=set(_strings(body.get("drop", []), "drop")),
        drop_refunds=set(_strings(body.get("dropRefunds", []), "dropRefunds")),
        fund_flow_add=[_fund_flow_extra(line, f"fundFlowAdd[{at}]", day)
                       for at, line in enumerate(_list(body.get("fundFlowAdd", []), "fundFlowAdd"))],
        tamper=set(_strings(body.get("tamper", []), "tamper")),
    )
    if not change.tamper <= {TRADE_BILL, FUND_FLOW_BILL}:
        raise BillPlanError(f"tamper holds {TRADE_BILL} and {FUND_FLOW_BILL} only")
    reset = body.get("reset", False)
    if not isinstance(reset, bool):
        raise BillPlanError("reset must be a boolean")
    for line in change.add:
        line["time"] = f"{day} {line['time']}"
    return day, assign, change, reset


def _added_line(line: Any, field: str, state: WxPayState) -> dict[str, Any]:
    """A planted bill line, its ids made now so every download of the day shows the same ones."""
    if not isinstance(line, dict):
        raise BillPlanError(f"{field} must be an object")
    kind, number, time_of_day = line.get("type"), line.get("outTradeNo"), line.get("time", "12:00:00")
    if kind not in (PAYMENT_LINE, REFUND_LINE):
        raise BillPlanError(f"{field}.type must be {PAYMENT_LINE} or {REFUND_LINE}")
    if not isinstance(number, str) or not number:
        raise BillPlanError(f"{field}.outTradeNo is required")
    if not isinstance(time_of_day, str) or not re.fullmatch(r"\d{2}:\d{2}:\d{2}", time_of_day):
        raise BillPlanError(f"{field}.time must be HH:MM:SS")
    amount = _fen(line.get("amount"), f"{field}.amount")
    with state.lock:
        known = copy.deepcopy(state.orders.get(number))
    transaction_id = line.get("transactionId") or (known or {}).get("transaction_id") or _transaction_id()
    planted = {
        "type": kind, "time": time_of_day, "outTradeNo": number, "transactionId": str(transaction_id),
        "amount": amount, "total": (known or {}).get("amount") or amount, "outRefundNo": "", "refundId": "",
        "appid": (known or {}).get("appid", ""), "openid": (known or {}).get("openid", ""),
        "description": (known or {}).get("description", ""),
    }
    if kind == REFUND_LINE:
        planted["outRefundNo"] = str(line.get("outRefundNo") or f"{number}-planted-{secrets.token_hex(3)}")
        planted["refundId"] = "50" + "".join(secrets.choice(string.digits) for _ in range(27))
    return planted


def _fund_flow_extra(line: Any, field: str, day: str) -> dict[str, Any]:
    if not isinstance(line, dict) or line.get("type") not in ("income", "expense"):
        raise BillPlanError(f"{field}.type must be income or expense")
    return {"type": line["type"], "amount": _fen(line.get("amount"), f"{field}.amount"), "time": f"{day} 23:00:00",
            "businessNo": "sandbox-" + secrets.token_hex(8)}


def _apply_plan(state: WxPayState, day: str, assign: list[str], change: BillPlan, reset: bool) -> None:
    """Add `change` to the day's plan and move the assigned orders onto the day; under the state's lock."""
    plan = BillPlan.empty() if reset else state.bill_plans.get(day) or BillPlan.empty()
    plan.add += change.add
    for number, fields in change.alter.items():
        plan.alter[number] = {**plan.alter.get(number, {}), **fields}
    plan.drop |= change.drop
    plan.drop_refunds |= change.drop_refunds
    plan.fund_flow_add += change.fund_flow_add
    plan.tamper |= change.tamper
    state.bill_plans[day] = plan
    for number in assign:
        state.bill_days[number] = day
        order = state.orders[number]
        if order["success_time"]:
            order["success_time"] = _on_bill_day(state, number, order["success_time"])
        for refund in state.refunds.values():
            if refund["out_trade_no"] == number and refund["success_time"]:
                refund["success_time"] = _on_bill_day(state, number, refund["success_time"])


def _on_bill_day(state: WxPayState, out_trade_no: str, stamp: str) -> str:
    """`stamp` moved onto the day the order was assigned to (same time of day), as it is when none was."""
    day = state.bill_days.get(out_trade_no)
    if day is None:
        return stamp
    moment = dt.datetime.fromisoformat(stamp).astimezone(SHANGHAI)
    return dt.datetime.combine(dt.date.fromisoformat(day), moment.time(), SHANGHAI).isoformat(timespec="seconds")


def _day_lines(state: WxPayState, day: str) -> list[dict[str, Any]]:
    """The day's trade lines as the bill shows them: what succeeded on the day, then the day's plan; under the lock."""
    lines: list[dict[str, Any]] = []
    for order in state.orders.values():
        if order["trade_state"] in PAID_STATES and _shanghai_day(order["success_time"]) == day:
            lines.append(_recorded_line(PAYMENT_LINE, order, order["success_time"], order["amount"]))
    for refund in state.refunds.values():
        if refund["status"] == SUCCESS and _shanghai_day(refund["success_time"]) == day:
            line = _recorded_line(REFUND_LINE, state.orders[refund["out_trade_no"]], refund["success_time"],
                                  refund["amount"]["refund"])
            lines.append({**line, "outRefundNo": refund["out_refund_no"], "refundId": refund["refund_id"]})
    plan = state.bill_plans.get(day) or BillPlan.empty()
    kept = [line for line in lines if line["outTradeNo"] not in plan.drop
            and not (line["type"] == REFUND_LINE and line["outTradeNo"] in plan.drop_refunds)]
    for line in kept:
        altered = plan.alter.get(line["outTradeNo"], {})
        if line["type"] == PAYMENT_LINE and "amount" in altered:
            line["amount"] = line["total"] = altered["amount"]
        if line["type"] == REFUND_LINE and "refundAmount" in altered:
            line["amount"] = altered["refundAmount"]
    kept += copy.deepcopy(plan.add)
    return sorted(kept, key=lambda line: (line["time"], line["type"], line["outTradeNo"], line["outRefundNo"]))


def _recorded_line(kind: str, order: dict[str, Any], stamp: str, amount: int) -> dict[str, Any]:
    moment = dt.datetime.fromisoformat(stamp).astimezone(SHANGHAI)
    return {"type": kind, "time": moment.strftime("%Y-%m-%d %H:%M:%S"), "outTradeNo": order["out_trade_no"],
            "transactionId": order["transaction_id"], "amount": amount, "total": order["amount"],
            "outRefundNo": "", "refundId": "", "appid": order["appid"], "openid": order["openid"],
            "description": order["description"]}


def _fund_flow_lines(lines: list[dict[str, Any]], plan: BillPlan) -> list[dict[str, Any]]:
    """The money the day's trade lines moved on the basic account, then what the plan adds."""
    flow = [{"type": "income" if line["type"] == PAYMENT_LINE else "expense", "amount": line["amount"],
             "time": line["time"], "businessNo": line["refundId"] or line["transactionId"]} for line in lines]
    return flow + copy.deepcopy(plan.fund_flow_add)


def _trade_bill_file(lines: list[dict[str, Any]], mchid: str) -> bytes:
    payments = [line for line in lines if line["type"] == PAYMENT_LINE]
    refunds = [line for line in lines if line["type"] == REFUND_LINE]
    rows = [_trade_row(line, mchid) for line in lines]
    summary = [str(len(lines)), _yuan(sum(line["amount"] for line in payments)),
               _yuan(sum(line["amount"] for line in refunds)), "0.00",
               _yuan(sum(_fee(line) for line in lines)), _yuan(sum(line["total"] for line in payments)),
               _yuan(sum(line["amount"] for line in refunds))]
    return _bill_text(TRADE_BILL_HEADER, rows, TRADE_SUMMARY_HEADER, summary)


def _trade_row(line: dict[str, Any], mchid: str) -> list[str]:
    refund = line["type"] == REFUND_LINE
    return [
        line["time"], line["appid"], mchid, "0", "", line["transactionId"], line["outTradeNo"], line["openid"],
        "JSAPI", REFUND if refund else SUCCESS, "OTHERS", "CNY", "0.00" if refund else _yuan(line["amount"]), "0.00",
        line["refundId"] or "0", line["outRefundNo"] or "0", _yuan(line["amount"]) if refund else "0.00", "0.00",
        "ORIGINAL" if refund else "", SUCCESS if refund else "", line["description"], "", _yuan(_fee(line)), "0.60%",
        _yuan(line["total"]), _yuan(line["amount"]) if refund else "0.00", "",
    ]


def _fund_flow_file(flow: list[dict[str, Any]]) -> bytes:
    rows, balance = [], 0
    for line in flow:
        income = line["type"] == "income"
        balance += line["amount"] if income else -line["amount"]
        business = "交易" if income else "退款"
        flow_no = hashlib.sha1(f"{line['type']}#{line['businessNo']}".encode()).hexdigest()[:20]
        rows.append([line["time"], line["businessNo"], flow_no, business, business, "收入" if income else "支出",
                     _yuan(line["amount"]), _yuan(balance), "" if income else MCHID, "", ""])
    incomes = [line["amount"] for line in flow if line["type"] == "income"]
    expenses = [line["amount"] for line in flow if line["type"] == "expense"]
    summary = [str(len(flow)), str(len(incomes)), _yuan(sum(incomes)), str(len(expenses)), _yuan(sum(expenses))]
    return _bill_text(FUND_FLOW_HEADER, rows, FUND_FLOW_SUMMARY_HEADER, summary)


def _bill_text(header: str, rows: list[list[str]], summary_header: str, summary: list[str]) -> bytes:
    """A bill file as WeChat Pay writes one: every field prefixed by a backtick, CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    out.write(header + "\r\n")
    writer.writerows([[f"`{cell}" for cell in row] for row in rows])
    out.write(summary_header + "\r\n")
    writer.writerow([f"`{cell}" for cell in summary])
    return out.getvalue().encode()


def _bill_view(state: WxPayState, day: str) -> dict[str, Any]:
    """The day's lines (without the payer's openid) and fund flow, for a test to look at; under the lock."""
    lines = _day_lines(state, day)
    plan = state.bill_plans.get(day) or BillPlan.empty()
    return {"date": day, "lines": [{k: v for k, v in line.items() if k != "openid"} for line in lines],
            "fundFlow": _fund_flow_lines(lines, plan)}


def _tampered(content: bytes) -> bytes:
    """The file with its last digit changed: an amount altered after WeChat Pay hashed the file."""
    at = max(content.rfind(digit) for digit in b"0123456789")
    changed = (content[at] - ord("0") + 1) % 10 + ord("0")
    return content[:at] + bytes([changed]) + content[at + 1:]


def _fee(line: dict[str, Any]) -> int:
    """0.60% of the amount, rounded half up; a refund gives its share back."""
    fee = (line["amount"] * FEE_PER_MILLE + 500) // 1000
    return -fee if line["type"] == REFUND_LINE else fee


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _shanghai_day(stamp: str | None) -> str | None:
    return dt.datetime.fromisoformat(stamp).astimezone(SHANGHAI).date().isoformat() if stamp else None


def _bill_day_field(value: Any, field: str) -> str:
    try:
        if isinstance(value, str) and len(value) == 10:
            return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    raise BillPlanError(f"{field} must be a date, YYYY-MM-DD")


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise BillPlanError(f"{field} must be a list")
    return value


def _strings(value: Any, field: str) -> list[str]:
    items = _list(value, field)
    if not all(isinstance(item, str) and item for item in items):
        raise BillPlanError(f"{field} must be a list of strings")
    return items


def _fen(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise BillPlanError(f"{field} must be a positive integer (fen)")
    return value


def _deliver(state: WxPayState, url: str, headers: dict[str, str], body: bytes, event_type: str,
             out_trade_no: str) -> int | None:
    """POST a notification; the API's HTTP status, None when it could not be reached."""
    status: int | None
    try:
        status = requests.post(url, data=body, headers=headers, timeout=NOTIFY_TIMEOUT_SECONDS).status_code
    except requests.RequestException:
        status = None
    with state.lock:
        state.deliveries.append({"eventType": event_type, "outTradeNo": out_trade_no, "apiStatus": status})
    return status


def _new_order(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "out_trade_no": body["out_trade_no"],
        "appid": body["appid"],
        "amount": body["amount"]["total"],
        "openid": body["payer"]["openid"],
        "description": body["description"],
        "notify_url": body["notify_url"],
        "time_expire": body.get("time_expire"),
        "trade_state": NOTPAY,
        "prepay_id": "wx" + time.strftime("%d%H%M%S") + secrets.token_hex(13),
        "transaction_id": None,
        "success_time": None,
    }


def _transaction(order: dict[str, Any], mchid: str) -> dict[str, Any]:
    """The order as the query answers it and TRANSACTION.SUCCESS carries it."""
    paid = order["trade_state"] in PAID_STATES
    transaction: dict[str, Any] = {
        "appid": order["appid"],
        "mchid": mchid,
        "out_trade_no": order["out_trade_no"],
        "trade_type": "JSAPI",
        "trade_state": order["trade_state"],
        "trade_state_desc": TRADE_STATE_DESC[order["trade_state"]],
        "payer": {"openid": order["openid"]},
        "amount": {"total": order["amount"], "currency": "CNY", "payer_currency": "CNY"},
    }
    if paid:
        transaction.update(transaction_id=order["transaction_id"], success_time=order["success_time"],
                           bank_type="OTHERS", attach="")
        transaction["amount"]["payer_total"] = order["amount"]
    return transaction


def _new_refund(order: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    refund_fen = body["amount"]["refund"]
    return {
        "refund_id": "50" + "".join(secrets.choice(string.digits) for _ in range(27)),
        "out_refund_no": body["out_refund_no"],
        "transaction_id": order["transaction_id"],
        "out_trade_no": order["out_trade_no"],
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "status": "PROCESSING",
        "create_time": _rfc3339(),
        "success_time": None,
        "reason": body.get("reason"),
        "notify_url": body.get("notify_url"),
        "amount": {"refund": refund_fen, "total": order["amount"], "payer_total": order["amount"],
                   "payer_refund": refund_fen, "currency": "CNY"},
    }


def _refund_view(refund: dict[str, Any]) -> dict[str, Any]:
    """The refund as WeChat Pay answers it (without what only the request carried)."""
    view = {name: value for name, value in refund.items() if name not in ("reason", "notify_url")}
    if view["success_time"] is None:
        del view["success_time"]
    return copy.deepcopy(view)


def _missing(body: Any, fields: tuple[str, ...]) -> str | None:
    """The first dotted field absent from the JSON body, as WeChat Pay names it (`/body/amount/total`)."""
    for field in fields:
        value = body
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None or value == "":
            return "/body/" + field.replace(".", "/")
    return None


def _refuse(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"code": code, "message": message}), status


def _later(seconds: float, action: Any) -> None:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()


def _transaction_id() -> str:
    return "4200" + "".join(secrets.choice(string.digits) for _ in range(24))


def _rfc3339() -> str:
    return dt.datetime.now(SHANGHAI).isoformat(timespec="seconds")


def _rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private_pem, public_pem


@functools.cache
def _private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@functools.cache
def _public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    return key
