"""Subscription messages: one credit each, at most once per key, refusals and failures."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from chalicelib.config import settings
from chalicelib.messaging import service as messaging
from tests.conftest import unique


def _member(api):
    openid = unique("sub")
    login = api.post("/auth/login", json={"code": f"dev:{openid}"}).json()
    return openid, login["member"]["memberId"]


def _sent_to(stack, openid):
    return requests.get(f"{stack.sandbox_url}/sandbox/wechat/messages", params={"openid": openid}, timeout=5).json()["items"]


def test_a_message_is_sent_once_per_key_and_spends_one_credit(stack, api):
    openid, member_id = _member(api)
    template = settings().template_order_status
    messaging.accept(member_id, [template, template])
    key = unique("order") + "#paid"
    assert messaging.send_once(key, member_id, openid, template, {"thing1": "已支付"}) == messaging.SENT
    assert messaging.send_once(key, member_id, openid, template, {"thing1": "已支付"}) == messaging.ALREADY_SENT
    assert len(_sent_to(stack, openid)) == 1
    assert messaging.credits(member_id)["credits"][template] == 1


def test_without_a_credit_nothing_is_sent(stack, api):
    openid, member_id = _member(api)
    template = settings().template_order_status
    assert messaging.send_once(unique("k"), member_id, openid, template, {"thing1": "x"}) == messaging.NO_CREDIT
    assert _sent_to(stack, openid) == []


def test_simultaneous_sends_of_one_key_deliver_one_message(stack, api):
    openid, member_id = _member(api)
    template = settings().template_coupon_expiry
    messaging.accept(member_id, [template] * 3)
    key = unique("coupon")
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: messaging.send_once(key, member_id, openid, template, {"a": "b"}), range(6)))
    assert results.count(messaging.SENT) == 1
    assert len(_sent_to(stack, openid)) == 1
    assert messaging.credits(member_id)["credits"][template] == 2


def test_a_refusal_uses_the_credit_and_is_not_retried(stack, api):
    openid, member_id = _member(api)
    template = settings().template_points_expiry
    messaging.accept(member_id, [template])
    requests.post(f"{stack.sandbox_url}/sandbox/wechat/refuse", json={"openid": openid, "templateId": template}, timeout=5)
    key = unique("points")
    assert messaging.send_once(key, member_id, openid, template, {"a": "b"}) == messaging.REFUSED
    assert messaging.send_once(key, member_id, openid, template, {"a": "b"}) == messaging.ALREADY_SENT
    assert messaging.credits(member_id)["credits"][template] == 0


def test_a_failed_send_returns_the_credit_so_a_later_run_can_retry(stack, api, monkeypatch):
    from chalicelib.errors import UpstreamUnavailableError
    from chalicelib.wechat import client as wechat

    openid, member_id = _member(api)
    template = settings().template_order_status
    messaging.accept(member_id, [template])
    key = unique("flaky")

    def down(*args, **kwargs):
        raise UpstreamUnavailableError()

    monkeypatch.setattr(wechat, "send_subscribe_message", down)
    assert messaging.send_once(key, member_id, openid, template, {"a": "b"}) == messaging.FAILED
    assert messaging.credits(member_id)["credits"][template] == 1
    monkeypatch.undo()
    assert messaging.send_once(key, member_id, openid, template, {"a": "b"}) == messaging.SENT


def test_a_message_sent_by_a_job_is_dated_by_the_jobs_moment(stack, api):
    import datetime as dt

    from chalicelib import clock
    from chalicelib.messaging.models import SentMessage

    openid, member_id = _member(api)
    template = settings().template_order_status
    messaging.accept(member_id, [template])
    key = unique("reminder")
    moment = clock.parse_iso("2027-03-01T09:00:00+08:00")
    assert messaging.send_once(key, member_id, openid, template, {"thing1": "x"}, at=moment) == messaging.SENT
    assert SentMessage.get(key).created_at == moment.astimezone(dt.timezone.utc)
