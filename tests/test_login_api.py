"""Login and the member's own record, over HTTP against the local stack."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.conftest import unique


def test_a_first_login_creates_a_member_and_a_second_finds_it(api):
    openid = unique("alice")
    first = api.post("/auth/login", json={"code": f"dev:{openid}"})
    second = api.post("/auth/login", json={"code": f"dev:{openid}"})
    assert first.status_code == 200 and second.status_code == 200
    assert first.json()["isNew"] is True and second.json()["isNew"] is False
    assert first.json()["member"]["memberId"] == second.json()["member"]["memberId"]
    assert first.json()["expiresIn"] > 0


def test_the_token_opens_the_members_own_record(api):
    openid = unique("bob")
    login = api.post("/auth/login", json={"code": f"dev:{openid}"}).json()
    me = api.get("/members/me", login["token"])
    assert me.status_code == 200
    body = me.json()
    assert body["memberId"] == login["member"]["memberId"]
    assert body["tier"] == "explorer" and body["tierName"] == "体验官"
    assert body["points"] == {"available": 0}
    assert body["phoneBound"] is False and body["guide"] is None
    assert body["createdAt"].endswith("+08:00")


def test_an_invalid_code_is_refused_with_wechat_code_invalid(api):
    response = api.post("/auth/login", json={"code": "not-a-real-code"})
    assert response.status_code == 401
    assert response.json()["code"] == "WECHAT_CODE_INVALID"


def test_malformed_json_and_wrong_types_name_the_field(api):
    bad_json = api.post("/auth/login", data=b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    assert bad_json.json()["code"] == "INVALID_REQUEST" and "body" in bad_json.json()["message"]
    wrong_type = api.post("/auth/login", json={"code": 12345})
    assert wrong_type.status_code == 400 and "code" in wrong_type.json()["message"]
    missing = api.post("/auth/login", json={})
    assert missing.status_code == 400 and "code" in missing.json()["message"]


def test_twelve_simultaneous_first_logins_make_one_member(api):
    openid = unique("rush")
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: api.post("/auth/login", json={"code": f"dev:{openid}"}), range(12)))
    assert [a.status_code for a in answers] == [200] * 12
    assert len({a.json()["member"]["memberId"] for a in answers}) == 1
    assert sum(a.json()["isNew"] for a in answers) == 1


def test_missing_and_tampered_tokens_are_unauthenticated(api, member):
    _, token = member
    assert api.get("/members/me").status_code == 401
    assert api.get("/members/me", "garbage").json()["code"] == "UNAUTHENTICATED"
    version, payload, signature = token.split(".")
    tampered = f"{version}.{payload[:-2]}AA.{signature}"
    assert api.get("/members/me", tampered).status_code == 401
    resigned = f"{version}.{payload}.{signature[:-2]}AA"
    assert api.get("/members/me", resigned).status_code == 401


def test_a_member_is_forbidden_admin_routes(api, member):
    _, token = member
    response = api.post("/admin/staff", token, json={"openid": "x", "role": "admin", "name": "x"})
    assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN"


def test_a_plain_curl_body_is_read_as_json(api):
    response = api.post(
        "/auth/login",
        data=f'{{"code": "dev:{unique("curl")}"}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200 and response.json()["isNew"] is True
