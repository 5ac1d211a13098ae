"""Every row of API.md's Points table, and the points jobs, over HTTP against the local stack."""

from __future__ import annotations

import datetime as dt

import requests

from chalicelib import clock
from chalicelib.points import service
from chalicelib.points.config import points_config
from tests.conftest import unique


def member_id_of(api, token: str) -> str:
    return api.get("/members/me", token).json()["memberId"]


def adjust(api, admin_token: str, member_id: str, delta: int, **kwargs):
    return api.post(
        "/admin/points/adjust", admin_token, json={"memberId": member_id, "delta": delta, "reason": "goodwill"}, **kwargs
    )


def cron(stack, job: str, now: str) -> dict:
    response = requests.post(f"{stack.sandbox_url}/sandbox/cron/{job}", json={"now": now}, timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["job"] == job and body["now"] == now
    return body["result"]


def test_a_new_member_has_no_points(api, member):
    _, token = member
    assert api.get("/points", token).json() == {"available": 0, "pending": 0, "expiring": []}
    assert api.get("/points/entries", token).json() == {"items": [], "nextCursor": None}
    assert api.get("/points").status_code == 401


def test_checkin_awards_once_per_shanghai_day(api, member):
    _, token = member
    first = api.post("/points/checkin", token)
    assert first.status_code == 200
    assert first.json() == {"awarded": points_config().checkin.points, "streak": 1, "available": 5}
    second = api.post("/points/checkin", token)
    assert second.status_code == 409 and second.json()["code"] == "ALREADY_CHECKED_IN"
    entries = api.get("/points/entries", token).json()["items"]
    assert [(e["reason"], e["delta"], e["status"]) for e in entries] == [("checkin", 5, "posted")]
    assert entries[0]["createdAt"].endswith("+08:00") and entries[0]["expiresAt"].endswith("23:59:59+08:00")


def test_a_checkin_retried_with_its_idempotency_key_answers_the_same(api, member):
    _, token = member
    headers = {"Idempotency-Key": unique("key")}
    first = api.post("/points/checkin", token, headers=headers)
    again = api.post("/points/checkin", token, headers=headers)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()


def test_an_admin_adjusts_points_and_the_member_sees_them(api, admin_token, member):
    _, token = member
    member_id = member_id_of(api, token)
    added = adjust(api, admin_token, member_id, 120)
    assert added.status_code == 200, added.text
    assert added.json()["delta"] == 120 and added.json()["entryId"].startswith("adjust#")
    taken = adjust(api, admin_token, member_id, -20)
    assert taken.status_code == 200 and taken.json()["delta"] == -20
    assert api.get("/points", token).json()["available"] == 100
    assert api.get("/members/me", token).json()["points"] == {"available": 100}
    reasons = [(e["reason"], e["delta"], e["reference"]) for e in api.get("/points/entries", token).json()["items"]]
    assert sorted(reasons) == sorted([("adjust", -20, "goodwill"), ("adjust", 120, "goodwill")])


def test_an_adjustment_below_zero_is_insufficient_points(api, admin_token, member):
    _, token = member
    member_id = member_id_of(api, token)
    adjust(api, admin_token, member_id, 10)
    refused = adjust(api, admin_token, member_id, -11)
    assert refused.status_code == 409 and refused.json()["code"] == "INSUFFICIENT_POINTS"
    assert api.get("/points", token).json()["available"] == 10


def test_an_adjustment_retried_with_its_key_moves_points_once(api, admin_token, member):
    _, token = member
    member_id = member_id_of(api, token)
    headers = {"Idempotency-Key": unique("adj")}
    first = adjust(api, admin_token, member_id, 30, headers=headers)
    again = adjust(api, admin_token, member_id, 30, headers=headers)
    assert first.json() == again.json()
    assert api.get("/points", token).json()["available"] == 30
    reused = adjust(api, admin_token, member_id, 31, headers=headers)
    assert reused.status_code == 422 and reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_adjustments_are_for_admins_and_name_the_bad_field(api, admin_token, member):
    _, token = member
    member_id = member_id_of(api, token)
    assert adjust(api, token, member_id, 10).status_code == 403
    zero = adjust(api, admin_token, member_id, 0)
    assert zero.status_code == 400 and "delta" in zero.json()["message"]
    text = api.post("/admin/points/adjust", admin_token, json={"memberId": member_id, "delta": "5", "reason": "x"})
    assert text.status_code == 400 and "delta" in text.json()["message"]
    huge = adjust(api, admin_token, member_id, 10**12)
    assert huge.status_code == 400 and "delta" in huge.json()["message"]
    unknown = adjust(api, admin_token, unique("nobody"), 10)
    assert unknown.status_code == 404 and unknown.json()["code"] == "NOT_FOUND"


def test_entries_come_newest_first_a_page_at_a_time(api, admin_token, member):
    _, token = member
    member_id = member_id_of(api, token)
    for delta in (1, 2, 3):
        adjust(api, admin_token, member_id, delta)
    first = api.get("/points/entries?limit=2", token).json()
    assert [e["delta"] for e in first["items"]] == [3, 2] and first["nextCursor"]
    rest = api.get(f"/points/entries?limit=2&cursor={first['nextCursor']}", token).json()
    assert [e["delta"] for e in rest["items"]] == [1]
    assert api.get("/points/entries?limit=0", token).status_code == 400
    forged = api.get("/points/entries?cursor=bm90LWEtY3Vyc29y", token)
    assert forged.status_code == 400 and "cursor" in forged.json()["message"]


def test_another_members_cursor_is_refused(api, admin_token, member):
    _, token = member
    member_id = member_id_of(api, token)
    for delta in (1, 2):
        adjust(api, admin_token, member_id, delta)
    cursor = api.get("/points/entries?limit=1", token).json()["nextCursor"]
    stranger = api.login(unique("stranger"))
    refused = api.get(f"/points/entries?cursor={cursor}", stranger)
    assert refused.status_code == 400 and refused.json()["code"] == "INVALID_REQUEST"


def test_completing_the_profile_earns_points_once(api, member):
    _, token = member
    profile = {"nickname": "小王", "birthday": "1990-05-01", "gender": "male", "city": "上海"}
    assert api.put("/members/me/profile", token, json=profile).status_code == 200
    assert api.put("/members/me/profile", token, json={"city": "杭州"}).status_code == 200
    me = api.get("/members/me", token).json()
    assert me["points"] == {"available": points_config().profile.points}
    entries = api.get("/points/entries", token).json()["items"]
    assert [e["reason"] for e in entries] == ["profile"]


def test_an_approved_review_earns_points(api, admin_token, member):
    _, token = member
    member_id = member_id_of(api, token)
    review = unique("review")
    for _ in range(2):
        answer = api.post("/admin/points/reviews", admin_token, json={"memberId": member_id, "reviewId": review})
        assert answer.status_code == 200
    assert api.get("/points", token).json()["available"] == points_config().review.points


def test_exchange_spends_points_on_a_coupon_in_one_step(api, admin_token, member):
    _, token = member
    member_id = member_id_of(api, token)
    now = clock.now()
    campaign = api.post("/admin/campaigns", admin_token, json={
        "title": "积分兑换 ¥10", "kind": "cash", "value": 1000, "threshold": 0, "totalStock": 10,
        "perMemberLimit": 5, "validFrom": clock.iso(now - dt.timedelta(minutes=1)),
        "validTo": clock.iso(now + dt.timedelta(days=30)), "pointsPrice": 60,
    })
    assert campaign.status_code in (200, 201), campaign.text
    campaign_id = campaign.json()["campaignId"]
    adjust(api, admin_token, member_id, 100)
    first = api.post("/points/exchange", token, json={"campaignId": campaign_id})
    assert first.status_code == 200, first.text
    assert api.get("/points", token).json()["available"] == 40
    short = api.post("/points/exchange", token, json={"campaignId": campaign_id})
    assert short.status_code == 409 and short.json()["code"] == "INSUFFICIENT_POINTS"
    assert api.get("/points", token).json()["available"] == 40


def test_pos_points_come_along_when_the_phone_is_bound(api, admin_token, member):
    _, token = member
    phone = f"139{unique('')[-8:].translate(str.maketrans('abcdef', '123456'))}"
    imported = api.post("/admin/members/offline", admin_token, json={"phone": phone, "name": "门店会员", "points": 300})
    assert imported.status_code == 201, imported.text
    again = api.post("/admin/members/offline", admin_token, json={"phone": phone, "points": 300})
    assert again.status_code == 409 and again.json()["code"] == "PHONE_IN_USE"
    api.post("/points/checkin", token)
    bound = api.post("/members/me/phone", token, json={"code": f"phone:{phone}"})
    assert bound.status_code == 200, bound.text
    assert bound.json()["phoneBound"] is True and bound.json()["points"] == {"available": 305}
    reasons = sorted(e["reason"] for e in api.get("/points/entries", token).json()["items"])
    assert reasons == ["checkin", "merge"]
    offline_id = imported.json()["memberId"]
    assert service.available(offline_id) == 0
    assert api.post("/members/me/phone", token, json={"code": f"phone:{phone}"}).json()["points"]["available"] == 305


def test_the_expiry_job_expires_due_lots_and_a_replay_changes_nothing(api, admin_token, stack):
    today = clock.shanghai_date()
    phone = f"138{unique('')[-8:].translate(str.maketrans('abcdef', '123456'))}"
    imported = api.post("/admin/members/offline", admin_token,
                        json={"phone": phone, "points": 50, "expiresAt": today.isoformat()}).json()
    offline_id = imported["memberId"]
    before_end = f"{today.isoformat()}T23:59:00+08:00"
    cron(stack, "points-expiry", before_end)
    assert service.available(offline_id) == 50
    after_end = f"{(today + dt.timedelta(days=1)).isoformat()}T00:10:00+08:00"
    first = cron(stack, "points-expiry", after_end)
    assert first["lotsExpired"] >= 1 and first["pointsExpired"] >= 50
    assert service.available(offline_id) == 0
    again = cron(stack, "points-expiry", after_end)
    assert again["lotsExpired"] == 0 and again["pointsExpired"] == 0


def test_the_lots_expiring_within_90_days_are_listed_soonest_first(api, admin_token, member):
    _, token = member
    today = clock.shanghai_date()
    soon, later = today + dt.timedelta(days=10), today + dt.timedelta(days=89)
    member_id = member_id_of(api, token)
    service.earn(member_id, 7, unique("lot"), "adjust", expires_on=later.isoformat())
    service.earn(member_id, 4, unique("lot"), "adjust", expires_on=soon.isoformat())
    adjust(api, admin_token, member_id, 100)  # expires at the end of next year: not listed
    overview = api.get("/points", token).json()
    assert overview["available"] == 111
    assert overview["expiring"] == [
        {"points": 4, "expiresAt": f"{soon.isoformat()}T23:59:59+08:00"},
        {"points": 7, "expiresAt": f"{later.isoformat()}T23:59:59+08:00"},
    ]


def test_the_ledger_audit_job_reports_checked_and_no_breaches(stack):
    result = cron(stack, "ledger-audit", clock.iso(clock.now() + dt.timedelta(days=1)))  # today's, tomorrow
    assert result["checked"] > 0 and result["breaches"] == 0, result["examples"]


def test_tier_review_moves_members_up_and_down_and_me_shows_progress(api, member, stack):
    _, token = member
    member_id = member_id_of(api, token)
    me = api.get("/members/me", token).json()
    assert me["tier"] == "explorer" and me["tierProgress"]["next"]["tier"] == "pioneer"
    for n in range(6):
        service.earn_order_points(member_id, unique("order"), 150_000, "explorer")
    progress = api.get("/members/me", token).json()["tierProgress"]
    assert progress["spendFen"] == 900_000 and progress["activity"] == 6
    now = clock.now()
    result = cron(stack, "tier-review", clock.iso(now))
    assert result["upgraded"] >= 1
    me = api.get("/members/me", token).json()
    assert (me["tier"], me["tierName"]) == ("pioneer", "探索者")
    assert me["tierProgress"]["next"]["tier"] == "geek" and me["tierProgress"]["next"]["activityToGo"] == 18
    cron(stack, "tier-review", clock.iso(now + dt.timedelta(days=400)))
    me = api.get("/members/me", token).json()
    assert me["tier"] == "explorer" and me["tierProgress"]["spendFen"] == 0


def tier_of(member_id: str) -> str:
    from chalicelib.members.models import Member

    return Member.get(member_id, consistent_read=True).tier


def spend_toward_pioneer(member_id: str) -> None:
    for _ in range(6):
        service.earn_order_points(member_id, unique("order"), 150_000, "explorer")


def test_the_whole_table_tier_review_repairs_a_member_whose_tier_is_stale(api, member, stack):
    from chalicelib.members.models import Member

    _, token = member
    member_id = member_id_of(api, token)
    spend_toward_pioneer(member_id)
    now = clock.iso(clock.now())
    cron(stack, "tier-review", now)
    assert tier_of(member_id) == "pioneer"
    Member(member_id).update(actions=[Member.tier.set("explorer")])  # as if the tier's write was lost
    cron(stack, "tier-review", now)
    assert tier_of(member_id) == "explorer"  # the nightly review reads only members whose figures moved
    repaired = cron(stack, "tier-review-all", now)  # every member, on the segmented state machine
    assert repaired["checked"] >= 1 and repaired["upgraded"] >= 1
    assert tier_of(member_id) == "pioneer"
    assert api.get("/members/me", token).json()["tier"] == "pioneer"


def test_a_members_tier_is_written_in_one_transaction_with_the_figures_it_follows_from(api, member, stack):
    from chalicelib import db
    from chalicelib.members.models import Member
    from chalicelib.points.models import PointsBalance

    _, token = member
    member_id = member_id_of(api, token)
    spend_toward_pioneer(member_id)
    with db.recording() as log:
        cron(stack, "tier-review", clock.iso(clock.now()))
    Member._get_connection(), PointsBalance._get_connection()
    mine = {
        (Member.Meta.table_name, f'{{"member_id": {{"S": "{member_id}"}}}}'),
        (PointsBalance.Meta.table_name, f'{{"account_id": {{"S": "{member_id}"}}}}'),
    }
    writes = [r for r in log if r.operation != "Query" and mine & set(r.item_keys())]
    assert [(r.operation, mine <= set(r.item_keys())) for r in writes] == [("TransactWriteItems", True)]
    assert tier_of(member_id) == "pioneer"


def test_a_profile_reward_lost_with_its_write_is_paid_once_by_the_retry(api, member):
    from chalicelib import db

    _, token = member
    profile = {"nickname": "小李", "birthday": "1991-02-03", "gender": "female", "city": "苏州"}
    events = db.connection().client.meta.events
    lost: list[int] = []

    def lose_the_first_transaction(**_: object) -> None:
        if not lost:
            lost.append(1)
            raise ConnectionError("the transaction's answer was lost")

    events.register_first("before-call.dynamodb.TransactWriteItems", lose_the_first_transaction)
    try:
        first = api.put("/members/me/profile", token, json=profile)
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", lose_the_first_transaction)
    assert lost and first.status_code == 500
    again = api.put("/members/me/profile", token, json=profile)
    assert again.status_code == 200, again.text
    assert again.json()["points"] == {"available": points_config().profile.points}
    api.put("/members/me/profile", token, json={"city": "杭州"})
    entries = api.get("/points/entries", token).json()["items"]
    assert [e["reason"] for e in entries] == ["profile"]


def test_get_me_is_one_round_trip_and_login_two(api, member):
    from chalicelib import db
    from chalicelib.usecases import me

    openid, token = member
    member_id = member_id_of(api, token)
    with db.recording() as log:
        me.profile(member_id)
    assert [r.operation for r in log] == ["BatchGetItem"]
    with db.recording() as log:
        me.login(f"dev:{openid}")
    assert [r.operation for r in log] == ["BatchGetItem", "BatchGetItem"]
