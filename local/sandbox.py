"""The sandbox: plays WeChat, WeChat Pay (local/wxpay_sandbox.py) and the couriers (local/courier_sandbox.py) on loopback.

It speaks WeChat's real paths and JSON shapes, so the API's code paths are the
production ones with only the base URL changed. Dev codes:

- login `dev:<openid>` (unionid `u-<openid>`), reusable; anything else is 40029.
- phone `phone:<11 digits>`.

`/sandbox/outage` makes WeChat Pay or a courier fail as they do (local/outages.py).

`POST /sandbox/cron/{job}` runs a scheduled handler of the app with an
EventBridge-shaped event whose `time` is `now`: ISO-8601 with an offset (a time
without one is refused rather than guessed), the current time when absent. A
job on the segmented state machine (a scheduled one, or a whole-table job run
on demand: `tier-review-all`, `identity-rekey`, `expiry-index`) answers its
execution's output once it ends.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from local.courier_sandbox import CourierState, register as register_couriers
from local.outages import register as register_outages
from local.wxpay_sandbox import WxPayKeys, WxPayState, register as register_wxpay

__all__ = ["Sandbox", "create_app"]

_PHONE_CODE = re.compile(r"^phone:(1\d{10})$")
TOKEN_SECONDS = 7200


class _WechatState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.access_tokens: dict[str, float] = {}
        self.messages: list[dict[str, Any]] = []
        self.refusing: set[tuple[str, str]] = set()
        self.token_fetches = 0
        # What WeChat gave out, by kind (openid, unionid, session_key, access_token, phone): never to be logged.
        self.issued: dict[str, set[str]] = collections.defaultdict(set)

    def issue(self, **values: str) -> None:
        with self.lock:
            for kind, value in values.items():
                self.issued[kind].add(value)


def _event(job: str, moment: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": moment,
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:000000000000:rule/siyu-local-{job}"],
        "detail": {},
    }


def create_app(app_module: Any, lambda_context: Callable[[str], Any] | None = None,
               wxpay_keys: WxPayKeys | None = None, couriers: CourierState | None = None) -> Flask:
    """The sandbox as a WSGI app; `app_module` is siyu's `app` module (for cron).

    WeChat Pay signs with `wxpay_keys`, new ones when none are given; the
    couriers share the secrets and push address in `couriers`.
    """
    sandbox = Flask("siyu-sandbox")
    sandbox.config["outages"] = register_outages(sandbox)  # first: an outage answers before any service
    wechat = _WechatState()
    sandbox.config["wechat"] = wechat
    sandbox.config["wxpay_keys"] = wxpay_keys = wxpay_keys or WxPayKeys.generate()
    sandbox.config["wxpay"] = wxpay = WxPayState()
    register_wxpay(sandbox, wxpay_keys, wxpay)

    def valid_token() -> bool:
        token = request.args.get("access_token", "")
        with wechat.lock:
            expires = wechat.access_tokens.get(token)
        return expires is not None and expires > dt.datetime.now(dt.timezone.utc).timestamp()

    def error(code: int, message: str) -> Any:
        return jsonify({"errcode": code, "errmsg": message})

    sandbox.config["couriers"] = couriers = couriers or CourierState()
    register_couriers(sandbox, couriers, valid_token)

    @sandbox.get("/sns/jscode2session")
    def jscode2session() -> Any:
        code = request.args.get("js_code", "")
        if not request.args.get("appid") or not request.args.get("secret"):
            return error(40013, "invalid appid")
        if not code.startswith("dev:") or len(code) <= 4:
            return error(40029, "invalid code")
        openid, session_key = code[4:], secrets.token_urlsafe(16)
        wechat.issue(openid=openid, unionid=f"u-{openid}", session_key=session_key)
        return jsonify({"openid": openid, "unionid": f"u-{openid}", "session_key": session_key})

    @sandbox.post("/cgi-bin/stable_token")
    def stable_token() -> Any:
        body = request.get_json(force=True, silent=True) or {}
        if body.get("grant_type") != "client_credential" or not body.get("appid") or not body.get("secret"):
            return error(40013, "invalid appid")
        token = secrets.token_urlsafe(24)
        wechat.issue(access_token=token)
        with wechat.lock:
            wechat.token_fetches += 1
            wechat.access_tokens[token] = dt.datetime.now(dt.timezone.utc).timestamp() + TOKEN_SECONDS
        return jsonify({"access_token": token, "expires_in": TOKEN_SECONDS})

    @sandbox.post("/wxa/business/getuserphonenumber")
    def phone_number() -> Any:
        if not valid_token():
            return error(40001, "invalid credential, access_token is invalid or not latest")
        match = _PHONE_CODE.match((request.get_json(force=True, silent=True) or {}).get("code", ""))
        if not match:
            return error(40029, "invalid code")
        phone = match.group(1)
        wechat.issue(phone=phone)
        return jsonify({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": phone,
                "purePhoneNumber": phone,
                "countryCode": "86",
                "watermark": {"timestamp": int(dt.datetime.now().timestamp()), "appid": "sandbox"},
            },
        })

    @sandbox.post("/cgi-bin/message/subscribe/send")
    def subscribe_send() -> Any:
        if not valid_token():
            return error(40001, "invalid credential, access_token is invalid or not latest")
        body = request.get_json(force=True, silent=True) or {}
        if not body.get("touser") or not body.get("template_id") or not isinstance(body.get("data"), dict):
            return error(47003, "argument invalid")
        with wechat.lock:
            if (body["touser"], body["template_id"]) in wechat.refusing:
                return error(43101, "user refuse to accept the msg")
            wechat.messages.append({**body, "sentAt": dt.datetime.now(dt.timezone.utc).isoformat()})
        return jsonify({"errcode": 0, "errmsg": "ok"})

    @sandbox.get("/sandbox/wechat/messages")
    def messages() -> Any:
        openid = request.args.get("openid")
        with wechat.lock:
            found = [m for m in wechat.messages if openid is None or m["touser"] == openid]
        return jsonify({"items": found})

    @sandbox.post("/sandbox/wechat/refuse")
    def refuse() -> Any:
        body = request.get_json(force=True, silent=True) or {}
        with wechat.lock:
            wechat.refusing.add((body.get("openid", ""), body.get("templateId", "")))
        return jsonify({"refusing": True})

    @sandbox.post("/sandbox/cron/<job>")
    def cron(job: str) -> Any:
        handler = _job_handler(app_module, job)
        if handler is None and job not in _whole_table_jobs():
            return jsonify({"code": "NOT_FOUND", "message": f"no job {job}"}), 404
        try:
            moment = _cron_moment(request.get_data())
        except InvalidRequestError as exc:
            return jsonify({"code": "INVALID_REQUEST", "message": str(exc)}), 400
        if handler is None:
            # A whole-table job run on demand: started on the segmented machine, as an operator would.
            from chalicelib import clock, segments

            result = segments.start(job, clock.parse_iso(moment))
        else:
            result = handler(_event(job, moment), lambda_context(job) if lambda_context else None)
        if isinstance(result, dict) and "execution" in result:
            from local.segmented import wait

            result = wait(result["execution"])
        return jsonify({"job": job, "now": moment, "result": result})

    return sandbox


class InvalidRequestError(ValueError):
    """A sandbox request the caller got wrong; the message names the field."""


def _cron_moment(raw: bytes) -> str:
    """`now` of a cron request's body: ISO-8601 with an offset, the current time when absent or null."""
    moment = _json_object(raw).get("now")
    if moment is None:
        return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not isinstance(moment, str) or _offset_of(moment) is None:
        raise InvalidRequestError("now must be an ISO-8601 time with an offset, e.g. 2027-01-01T00:10:00+08:00")
    return moment


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequestError("body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("body must be a JSON object")
    return body


def _offset_of(text: str) -> dt.timedelta | None:
    try:
        return dt.datetime.fromisoformat(text).utcoffset()
    except ValueError:
        return None


def _whole_table_jobs() -> set[str]:
    from chalicelib.usecases.whole_table_jobs import JOBS

    return set(JOBS)


def _job_handler(app_module: Any, job: str) -> Callable[..., Any] | None:
    for source in app_module.app.event_sources:
        if getattr(source, "name", None) == job:
            return getattr(app_module, source.handler_string.rsplit(".", 1)[-1])
    return None


class Sandbox:
    """The sandbox served on a loopback port in a background thread."""

    def __init__(self, app_module: Any, port: int, lambda_context: Callable[[str], Any] | None = None,
                 wxpay_keys: WxPayKeys | None = None, couriers: CourierState | None = None) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.app = create_app(app_module, lambda_context, wxpay_keys, couriers)
        self.port = port
        self._server = make_server("127.0.0.1", port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def wechat(self) -> _WechatState:
        return self.app.config["wechat"]

    @property
    def wxpay(self) -> WxPayState:
        return self.app.config["wxpay"]

    @property
    def couriers(self) -> CourierState:
        return self.app.config["couriers"]

    @property
    def wxpay_keys(self) -> WxPayKeys:
        return self.app.config["wxpay_keys"]

    def start(self) -> Sandbox:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
