"""What couriers report about their dispatches, through the webhooks: believed only as far as it can be.

Dada signs its callbacks with an md5 of public values and no secret, so a
callback is only a hint: the dispatch's status is asked of Dada's own status
query and that answer is applied. WeChat's instant-delivery and express
events come through message push, signed and encrypted with the app's push
keys (`chalicelib.wechat.push`), so they are applied as they come.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib import couriers
from chalicelib.orders import fulfillment

__all__ = ["on_courier_callback", "on_wechat_event"]

_JSON = "application/json"


def _refused(status: int, why: str) -> tuple[int, str, str]:
    return status, _JSON, json.dumps({"status": "fail", "msg": why}, ensure_ascii=False)


def on_courier_callback(name: str, body: bytes) -> tuple[int, str, str]:
    """`POST /webhooks/courier/{name}`: Dada's callbacks (the others report through message push)."""
    from chalicelib.couriers import dada
    from chalicelib.observability import count, logger

    if name != "dada":
        return _refused(404, f"no courier {name} calls back here")
    try:
        hint = dada.parse_callback(body)
    except couriers.CallbackRejected as exc:
        logger().warning("courier callback refused", extra={"courier": name, "why": str(exc)})
        return _refused(400, str(exc))
    confirmed = couriers.courier("dada").query(hint.ref)
    if confirmed is None:
        logger().warning("courier callback about a dispatch Dada does not know", extra={"ref": hint.ref})
        count("CourierCallbackUnconfirmed")
        return _refused(400, "no such order at Dada")
    if confirmed.status != hint.status:
        logger().warning("courier callback disagrees with Dada's status query: Dada's answer applied",
                         extra={"ref": hint.ref, "said": hint.code, "dada": confirmed.code})
        count("CourierCallbackUnconfirmed")
    fulfillment.apply_report(confirmed)
    return dada.CALLBACK_OK


def on_wechat_event(event: dict[str, Any]) -> str | None:
    """A verified message-push event: a waybill's status applied (`applied`, `late`, `stale`); None if not a courier's."""
    from chalicelib.couriers import express, wechat_delivery

    report = wechat_delivery.report_from_event(event) or express.report_from_event(event)
    return fulfillment.apply_report(report) if report is not None else None
