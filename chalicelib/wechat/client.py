"""The mini-program's WeChat APIs: login, phone number, subscription messages.

All calls go to `settings().wechat_api_base`, which offline is the sandbox.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from chalicelib.config import secret, settings
from chalicelib.errors import UnauthenticatedError, UpstreamUnavailableError
from chalicelib.wechat import token_cache

__all__ = [
    "Session",
    "WechatCodeInvalidError",
    "WechatError",
    "UserRefusedMessageError",
    "code_to_session",
    "call_with_token",
    "phone_number",
    "send_subscribe_message",
]

CODE_INVALID = 40029
CODE_USED = 40163
RATE_LIMITED = 45011
BUSY = -1
TOKEN_INVALID = (40001, 40014, 42001)
USER_REFUSED = 43101
TIMEOUT_SECONDS = 5


class WechatCodeInvalidError(UnauthenticatedError):
    code = "WECHAT_CODE_INVALID"
    default_message = "the WeChat code is invalid, expired or already used"


class WechatError(UpstreamUnavailableError):
    def __init__(self, errcode: int, errmsg: str = "") -> None:
        self.errcode = errcode
        super().__init__(f"WeChat answered {errcode}")
        self.errmsg = errmsg


class UserRefusedMessageError(Exception):
    """43101: the member has not (or no longer) accepted this template."""


@dataclass(frozen=True)
class Session:
    openid: str
    unionid: str | None
    session_key: str


@functools.cache
def _http() -> Any:
    import requests

    return requests.Session()


@functools.cache
def _wechatpy_client(appid: str) -> Any:
    """wechatpy's client, with the token from the shared cache and no unbounded auto-retry."""
    from wechatpy import WeChatClient

    class SharedTokenClient(WeChatClient):
        @property
        def access_token(self) -> str:
            return access_token()

        def fetch_access_token(self) -> dict[str, Any]:
            return {"access_token": access_token(force_refresh=True)}

    return SharedTokenClient(appid, secret=None, auto_retry=False, timeout=TIMEOUT_SECONDS)


def _check(result: dict[str, Any]) -> dict[str, Any]:
    errcode = result.get("errcode", 0)
    if errcode:
        raise WechatError(int(errcode), str(result.get("errmsg", "")))
    return result


def code_to_session(code: str) -> Session:
    """jscode2session with appid and secret (it needs no access token)."""
    current = settings()
    try:
        response = _http().get(
            f"{current.wechat_api_base}/sns/jscode2session",
            params={
                "appid": current.wechat_appid,
                "secret": secret("wechat_secret"),
                "js_code": code,
                "grant_type": "authorization_code",
            },
            timeout=TIMEOUT_SECONDS,
        )
        result = response.json()
    except Exception as exc:
        raise UpstreamUnavailableError("WeChat login is unavailable") from exc
    try:
        _check(result)
    except WechatError as exc:
        if exc.errcode in (CODE_INVALID, CODE_USED):
            raise WechatCodeInvalidError() from exc
        raise
    return Session(openid=result["openid"], unionid=result.get("unionid"), session_key=result["session_key"])


def _fetch_stable_token(force_refresh: bool = False) -> str:
    current = settings()
    response = _http().post(
        f"{current.wechat_api_base}/cgi-bin/stable_token",
        json={
            "grant_type": "client_credential",
            "appid": current.wechat_appid,
            "secret": secret("wechat_secret"),
            "force_refresh": force_refresh,
        },
        timeout=TIMEOUT_SECONDS,
    )
    result = _check(response.json())
    token_cache.store_token(current.wechat_appid, result["access_token"], result["expires_in"])
    return result["access_token"]


def access_token(force_refresh: bool = False) -> str:
    if not force_refresh:
        cached = token_cache.cached_token(settings().wechat_appid)
        if cached:
            return cached
    return _fetch_stable_token(force_refresh)


def call_with_token(path: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST an API that takes an access token, retrying once on a stale token."""
    from wechatpy.exceptions import WeChatClientException

    current = settings()
    client = _wechatpy_client(current.wechat_appid)
    url = f"{current.wechat_api_base}{path}"
    for attempt in range(2):
        token = access_token(force_refresh=attempt > 0)
        try:
            return client.post(url, params={"access_token": token}, data=payload)
        except WeChatClientException as exc:
            if exc.errcode is None:
                raise UpstreamUnavailableError("WeChat is unavailable") from exc
            if int(exc.errcode) in TOKEN_INVALID and attempt == 0:
                continue
            raise WechatError(int(exc.errcode), str(exc.errmsg)) from exc
        except Exception as exc:
            raise UpstreamUnavailableError("WeChat is unavailable") from exc
    raise AssertionError("unreachable")


def phone_number(code: str) -> str:
    """The phone number behind a getPhoneNumber button code."""
    try:
        result = call_with_token("/wxa/business/getuserphonenumber", {"code": code})
    except WechatError as exc:
        if exc.errcode in (CODE_INVALID, CODE_USED, 40013):
            raise WechatCodeInvalidError("the phone number code is invalid or used") from exc
        raise
    return result["phone_info"]["purePhoneNumber"]


def send_subscribe_message(openid: str, template_id: str, data: dict[str, str], page: str | None = None) -> None:
    payload: dict[str, Any] = {
        "touser": openid,
        "template_id": template_id,
        "data": {name: {"value": value} for name, value in data.items()},
    }
    if page:
        payload["page"] = page
    try:
        call_with_token("/cgi-bin/message/subscribe/send", payload)
    except WechatError as exc:
        if exc.errcode == USER_REFUSED:
            raise UserRefusedMessageError() from exc
        raise
