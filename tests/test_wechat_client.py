"""The WeChat client against the sandbox: shared token, early refresh, one bounded retry."""

from __future__ import annotations

import datetime as dt

import pytest

from chalicelib import clock
from chalicelib.config import settings
from chalicelib.wechat import client as wechat
from chalicelib.wechat import token_cache


def test_containers_share_one_access_token_through_dynamodb(stack):
    token_cache.AccessToken(settings().wechat_appid).delete()
    fetches = stack.sandbox.wechat.token_fetches
    first = wechat.access_token()
    second = wechat.access_token()
    assert first == second
    assert stack.sandbox.wechat.token_fetches == fetches + 1


def test_a_token_is_refreshed_five_minutes_before_it_expires(stack):
    token = wechat.access_token()
    stored = token_cache.AccessToken.get(settings().wechat_appid, consistent_read=True)
    almost_expired = dt.datetime.fromtimestamp(stored.expires_at - 299, dt.timezone.utc)
    with clock.frozen_at(almost_expired):
        assert wechat.access_token() != token
    refreshed = token_cache.AccessToken.get(settings().wechat_appid, consistent_read=True)
    assert refreshed.expires_at > stored.expires_at


def test_a_token_wechat_no_longer_accepts_is_replaced_once(stack):
    wechat.access_token()
    with stack.sandbox.wechat.lock:
        stack.sandbox.wechat.access_tokens.clear()
    fetches = stack.sandbox.wechat.token_fetches
    assert wechat.phone_number("phone:13800001111") == "13800001111"
    assert stack.sandbox.wechat.token_fetches == fetches + 1


def test_a_token_refused_every_time_gives_up_after_one_retry(stack, monkeypatch):
    fetches = stack.sandbox.wechat.token_fetches
    with stack.sandbox.wechat.lock:
        stack.sandbox.wechat.access_tokens.clear()
    monkeypatch.setattr(token_cache, "store_token", lambda *args: None)
    real_fetch = wechat._fetch_stable_token

    def fetch_and_revoke(force_refresh: bool = False) -> str:
        token = real_fetch(force_refresh)
        with stack.sandbox.wechat.lock:
            stack.sandbox.wechat.access_tokens.clear()
        return token

    monkeypatch.setattr(wechat, "_fetch_stable_token", fetch_and_revoke)
    with pytest.raises(wechat.WechatError) as raised:
        wechat.phone_number("phone:13800002222")
    assert raised.value.errcode == 40001
    assert stack.sandbox.wechat.token_fetches - fetches <= 2


def test_an_invalid_login_code_is_its_own_error(stack):
    with pytest.raises(wechat.WechatCodeInvalidError):
        wechat.code_to_session("forged")
