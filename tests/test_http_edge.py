"""The edge refuses cleanly: whatever a caller sends, the answer is a 4xx in `{code, message}` shape."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from tests.appointment_helpers import make_store, staff_token
from tests.conftest import unique
from tests.coupon_helpers import campaign_body

DEEP = b"[" * 50_000
HUGE_INT = b"1" * 5_000
LIST_ROUTES = [
    "/skus",
    "/stores",
    "/members/me/appointments",
    "/store/appointments",
    "/members/me/coupons",
    "/coupons/campaigns",
    "/admin/campaigns",
    "/points/entries",
]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(claims: Any, key: str | None = None) -> str:
    """A token whose claims are `claims` (any JSON, or raw bytes), correctly signed with the stack's key."""
    import jwt

    from chalicelib.auth import ALGORITHM, key_id
    from chalicelib.config import secret

    key = key or secret("token_signing_key")
    payload = json.dumps(claims).encode() if not isinstance(claims, bytes) else claims
    return jwt.PyJWS().encode(payload, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})


def assert_refused(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == code, body
    if field is not None:
        assert body["message"].startswith(field), body


@pytest.fixture(scope="module")
def admin(api, admin_token) -> str:
    return admin_token


# --- Bodies -------------------------------------------------------------------------------

@pytest.mark.parametrize("with_key", [False, True], ids=["plain", "idempotency-key"])
@pytest.mark.parametrize("body", [DEEP, b'{"memberId": "m1", "delta": ' + HUGE_INT + b', "reason": "x"}'],
                         ids=["deeply-nested", "huge-integer"])
def test_a_hostile_body_is_an_invalid_request_with_or_without_an_idempotency_key(api, admin, body, with_key):
    headers = {"Content-Type": "application/json"} | ({"Idempotency-Key": unique("key")} if with_key else {})
    assert_refused(api.post("/admin/points/adjust", admin, data=body, headers=headers), 400, "INVALID_REQUEST")


@pytest.mark.parametrize("with_key", [False, True], ids=["plain", "idempotency-key"])
def test_a_post_that_takes_no_body_refuses_one_that_is_not_json_and_changes_nothing(api, member, with_key):
    _, token = member
    headers = {"Idempotency-Key": unique("key")} if with_key else {}
    for body in (b'{"code":', DEEP, HUGE_INT, b"\xff\xfe"):
        assert_refused(api.post("/points/checkin", token, data=body, headers=headers), 400, "INVALID_REQUEST", "body")
    assert api.get("/points/entries", token).json()["items"] == []
    assert api.post("/points/checkin", token).status_code == 200


@pytest.mark.parametrize("path", [
    "/coupons/campaigns/{campaign}/claim",
    "/admin/campaigns/{campaign}/stop",
    "/appointments/a-x.y.203106021000.20.0123456789abcdef/cancel",
    "/store/appointments/a-x.y.203106021000.20.0123456789abcdef/checkin",
])
def test_every_post_refuses_a_body_that_is_not_json(api, admin, path):
    from tests.coupon_helpers import new_campaign

    campaign = new_campaign()["campaignId"]
    answer = api.post(path.format(campaign=campaign), admin, data=b"{not json")
    assert_refused(answer, 400, "INVALID_REQUEST", "body")
    assert api.get(f"/admin/campaigns/{campaign}", admin).json()["status"] == "active"


def test_a_body_of_another_media_type_is_refused_in_the_error_shape(api):
    answer = api.post("/auth/login", data=b"<code>dev:x</code>", headers={"Content-Type": "application/xml"})
    assert_refused(answer, 415, "UNSUPPORTED_MEDIA_TYPE")


# --- Paths and methods ----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/nope", "/members/me/nope", "/a/b/c/d/e", "/points/entries/x/y"])
def test_an_unknown_path_is_not_found_and_repeats_no_header(api, path):
    secret_header = "Bearer do-not-repeat-" + unique("t")
    answer = api.get(path, headers={"Authorization": secret_header, "X-Probe": "probe-" + secret_header})
    assert_refused(answer, 404, "NOT_FOUND")
    assert "do-not-repeat" not in answer.text


@pytest.mark.parametrize("method, path, allowed", [
    ("DELETE", "/points", "GET"),
    ("PATCH", "/members/me", "DELETE, GET"),
    ("POST", "/stores/{store}", "GET"),
    ("PUT", "/auth/login", "POST"),
    ("TRACE", "/points", "GET"),
    ("QUERY", "/members/me", "DELETE, GET"),
])
def test_a_wrong_method_is_not_allowed_and_says_what_is(api, member, method, path, allowed):
    _, token = member
    answer = api.request(method, path.format(store=unique("s")), token, json={})
    assert_refused(answer, 405, "METHOD_NOT_ALLOWED")
    assert answer.headers["Allow"] == allowed


# --- Lists ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def list_callers(api, admin) -> dict[str, str]:
    store = make_store()
    return {"member": api.login(unique("lister")), "staff": staff_token(api, store), "admin": admin}


def _caller_of(path: str, callers: dict[str, str]) -> str:
    if path.startswith("/admin"):
        return callers["admin"]
    return callers["staff"] if path.startswith("/store") else callers["member"]


@pytest.mark.parametrize("path", LIST_ROUTES)
@pytest.mark.parametrize("limit", ["²", "0", "101", "1000", "-1", "1.5", "", "١"])
def test_every_list_refuses_a_limit_outside_1_to_100(api, list_callers, path, limit):
    answer = api.get(path, _caller_of(path, list_callers), params={"limit": limit})
    assert_refused(answer, 400, "INVALID_REQUEST", "limit")


@pytest.mark.parametrize("path", LIST_ROUTES)
@pytest.mark.parametrize("position", [{"c": ""}, {"after": ""}, {"offset": -1}, {"campaign_id": {"S": ""}}, []])
def test_every_list_refuses_a_cursor_it_did_not_issue(api, list_callers, path, position):
    forged = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
    answer = api.get(path, _caller_of(path, list_callers), params={"cursor": forged})
    assert_refused(answer, 400, "INVALID_REQUEST", "cursor")


def test_a_cursor_is_bound_to_its_caller_and_its_list(api, admin):
    from tests.coupon_helpers import new_campaign

    for _ in range(2):
        new_campaign()
    token = api.login(unique("reader"))
    first = api.get("/coupons/campaigns", token, params={"limit": 1}).json()
    assert len(first["items"]) == 1 and first["nextCursor"]
    second = api.get("/coupons/campaigns", token, params={"limit": 1, "cursor": first["nextCursor"]}).json()
    assert second["items"][0]["campaignId"] != first["items"][0]["campaignId"]

    stranger = api.login(unique("stranger"))
    assert_refused(api.get("/coupons/campaigns", stranger, params={"cursor": first["nextCursor"]}),
                   400, "INVALID_REQUEST", "cursor")
    assert_refused(api.get("/members/me/coupons", token, params={"cursor": first["nextCursor"]}),
                   400, "INVALID_REQUEST", "cursor")
    admin_page = api.get("/admin/campaigns", admin, params={"limit": 1}).json()
    assert_refused(api.get("/coupons/campaigns", admin, params={"cursor": admin_page["nextCursor"]}),
                   400, "INVALID_REQUEST", "cursor")


def test_the_open_campaigns_list_honours_limit(api, admin):
    created = [api.post("/admin/campaigns", admin, json=campaign_body()).json()["campaignId"] for _ in range(3)]
    token = api.login(unique("pager"))
    seen: list[str] = []
    cursor = None
    while True:
        page = api.get("/coupons/campaigns", token, params={"limit": 2} | ({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200 and len(page.json()["items"]) <= 2
        seen += [item["campaignId"] for item in page.json()["items"]]
        cursor = page.json()["nextCursor"]
        if cursor is None:
            break
    assert set(created) <= set(seen) and len(seen) == len(set(seen))


# --- Messages ---------------------------------------------------------------------------------

def test_a_refusal_quotes_what_it_quotes_in_its_own_case(api, admin):
    from tests.appointment_helpers import store_body

    services = [{"serviceId": "bad id!", "name": "x", "durationMinutes": 20, "capacity": 1}]
    answer = api.put(f"/admin/stores/{unique('s')}", admin, json=store_body(services=services))
    assert_refused(answer, 400, "INVALID_REQUEST", "services.0.serviceId")
    assert r"^[A-Za-z0-9_\-]{1,64}$" in answer.json()["message"]
    slots = api.get(f"/stores/{make_store()}/slots", params={"serviceId": "film", "date": "2031-6-2"})
    assert_refused(slots, 400, "INVALID_REQUEST", "date")
    assert "YYYY-MM-DD" in slots.json()["message"]


# --- Tokens -------------------------------------------------------------------------------

def _claims(**claims: Any) -> dict[str, Any]:
    from chalicelib.auth import AUDIENCE, ISSUER

    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": unique("m"), "roles": ["member"], "iat": now, "exp": now + 600} | claims


@pytest.mark.parametrize("claims", [
    _claims(roles=5),
    _claims(roles="admin"),
    _claims(roles=[5]),
    {key: value for key, value in _claims().items() if key != "sub"},
    _claims(sub=5),
    _claims(sub=""),
    _claims(sub=["m"]),
    _claims(store=5, roles=["staff"]),
    _claims(guide={"g": 1}, roles=["guide"]),
    _claims(exp="soon"),
    _claims(exp=True),
    _claims(iat="now"),
    _claims(gv="1"),
    _claims(iss="elsewhere"),
    _claims(aud="another-app"),
    {key: value for key, value in _claims().items() if key != "aud"},
    [],
    "claims",
    None,
], ids=repr)
@pytest.mark.parametrize("path", ["/members/me", "/store/appointments", "/admin/campaigns", "/stores"])
def test_malformed_claims_in_a_signed_token_are_unauthenticated(api, claims, path):
    answer = api.get(path, signed(claims))
    if path == "/stores":
        # A public route reads a caller it cannot trust as no caller at all.
        assert answer.status_code == 200, answer.text
    else:
        assert_refused(answer, 401, "UNAUTHENTICATED")


# Deeper than Python's recursion limit, within the header sizes servers take.
@pytest.mark.parametrize("payload", [b"[" * 5_000, b'{"sub": "m", "exp": ' + HUGE_INT + b"}", b"\xff"],
                         ids=["deep", "huge", "binary"])
def test_a_hostile_token_payload_is_unauthenticated(api, payload):
    assert_refused(api.get("/members/me", signed(payload)), 401, "UNAUTHENTICATED")
    header, _, _ = signed({}).split(".")
    forged = f"{header}.{_b64(payload)}.{_b64(b'x' * 32)}"
    assert_refused(api.get("/members/me", forged), 401, "UNAUTHENTICATED")


# --- Whatever a caller puts in a path or a query -----------------------------------------------

HOSTILE = ["x" * 3000, "é" * 700, "😀" * 300, "%00", "%FF%FE", "..", "a%20b", "%F0%9F", "-", "0" * 65, "a.b.c.d.e",
           "a-x.y.999912312355.180.0123456789abcdef", "a-x.y.000101010000.20.0123456789abcdef"]


def _token_for(route: Any, callers: dict[str, str]) -> str | None:
    from chalicelib.auth import ADMIN, GUIDE, MEMBER, STAFF

    for role, name in ((MEMBER, "member"), (STAFF, "staff"), (GUIDE, "guide"), (ADMIN, "admin")):
        if role in route.roles:
            return callers[name]
    return None


@pytest.fixture(scope="module")
def every_caller(api, list_callers) -> dict[str, str]:
    from tests.coupon_helpers import guide_token

    return {**list_callers, "guide": guide_token(api, make_store())[1]}


@pytest.mark.parametrize("value", HOSTILE, ids=lambda value: value[:12])
def test_no_path_parameter_makes_a_route_fail(api, every_caller, value):
    import app

    for route in app.api.routes:
        if not route.path_params:
            continue
        path = route.path
        for name in route.path_params:
            path = path.replace("{" + name + "}", value)
        answer = api.request(route.method, path, _token_for(route, every_caller), json={})
        assert answer.status_code < 500, (route.method, route.path, answer.text)
        assert set(answer.json()) == {"code", "message"} or answer.status_code < 300, answer.text


@pytest.mark.parametrize("value", ["x" * 5000, "😀" * 500, "\x00", "\ud800", "1e309", "-0", "NaN", " 1"],
                         ids=["long", "emoji", "nul", "surrogate", "inf", "minus-zero", "nan", "space"])
def test_no_query_parameter_makes_a_route_fail(api, every_caller, value):
    import app
    from chalicelib.http import resolve

    for route in app.api.routes:
        names = ["limit", "cursor"] if route.paged else []
        query = resolve(route.query)
        names += [field.alias or name for name, field in query.model_fields.items()] if query else []
        for name in names:
            params = {name: value.encode("utf-8", "surrogatepass")}
            answer = api.request(route.method, route.path.replace("{", "").replace("}", ""), _token_for(route, every_caller),
                                 params=params)
            assert answer.status_code < 500, (route.method, route.path, name, answer.text)


@pytest.mark.parametrize("field, value", [
    ("validFrom", "0001-01-01T00:00:00+08:00"),
    ("validFrom", "0001-01-01T00:00:00"),
    ("validTo", "9999-12-31T23:59:59-23:59"),
    ("claimTo", "9999-12-31T23:59:59+14:00"),
])
def test_a_time_at_the_ends_of_the_calendar_is_an_invalid_request(api, admin, field, value):
    answer = api.post("/admin/campaigns", admin, json=campaign_body(**{field: value}))
    assert_refused(answer, 400, "INVALID_REQUEST", field)
