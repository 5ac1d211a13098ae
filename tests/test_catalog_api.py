"""The catalog and inventory routes over HTTP: roles, validation, paging, conflicts."""

from __future__ import annotations

import pytest

from chalicelib.catalog import stock
from tests.conftest import unique


def sku_body(**overrides):
    body = {"title": "思语 Air 2 降噪耳机", "price": 69900, "memberPrice": 64900, "category": "audio"}
    body.update(overrides)
    return body


@pytest.fixture
def sku(api, admin_token) -> str:
    sku_id = unique("sku")
    assert api.put(f"/admin/skus/{sku_id}", admin_token, json=sku_body()).status_code == 200
    return sku_id


def staff_token(api, store_id: str) -> str:
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant

    openid = unique("staff")
    members.grant_role(StaffGrant(openid=openid, role="staff", store_id=store_id, name="店员"), granted_by="tests")
    return api.login(openid)


def test_an_admin_creates_a_sku_and_anyone_reads_it(api, admin_token):
    sku_id = unique("sku")
    body = sku_body(imageUrl="https://img.siyu.example/air2.png")
    created = api.put(f"/admin/skus/{sku_id}", admin_token, json=body)
    assert created.status_code == 200, created.text
    answer = created.json()
    assert answer["skuId"] == sku_id and answer["title"] == "思语 Air 2 降噪耳机"
    assert answer["price"] == 69900 and answer["memberPrice"] == 64900 and answer["active"] is True
    assert answer["imageUrl"] == "https://img.siyu.example/air2.png"
    assert answer["updatedAt"].endswith("+08:00")
    assert api.get(f"/skus/{sku_id}").json() == answer


def test_putting_a_sku_again_replaces_it(api, admin_token, sku):
    updated = api.put(f"/admin/skus/{sku}", admin_token, json={"title": "新标题", "price": 100, "category": "audio"})
    assert updated.status_code == 200
    assert updated.json()["memberPrice"] is None and updated.json()["title"] == "新标题"
    assert api.get(f"/skus/{sku}").json()["price"] == 100


def test_an_unknown_sku_is_not_found(api):
    response = api.get(f"/skus/{unique('nope')}")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


def test_only_admins_write_skus(api, member, sku):
    _, token = member
    assert api.put(f"/admin/skus/{sku}", token, json=sku_body()).status_code == 403
    assert api.put(f"/admin/skus/{sku}", json=sku_body()).status_code == 401
    staff = staff_token(api, unique("store"))
    assert api.put(f"/admin/skus/{sku}", staff, json=sku_body()).json()["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"price": 199.5}, "price"),
        ({"price": "1999"}, "price"),
        ({"price": 0}, "price"),
        ({"price": -1}, "price"),
        ({"memberPrice": 70000}, "memberPrice"),
        ({"title": ""}, "title"),
        ({"title": None}, "title"),
        ({"category": 3}, "category"),
        ({"imageUrl": "http://insecure.example/a.png"}, "imageUrl"),
        ({"active": "yes"}, "active"),
    ],
)
def test_a_bad_sku_field_is_named(api, admin_token, change, field):
    response = api.put(f"/admin/skus/{unique('sku')}", admin_token, json=sku_body(**change))
    assert response.status_code == 400 and response.json()["code"] == "INVALID_REQUEST"
    assert response.json()["message"].startswith(field), response.json()


def test_a_bad_sku_id_is_named(api, admin_token):
    response = api.put("/admin/skus/has%20space", admin_token, json=sku_body())
    assert response.status_code == 400 and response.json()["message"].startswith("skuId")


def test_the_catalog_lists_active_skus_page_by_page(api, admin_token):
    mine = {unique("list") for _ in range(5)}
    for sku_id in mine:
        assert api.put(f"/admin/skus/{sku_id}", admin_token, json=sku_body()).status_code == 200
    hidden = unique("list")
    assert api.put(f"/admin/skus/{hidden}", admin_token, json=sku_body(active=False)).status_code == 200
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = api.get("/skus", params=params)
        assert page.status_code == 200
        body = page.json()
        assert len(body["items"]) <= 2 and set(body) == {"items", "nextCursor"}
        seen += [item["skuId"] for item in body["items"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert mine <= set(seen) and hidden not in seen
    assert len(seen) == len(set(seen)) and seen == sorted(seen)
    assert api.get(f"/skus/{hidden}").json()["active"] is False


def test_deactivating_a_sku_takes_it_off_the_list(api, admin_token, sku):
    def listed() -> bool:
        cursor, found = None, []
        while True:
            body = api.get("/skus", params={"limit": "100"} | ({"cursor": cursor} if cursor else {})).json()
            found += [item["skuId"] for item in body["items"]]
            cursor = body["nextCursor"]
            if not cursor:
                return sku in found

    assert listed()
    api.put(f"/admin/skus/{sku}", admin_token, json=sku_body(active=False))
    assert not listed()


@pytest.mark.parametrize("query, field", [({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
                                          ({"limit": "101"}, "limit"), ({"cursor": "!!!"}, "cursor"),
                                          ({"cursor": "eyJhZnRlciI6IDF9"}, "cursor"), ({"cursor": "e30="}, "cursor")])
def test_bad_paging_parameters_are_named(api, query, field):
    response = api.get("/skus", params=query)
    assert response.status_code == 400 and response.json()["message"].startswith(field)


def test_staff_set_and_read_their_own_stores_stock(api, sku):
    store = unique("store")
    token = staff_token(api, store)
    put = api.put(f"/admin/inventory/{store}/{sku}", token, json={"onHand": 9})
    assert put.status_code == 200, put.text
    expected = {"storeId": store, "skuId": sku, "onHand": 9, "reserved": 0, "available": 9}
    assert put.json() == expected
    assert api.get(f"/admin/inventory/{store}/{sku}", token).json() == expected


def test_staff_of_another_store_are_forbidden(api, sku):
    store = unique("store")
    token = staff_token(api, unique("elsewhere"))
    assert api.put(f"/admin/inventory/{store}/{sku}", token, json={"onHand": 1}).status_code == 403
    response = api.get(f"/admin/inventory/{store}/{sku}", token)
    assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN"
    assert api.put(f"/admin/inventory/warehouse/{sku}", token, json={"onHand": 1}).status_code == 403


def test_members_cannot_touch_inventory(api, member, sku):
    _, token = member
    assert api.put(f"/admin/inventory/warehouse/{sku}", token, json={"onHand": 1}).status_code == 403
    assert api.get(f"/admin/inventory/warehouse/{sku}").status_code == 401


def test_admins_set_the_warehouses_stock(api, admin_token, sku):
    response = api.put(f"/admin/inventory/warehouse/{sku}", admin_token, json={"onHand": 300})
    assert response.status_code == 200 and response.json()["available"] == 300
    assert api.get(f"/admin/inventory/warehouse/{sku}", admin_token).json()["onHand"] == 300


def test_a_sku_never_stocked_here_reads_as_zero_and_an_unknown_sku_is_not_found(api, admin_token, sku):
    store = unique("store")
    assert api.get(f"/admin/inventory/{store}/{sku}", admin_token).json()["onHand"] == 0
    missing = unique("nope")
    assert api.get(f"/admin/inventory/{store}/{missing}", admin_token).status_code == 404
    assert api.put(f"/admin/inventory/{store}/{missing}", admin_token, json={"onHand": 1}).status_code == 404


@pytest.mark.parametrize("body, field", [({"onHand": -1}, "onHand"), ({"onHand": 1.5}, "onHand"),
                                         ({"onHand": "3"}, "onHand"), ({}, "onHand")])
def test_a_bad_count_is_named(api, admin_token, sku, body, field):
    response = api.put(f"/admin/inventory/warehouse/{sku}", admin_token, json=body)
    assert response.status_code == 400 and response.json()["message"].startswith(field)


def test_on_hand_below_reserved_is_refused(api, admin_token, sku):
    store = unique("store")
    api.put(f"/admin/inventory/{store}/{sku}", admin_token, json={"onHand": 5})
    stock.reserve_order(unique("order"), store, {sku: 4})
    refused = api.put(f"/admin/inventory/{store}/{sku}", admin_token, json={"onHand": 3})
    assert refused.status_code == 409 and refused.json()["code"] == "BELOW_RESERVED"
    assert "4" in refused.json()["message"]
    after = api.get(f"/admin/inventory/{store}/{sku}", admin_token).json()
    assert (after["onHand"], after["reserved"], after["available"]) == (5, 4, 1)
    allowed = api.put(f"/admin/inventory/{store}/{sku}", admin_token, json={"onHand": 4})
    assert allowed.status_code == 200 and allowed.json()["available"] == 0
