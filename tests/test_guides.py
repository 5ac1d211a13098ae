"""Guides on the local stack: binding, who an order counts for, commissions from pending to settled or void.

Each test drives real orders through the API, WeChat Pay's sandbox and the
order state machine, and checks what a guide or HQ would: who the member is
bound to, which guide and store the order is credited to, and the guide's
monthly figures and statement.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from chalicelib import clock
from chalicelib.guides.config import CONFIG_ENV, guides_config
from chalicelib.orders.models import Order
from tests.coupon_helpers import guide_token, login_member, staff_token
from tests.conftest import eventually, unique
from tests.fulfillment_helpers import collected, policy_configured
from tests.order_helpers import new_sku, new_store, order_status, pickup, remote_spot, stock
from tests.test_orders_api import (  # noqa: F401 (members and invariants_hold are fixtures)
    invariants_hold,
    members,
    paid_and_waiting,
    pay,
    sweep,
    waiting_for_store,
)

pytestmark = pytest.mark.usefixtures("stack")

PRICE = 69900


def guides_configured(**overrides):
    return policy_configured(CONFIG_ENV, **overrides)


@pytest.fixture
def store() -> str:
    return new_store(*remote_spot())


@pytest.fixture
def sku(store) -> str:
    sku_id = new_sku(price=PRICE, member_price=None, category="accessory")
    stock(store, sku_id, 20)
    return sku_id


def month_now() -> str:
    return clock.shanghai_date().strftime("%Y-%m")


def performance(api, token: str) -> dict:
    answer = api.get("/guide/performance", token, params={"month": month_now()})
    assert answer.status_code == 200, answer.text
    return answer.json()


def statement_line(api, token: str, order_id: str) -> dict | None:
    answer = api.get("/guide/statement", token, params={"month": month_now()})
    assert answer.status_code == 200, answer.text
    return next((line for line in answer.json()["lines"] if line["orderId"] == order_id), None)


def expected_commission(sales: int, category: str = "accessory") -> int:
    return sales * guides_config().rate_bp(category) // 10_000


def bound_guide(api, token: str) -> str | None:
    guide = api.get("/members/me", token).json()["guide"]
    return guide["guideId"] if guide else None


def completed_pickup(api, stack, token: str, store: str, sku: str, **extra) -> str:
    order_id = paid_and_waiting(api, stack, token, pickup(store, (sku, 1), **extra))
    collected(api, store, order_id)
    return order_id


# --- Binding --------------------------------------------------------------------------------------

def test_a_guides_code_binds_the_customer_and_the_first_binding_holds_until_it_expires(api, store):
    first, _ = guide_token(api, store)
    second, _ = guide_token(api, store)
    openid = unique("customer")
    token = api.login(openid, scene=f"g={first}")
    assert bound_guide(api, token) == first
    assert bound_guide(api, api.login(openid, scene=f"g={second}")) == first  # first binding wins

    days = 90  # Settings.guide_binding_days
    with clock.frozen_at(clock.now() + dt.timedelta(days=days, hours=1)):
        token = api.login(openid)
        assert bound_guide(api, token) is None  # expired: no guide is shown, none credited
        token = api.login(openid, scene=f"g={second}")
        assert bound_guide(api, token) == second
        assert bound_guide(api, api.login(openid, scene=f"g={first}")) == second


def test_hq_rebinds_a_customer_to_another_guide_at_once(api, store, admin_token):
    first, _ = guide_token(api, store)
    second, _ = guide_token(api, store)
    openid = unique("customer")
    token = api.login(openid, scene=f"g={first}")
    member_id = api.get("/members/me", token).json()["memberId"]

    rebound = api.put(f"/admin/members/{member_id}/guide", admin_token, json={"guideId": second})
    assert rebound.status_code == 200, rebound.text
    assert rebound.json()["guide"] == {"guideId": second, "name": "导购", "storeId": store}
    assert bound_guide(api, token) == second

    assert api.put(f"/admin/members/{member_id}/guide", token, json={"guideId": first}).status_code == 403
    unknown_guide = api.put(f"/admin/members/{member_id}/guide", admin_token, json={"guideId": unique("g")})
    assert unknown_guide.status_code == 400 and "guideId" in unknown_guide.json()["message"]
    nobody = api.put(f"/admin/members/{unique('m')}/guide", admin_token, json={"guideId": first})
    assert nobody.status_code == 404
    assert bound_guide(api, token) == second


# --- Attribution and commission ------------------------------------------------------------------

def test_a_bound_customers_order_is_credited_to_their_guide_pending_until_the_window_closes(
    api, stack, members, store, sku
):
    guide_id, guide = guide_token(api, store)
    _, member_id, token = login_member("customer", scene=f"g={guide_id}")
    members.append(member_id)
    before = performance(api, guide)
    order_id = completed_pickup(api, stack, token, store, sku)

    order = Order.get(order_id, consistent_read=True)
    assert (order.credited_guide_id, order.credited_store_id) == (guide_id, store)
    assert (order.acquiring_guide_id, order.acquiring_store_id) == (guide_id, store)
    sales = int(order.payable) - int(order.delivery)
    line = eventually(lambda: statement_line(api, guide, order_id), what="the commission")
    assert line["status"] == "pending" and line["commission"] == expected_commission(sales) > 0
    assert line["fulfillingStoreId"] == store and line["acquiringGuideId"] == guide_id
    after = performance(api, guide)
    assert after["orders"] == before["orders"] + 1
    assert after["sales"] == before["sales"] + sales
    assert after["commissionPending"] == before["commissionPending"] + line["commission"]

    # The refund window closes (the sweeper, as if a week later): the commission is the guide's, once.
    for _ in range(2):
        sweep(stack, clock.now() + dt.timedelta(days=8))
    assert statement_line(api, guide, order_id)["status"] == "settled"
    settled = performance(api, guide)
    assert settled["commissionSettled"] == after["commissionSettled"] + line["commission"]
    assert settled["commission"] == after["commission"]


def test_a_refunded_order_voids_its_commission(api, stack, members, store, sku):
    guide_id, guide = guide_token(api, store)
    _, member_id, token = login_member("customer", scene=f"g={guide_id}")
    members.append(member_id)
    order_id = completed_pickup(api, stack, token, store, sku)
    eventually(lambda: statement_line(api, guide, order_id), what="the commission")
    pending = performance(api, guide)

    refunded = api.post(f"/orders/{order_id}/refund", token, json={"reason": "不合适"})
    assert refunded.status_code == 200, refunded.text
    eventually(lambda: order_status(order_id) == "refunded", what="the refund")
    assert statement_line(api, guide, order_id)["status"] == "voided"
    after = performance(api, guide)
    assert after["orders"] == pending["orders"] - 1 and after["voided"] == pending["voided"] + 1
    assert after["commission"] < pending["commission"]
    sweep(stack, clock.now() + dt.timedelta(days=8))  # a window closing later settles nothing
    assert statement_line(api, guide, order_id)["status"] == "voided"


@pytest.mark.parametrize("credit", ["sharing", "bound"])
def test_a_product_link_shared_by_another_guide_carries_that_guide_for_the_order(
    api, stack, members, store, sku, credit
):
    bound, bound_token = guide_token(api, store)
    other_store = new_store(*remote_spot())
    sharer, sharer_token = guide_token(api, other_store)
    _, member_id, token = login_member("customer", scene=f"g={bound}")
    members.append(member_id)
    with guides_configured(credit=credit):
        order_id = completed_pickup(api, stack, token, store, sku, guideId=sharer)

    order = Order.get(order_id, consistent_read=True)
    assert (order.promoting_guide_id, order.promoting_store_id) == (sharer, other_store)
    assert (order.acquiring_guide_id, order.acquiring_store_id) == (bound, store)
    credited, credited_store, other = (sharer, other_store, bound_token) if credit == "sharing" \
        else (bound, store, sharer_token)
    assert (order.credited_guide_id, order.credited_store_id) == (credited, credited_store)
    credited_token = sharer_token if credit == "sharing" else bound_token
    assert statement_line(api, credited_token, order_id)["status"] == "pending"
    assert statement_line(api, other, order_id) is None  # one commission per order


def test_a_link_naming_no_guide_credits_the_fulfilling_store(api, stack, members, store, sku):
    _, member_id, token = login_member("customer")
    members.append(member_id)
    order_id = completed_pickup(api, stack, token, store, sku, guideId=unique("g"))
    order = Order.get(order_id, consistent_read=True)
    assert order.promoting_guide_id is None and order.credited_guide_id is None
    assert order.credited_store_id == store


# --- Orders a guide places (代客下单) -------------------------------------------------------------

def test_a_guide_places_an_order_the_customer_pays_and_is_credited_with_it(
    api, stack, members, store, sku, admin_token
):
    guide_id, guide = guide_token(api, store)
    _, member_id, token = login_member("customer", scene=f"g={guide_id}")
    members.append(member_id)
    with guides_configured(credit="bound"):  # whatever the policy: the placing guide is the bound one here
        placed = api.post("/guide/orders", guide, json={"memberId": member_id, **pickup(store, (sku, 2))})
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["orderId"]
        assert placed.json()["status"] == "pending_payment" and "payment" not in placed.json()

        payment = api.get(f"/orders/{order_id}/payment", token)
        assert payment.status_code == 200, payment.text
        assert payment.json()["payment"]["package"].startswith("prepay_id=")
        assert payment.json()["amounts"]["payable"] == 2 * PRICE
        pay(stack, order_id)
        eventually(lambda: waiting_for_store(order_id), what="the execution to wait for the store")
        assert api.get(f"/orders/{order_id}/payment", token).json()["code"] == "ORDER_NOT_PAYABLE"
        collected(api, store, order_id)

    order = Order.get(order_id, consistent_read=True)
    assert order.placed_by_guide == guide_id and order.promoting_guide_id == guide_id
    assert order.credited_guide_id == guide_id
    line = statement_line(api, guide, order_id)
    assert line["commission"] == expected_commission(2 * PRICE)
    sheet = api.get("/guide/statement", guide, params={"month": month_now(), "format": "csv"})
    assert sheet.status_code == 200 and sheet.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(sheet.text)))
    [row] = [row for row in rows if row and row[0] == order_id]
    assert dict(zip(rows[0], row))["commission"] == str(line["commission"])
    assert ["commission", str(performance(api, guide)["commission"])] in rows
    admin_sheet = api.get(f"/admin/guides/{guide_id}/statement", admin_token,
                          params={"month": month_now(), "format": "csv"})
    assert admin_sheet.text == sheet.text
    assert api.get(f"/admin/guides/{guide_id}/statement", guide, params={"month": month_now()}).status_code == 403
    clerk_view = api.get("/store/orders", staff_token(api, store), params={"status": "completed"}).json()["items"]
    [shown] = [item for item in clerk_view if item["orderId"] == order_id]
    assert shown["attribution"]["placedByGuide"] is True and shown["attribution"]["creditedGuideId"] == guide_id


def test_a_guide_cannot_place_an_order_for_someone_elses_customer(api, store, sku):
    mine, guide = guide_token(api, store)
    theirs, _ = guide_token(api, store)
    _, their_customer, _ = login_member("customer", scene=f"g={theirs}")
    _, unbound, _ = login_member("customer")
    for member_id in (their_customer, unbound, unique("m")):
        refused = api.post("/guide/orders", guide, json={"memberId": member_id, **pickup(store, (sku, 1))})
        assert refused.status_code == 404, refused.text
    assert api.post("/guide/orders", login_member()[2], json={"memberId": unbound, **pickup(store, (sku, 1))}
                    ).status_code == 403
    from tests.order_helpers import level

    assert level(store, sku)["reserved"] == 0  # nothing was reserved for a refused order


def test_a_guides_figures_are_refused_to_members_and_need_a_real_month(api, store):
    _, guide = guide_token(api, store)
    _, _, token = login_member()
    assert api.get("/guide/performance", token, params={"month": month_now()}).status_code == 403
    for month in ("2026-13", "26-01", "", "2026-1"):
        answer = api.get("/guide/performance", guide, params={"month": month})
        assert answer.status_code == 400 and "month" in answer.json()["message"], month
    assert api.get("/guide/performance", guide, params={"month": "1999-01"}).json()["orders"] == 0


def test_commission_shares_follow_the_category_rates_and_add_up_to_the_sales():
    from chalicelib.guides.service import CommissionLine, commission_amount

    lines = [CommissionLine("phone", 599900), CommissionLine("accessory", 9900), CommissionLine(None, 1)]
    sales = 600000  # after a coupon
    config = guides_config()
    shares_total = sum(line.amount for line in lines)
    upper = sum(sales * line.amount * config.rate_bp(line.category) for line in lines) / shares_total / 10_000
    amount = commission_amount(lines, sales)
    assert upper - len(lines) <= amount <= upper
    assert commission_amount(lines, 0) == 0 and commission_amount([], 100) == 0


# --- The workbench: customers and their segments ---------------------------------------------------

def segments_run(stack, moment=None) -> dict:
    import requests

    body = {"now": (moment or clock.now()).isoformat()}
    answer = requests.post(f"{stack.sandbox_url}/sandbox/cron/customer-segments", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def workbench(api, token: str, **params) -> list[dict]:
    return api.every_item("/guide/customers", token, **params)


def test_the_workbench_lists_bound_customers_with_their_segments(api, stack, members, store, sku):
    cheap = new_sku(price=9900, member_price=None, category="accessory")
    stock(store, cheap, 10)
    guide_id, guide = guide_token(api, store)
    customers = {name: login_member(name, scene=f"g={guide_id}") for name in ("loyal", "once", "hesitant", "new")}
    members.extend(member_id for _, member_id, _ in customers.values())
    for _ in range(3):
        completed_pickup(api, stack, customers["loyal"][2], store, sku)
    completed_pickup(api, stack, customers["once"][2], store, cheap)
    unpaid = api.post("/orders", customers["hesitant"][2], json=pickup(store, (cheap, 1))).json()["orderId"]
    assert api.post(f"/orders/{unpaid}/cancel", customers["hesitant"][2]).status_code == 200
    _, other_guide = guide_token(api, store)
    from chalicelib.points import ledger

    ledger.earn(customers["loyal"][1], 500, unique("gift"), "adjust")  # what it earned is pending for a week

    first = segments_run(stack)
    assert first["guides"] >= 2 and first["customers"] >= 4
    listed = {item["memberId"]: item for item in workbench(api, guide, limit=3)}
    tags = {name: listed[member_id]["tags"] for name, (_, member_id, _) in customers.items()}
    assert tags == {"loyal": ["高净值"], "once": ["普通"], "hesitant": ["潜在转化"], "new": ["普通"]}
    loyal = listed[customers["loyal"][1]]
    assert loyal["paidOrders"] == 3 and loyal["averageOrderValue"] == PRICE
    assert loyal["lastOrderAt"] is not None and loyal["lastVisitAt"] is not None  # collected at the store
    assert loyal["points"] == 500 and loyal["tier"] == "explorer"
    assert listed[customers["new"][1]]["lastOrderAt"] is None
    assert workbench(api, other_guide) == []

    segments_run(stack)  # a replay for the same day writes the same segments
    assert {item["memberId"]: item for item in workbench(api, guide)} == listed


def test_a_customer_whose_binding_expired_leaves_the_guides_list(api, store):
    from chalicelib.members.models import Member

    guide_id, guide = guide_token(api, store)
    _, staying, _ = login_member("customer", scene=f"g={guide_id}")
    _, leaving, _ = login_member("customer", scene=f"g={guide_id}")
    Member(leaving).update(actions=[Member.guide_bound_until.set(clock.now() - dt.timedelta(seconds=1))])
    assert [item["memberId"] for item in workbench(api, guide)] == [staying]


def test_the_workbench_is_the_guides_own_and_its_cursor_stays_with_it(api, store):
    guide_id, guide = guide_token(api, store)
    _, other = guide_token(api, store)
    for _ in range(3):
        login_member("customer", scene=f"g={guide_id}")
    page = api.get("/guide/customers", guide, params={"limit": 2})
    assert page.status_code == 200 and len(page.json()["items"]) == 2
    cursor = page.json()["nextCursor"]
    assert cursor
    assert api.get("/guide/customers", other, params={"cursor": cursor}).status_code == 400
    assert api.get("/guide/customers", guide, params={"cursor": cursor + "x"}).status_code == 400
    rest = api.get("/guide/customers", guide, params={"cursor": cursor})
    assert len(rest.json()["items"]) == 1
    assert api.get("/guide/customers", login_member()[2]).status_code == 403
