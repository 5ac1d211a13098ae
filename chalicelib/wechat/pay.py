"""WeChat Pay APIv3 for an ordinary merchant: JSAPI prepay, query, close, refund, notifications.

Requests are signed with the merchant's API key (RSA-SHA256); answers and
notifications are verified with the WeChat Pay public key that
`wxpay_public_key_id` names (the public-key mode, no platform certificates);
notification resources are decrypted with the APIv3 key (AEAD_AES_256_GCM).
All calls go to `settings().wxpay_api_base`, which offline is the sandbox.
cryptography and requests load on first use.

    prepay_id = pay.jsapi_prepay("o20261203x1", "降噪耳机", 129900, openid, deadline)
    params = pay.payment_params(prepay_id)   # what wx.requestPayment takes
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import secrets
import time
from collections.abc import Mapping
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
    "Notification",
    "NotificationRejectedError",
    "WxPayError",
    "WxPayRefusedError",
    "authorization",
    "close_order",
    "jsapi_prepay",
    "payment_params",
    "query_order",
    "query_refund",
    "refund",
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
