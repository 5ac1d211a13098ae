"""Profile, phone, deletion, subscriptions and roles over HTTP against the local stack."""

from __future__ import annotations

import json

from tests.conftest import unique


def test_a_profile_update_is_saved_and_validated(api, member):
    _, token = member
    saved = api.put("/members/me/profile", token, json={"nickname": "小米粉", "city": "上海"})
    assert saved.status_code == 200
    assert saved.json()["nickname"] == "小米粉" and saved.json()["city"] == "上海"
    assert api.get("/members/me", token).json()["nickname"] == "小米粉"

    bad_date = api.put("/members/me/profile", token, json={"birthday": "1990-13-40"})
    assert bad_date.status_code == 400 and "birthday" in bad_date.json()["message"]
    bad_gender = api.put("/members/me/profile", token, json={"gender": "robot"})
    assert bad_gender.status_code == 400 and "gender" in bad_gender.json()["message"]
    nothing = api.put("/members/me/profile", token, json={})
    assert nothing.status_code == 400
    assert api.get("/members/me", token).json()["city"] == "上海"


def test_binding_a_phone_shows_it_to_its_owner_only_and_keeps_it_out_of_logs(api, member, log_stream):
    _, token = member
    phone = "139" + unique("")[-8:].translate(str.maketrans("abcdef", "123456"))
    bound = api.post("/members/me/phone", token, json={"code": f"phone:{phone}"})
    assert bound.status_code == 200, bound.text
    assert bound.json()["phoneBound"] is True and bound.json()["phone"] == phone
    lines = [json.loads(line) for line in log_stream().splitlines()]
    assert any(line["message"] == "request" and line.get("status") == 200 for line in lines), "heard the request"
    assert phone not in log_stream()


def test_a_phone_bound_to_another_member_is_refused(api):
    phone = "138" + unique("")[-8:].translate(str.maketrans("abcdef", "123456"))
    first = api.login(unique("first"))
    second = api.login(unique("second"))
    assert api.post("/members/me/phone", first, json={"code": f"phone:{phone}"}).status_code == 200
    taken = api.post("/members/me/phone", second, json={"code": f"phone:{phone}"})
    assert taken.status_code == 409 and taken.json()["code"] == "PHONE_IN_USE"
    assert api.get("/members/me", second).json()["phoneBound"] is False


def test_a_bad_phone_code_is_refused(api, member):
    _, token = member
    refused = api.post("/members/me/phone", token, json={"code": "not-a-phone-code"})
    assert refused.status_code == 401 and refused.json()["code"] == "WECHAT_CODE_INVALID"


def test_deleting_the_account_erases_it_and_a_new_login_starts_afresh(api):
    openid = unique("leaver")
    login = api.post("/auth/login", json={"code": f"dev:{openid}"}).json()
    token = login["token"]
    api.put("/members/me/profile", token, json={"nickname": "走了"})
    assert api.delete("/members/me", token).status_code == 204
    assert api.get("/members/me", token).status_code == 401

    from chalicelib.members.models import Member

    erased = Member.get(login["member"]["memberId"], consistent_read=True)
    assert erased.deleted_at is not None and erased.nickname is None and erased.openid is None

    again = api.post("/auth/login", json={"code": f"dev:{openid}"}).json()
    assert again["isNew"] is True and again["member"]["memberId"] != login["member"]["memberId"]


def test_subscription_templates_are_public_and_acceptances_become_credits(api, member):
    _, token = member
    templates = api.get("/config/subscriptions").json()["templates"]
    assert set(templates) == {"appointmentReminder", "orderStatus", "couponExpiry", "pointsExpiry"}
    reminder = templates["appointmentReminder"]
    accepted = api.post("/members/me/subscriptions", token, json={"templateIds": [reminder, reminder]})
    assert accepted.status_code == 200
    assert api.get("/members/me/subscriptions", token).json()["credits"][reminder] == 2
    unknown = api.post("/members/me/subscriptions", token, json={"templateIds": ["tpl-made-up"]})
    assert unknown.status_code == 400 and "templateIds" in unknown.json()["message"]


def test_roles_granted_by_an_admin_apply_at_the_next_login(api, admin_token):
    openid = unique("clerk")
    before = api.login(openid)
    granted = api.post(
        "/admin/staff", admin_token, json={"openid": openid, "role": "staff", "storeId": "sh-test", "name": "店员"}
    )
    assert granted.status_code == 200 and granted.json()["roles"] == ["staff"]
    assert api.post("/admin/staff", before, json={"openid": "x", "role": "admin", "name": "x"}).status_code == 403

    from chalicelib.auth import verify_token

    after = verify_token(api.login(openid))
    assert after.has("staff") and after.has("member") and after.store_id == "sh-test"


def test_staff_and_guide_roles_need_a_store(api, admin_token):
    missing = api.post("/admin/staff", admin_token, json={"openid": unique("g"), "role": "guide", "name": "导购"})
    assert missing.status_code == 400 and "storeId" in missing.json()["message"]
    bad_role = api.post("/admin/staff", admin_token, json={"openid": unique("g"), "role": "boss", "name": "x"})
    assert bad_role.status_code == 400 and "role" in bad_role.json()["message"]


def test_a_guide_scene_binds_the_member_and_the_first_binding_wins(api, admin_token):
    first_guide, second_guide = unique("guide"), unique("guide")
    for guide_id in (first_guide, second_guide):
        api.post(
            "/admin/staff",
            admin_token,
            json={"openid": f"o-{guide_id}", "role": "guide", "storeId": "sh-test", "name": "导购", "guideId": guide_id},
        )
    openid = unique("customer")
    first = api.post("/auth/login", json={"code": f"dev:{openid}", "scene": f"g={first_guide}"}).json()
    assert first["member"]["guide"] == {"guideId": first_guide, "name": "导购", "storeId": "sh-test"}
    second = api.post("/auth/login", json={"code": f"dev:{openid}", "scene": f"g={second_guide}"}).json()
    assert second["member"]["guide"]["guideId"] == first_guide


def test_an_existing_member_without_a_guide_is_bound_by_a_later_scene(api, admin_token):
    guide_id = unique("guide")
    api.post(
        "/admin/staff",
        admin_token,
        json={"openid": f"o-{guide_id}", "role": "guide", "storeId": "sh-test", "name": "小王", "guideId": guide_id},
    )
    openid = unique("walkin")
    api.login(openid)
    later = api.post("/auth/login", json={"code": f"dev:{openid}", "scene": f"g={guide_id}"}).json()
    assert later["member"]["guide"]["guideId"] == guide_id


def test_an_unknown_guide_or_junk_scene_changes_nothing(api):
    login = api.post("/auth/login", json={"code": f"dev:{unique('x')}", "scene": "g=nobody-here&r=<script>"})
    assert login.status_code == 200 and login.json()["member"]["guide"] is None


def test_a_referral_scene_records_the_referrer_on_the_new_member(api):
    referrer = api.post("/auth/login", json={"code": f"dev:{unique('ref')}"}).json()["member"]["memberId"]
    referred = api.post("/auth/login", json={"code": f"dev:{unique('new')}", "scene": f"r={referrer}"}).json()

    from chalicelib.members.models import Member

    assert Member.get(referred["member"]["memberId"]).referrer_id == referrer


def test_simultaneous_guide_grants_leave_one_guide(api, admin_token):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from chalicelib.members.models import Guide, RoleGrant

    openid = unique("guide")
    body = {"openid": openid, "role": "guide", "storeId": "sh-test", "name": "导购"}
    start = Barrier(8)

    def grant(_: int) -> int:
        start.wait()
        return api.post("/admin/staff", admin_token, json=body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(grant, range(8)))
    assert answers == [200] * 8
    guides = [guide.guide_id for guide in Guide.scan(Guide.openid == openid, consistent_read=True)]
    assert guides == [RoleGrant.get(openid, consistent_read=True).guide_id]
