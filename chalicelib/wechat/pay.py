"""WeChat Pay APIv3 for an ordinary merchant: JSAPI prepay, query, close, refund, notifications.

Requests are signed with the merchant's API key (RSA-SHA256); answers and
notifications are verified with the WeChat Pay public key that
`wxpay_public_key_id` names (the public-key mode, no platform certificates);
notification resources are decrypted with the APIv3 key (AEAD_AES_256_GCM).
All calls go to `settings().wxpay_api_base`, which offline is the sandbox.
cryptography and requests load on first use.

    prepay_id = pay.jsapi_prepay("o20261203x1", "降噪耳机", 129900, openid, deadline)
    params = pay.payment_params(prepay_id)   # what wx.requestPayment takes

A day's bills come in two steps, as WeChat Pay serves them: the signed answer
to `/v3/bill/tradebill` (or `/v3/bill/fundflowbill`) names a download URL and
the file's SHA1; the file itself comes unsigned, so its hash is its proof.

    bill = pay.trade_bill(dt.date(2026, 12, 3))   # TradeBill, amounts in fen
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import functools
import hashlib
import hmac
import io
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from chalicelib.clock import SHANGHAI
from chalicelib.config import secret, settings
from chalicelib.errors import UpstreamUnavailableError

if TYPE_CHECKING:
    import requests
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "BillIntegrityError",
    "FundFlowBill",
    "FundFlowLine",
    "FundFlowSummary",
    "Notification",
    "NotificationRejectedError",
    "TradeBill",
    "TradeBillLine",
    "TradeBillSummary",
    "WxPayError",
    "WxPayRefusedError",
    "authorization",
    "close_order",
    "fen_of_yuan",
    "fund_flow_bill",
    "jsapi_prepay",
    "parse_fund_flow_bill",
    "parse_trade_bill",
    "payment_params",
    "query_order",
    "query_refund",
    "refund",
    "trade_bill",
    "verify_notification",
]

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
# WeChat Pay sends such signatures to see whether a merchant really verifies: they must fail.
SIGNATURE_PROBE = "WECHATPAY/SIGNTEST/"
NOTIFICATION_WINDOW_SECONDS = 300
AEAD = "AEAD_AES_256_GCM"
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 5
ATTEMPTS = 2
SIGNATURE_HEADERS = ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial")
# ORDERNOTEXIST is the older spelling some answers still use; refunds answer RESOURCE_NOT_EXISTS.
NOT_FOUND_CODES = frozenset({"ORDER_NOT_EXIST", "ORDERNOTEXIST", "RESOURCE_NOT_EXISTS"})
# What WeChat Pay answers for a day without a single transaction (or fund movement).
NO_STATEMENT = "NO_STATEMENT_EXIST"
BILL_HASH_TYPE = "SHA1"
# 交易状态 of a trade bill line: a payment, or a refund of one.
BILL_PAYMENT, BILL_REFUND = "SUCCESS", "REFUND"
# 收支类型 and 业务类型 of a fund-flow line.
INCOME, EXPENSE = "收入", "支出"
BUSINESS_TRADE, BUSINESS_REFUND = "交易", "退款"
TRADE_BILL_COLUMNS = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型",
    "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号", "退款金额",
    "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额",
    "费率备注",
)
TRADE_SUMMARY_COLUMNS = ("总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额",
                         "申请退款总金额")
FUND_FLOW_COLUMNS = ("记账时间", "微信支付业务单号", "资金流水单号", "业务名称", "业务类型", "收支类型", "收支金额（元）",
                     "账户结余（元）", "资金变更提交申请人", "备注", "业务凭证号")
FUND_FLOW_SUMMARY_COLUMNS = ("资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额")
_YUAN = re.compile(r"^(-?)(\d+)(?:\.(\d{1,2}))?$")


class WxPayError(UpstreamUnavailableError):
    """WeChat Pay did not answer, failed (5xx) or answered something we cannot verify."""

    default_message = "WeChat Pay is unavailable, try again"


class WxPayRefusedError(Exception):
    """A verified 4xx: WeChat Pay understood the request and said no (ORDERPAID, NOT_ENOUGH, ...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"WeChat Pay refused ({status} {code}): {message}")


class NotificationRejectedError(Exception):
    """A notification not proven to be WeChat Pay's, fresh and intact; the message is safe to show."""


class BillIntegrityError(WxPayError):
    """A downloaded bill that is not the file WeChat Pay hashed, or not a bill at all: nothing may be decided on it."""

    default_message = "WeChat Pay's bill could not be verified"


@dataclass(frozen=True)
class Notification:
    id: str
    event_type: str
    resource: dict[str, Any]  # decrypted
    create_time: str


# --- The merchant API -----------------------------------------------------------------------

def jsapi_prepay(out_trade_no: str, description: str, total_fen: int, openid: str, time_expire: dt.datetime) -> str:
    """The prepay_id of a mini-program payment; the same request again answers the same id."""
    current = settings()
    answer = _call("POST", "/v3/pay/transactions/jsapi", {
        "appid": current.wechat_appid,
        "mchid": current.wxpay_mchid,
        "description": description,
        "out_trade_no": out_trade_no,
        "time_expire": _rfc3339(time_expire),
        "notify_url": current.wxpay_notify_url,
        "amount": {"total": total_fen, "currency": "CNY"},
        "payer": {"openid": openid},
    })
    prepay_id = _object(answer).get("prepay_id")
    if not isinstance(prepay_id, str) or not prepay_id:
        raise WxPayError("WeChat Pay's prepay answer has no prepay_id")
    return prepay_id


def payment_params(prepay_id: str) -> dict[str, str]:
    """What `wx.requestPayment` takes, signed with the merchant key."""
    timestamp = str(_wall_clock())
    nonce = _nonce()
    package = f"prepay_id={prepay_id}"
    pay_sign = _sign(f"{settings().wechat_appid}\n{timestamp}\n{nonce}\n{package}\n".encode())
    return {"timeStamp": timestamp, "nonceStr": nonce, "package": package, "signType": "RSA", "paySign": pay_sign}


def query_order(out_trade_no: str) -> dict[str, Any] | None:
    """The transaction (trade_state, transaction_id, amount, ...), None when WeChat Pay has no such order."""
    query = urlencode({"mchid": settings().wxpay_mchid})
    return _get_if_found(f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}?{query}")


def close_order(out_trade_no: str) -> None:
    """Close an unpaid order; closing a closed one is fine. A paid one raises WxPayRefusedError ORDERPAID."""
    try:
        _call("POST", f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}/close",
              {"mchid": settings().wxpay_mchid})
    except WxPayRefusedError as exc:
        if exc.code != "ORDER_CLOSED":
            raise


def refund(out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str) -> dict[str, Any]:
    """Ask for a refund (status SUCCESS, PROCESSING, CLOSED or ABNORMAL); the same out_refund_no answers it again."""
    return _object(_call("POST", "/v3/refund/domestic/refunds", {
        "out_trade_no": out_trade_no,
        "out_refund_no": out_refund_no,
        "reason": reason,
        "notify_url": settings().wxpay_notify_url,
        "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"},
    }))


def query_refund(out_refund_no: str) -> dict[str, Any] | None:
    """The refund as WeChat Pay knows it, None when it has no such refund."""
    return _get_if_found(f"/v3/refund/domestic/refunds/{_segment(out_refund_no)}")


def authorization(method: str, path: str, body: str, *, timestamp: int | None = None, nonce: str | None = None) -> str:
    """The Authorization header for a request: `path` with its query, `body` exactly as sent ("" for none)."""
    current = settings()
    timestamp = _wall_clock() if timestamp is None else timestamp
    nonce = nonce or _nonce()
    signature = _sign(f"{method}\n{path}\n{timestamp}\n{nonce}\n{body}\n".encode())
    return (f'{AUTH_SCHEME} mchid="{current.wxpay_mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{current.wxpay_merchant_serial}"')


def _get_if_found(path: str) -> dict[str, Any] | None:
    """A GET's answer, None when WeChat Pay has no such order or refund."""
    try:
        return _object(_call("GET", path))
    except WxPayRefusedError as exc:
        if exc.status == 404 and exc.code in NOT_FOUND_CODES:
            return None
        raise


def _call(method: str, path: str, payload: Mapping[str, Any] | None = None) -> Any:
    """WeChat Pay's verified answer: the decoded JSON, None for an empty one."""
    body = "" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    response = _send(method, settings().wxpay_api_base.rstrip("/") + path, body)
    if response.status_code >= 500:
        raise WxPayError(f"WeChat Pay answered {response.status_code}")
    _verify_answer(response)
    if response.status_code >= 400:
        raise _refusal(response)
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise WxPayError("WeChat Pay's answer is not JSON") from exc


def _send(method: str, url: str, body: str) -> requests.Response:
    """One request, tried again on a transport error: every call here is idempotent by its natural key."""
    import requests

    parts = urlsplit(url)
    signed_path = f"{parts.path}?{parts.query}" if parts.query else parts.path
    failure: Exception | None = None
    for _ in range(ATTEMPTS):
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Wechatpay-Serial": settings().wxpay_public_key_id,
            "Authorization": authorization(method, signed_path, body),
        }
        try:
            return _http().request(method, url, data=body.encode() or None, headers=headers,
                                   timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS))
        except requests.RequestException as exc:
            failure = exc
    raise WxPayError("WeChat Pay did not answer") from failure


def _verify_answer(response: requests.Response) -> None:
    # WeChat Pay signs every answer to a request whose signature it accepted; an unsigned
    # one (its own 401 included) proves nothing, so nothing is decided on it.
    timestamp, nonce, signature, serial = (response.headers.get(name, "") for name in SIGNATURE_HEADERS)
    if not (timestamp and nonce and signature and serial):
        raise WxPayError(f"WeChat Pay's answer ({response.status_code}) is not signed")
    if serial != settings().wxpay_public_key_id:
        raise WxPayError("WeChat Pay's answer is signed with a key we were not given")
    if not _verifies(_signed_message(timestamp, nonce, response.content), signature):
        raise WxPayError("WeChat Pay's answer does not verify")


def _refusal(response: requests.Response) -> WxPayRefusedError:
    try:
        answer = json.loads(response.content)
    except ValueError:
        answer = {}
    answer = answer if isinstance(answer, dict) else {}
    code, message = str(answer.get("code") or "UNKNOWN"), str(answer.get("message") or "")
    return WxPayRefusedError(response.status_code, code, message)


def _object(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise WxPayError("WeChat Pay's answer is not a JSON object")
    return answer


@functools.cache
def _http() -> requests.Session:
    import requests

    return requests.Session()


# --- Bills ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TradeBillLine:
    """One line of a trade bill, amounts in fen; the payer's openid is left out on purpose."""

    traded_at: str  # 交易时间, Shanghai wall time as WeChat Pay writes it
    transaction_id: str
    out_trade_no: str
    trade_state: str  # SUCCESS for a payment, REFUND for a refund
    settled_fen: int  # 应结订单金额
    refund_id: str
    out_refund_no: str
    refund_fen: int
    refund_status: str
    fee_fen: int
    total_fen: int  # 订单金额

    @property
    def is_payment(self) -> bool:
        return self.trade_state == BILL_PAYMENT

    @property
    def is_refund(self) -> bool:
        return self.trade_state == BILL_REFUND and self.refund_status == "SUCCESS"


@dataclass(frozen=True)
class TradeBillSummary:
    count: int
    settled_fen: int  # 应结订单总金额
    refund_fen: int  # 退款总金额
    fee_fen: int
    total_fen: int
    applied_refund_fen: int


@dataclass(frozen=True)
class TradeBill:
    lines: tuple[TradeBillLine, ...]
    summary: TradeBillSummary


@dataclass(frozen=True)
class FundFlowLine:
    booked_at: str  # 记账时间
    business_no: str  # 微信支付业务单号: the transaction id (or refund id) that moved the money
    flow_no: str
    business_name: str
    business_type: str  # 交易, 退款, ...
    direction: str  # 收入 or 支出
    amount_fen: int
    balance_fen: int


@dataclass(frozen=True)
class FundFlowSummary:
    count: int
    income_count: int
    income_fen: int
    expense_count: int
    expense_fen: int


@dataclass(frozen=True)
class FundFlowBill:
    lines: tuple[FundFlowLine, ...]
    summary: FundFlowSummary

    def net_trade_fen(self) -> int:
        """Payments in minus refunds out: what the day's trade bill should add up to."""
        income = sum(line.amount_fen for line in self.lines
                     if line.business_type == BUSINESS_TRADE and line.direction == INCOME)
        refunds = sum(line.amount_fen for line in self.lines
                      if line.business_type == BUSINESS_REFUND and line.direction == EXPENSE)
        return income - refunds


EMPTY_TRADE_BILL = TradeBill((), TradeBillSummary(0, 0, 0, 0, 0, 0))
EMPTY_FUND_FLOW_BILL = FundFlowBill((), FundFlowSummary(0, 0, 0, 0, 0))


def trade_bill(bill_date: dt.date) -> TradeBill:
    """The day's trade bill (payments and refunds), verified by its hash; empty when the day had none."""
    query = urlencode({"bill_date": bill_date.isoformat(), "bill_type": "ALL"})
    content = _bill_file(f"/v3/bill/tradebill?{query}")
    return EMPTY_TRADE_BILL if content is None else parse_trade_bill(content)


def fund_flow_bill(bill_date: dt.date) -> FundFlowBill:
    """The day's fund flow of the basic account, verified by its hash; empty when no money moved."""
    query = urlencode({"bill_date": bill_date.isoformat(), "account_type": "BASIC"})
    content = _bill_file(f"/v3/bill/fundflowbill?{query}")
    return EMPTY_FUND_FLOW_BILL if content is None else parse_fund_flow_bill(content)


def fen_of_yuan(text: str) -> int:
    """`19.99` is 1999: string arithmetic, so no amount ever passes through a float."""
    match = _YUAN.match(text.strip())
    if match is None:
        raise BillIntegrityError(f"the bill holds an amount that is not in yuan: {text[:20]!r}")
    sign, yuan, cents = match.groups()
    fen = int(yuan) * 100 + int((cents or "0").ljust(2, "0"))
    return -fen if sign else fen


def parse_trade_bill(content: bytes) -> TradeBill:
    """A trade bill file: header, one line per payment or refund, summary header, summary."""
    lines, summary = _bill_sections(content, TRADE_BILL_COLUMNS, TRADE_SUMMARY_COLUMNS)
    parsed = tuple(_trade_line(line) for line in lines)
    return TradeBill(parsed, TradeBillSummary(
        count=_count(summary["总交易单数"]),
        settled_fen=fen_of_yuan(summary["应结订单总金额"]),
        refund_fen=fen_of_yuan(summary["退款总金额"]),
        fee_fen=fen_of_yuan(summary["手续费总金额"]),
        total_fen=fen_of_yuan(summary["订单总金额"]),
        applied_refund_fen=fen_of_yuan(summary["申请退款总金额"]),
    ))


def parse_fund_flow_bill(content: bytes) -> FundFlowBill:
    """A fund-flow bill file, in the same layout as the trade bill."""
    lines, summary = _bill_sections(content, FUND_FLOW_COLUMNS, FUND_FLOW_SUMMARY_COLUMNS)
    parsed = tuple(FundFlowLine(
        booked_at=line["记账时间"], business_no=line["微信支付业务单号"], flow_no=line["资金流水单号"],
        business_name=line["业务名称"], business_type=line["业务类型"], direction=line["收支类型"],
        amount_fen=fen_of_yuan(line["收支金额（元）"]), balance_fen=fen_of_yuan(line["账户结余（元）"]),
    ) for line in lines)
    return FundFlowBill(parsed, FundFlowSummary(
        count=_count(summary["资金流水总笔数"]),
        income_count=_count(summary["收入笔数"]),
        income_fen=fen_of_yuan(summary["收入金额"]),
        expense_count=_count(summary["支出笔数"]),
        expense_fen=fen_of_yuan(summary["支出金额"]),
    ))


def _trade_line(line: Mapping[str, str]) -> TradeBillLine:
    return TradeBillLine(
        traded_at=line["交易时间"], transaction_id=line["微信订单号"], out_trade_no=line["商户订单号"],
        trade_state=line["交易状态"], settled_fen=fen_of_yuan(line["应结订单金额"]),
        refund_id=_blank_zero(line["微信退款单号"]), out_refund_no=_blank_zero(line["商户退款单号"]),
        refund_fen=fen_of_yuan(line["退款金额"]), refund_status=line["退款状态"],
        fee_fen=fen_of_yuan(line["手续费"]), total_fen=fen_of_yuan(line["订单金额"]),
    )


def _bill_sections(content: bytes, columns: Sequence[str],
                   summary_columns: Sequence[str]) -> tuple[list[dict[str, str]], dict[str, str]]:
    """(detail lines, summary) of a bill, each a row keyed by its header; every field's backtick dropped."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BillIntegrityError("the bill is not UTF-8 text") from exc
    rows = [[_field(cell) for cell in row] for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows or rows[0][:len(columns)] != list(columns):
        raise BillIntegrityError("the bill does not start with the header WeChat Pay writes")
    ends = next((at for at, row in enumerate(rows) if row[:len(summary_columns)] == list(summary_columns)), None)
    if ends is None or ends + 2 != len(rows):
        raise BillIntegrityError("the bill does not end with one summary line")
    details = rows[1:ends]
    if any(len(row) < len(columns) for row in details) or len(rows[-1]) < len(summary_columns):
        raise BillIntegrityError("a line of the bill has fewer fields than its header")
    return [dict(zip(columns, row)) for row in details], dict(zip(summary_columns, rows[-1]))


def _field(cell: str) -> str:
    # Every field is written with a leading backtick, so spreadsheets keep long numbers as text.
    cell = cell.strip()
    return cell[1:] if cell.startswith("`") else cell


def _blank_zero(value: str) -> str:
    """A payment line writes `0` where a refund line has a refund number."""
    return "" if value == "0" else value


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise BillIntegrityError(f"the bill holds a count that is not a number: {text[:20]!r}")
    return int(text)


def _bill_file(path: str) -> bytes | None:
    """The file a bill application names, after its hash proved it; None when the day has no bill."""
    try:
        answer = _object(_call("GET", path))
    except WxPayRefusedError as exc:
        if exc.code == NO_STATEMENT:
            return None
        raise
    url, hash_type, hash_value = (answer.get(name) for name in ("download_url", "hash_type", "hash_value"))
    if not all(isinstance(value, str) and value for value in (url, hash_type, hash_value)):
        raise WxPayError("WeChat Pay's bill answer lacks download_url, hash_type or hash_value")
    if hash_type.upper() != BILL_HASH_TYPE:
        raise BillIntegrityError(f"the bill is hashed with {hash_type[:20]!r}, not {BILL_HASH_TYPE}")
    content = _download(url)
    if not hmac.compare_digest(hashlib.sha1(content).hexdigest(), hash_value.lower()):
        raise BillIntegrityError("the downloaded bill does not match the hash WeChat Pay signed")
    return content


def _download(url: str) -> bytes:
    # Only WeChat Pay's own host gets a merchant-signed request; its answer is not signed (the hash is checked).
    base, target = urlsplit(settings().wxpay_api_base), urlsplit(url)
    if (target.scheme, target.netloc) != (base.scheme, base.netloc):
        raise BillIntegrityError("the bill's download_url is not on WeChat Pay's host")
    response = _send("GET", url, "")
    if response.status_code != 200:
        raise WxPayError(f"WeChat Pay answered {response.status_code} to the bill download")
    return response.content


# --- Notifications --------------------------------------------------------------------------

def verify_notification(headers: Mapping[str, str], body: bytes, now: dt.datetime) -> Notification:
    """The notification WeChat Pay signed within 300 s of `now`, resource decrypted; else NotificationRejectedError."""
    timestamp, nonce, signature, serial = _signature_headers(headers)
    if serial != settings().wxpay_public_key_id:
        raise NotificationRejectedError("Wechatpay-Serial is not the WeChat Pay public key we were given")
    if signature.startswith(SIGNATURE_PROBE):
        raise NotificationRejectedError("a signature probe is not a notification")
    _check_fresh(timestamp, now)
    if not _verifies(_signed_message(timestamp, nonce, body), signature):
        raise NotificationRejectedError("the signature does not verify")
    envelope = _envelope(body)
    return Notification(
        id=envelope["id"],
        event_type=envelope["event_type"],
        resource=_decrypt(envelope["resource"]),
        create_time=envelope["create_time"],
    )


def _signature_headers(headers: Mapping[str, str]) -> tuple[str, str, str, str]:
    lowered = {name.lower(): value for name, value in headers.items()}
    values = []
    for name in SIGNATURE_HEADERS:
        value = lowered.get(name.lower())
        if not value:
            raise NotificationRejectedError(f"the {name} header is missing")
        values.append(value)
    timestamp, nonce, signature, serial = values
    return timestamp, nonce, signature, serial


def _check_fresh(timestamp: str, now: dt.datetime) -> None:
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise NotificationRejectedError("Wechatpay-Timestamp is not an integer")
    if abs(now.timestamp() - int(timestamp)) > NOTIFICATION_WINDOW_SECONDS:
        raise NotificationRejectedError(f"Wechatpay-Timestamp is more than {NOTIFICATION_WINDOW_SECONDS} s from now")


def _envelope(body: bytes) -> dict[str, Any]:
    try:
        envelope = json.loads(body)
    except ValueError as exc:
        raise NotificationRejectedError("the body is not JSON") from exc
    if not isinstance(envelope, dict):
        raise NotificationRejectedError("the body is not a JSON object")
    for field in ("id", "event_type", "create_time"):
        if not isinstance(envelope.get(field), str):
            raise NotificationRejectedError(f"the body lacks {field}")
    resource = envelope.get("resource")
    if not isinstance(resource, dict) or resource.get("algorithm") != AEAD:
        raise NotificationRejectedError(f"the body lacks a resource encrypted with {AEAD}")
    for field in ("ciphertext", "nonce", "associated_data"):
        if not isinstance(resource.get(field), str):
            raise NotificationRejectedError(f"the resource lacks {field}")
    return envelope


def _decrypt(resource: Mapping[str, str]) -> dict[str, Any]:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    cipher = AESGCM(secret("wxpay_apiv3_key").encode())
    try:
        # The ciphertext carries the 16-byte tag at its end, as AESGCM expects it.
        sealed = base64.b64decode(resource["ciphertext"], validate=True)
        plaintext = cipher.decrypt(resource["nonce"].encode(), sealed, resource["associated_data"].encode())
        decrypted = json.loads(plaintext)
    except (InvalidTag, ValueError) as exc:
        raise NotificationRejectedError("the resource does not decrypt to JSON") from exc
    if not isinstance(decrypted, dict):
        raise NotificationRejectedError("the resource is not a JSON object")
    return decrypted


# --- Signatures -----------------------------------------------------------------------------

def _signed_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def _sign(message: bytes) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signature = _merchant_key(secret("wxpay_merchant_key")).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def _verifies(message: bytes, signature: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    public_key = _wechatpay_public_key(secret("wxpay_public_key"))
    try:
        public_key.verify(base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# Keyed by the PEM text, so a rotated parameter is loaded anew.
@functools.cache
def _merchant_key(pem: str) -> RSAPrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("wxpay_merchant_key is not an RSA private key")
    return key


@functools.cache
def _wechatpay_public_key(pem: str) -> RSAPublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError("wxpay_public_key is not an RSA public key")
    return key


def _wall_clock() -> int:
    # Not clock.now(): WeChat Pay holds our timestamps to its own clock, and tests move clock.now().
    return int(time.time())


def _nonce() -> str:
    return secrets.token_hex(16)


def _rfc3339(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("time_expire must be timezone-aware")
    return moment.astimezone(SHANGHAI).isoformat(timespec="seconds")


def _segment(value: str) -> str:
    return quote(value, safe="")
