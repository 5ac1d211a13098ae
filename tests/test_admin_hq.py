"""HQ's tools on the local stack: who holds which role at a store, and a whole store's stock from a spreadsheet."""

from __future__ import annotations

import pytest

from tests.appointment_helpers import staff_token
from tests.coupon_helpers import guide_token, login_member
from tests.conftest import unique
from tests.order_helpers import level, new_sku, new_store, pickup, remote_spot, stock

pytestmark = pytest.mark.usefixtures("stack")


def grant(api, admin_token: str, **body) -> dict:
    answer = api.post("/admin/staff", admin_token, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def staff_list(api, token: str, **params) -> list[dict]:
    return api.every_item("/admin/staff", token, **params)


# --- Staff ------------------------------------------------------------------------------------------

def test_hq_sees_who_holds_which_role_at_a_store_and_a_revoked_person_leaves_the_list(api, admin_token):
    store, other_store = new_store(*remote_spot()), new_store(*remote_spot())
    clerk, guide, both, elsewhere = (unique(name) for name in ("clerk", "guide", "both", "elsewhere"))
    grant(api, admin_token, openid=clerk, role="staff", storeId=store, name="店员")
    grant(api, admin_token, openid=guide, role="guide", storeId=store, name="导购")
    grant(api, admin_token, openid=both, role="staff", storeId=store, name="店长")
    grant(api, admin_token, openid=both, role="guide", storeId=store, name="店长")
    grant(api, admin_token, openid=elsewhere, role="staff", storeId=other_store, name="别店")

    listed = {person["openid"]: person for person in staff_list(api, admin_token, storeId=store, limit=2)}
    assert set(listed) == {clerk, guide, both}
    assert listed[both]["roles"] == ["guide", "staff"] and listed[both]["guideId"]
    assert listed[clerk]["roles"] == ["staff"] and listed[clerk]["grantedAt"]

    assert api.delete(f"/admin/staff/{clerk}", admin_token).status_code == 204
    assert api.delete(f"/admin/staff/{both}?role=staff", admin_token).status_code == 204
    after = {person["openid"]: person["roles"] for person in staff_list(api, admin_token, storeId=store)}
    assert after == {guide: ["guide"], both: ["guide"]}


def test_hq_people_are_listed_without_a_store_and_the_list_is_for_admins_only(api, admin_token):
    hq = unique("hq")
    grant(api, admin_token, openid=hq, role="admin", name="运营")
    assert hq in {person["openid"] for person in staff_list(api, admin_token)}
    store = new_store(*remote_spot())
    assert api.get("/admin/staff", staff_token(api, store), params={"storeId": store}).status_code == 403
    assert api.get("/admin/staff", guide_token(api, store)[1]).status_code == 403
    assert api.get("/admin/staff", login_member()[2]).status_code == 403
    assert api.get("/admin/staff").status_code == 401
    bad = api.get("/admin/staff", admin_token, params={"storeId": "no spaces"})
    assert bad.status_code == 400 and "storeId" in bad.json()["message"]


# --- Stock by spreadsheet ------------------------------------------------------------------------------

def import_stock(api, token: str, store: str, text: str):
    return api.post(f"/admin/inventory/{store}/import", token, json={"csv": text})


def test_a_whole_stores_count_is_imported_from_csv(api, admin_token):
    store = new_store(*remote_spot())
    skus = [new_sku() for _ in range(30)]
    counts = {sku: index * 3 for index, sku in enumerate(skus)}
    text = "\ufeffskuId,onHand\r\n" + "".join(f"{sku},{count}\r\n" for sku, count in counts.items()) + "\r\n"
    answer = import_stock(api, admin_token, store, text)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"storeId": store, "rows": 30, "updated": 30, "refused": []}
    assert {sku: level(store, sku)["onHand"] for sku in skus} == counts

    clerk = staff_token(api, store)
    recount = import_stock(api, clerk, store, f"skuId,onHand\n{skus[1]},7\n")
    assert recount.status_code == 200 and level(store, skus[1])["onHand"] == 7
    other_store = new_store(*remote_spot())
    assert import_stock(api, clerk, other_store, f"skuId,onHand\n{skus[1]},7\n").status_code == 403


def test_a_row_below_what_orders_reserved_is_refused_and_the_others_stand(api, admin_token):
    store = new_store(*remote_spot())
    held, free = new_sku(), new_sku()
    stock(store, held, 3)
    _, _, token = login_member("shopper")
    assert api.post("/orders", token, json=pickup(store, (held, 2))).status_code == 200  # reserves 2
    answer = import_stock(api, admin_token, store, f"skuId,onHand\n{held},1\n{free},5\n")
    assert answer.status_code == 200, answer.text
    assert answer.json()["updated"] == 1
    [refused] = answer.json()["refused"]
    assert refused["line"] == 2 and refused["skuId"] == held and "reserved" in refused["message"]
    assert level(store, held)["onHand"] == 3 and level(store, free)["onHand"] == 5


@pytest.mark.parametrize("text, named", [
    ("sku,count\nx,1\n", "line 1"),
    ("skuId,onHand\n", "no rows"),
    ("skuId,onHand\n{sku},1\n{sku},2\n", "line 3"),
    ("skuId,onHand\n{sku},-1\n", "line 2"),
    ("skuId,onHand\n{sku},1.5\n", "line 2"),
    ("skuId,onHand\n{sku},1,extra\n", "line 2"),
    ("skuId,onHand\nbad id,1\n", "line 2"),
    ("skuId,onHand\n{sku},1\nno-such-sku-{sku},2\n", "line 3"),
])
def test_a_spreadsheet_with_a_bad_line_is_refused_whole_naming_the_line(api, admin_token, text, named):
    store = new_store(*remote_spot())
    sku = new_sku()
    stock(store, sku, 9)
    answer = import_stock(api, admin_token, store, text.format(sku=sku))
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "INVALID_REQUEST" and named in answer.json()["message"]
    assert level(store, sku)["onHand"] == 9


# --- Policy ---------------------------------------------------------------------------------------

@pytest.fixture
def orders_policy():
    """The orders policy HQ may change in the test; what HQ stored is gone afterwards."""
    from chalicelib import policy

    yield "orders"
    for item in policy.PolicyChange.query("orders"):
        item.delete()
    policy.PolicyDocument("orders").delete()
    policy.forget()


def test_hq_changes_a_window_and_the_change_is_recorded_with_who_when_before_and_after(
    api, admin_token, orders_policy
):
    from chalicelib.orders.config import orders_config

    read = api.get("/admin/config/orders", admin_token).json()
    assert read["version"] == 0 and read["policy"]["refund_window_days"] == orders_config().refund_window_days
    changed = api.put("/admin/config/orders", admin_token,
                      json={"version": 0, "overrides": {"refund_window_days": 14, "packing_seconds": 7200}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 1 and changed.json()["policy"]["refund_window_days"] == 14
    assert orders_config().refund_window_days == 14 and orders_config().packing_seconds == 7200

    again = api.put("/admin/config/orders", admin_token, json={"version": 1, "overrides": {"refund_window_days": 10}})
    assert again.json()["policy"]["packing_seconds"] == 7200  # an earlier change stays
    stale = api.put("/admin/config/orders", admin_token, json={"version": 1, "overrides": {"refund_window_days": 3}})
    assert stale.status_code == 409 and stale.json()["code"] == "POLICY_CHANGED"

    history = api.get("/admin/config/orders/changes", admin_token, params={"limit": 1})
    assert history.status_code == 200
    [latest] = history.json()["items"]
    admin_id = api.get("/members/me", admin_token).json()["memberId"]
    assert latest["version"] == 2 and latest["changedBy"] == admin_id
    assert (latest["before"]["refund_window_days"], latest["after"]["refund_window_days"]) == (14, 10)
    rest = api.get("/admin/config/orders/changes", admin_token, params={"cursor": history.json()["nextCursor"]})
    [first] = rest.json()["items"]
    assert first["version"] == 1 and first["before"]["packing_seconds"] != 7200 == first["after"]["packing_seconds"]


def test_two_admins_changing_the_same_version_cannot_both_win(api, admin_token, orders_policy):
    from concurrent.futures import ThreadPoolExecutor

    def change(days: int) -> int:
        return api.put("/admin/config/orders", admin_token,
                       json={"version": 0, "overrides": {"refund_window_days": days}}).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(change, range(2, 8)))
    assert sorted(statuses) == [200] + [409] * 5
    history = api.get("/admin/config/orders/changes", admin_token).json()["items"]
    assert len(history) == 1


@pytest.mark.parametrize("body, named", [
    ({"version": 0, "overrides": {"refund_window_days": -1}}, "overrides.refund_window_days"),
    ({"version": 0, "overrides": {"refund_window_days": "soon"}}, "overrides.refund_window_days"),
    ({"version": 0, "overrides": {"no_such_setting": 1}}, "overrides.no_such_setting"),
    ({"version": 0, "overrides": {"fees": {"delivery": {"fee": -5}}}}, "overrides.fees.delivery.fee"),
    ({"version": 0, "overrides": {}}, "overrides"),
    ({"version": -1, "overrides": {"refund_window_days": 3}}, "version"),
])
def test_a_bad_policy_change_is_refused_naming_the_setting_and_changes_nothing(
    api, admin_token, orders_policy, body, named
):
    answer = api.put("/admin/config/orders", admin_token, json=body)
    assert answer.status_code == 400 and named in answer.json()["message"], answer.text
    assert api.get("/admin/config/orders", admin_token).json()["version"] == 0


def test_the_policy_is_hqs_alone(api, admin_token, orders_policy):
    store = new_store(*remote_spot())
    assert api.get("/admin/config/orders", staff_token(api, store)).status_code == 403
    assert api.put("/admin/config/orders", login_member()[2],
                   json={"version": 0, "overrides": {"refund_window_days": 1}}).status_code == 403
    assert api.get("/admin/config/nonsense", admin_token).status_code == 404
    assert {api.get(f"/admin/config/{name}", admin_token).status_code for name in ("points", "guides")} == {200}
