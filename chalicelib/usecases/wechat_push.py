"""WeChat message push (`/webhooks/wechat`): the URL check, and signed events handed to the domain they concern."""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.wechat import push

__all__ = ["verification", "on_event"]

_REFUSED = (403, "text/plain", "forbidden")


def verification(query: Mapping[str, str]) -> tuple[int, str, str]:
    """GET: WeChat checks the URL is ours by the signature of its token; the answer is its `echostr`."""
    try:
        return 200, "text/plain", push.verify_url(query)
    except push.PushRejected:
        return _REFUSED


def on_event(query: Mapping[str, str], body: bytes) -> tuple[int, str, str]:
    """POST: one event, verified and decrypted; instant-delivery and express waybill updates move orders."""
    from chalicelib.observability import logger
    from chalicelib.orders import courier_reports

    try:
        event = push.read_event(query, body)
    except push.PushRejected as exc:
        logger().warning("message push refused", extra={"why": str(exc)})
        return _REFUSED
    outcome = courier_reports.on_wechat_event(event)
    logger().info("message push event", extra={"event": event.get("Event"), "outcome": outcome})
    return push.ANSWER_OK
