"""The mini-program's shipping information (发货信息管理): WeChat settles an order's money only once it is uploaded.

One upload per paid order, when the goods leave the store: by express with its
tracking number, by same-day courier, or collected by the member. Uploading
again is answered 10060023 (already uploaded), taken as done, so a retried
step may upload again safely.
"""

from __future__ import annotations

from chalicelib import clock

__all__ = ["EXPRESS", "SAME_CITY", "PICKUP", "upload_shipping_info"]

EXPRESS, SAME_CITY, PICKUP = 1, 2, 4
ALREADY_UPLOADED = 10060023


def upload_shipping_info(transaction_id: str, openid: str, logistics_type: int, item_desc: str,
                         tracking_no: str | None = None, express_company: str | None = None) -> None:
    from chalicelib.wechat import client

    shipped: dict[str, str] = {"item_desc": item_desc[:120]}
    if tracking_no:
        shipped["tracking_no"] = tracking_no
    if express_company:
        shipped["express_company"] = express_company
    try:
        client.call_with_token("/wxa/sec/order/upload_shipping_info", {
            "order_key": {"order_number_type": 2, "transaction_id": transaction_id},
            "logistics_type": logistics_type,
            "delivery_mode": 1,
            "shipping_list": [shipped],
            "upload_time": clock.iso(clock.now()),
            "payer": {"openid": openid},
        })
    except client.WechatError as exc:
        if exc.errcode != ALREADY_UPLOADED:
            raise
