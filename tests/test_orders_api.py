"""Orders end to end over HTTP on the local stack: create, pay, cancel, time out, refund.

The sandbox plays WeChat Pay: it issues prepay ids, and `POST /sandbox/wxpay/pay`
sends a signed, encrypted TRANSACTION.SUCCESS to the API as WeChat Pay would.
After every test the stock, coupon-lock and points invariants hold.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
import requests

from chalicelib import clock
from chalicelib.orders import flow
from chalicelib.orders.fulfillment import PACKING
from chalicelib.orders.models import Order, TaskToken
from tests.conftest import eventually
from tests.coupon_helpers import new_campaign
from tests.fulfillment_helpers import collected, wait_until_parked
from tests.order_helpers import (
    MEMBER_PRICE,
    PRICE,
    available_points,
    coupon_status,
    delivery,
    invariant_breaches,
    level,
    new_sku,
    new_store,
    order_status,
    pickup,
    remote_spot,
    shopper,
    stock,
)

pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture
def members() -> list[str]:
    """Members a test touched; their ledgers are audited after it."""
    return []


@pytest.fixture(autouse=True)
def invariants_hold(members: list[str]):
    yield
    assert invariant_breaches(members) == {}


@pytest.fixture
def spot() -> tuple[float, float]:
    return remote_spot()


@pytest.fixture
def store(spot) -> str:
    return new_store(*spot)


def buyer(api, members: list[str], points: int = 0, tier: str | None = None) -> tuple[str, str]:
    member_id, token = shopper(api, points, tier)
    members.append(member_id)
    return member_id, token


def coupon_for(member_id: str, value: int, threshold: int) -> str:
    """A cash coupon (`value` fen off from `threshold`) the member has claimed."""
    from chalicelib.coupons import claims

    campaign = new_campaign(kind="cash", value=value, threshold=threshold)
    return claims.claim(member_id, campaign["campaignId"])["couponId"]


def pay(stack, order_id: str, notify: bool = True) -> dict[str, Any]:
    answer = requests.post(f"{stack.sandbox_url}/sandbox/wxpay/pay", json={"orderId": order_id, "notify": notify},
                           timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def sandbox_order(stack, order_id: str) -> dict[str, Any]:
    from chalicelib.wechat import pay as wxpay

    return wxpay.query_order(order_id) or {}


def sandbox_refunds(stack, order_id: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{stack.sandbox_url}/sandbox/wxpay/refunds", params={"orderId": order_id}, timeout=10)
    return answer.json()["items"]


def paid_notification(stack, order_id: str, timestamp: int | None = None,
                      amount: int | None = None) -> tuple[dict[str, str], bytes]:
    """A TRANSACTION.SUCCESS for the order as WeChat Pay signs and encrypts it."""
    transaction = sandbox_order(stack, order_id)
    if amount is not None:
        transaction["amount"] = {**transaction["amount"], "total": amount, "payer_total": amount}
    return stack.sandbox.wxpay_keys.notification("TRANSACTION.SUCCESS", transaction, timestamp=timestamp)


def waiting_for_store(order_id: str) -> bool:
    return any(True for _ in TaskToken.query(order_id, consistent_read=True))


def paid_and_waiting(api, stack, token: str, body: dict[str, Any]) -> str:
    """An order created, paid, and its execution parked at the store's acceptance; its id."""
    order_id = api.post("/orders", token, json=body).json()["orderId"]
    pay(stack, order_id)
    eventually(lambda: waiting_for_store(order_id), what="the execution to wait for the store")
    return order_id


def sweep(api_stack, moment: dt.datetime) -> dict[str, Any]:
    answer = requests.post(f"{api_stack.sandbox_url}/sandbox/cron/order-sweeper", json={"now": moment.isoformat()},
                           timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


# --- Creation ----------------------------------------------------------------------------------

def test_a_pickup_order_reserves_locks_and_freezes_in_one_step_and_offers_the_payment(api, stack, members, store):
    sku = new_sku()
    stock(store, sku, 10)
    member_id, token = buyer(api, members, points=1000, tier="pioneer")
    coupon_id = coupon_for(member_id, value=5000, threshold=100000)

    created = api.post("/orders", token, json=pickup(store, (sku, 2), couponId=coupon_id, pointsToUse=800))
    assert created.status_code == 200, created.text
    order = created.json()
    assert order["status"] == "pending_payment"
    goods = 2 * MEMBER_PRICE  # a pioneer pays the member price
    assert order["amounts"] == {
        "goods": goods, "discount": 5000, "pointsDeduction": 800, "delivery": 0, "payable": goods - 5000 - 800,
    }
    assert order["pointsUsed"] == 800

    assert level(store, sku)["reserved"] == 2 and level(store, sku)["available"] == 8
    assert coupon_status(member_id, coupon_id) == "locked"
    assert available_points(member_id) == 200

    payment = order["payment"]
    assert payment["package"].startswith("prepay_id=") and payment["signType"] == "RSA"
    _assert_pay_sign(stack, payment)
    assert not flow.execution_status(order["orderId"]), "an unpaid order never starts an execution"

    shown = api.get(f"/orders/{order['orderId']}", token).json()
    assert shown["status"] == "pending_payment" and shown["fulfillment"] == {"mode": "pickup", "storeId": store}
    assert [item["qty"] for item in shown["items"]] == [2]
    assert [entry["status"] for entry in shown["timeline"]] == ["pending_payment"]


def _assert_pay_sign(stack, payment: dict[str, str]) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    from chalicelib.config import settings

    keys = stack.sandbox.wxpay_keys
    public = serialization.load_pem_public_key(keys.merchant_public_pem.encode())
    message = f"{settings().wechat_appid}\n{payment['timeStamp']}\n{payment['nonceStr']}\n{payment['package']}\n"
    public.verify(base64.b64decode(payment["paySign"]), message.encode(), padding.PKCS1v15(), hashes.SHA256())


def test_a_delivery_order_goes_to_the_nearest_store_that_holds_every_line(api, members, spot):
    lat, lng = spot
    nearest = new_store(lat + 0.001, lng)
    farther = new_store(lat + 0.02, lng)
    sku = new_sku()
    stock(nearest, sku, 1)
    stock(farther, sku, 5)
    _, token = buyer(api, members)

    created = api.post("/orders", token, json=delivery(lat, lng, (sku, 2)))
    assert created.status_code == 200, created.text
    order = api.get(f"/orders/{created.json()['orderId']}", token).json()
    assert order["fulfillment"]["storeId"] == farther
    assert order["amounts"]["delivery"] == 0  # free above the threshold
    assert level(farther, sku)["reserved"] == 2 and level(nearest, sku)["reserved"] == 0


def test_an_address_no_store_delivers_to_is_out_of_range(api, members):
    sku = new_sku()
    _, token = buyer(api, members)
    answer = api.post("/orders", token, json=delivery(-60.0, -150.0, (sku, 1)))
    assert answer.status_code == 409 and answer.json()["code"] == "OUT_OF_RANGE"


@pytest.mark.parametrize("body, field", [
    ({"items": [], "fulfillment": {"mode": "express"}}, "items"),
    ({"items": [{"skuId": "x", "qty": 0}], "fulfillment": {"mode": "pickup", "storeId": "s"}}, "items.0.qty"),
    ({"items": [{"skuId": "x", "qty": 1}], "fulfillment": {"mode": "pickup"}}, "fulfillment"),
    ({"items": [{"skuId": "x", "qty": 1}], "fulfillment": {"mode": "drone"}}, "fulfillment.mode"),
    ({"items": [{"skuId": "x", "qty": 1}], "fulfillment": {"mode": "pickup", "storeId": "s"}, "pointsToUse": -1},
     "pointsToUse"),
])
def test_a_malformed_order_is_refused_naming_the_field(api, members, body, field):
    _, token = buyer(api, members)
    answer = api.post("/orders", token, json=body)
    assert answer.status_code == 400 and answer.json()["code"] == "INVALID_REQUEST"
    assert answer.json()["message"].startswith(field), answer.json()


def test_refusals_change_nothing(api, members, store):
    sku = new_sku()
    stock(store, sku, 3)
    member_id, token = buyer(api, members, points=100)

    short = api.post("/orders", token, json=pickup(store, (sku, 4)))
    assert short.status_code == 409 and short.json()["code"] == "OUT_OF_STOCK"
    too_few_points = api.post("/orders", token, json=pickup(store, (sku, 1), pointsToUse=200))
    assert too_few_points.status_code == 409 and too_few_points.json()["code"] == "INSUFFICIENT_POINTS"
    no_coupon = api.post("/orders", token, json=pickup(store, (sku, 1), couponId="c-nothing"))
    assert no_coupon.status_code == 409 and no_coupon.json()["code"] == "COUPON_NOT_APPLICABLE"
    unknown = api.post("/orders", token, json=pickup(store, ("no-such-sku", 1)))
    assert unknown.status_code == 400 and unknown.json()["message"].startswith("items.0.skuId")

    assert level(store, sku) == {"storeId": store, "skuId": sku, "onHand": 3, "reserved": 0, "available": 3}
    assert available_points(member_id) == 100
    assert api.get("/members/me/orders", token).json()["items"] == []


def test_the_same_idempotency_key_creates_one_order(api, members, store):
    sku = new_sku()
    stock(store, sku, 5)
    _, token = buyer(api, members)
    headers = {"Idempotency-Key": "order-attempt-1"}
    first = api.post("/orders", token, json=pickup(store, (sku, 1)), headers=headers)
    again = api.post("/orders", token, json=pickup(store, (sku, 1)), headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["orderId"] == again.json()["orderId"]
    assert level(store, sku)["reserved"] == 1


def test_another_members_order_is_not_found(api, members, store):
    sku = new_sku()
    stock(store, sku, 5)
    _, token = buyer(api, members)
    _, other = buyer(api, members)
    order_id = api.post("/orders", token, json=pickup(store, (sku, 1))).json()["orderId"]
    assert api.get(f"/orders/{order_id}", other).status_code == 404
    assert api.post(f"/orders/{order_id}/cancel", other).status_code == 404
    assert level(store, sku)["reserved"] == 1


def test_a_members_orders_are_listed_newest_first_page_by_page(api, members, store):
    sku = new_sku()
    stock(store, sku, 10)
    _, token = buyer(api, members)
    made = [api.post("/orders", token, json=pickup(store, (sku, 1))).json()["orderId"] for _ in range(3)]
    first = api.get("/members/me/orders?limit=2", token).json()
    second = api.get("/members/me/orders", token, params={"limit": 2, "cursor": first["nextCursor"]}).json()
    assert [o["orderId"] for o in first["items"] + second["items"]] == list(reversed(made))
    assert second["nextCursor"] is None


# --- Payment -----------------------------------------------------------------------------------

def test_paying_moves_the_order_to_paid_uses_the_coupon_posts_the_points_and_starts_its_execution(
    api, stack, members, store
):
    sku = new_sku()
    stock(store, sku, 5)
    member_id, token = buyer(api, members, points=500)
    coupon_id = coupon_for(member_id, value=1000, threshold=0)
    order_id = api.post("/orders", token, json=pickup(store, (sku, 1), couponId=coupon_id, pointsToUse=300)) \
        .json()["orderId"]

    paid = pay(stack, order_id)
    assert paid == {"notified": True, "apiStatus": 204}
    assert order_status(order_id) == "paid"
    eventually(lambda: waiting_for_store(order_id), what="the execution to wait for the store")
    assert flow.execution_status(order_id) == "RUNNING"
    assert coupon_status(member_id, coupon_id) == "used"
    assert available_points(member_id) == 200
    shown = api.get(f"/orders/{order_id}", token).json()
    assert [entry["status"] for entry in shown["timeline"]] == ["pending_payment", "paid"]
    assert shown["paidAt"] is not None


def test_the_same_notification_five_times_at_once_applies_once(api, stack, members, store):
    from concurrent.futures import ThreadPoolExecutor

    sku = new_sku()
    stock(store, sku, 5)
    member_id, token = buyer(api, members, points=100)
    order_id = api.post("/orders", token, json=pickup(store, (sku, 1), pointsToUse=100)).json()["orderId"]
    pay(stack, order_id, notify=False)
    headers, body = paid_notification(stack, order_id)

    def deliver(_: int) -> int:
        return requests.post(f"{stack.api_url}/webhooks/wechatpay", data=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(deliver, range(5)))
    assert statuses == [204] * 5
    shown = api.get(f"/orders/{order_id}", token).json()
    assert [entry["status"] for entry in shown["timeline"]] == ["pending_payment", "paid"]
    eventually(lambda: waiting_for_store(order_id), what="the execution to wait for the store")
    assert available_points(member_id) == 0


def _rejected(stack, headers: dict[str, str], body: bytes) -> requests.Response:
    return requests.post(f"{stack.api_url}/webhooks/wechatpay", data=body, headers=headers, timeout=30)


def test_forged_probe_stale_and_tampered_notifications_change_nothing(api, stack, members, store, log_stream, capsys):
    sku = new_sku()
    stock(store, sku, 5)
    _, token = buyer(api, members)
    order = api.post("/orders", token, json=pickup(store, (sku, 1))).json()
    order_id = order["orderId"]
    pay(stack, order_id, notify=False)
    headers, body = paid_notification(stack, order_id)

    forged = dict(headers, **{"Wechatpay-Signature": base64.b64encode(b"\0" * 256).decode()})
    probe = dict(headers, **{"Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]})
    stale_headers, stale_body = paid_notification(stack, order_id, timestamp=clock.epoch_seconds() - 301)
    tampered = body.replace(b'"id"', b'"Id"', 1)
    _, another_body = paid_notification(stack, order_id)
    wrong_amount_headers, wrong_amount_body = paid_notification(stack, order_id, amount=1)

    for sent_headers, sent_body in [(forged, body), (probe, body), (stale_headers, stale_body),
                                    (headers, tampered), (headers, another_body), (wrong_amount_headers, wrong_amount_body)]:
        answer = _rejected(stack, sent_headers, sent_body)
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.json()["code"] == "FAIL" and answer.json()["message"]
        assert order_status(order_id) == "pending_payment"
    assert "payment amount does not match the order" in log_stream()
    assert '"PaymentAmountMismatch":[1.0]' in capsys.readouterr().out  # the alarm's metric
    assert not flow.execution_status(order_id)

    assert _rejected(stack, headers, body).status_code == 204
    assert order_status(order_id) == "paid"


# --- Closing and cancelling ----------------------------------------------------------------------

def test_cancelling_before_payment_gives_everything_back_and_closes_the_payment(api, stack, members, store):
    sku = new_sku()
    stock(store, sku, 5)
    member_id, token = buyer(api, members, points=300)
    coupon_id = coupon_for(member_id, value=1000, threshold=0)
    order_id = api.post("/orders", token, json=pickup(store, (sku, 2), couponId=coupon_id, pointsToUse=300)) \
        .json()["orderId"]

    cancelled = api.post(f"/orders/{order_id}/cancel", token)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert level(store, sku)["reserved"] == 0
    assert coupon_status(member_id, coupon_id) == "available"
    assert available_points(member_id) == 300
    assert sandbox_order(stack, order_id)["trade_state"] == "CLOSED"
    assert api.post(f"/orders/{order_id}/cancel", token).json()["status"] == "cancelled"
    assert not flow.execution_status(order_id)


def test_cancelling_a_paid_order_the_store_has_not_accepted_refunds_it_in_full(api, stack, members, store):
    sku = new_sku()
    stock(store, sku, 5)
    member_id, token = buyer(api, members, points=500)
    coupon_id = coupon_for(member_id, value=1000, threshold=0)
    order = api.post("/orders", token, json=pickup(store, (sku, 1), couponId=coupon_id, pointsToUse=500)).json()
    order_id = order["orderId"]
    pay(stack, order_id)
    eventually(lambda: waiting_for_store(order_id), what="the execution to wait for the store")

    cancelled = api.post(f"/orders/{order_id}/cancel", token)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] in ("refunding", "refunded")
    eventually(lambda: order_status(order_id) == "refunded", what="the refund to be confirmed")

    refunds = sandbox_refunds(stack, order_id)
    assert [r["amount"]["refund"] for r in refunds] == [order["amounts"]["payable"]]
    assert level(store, sku)["reserved"] == 0 and level(store, sku)["onHand"] == 5
    assert coupon_status(member_id, coupon_id) == "available"
    assert available_points(member_id) == 500
    assert eventually(lambda: flow.execution_status(order_id) == "SUCCEEDED", what="the execution to end")
    shown = api.get(f"/orders/{order_id}", token).json()
    assert [e["status"] for e in shown["timeline"]] == ["pending_payment", "paid", "refunding", "refunded"]


def test_an_accepted_order_can_no_longer_be_cancelled(api, stack, members, store):
    from chalicelib.orders import lifecycle

    sku = new_sku()
    stock(store, sku, 5)
    _, token = buyer(api, members)
    order_id = paid_and_waiting(api, stack, token, pickup(store, (sku, 1)))
    lifecycle.accept(order_id, store)

    refused = api.post(f"/orders/{order_id}/cancel", token)
    assert refused.status_code == 409 and refused.json()["code"] == "NOT_CANCELLABLE"
    assert order_status(order_id) == "accepted"
    wait_until_parked(order_id, PACKING)  # the execution goes on


# --- The sweeper ---------------------------------------------------------------------------------

def test_an_order_unpaid_past_its_deadline_is_closed_by_the_sweeper(api, stack, members, store):
    sku = new_sku()
    stock(store, sku, 5)
    member_id, token = buyer(api, members, points=100)
    order = api.post("/orders", token, json=pickup(store, (sku, 1), pointsToUse=100)).json()
    deadline = clock.parse_iso(order["payDeadline"])

    early = sweep(stack, deadline - dt.timedelta(minutes=1))
    assert order_status(order["orderId"]) == "pending_payment", early
    late = sweep(stack, deadline + dt.timedelta(minutes=1))
    assert late["closed"] >= 1
    assert order_status(order["orderId"]) == "cancelled"
    assert level(store, sku)["reserved"] == 0 and available_points(member_id) == 100
    assert sandbox_order(stack, order["orderId"])["trade_state"] == "CLOSED"
    again = sweep(stack, deadline + dt.timedelta(minutes=2))
    assert again.get("closed", 0) == 0 and order_status(order["orderId"]) == "cancelled"


def test_a_lost_notification_never_cancels_a_paid_order(api, stack, members, store):
    sku = new_sku()
    stock(store, sku, 5)
    _, token = buyer(api, members)
    order = api.post("/orders", token, json=pickup(store, (sku, 1))).json()
    pay(stack, order["orderId"], notify=False)

    sweep(stack, clock.parse_iso(order["payDeadline"]) + dt.timedelta(minutes=1))
    assert order_status(order["orderId"]) == "paid"
    eventually(lambda: waiting_for_store(order["orderId"]), what="the execution the sweeper started")
    assert level(store, sku)["reserved"] == 1


def test_a_paid_order_whose_execution_never_started_is_started_by_the_sweeper(api, stack, members, store,
                                                                             monkeypatch):
    sku = new_sku()
    stock(store, sku, 5)
    _, token = buyer(api, members)
    order_id = api.post("/orders", token, json=pickup(store, (sku, 1))).json()["orderId"]
    monkeypatch.setattr(flow, "start", lambda order_id: None)  # Step Functions unreachable
    pay(stack, order_id)
    assert order_status(order_id) == "paid" and not flow.execution_status(order_id)
    monkeypatch.undo()

    started = sweep(stack, clock.now() + dt.timedelta(minutes=3))
    assert started.get("started", 0) >= 1
    eventually(lambda: waiting_for_store(order_id), what="the execution the sweeper started")


# --- Twenty members, five units -------------------------------------------------------------------

def test_twenty_members_racing_for_the_last_five_units_get_five(api, members, store):
    from concurrent.futures import ThreadPoolExecutor

    sku = new_sku()
    stock(store, sku, 5)
    tokens = [buyer(api, members)[1] for _ in range(20)]

    def order(token: str) -> requests.Response:
        return api.post("/orders", token, json=pickup(store, (sku, 1)))

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(order, tokens))
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] * 5 + [409] * 15, [a.text for a in answers if a.status_code not in (200, 409)]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"OUT_OF_STOCK"}
    assert level(store, sku) == {"storeId": store, "skuId": sku, "onHand": 5, "reserved": 5, "available": 0}


# --- Refund after completion ---------------------------------------------------------------------

def test_a_completed_order_is_refunded_once_within_its_window(api, stack, members, store):
    from chalicelib.points import ledger

    sku = new_sku()
    stock(store, sku, 5)
    member_id, token = buyer(api, members, points=200)
    order = api.post("/orders", token, json=pickup(store, (sku, 1), pointsToUse=200)).json()
    order_id = order["orderId"]
    pay(stack, order_id)
    eventually(lambda: waiting_for_store(order_id), what="the execution to wait for the store")
    collected(api, store, order_id)
    assert level(store, sku) == {"storeId": store, "skuId": sku, "onHand": 4, "reserved": 0, "available": 4}
    assert ledger.find_transfer(member_id, f"order#{order_id}#earn") is not None

    refunded = api.post(f"/orders/{order_id}/refund", token, json={"reason": "不想要了"})
    assert refunded.status_code == 200, refunded.text
    eventually(lambda: order_status(order_id) == "refunded", what="the refund to be confirmed")
    assert [r["amount"]["refund"] for r in sandbox_refunds(stack, order_id)] == [order["amounts"]["payable"]]
    assert available_points(member_id) == 200  # the points it spent came back

    again = api.post(f"/orders/{order_id}/refund", token, json={"reason": "再退一次"})
    assert again.status_code == 409 and again.json()["code"] == "ALREADY_REFUNDED"
    assert len(sandbox_refunds(stack, order_id)) == 1


def test_an_order_not_completed_is_not_refundable(api, members, store):
    sku = new_sku()
    stock(store, sku, 5)
    _, token = buyer(api, members)
    order_id = api.post("/orders", token, json=pickup(store, (sku, 1))).json()["orderId"]
    answer = api.post(f"/orders/{order_id}/refund", token, json={"reason": "x"})
    assert answer.status_code == 409 and answer.json()["code"] == "NOT_REFUNDABLE"
    assert api.post(f"/orders/{order_id}/refund", token, json={}).status_code == 400


def test_the_refund_window_closes(api, stack, members, store):

    sku = new_sku()
    stock(store, sku, 5)
    _, token = buyer(api, members)
    order_id = paid_and_waiting(api, stack, token, pickup(store, (sku, 1)))
    collected(api, store, order_id)
    eight_days_ago = clock.now() - dt.timedelta(days=8)
    Order(order_id).update(actions=[Order.completed_at.set(eight_days_ago)])
    answer = api.post(f"/orders/{order_id}/refund", token, json={"reason": "太晚了"})
    assert answer.status_code == 409 and answer.json()["code"] == "REFUND_WINDOW_CLOSED"
    assert order_status(order_id) == "completed"


def test_prices_follow_the_tier(api, members, store):
    sku = new_sku()
    stock(store, sku, 5)
    _, explorer = buyer(api, members)
    _, geek = buyer(api, members, tier="geek")
    assert api.post("/orders", explorer, json=pickup(store, (sku, 1))).json()["amounts"]["goods"] == PRICE
    assert api.post("/orders", geek, json=pickup(store, (sku, 1))).json()["amounts"]["goods"] == MEMBER_PRICE


def test_a_store_accepting_before_the_execution_waits_is_still_heard(api, stack, members, store):
    from chalicelib.orders import lifecycle

    sku = new_sku()
    stock(store, sku, 5)
    _, token = buyer(api, members)
    order_id = api.post("/orders", token, json=pickup(store, (sku, 1))).json()["orderId"]
    pay(stack, order_id)
    lifecycle.accept(order_id, store)  # racing the execution to its wait
    lifecycle.accept(order_id, store)  # the store's retry changes nothing
    wait_until_parked(order_id, PACKING)  # the execution heard it and waits for the packing
    shown = api.get(f"/orders/{order_id}", token).json()
    assert [e["status"] for e in shown["timeline"]] == ["pending_payment", "paid", "accepted"]


def test_a_paid_order_whose_execution_failed_is_refunded_by_the_sweeper_after_asking_wechat_pay(
    api, stack, members, store, monkeypatch
):
    sku = new_sku()
    stock(store, sku, 5)
    _, token = buyer(api, members)
    order = api.post("/orders", token, json=pickup(store, (sku, 1))).json()
    order_id = order["orderId"]
    monkeypatch.setattr(flow, "start", lambda order_id: None)
    pay(stack, order_id)
    # As Step Functions would answer for an execution that failed before it settled the payment.
    real_status = flow.execution_status
    monkeypatch.setattr(flow, "execution_status", lambda oid: "FAILED" if oid == order_id else real_status(oid))

    swept = sweep(stack, clock.now() + dt.timedelta(minutes=3))
    assert swept.get("compensated", 0) >= 1
    eventually(lambda: order_status(order_id) == "refunded", what="the refund to be confirmed")
    assert [r["amount"]["refund"] for r in sandbox_refunds(stack, order_id)] == [order["amounts"]["payable"]]
    assert level(store, sku)["reserved"] == 0
    assert sweep(stack, clock.now() + dt.timedelta(minutes=4)).get("compensated", 0) == 0


def test_a_paid_order_no_store_accepts_in_time_is_refunded_once_however_often_it_is_compensated(
    api, stack, members, store
):
    import app

    sku = new_sku()
    stock(store, sku, 5)
    member_id, token = buyer(api, members, points=100)
    order_id = paid_and_waiting(api, stack, token, pickup(store, (sku, 1), pointsToUse=100))

    # The Compensate task as the wait's timeout (States.Timeout) runs it, then the execution's own run of it.
    timed_out = {"orderId": order_id, "error": {"Error": "States.Timeout", "Cause": "no store answered"}}
    assert app.order_compensate(timed_out, None)["status"] in ("refunding", "refunded")
    flow.fail(order_id, flow.STORE_ACCEPTANCE, "StoreRejectedError", "the store has none on the shelf")
    assert eventually(lambda: flow.execution_status(order_id) == "SUCCEEDED", what="the execution to end")

    eventually(lambda: order_status(order_id) == "refunded", what="the refund to be confirmed")
    shown = api.get(f"/orders/{order_id}", token).json()
    refunding = [entry for entry in shown["timeline"] if entry["status"] == "refunding"]
    assert [entry["note"] for entry in refunding] == ["no store accepted the order in time"]
    assert level(store, sku)["reserved"] == 0 and available_points(member_id) == 100
    assert len(sandbox_refunds(stack, order_id)) == 1


def test_cancelling_an_order_paid_without_notification_refunds_it_instead_of_closing_it(api, stack, members, store):
    sku = new_sku()
    stock(store, sku, 5)
    _, token = buyer(api, members)
    order = api.post("/orders", token, json=pickup(store, (sku, 1))).json()
    pay(stack, order["orderId"], notify=False)

    answer = api.post(f"/orders/{order['orderId']}/cancel", token)
    assert answer.status_code == 200 and answer.json()["status"] in ("refunding", "refunded")
    eventually(lambda: order_status(order["orderId"]) == "refunded", what="the refund to be confirmed")
    assert [r["amount"]["refund"] for r in sandbox_refunds(stack, order["orderId"])] == [order["amounts"]["payable"]]
    assert level(store, sku)["reserved"] == 0


def test_refund_notifications_apply_once_and_an_unknown_refund_is_refused(api, stack, members, store):
    sku = new_sku()
    stock(store, sku, 5)
    _, token = buyer(api, members)
    order_id = paid_and_waiting(api, stack, token, pickup(store, (sku, 1)))
    api.post(f"/orders/{order_id}/cancel", token)
    eventually(lambda: order_status(order_id) == "refunded", what="the refund to be confirmed")
    (refund,) = sandbox_refunds(stack, order_id)
    keys = stack.sandbox.wxpay_keys
    resource = {"out_trade_no": order_id, "out_refund_no": refund["out_refund_no"], "refund_status": "SUCCESS",
                "mchid": "1900000001", "refund_id": refund["refund_id"]}

    again = _rejected(stack, *keys.notification("REFUND.SUCCESS", resource))
    assert again.status_code == 204
    unknown = _rejected(stack, *keys.notification("REFUND.SUCCESS", {**resource, "out_refund_no": "nobody-r"}))
    assert unknown.status_code == 400 and unknown.json()["code"] == "FAIL"
    shown = api.get(f"/orders/{order_id}", token).json()
    assert [e["status"] for e in shown["timeline"]].count("refunded") == 1


def test_the_points_an_order_earned_are_posted_when_its_refund_window_closes(api, stack, members, store):
    from chalicelib.points import ledger

    sku = new_sku()
    stock(store, sku, 5)
    member_id, token = buyer(api, members)
    order_id = paid_and_waiting(api, stack, token, pickup(store, (sku, 1)))
    collected(api, store, order_id)
    completed = Order.get(order_id)
    earned = ledger.find_transfer(member_id, f"order#{order_id}#earn")
    assert earned is not None and earned.kind == "pending" and available_points(member_id) == 0

    window_end = completed.completed_at + dt.timedelta(days=7)
    assert sweep(stack, window_end - dt.timedelta(hours=1)).get("points_posted", 0) == 0
    assert available_points(member_id) == 0
    assert sweep(stack, window_end + dt.timedelta(minutes=1)).get("points_posted", 0) >= 1
    assert available_points(member_id) == int(earned.pending_delta) > 0
    assert sweep(stack, window_end + dt.timedelta(minutes=2)).get("points_posted", 0) == 0
    # Refunded now (the real clock is still inside the window): the posted points are clawed back.
    refunded = api.post(f"/orders/{order_id}/refund", token, json={"reason": "退货"})
    assert refunded.status_code == 200 and available_points(member_id) == 0
