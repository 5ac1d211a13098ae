"""WeChat Pay's notifications, applied once.

    verify    signature by the WeChat Pay public key (a `WECHATPAY/SIGNTEST/` probe
              fails), timestamp within 5 minutes, resource decrypted (AEAD_AES_256_GCM)
    apply     TRANSACTION.SUCCESS: `pending_payment -> paid` under `payable = amount`,
              then the execution started (named by the order: a second start is harmless);
              REFUND.*: the order's one refund concluded

The answer is what WeChat Pay expects: 204 when applied or already applied,
4xx with `{"code": "FAIL", "message"}` when refused (nothing changed). A
failure of ours is a 500, which WeChat Pay delivers again (15 times in 24 hours).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalicelib import clock
from chalicelib.orders import lifecycle
from chalicelib.orders.errors import NotificationRejected

__all__ = ["PAYMENT_EVENT", "REFUND_EVENTS", "on_notification", "fail_body"]

PAYMENT_EVENT = "TRANSACTION.SUCCESS"
REFUND_EVENTS = frozenset({"REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED"})


def fail_body(message: str) -> bytes:
    return json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False).encode()


def _verified(headers: Mapping[str, str], body: bytes) -> Any:
    from chalicelib.wechat import pay

    try:
        return pay.verify_notification(headers, body, clock.now())
    except pay.NotificationRejectedError as exc:
        from chalicelib.observability import count, logger

        logger().warning("payment notification rejected", extra={"why": str(exc)})
        count("PaymentNotificationRejected")
        raise NotificationRejected(str(exc), status=401) from exc


def on_notification(headers: Mapping[str, str], body: bytes) -> tuple[int, str, bytes]:
    """Verify and apply one notification; the HTTP answer for WeChat Pay."""
    try:
        notification = _verified(headers, body)
        if notification.event_type == PAYMENT_EVENT:
            lifecycle.apply_payment(notification.resource)
        elif notification.event_type in REFUND_EVENTS:
            lifecycle.apply_refund(notification.resource)
    except NotificationRejected as rejected:
        return rejected.status, "application/json", fail_body(str(rejected))
    except Exception:
        from chalicelib.observability import logger

        logger().exception("payment notification not applied: WeChat Pay will deliver it again")
        return 500, "application/json", fail_body("not applied, deliver again")
    return 204, "application/json", b""
