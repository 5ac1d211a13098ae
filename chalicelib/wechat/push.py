"""WeChat message push (消息推送) to the mini-program's server: the URL check and signed, encrypted events.

WeChat proves an event is its own with the push token: the URL check signs
`(token, timestamp, nonce)` with sha1; a safe-mode event (`encrypt_type=aes`)
carries `msg_signature`, the sha1 of the token, timestamp, nonce and the
encrypted message, and the message is AES-encrypted with the push key
(wechatpy's WeChatCrypto checks both). Events come as XML or, if the app
chose JSON, as JSON; both become one flat dict.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from chalicelib import clock
from chalicelib.config import secret, settings

__all__ = ["PushRejected", "ANSWER_OK", "MAX_SKEW_SECONDS", "signature", "verify_url", "read_event"]

ANSWER_OK = (200, "text/plain", "success")
MAX_SKEW_SECONDS = 300


class PushRejected(Exception):
    """Not WeChat's, stale or unreadable: refused, nothing done."""


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _fresh(query: Mapping[str, str]) -> tuple[str, str]:
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    if not timestamp.isdigit() or not nonce:
        raise PushRejected("timestamp and nonce are required")
    if abs(clock.now().timestamp() - int(timestamp)) > MAX_SKEW_SECONDS:
        raise PushRejected("the timestamp is too far from now")
    return timestamp, nonce


def _signed_by_wechat(query: Mapping[str, str], timestamp: str, nonce: str) -> None:
    expected = signature(secret("wechat_push_token"), timestamp, nonce)
    if not hmac.compare_digest(expected, query.get("signature", "")):
        raise PushRejected("the signature does not match")


def verify_url(query: Mapping[str, str]) -> str:
    """The GET check: its `echostr` back when the signature is right."""
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    if not timestamp or not nonce:
        raise PushRejected("timestamp and nonce are required")
    _signed_by_wechat(query, timestamp, nonce)
    return query.get("echostr", "")


def _parse(text: str) -> dict[str, Any]:
    text = text.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise PushRejected("the JSON does not parse") from exc
        if not isinstance(parsed, dict):
            raise PushRejected("the JSON is not an object")
        return parsed
    import xmltodict

    try:
        parsed = xmltodict.parse(text, disable_entities=True).get("xml")
    except Exception as exc:
        raise PushRejected("the XML does not parse") from exc
    if not isinstance(parsed, dict):
        raise PushRejected("the XML has no <xml> root")
    return parsed


def read_event(query: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """A POSTed event, verified (and decrypted in safe mode); PushRejected otherwise."""
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

    timestamp, nonce = _fresh(query)
    _signed_by_wechat(query, timestamp, nonce)
    try:
        outer = _parse(body.decode())
    except UnicodeDecodeError as exc:
        raise PushRejected("the body is not text") from exc
    if query.get("encrypt_type") != "aes":
        return outer
    if not isinstance(outer.get("Encrypt"), str):
        raise PushRejected("a safe-mode event carries Encrypt")
    crypto = WeChatCrypto(secret("wechat_push_token"), secret("wechat_push_aes_key"), settings().wechat_appid)
    try:
        plain = crypto.decrypt_message({"Encrypt": outer["Encrypt"]}, query.get("msg_signature", ""), timestamp, nonce)
    except (InvalidSignatureException, InvalidAppIdException) as exc:
        raise PushRejected("the message signature or app id does not match") from exc
    except Exception as exc:
        raise PushRejected("the message does not decrypt") from exc
    return _parse(plain)
