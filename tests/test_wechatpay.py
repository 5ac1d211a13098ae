"""WeChat Pay APIv3 (chalicelib.wechat.pay): signatures, the merchant API against the sandbox, notifications.

The sandbox checks the merchant's signature on every request and signs its answers
with its own platform key, so what passes here is what WeChat Pay would accept.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from chalicelib import clock, config
from chalicelib.wechat import pay
from local.wxpay_sandbox import WxPayKeys
from tests.conftest import unique

APPID = "wx-demo-appid"


def _verifies(public_pem: str, message: str | bytes, signature: str) -> bool:
    from cryptography.exceptions import InvalidSignature

    key = serialization.load_pem_public_key(public_pem.encode())
    data = message.encode() if isinstance(message, str) else message
    try:
        key.verify(base64.b64decode(signature), data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
    except InvalidSignature:
        return False
    return True


# --- Without the stack: the merchant's own keys in the environment --------------------------

@pytest.fixture(scope="module")
def own_keys() -> WxPayKeys:
    return WxPayKeys.generate()


@pytest.fixture
def keys(own_keys: WxPayKeys, monkeypatch: pytest.MonkeyPatch) -> Iterator[WxPayKeys]:
    """Settings that pay with `own_keys` (whatever the session's stack uses); forgotten before and after."""
    for name, value in own_keys.environment("https://example.invalid/webhooks/wechatpay",
                                            api_base="https://api.mch.example.invalid").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SIYU_WECHAT_APPID", APPID)
    config.reset_settings()
    yield own_keys
    monkeypatch.undo()
    config.reset_settings()


def test_payment_params_are_what_wx_request_payment_takes_signed_by_the_merchant(keys):
    params = pay.payment_params("wx031522123456789abcdef0123456789")

    assert params["package"] == "prepay_id=wx031522123456789abcdef0123456789" and params["signType"] == "RSA"
    assert params["timeStamp"].isdigit() and abs(int(params["timeStamp"]) - time.time()) < 5
    assert len(params["nonceStr"]) == 32
    four_lines = f"{APPID}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    assert _verifies(keys.merchant_public_pem, four_lines, params["paySign"])
    assert not _verifies(keys.merchant_public_pem, four_lines.replace(APPID, "wx-other"), params["paySign"])


def test_two_payment_params_never_share_a_nonce(keys):
    assert pay.payment_params("wx1")["nonceStr"] != pay.payment_params("wx1")["nonceStr"]


def test_a_request_is_authorized_by_the_merchant_signature_over_method_path_time_nonce_and_body(keys):
    body = '{"mchid":"1900000001"}'
    header = pay.authorization("POST", "/v3/pay/transactions/out-trade-no/o1/close", body,
                               timestamp=1733200000, nonce="n0nce")

    scheme, _, rest = header.partition(" ")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    assert fields["mchid"] == "1900000001" and fields["serial_no"] == keys.merchant_serial
    assert fields["timestamp"] == "1733200000" and fields["nonce_str"] == "n0nce"
    signed = f"POST\n/v3/pay/transactions/out-trade-no/o1/close\n1733200000\nn0nce\n{body}\n"
    assert _verifies(keys.merchant_public_pem, signed, fields["signature"])


class _Session:
    """Stands in for requests.Session: answers `answers` in turn (an exception is raised)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0

    def request(self, method: str, url: str, **options: Any) -> requests.Response:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers.update(headers or {})
    return response


def test_a_transport_error_is_tried_once_more(keys, monkeypatch):
    body = b'{"prepay_id":"wx-again"}'
    session = _Session(requests.ConnectionError("reset"), _response(200, body, keys.signature_headers(body)))
    monkeypatch.setattr(pay, "_http", lambda: session)

    assert pay.jsapi_prepay("o-retry", "耳机", 100, "o-openid", clock.now()) == "wx-again"
    assert session.calls == 2


def test_two_transport_errors_make_wechat_pay_unavailable(keys, monkeypatch):
    session = _Session(requests.Timeout("read"), requests.ConnectionError("refused"))
    monkeypatch.setattr(pay, "_http", lambda: session)

    with pytest.raises(pay.WxPayError) as failed:
        pay.query_order("o-down")
    assert session.calls == 2 and failed.value.status == 503


@pytest.mark.parametrize("headers", [
    pytest.param(lambda keys, body: {}, id="unsigned"),
    pytest.param(lambda keys, body: WxPayKeys.generate().signature_headers(body) | {
        "Wechatpay-Serial": keys.public_key_id}, id="signed-by-another-key"),
    pytest.param(lambda keys, body: keys.signature_headers(body) | {"Wechatpay-Serial": "PUB_KEY_ID_OTHER"},
                 id="another-key-id"),
    pytest.param(lambda keys, body: keys.signature_headers(b'{"trade_state":"NOTPAY"}'), id="other-body"),
])
def test_an_answer_that_does_not_verify_is_not_believed(keys, monkeypatch, headers):
    body = b'{"trade_state":"SUCCESS","out_trade_no":"o-forged"}'
    monkeypatch.setattr(pay, "_http", lambda: _Session(_response(200, body, headers(keys, body))))

    with pytest.raises(pay.WxPayError):
        pay.query_order("o-forged")


def test_a_verified_refusal_carries_its_status_code_and_message(keys, monkeypatch):
    body = json.dumps({"code": "NOT_ENOUGH", "message": "基本账户余额不足"}, ensure_ascii=False).encode()
    monkeypatch.setattr(pay, "_http", lambda: _Session(_response(400, body, keys.signature_headers(body))))

    with pytest.raises(pay.WxPayRefusedError) as refused:
        pay.refund("o1", "o1-r1", 100, 100, "不想要了")
    assert (refused.value.status, refused.value.code, refused.value.message) == (400, "NOT_ENOUGH", "基本账户余额不足")


# --- Notifications ----------------------------------------------------------------------------

TRANSACTION = {
    "mchid": "1900000001", "appid": APPID, "out_trade_no": "o20261203x1", "transaction_id": "4200" + "0" * 24,
    "trade_type": "JSAPI", "trade_state": "SUCCESS", "amount": {"total": 129900, "payer_total": 129900},
}


def test_a_genuine_notification_is_accepted_and_its_resource_decrypted(keys):
    headers, body = keys.notification("TRANSACTION.SUCCESS", TRANSACTION)

    notification = pay.verify_notification(headers, body, clock.now())
    assert notification.event_type == "TRANSACTION.SUCCESS"
    assert notification.resource == TRANSACTION
    assert notification.id == json.loads(body)["id"] and notification.create_time == json.loads(body)["create_time"]


def test_notification_headers_are_found_whatever_their_case(keys):
    headers, body = keys.notification("REFUND.SUCCESS", {"out_refund_no": "o1-r1", "refund_status": "SUCCESS"})

    lowered = {name.lower(): value for name, value in headers.items()}
    assert pay.verify_notification(lowered, body, clock.now()).resource["refund_status"] == "SUCCESS"


def _signed(keys: WxPayKeys, body: bytes) -> tuple[dict[str, str], bytes]:
    """A body WeChat Pay's key really signed, so only what it says can be wrong."""
    return keys.notification_headers(body), body


def _with_resource(keys: WxPayKeys, **changes: Any) -> tuple[dict[str, str], bytes]:
    _, body = keys.notification("TRANSACTION.SUCCESS", TRANSACTION)
    envelope = json.loads(body)
    envelope["resource"].update(changes)
    return _signed(keys, json.dumps(envelope).encode())


def _ciphertext_changed(keys: WxPayKeys) -> tuple[dict[str, str], bytes]:
    _, body = keys.notification("TRANSACTION.SUCCESS", TRANSACTION)
    sealed = bytearray(base64.b64decode(json.loads(body)["resource"]["ciphertext"]))
    sealed[3] ^= 0x01
    return _with_resource(keys, ciphertext=base64.b64encode(bytes(sealed)).decode())


def _changed_headers(**changes: str) -> Callable[[WxPayKeys], tuple[dict[str, str], bytes]]:
    def forge(keys: WxPayKeys) -> tuple[dict[str, str], bytes]:
        headers, body = keys.notification("TRANSACTION.SUCCESS", TRANSACTION)
        return {**headers, **changes}, body
    return forge


def _without(header: str) -> Callable[[WxPayKeys], tuple[dict[str, str], bytes]]:
    def forge(keys: WxPayKeys) -> tuple[dict[str, str], bytes]:
        headers, body = keys.notification("TRANSACTION.SUCCESS", TRANSACTION)
        return {name: value for name, value in headers.items() if name != header}, body
    return forge


def _probe(keys: WxPayKeys) -> tuple[dict[str, str], bytes]:
    headers, body = keys.notification("TRANSACTION.SUCCESS", TRANSACTION)
    return {**headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]}, body


def _body_changed_after_signing(keys: WxPayKeys) -> tuple[dict[str, str], bytes]:
    headers, body = keys.notification("TRANSACTION.SUCCESS", TRANSACTION)
    return headers, body.replace(b'"TRANSACTION.SUCCESS"', b'"REFUND.SUCCESS"')


def _signed_by_another_key(keys: WxPayKeys) -> tuple[dict[str, str], bytes]:
    impostor = dataclasses.replace(keys, platform_private_pem=WxPayKeys.generate().platform_private_pem)
    return impostor.notification("TRANSACTION.SUCCESS", TRANSACTION)


@pytest.mark.parametrize("forge", [
    pytest.param(_probe, id="a-signature-probe"),
    pytest.param(lambda keys: keys.notification("TRANSACTION.SUCCESS", TRANSACTION, timestamp=int(time.time()) - 301),
                 id="stale-by-301-seconds"),
    pytest.param(lambda keys: keys.notification("TRANSACTION.SUCCESS", TRANSACTION, timestamp=int(time.time()) + 301),
                 id="from-the-future"),
    pytest.param(_changed_headers(**{"Wechatpay-Timestamp": "soon"}), id="a-timestamp-that-is-no-integer"),
    pytest.param(_body_changed_after_signing, id="a-body-changed-after-signing"),
    pytest.param(_signed_by_another_key, id="signed-by-another-key"),
    pytest.param(_changed_headers(**{"Wechatpay-Signature": base64.b64encode(b"\0" * 256).decode()}),
                 id="a-signature-of-zeros"),
    pytest.param(_changed_headers(**{"Wechatpay-Serial": "PUB_KEY_ID_0114999999999999999999999999999"}),
                 id="a-wrong-serial"),
    pytest.param(_ciphertext_changed, id="a-ciphertext-changed"),
    pytest.param(lambda keys: _with_resource(keys, associated_data="refund"), id="other-associated-data"),
    pytest.param(lambda keys: _with_resource(keys, algorithm="AEAD_SM4_GCM"), id="another-algorithm"),
    pytest.param(lambda keys: _with_resource(keys, ciphertext="not base64!"), id="a-ciphertext-not-base64"),
    pytest.param(lambda keys: _signed(keys, b"<xml>TRANSACTION.SUCCESS</xml>"), id="a-body-not-json"),
    pytest.param(lambda keys: _signed(keys, b'{"id":"1","event_type":"TRANSACTION.SUCCESS","create_time":"x"}'),
                 id="a-body-without-resource"),
    pytest.param(lambda keys: _signed(keys, json.dumps({
        "id": "1", "event_type": "TRANSACTION.SUCCESS", "create_time": "x",
        "resource": keys.encrypt([1, 2], associated_data="transaction")}).encode()), id="a-plaintext-not-an-object"),
    *[pytest.param(_without(name), id=f"without-{name}") for name in pay.SIGNATURE_HEADERS],
])
def test_a_notification_not_provably_fresh_and_intact_is_rejected(keys, forge):
    headers, body = forge(keys)

    with pytest.raises(pay.NotificationRejectedError) as rejected:
        pay.verify_notification(headers, body, clock.now())
    assert keys.apiv3_key not in str(rejected.value) and str(rejected.value)


def test_the_time_window_is_measured_from_the_moment_given(keys):
    sent_at = int(time.time()) - 3600
    headers, body = keys.notification("TRANSACTION.SUCCESS", TRANSACTION, timestamp=sent_at)

    moment = dt.datetime.fromtimestamp(sent_at + 300, dt.timezone.utc)
    assert pay.verify_notification(headers, body, moment).resource == TRANSACTION
    with pytest.raises(pay.NotificationRejectedError):
        pay.verify_notification(headers, body, moment + dt.timedelta(seconds=1))


# --- Against the sandbox ------------------------------------------------------------------

def _prepay(out_trade_no: str, total: int = 129900) -> str:
    return pay.jsapi_prepay(out_trade_no, "降噪耳机", total, "o-sandbox-member", clock.now() + dt.timedelta(minutes=15))


def _member_pays(stack: Any, out_trade_no: str) -> requests.Response:
    return requests.post(f"{stack.sandbox_url}/sandbox/wxpay/pay", json={"orderId": out_trade_no, "notify": False},
                         timeout=30)


def _paid_order(stack: Any, total: int = 129900) -> str:
    out_trade_no = unique("o")
    _prepay(out_trade_no, total)
    assert _member_pays(stack, out_trade_no).json() == {"notified": False, "apiStatus": None}
    return out_trade_no


def _eventually(check: Callable[[], Any], seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)
    return found


def test_a_prepay_through_the_sandbox_gives_a_prepay_id_whose_payment_params_verify(stack):
    prepay_id = _prepay(unique("o"))
    params = pay.payment_params(prepay_id)

    assert prepay_id.startswith("wx") and params["package"] == f"prepay_id={prepay_id}"
    appid = config.settings().wechat_appid
    four_lines = f"{appid}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    assert _verifies(stack.sandbox.wxpay_keys.merchant_public_pem, four_lines, params["paySign"])


def test_a_prepay_tells_wechat_pay_when_the_order_expires_in_shanghai_time(stack):
    out_trade_no = unique("o")
    deadline = dt.datetime(2026, 12, 3, 2, 15, tzinfo=dt.timezone.utc)
    pay.jsapi_prepay(out_trade_no, "降噪耳机", 100, "o-sandbox-member", deadline)

    assert stack.sandbox.wxpay.order(out_trade_no)["time_expire"] == "2026-12-03T10:15:00+08:00"


def test_the_sandbox_refuses_a_prepay_without_a_payer_naming_the_field(stack):
    body = json.dumps({"appid": "wx-demo-appid", "mchid": "1900000001", "description": "耳机",
                       "out_trade_no": unique("o"), "notify_url": "https://example.invalid/n",
                       "amount": {"total": 100, "currency": "CNY"}})
    path = "/v3/pay/transactions/jsapi"
    answer = requests.post(stack.sandbox_url + path, data=body, timeout=10, headers={
        "Content-Type": "application/json", "Authorization": pay.authorization("POST", path, body)})

    assert answer.status_code == 400
    assert answer.json() == {"code": "PARAM_ERROR", "message": "/body/payer/openid is required"}
    assert "Wechatpay-Signature" in answer.headers


def test_the_same_prepay_again_answers_the_same_prepay_id_and_another_amount_is_refused(stack):
    out_trade_no = unique("o")
    assert _prepay(out_trade_no) == _prepay(out_trade_no)

    with pytest.raises(pay.WxPayRefusedError) as refused:
        _prepay(out_trade_no, total=1)
    assert refused.value.status == 400 and refused.value.code == "INVALID_REQUEST"


def test_the_sandbox_refuses_a_request_whose_merchant_signature_does_not_match(stack):
    signed_body = json.dumps({"mchid": "1900000001"})
    path = f"/v3/pay/transactions/out-trade-no/{unique('o')}/close"
    sent = {"Content-Type": "application/json", "Accept": "application/json"}

    for authorization, body in [
        (pay.authorization("POST", path, signed_body), json.dumps({"mchid": "1900000002"})),
        (pay.authorization("POST", path, signed_body, timestamp=int(time.time()) - 600), signed_body),
        ("WECHATPAY2-SHA256-RSA2048 mchid=\"1900000001\"", signed_body),
    ]:
        answer = requests.post(stack.sandbox_url + path, data=body, headers={**sent, "Authorization": authorization},
                               timeout=10)
        assert answer.status_code == 401 and answer.json()["code"] == "SIGN_ERROR", answer.text
        assert "Wechatpay-Signature" not in answer.headers


def test_a_paid_order_queries_as_success_with_its_transaction(stack):
    out_trade_no = unique("o")
    _prepay(out_trade_no)
    unpaid = pay.query_order(out_trade_no)
    assert unpaid is not None and unpaid["trade_state"] == "NOTPAY" and "transaction_id" not in unpaid

    _member_pays(stack, out_trade_no)
    paid = pay.query_order(out_trade_no)
    assert paid is not None and paid["trade_state"] == "SUCCESS" and paid["out_trade_no"] == out_trade_no
    assert re.fullmatch(r"4200\d{24}", paid["transaction_id"])
    assert paid["amount"] == {"total": 129900, "payer_total": 129900, "currency": "CNY", "payer_currency": "CNY"}
    assert paid["mchid"] == config.settings().wxpay_mchid and paid["appid"] == config.settings().wechat_appid
    assert clock.parse_iso(paid["success_time"]) <= clock.now()


def test_an_order_wechat_pay_never_saw_queries_as_none(stack):
    assert pay.query_order(unique("o")) is None


def test_closing_an_unpaid_order_closes_it_and_closing_it_again_is_fine(stack):
    out_trade_no = unique("o")
    _prepay(out_trade_no)

    pay.close_order(out_trade_no)
    pay.close_order(out_trade_no)
    assert (pay.query_order(out_trade_no) or {})["trade_state"] == "CLOSED"
    assert _member_pays(stack, out_trade_no).status_code == 409


def test_closing_a_paid_order_is_refused_as_paid(stack):
    out_trade_no = _paid_order(stack)

    with pytest.raises(pay.WxPayRefusedError) as refused:
        pay.close_order(out_trade_no)
    assert refused.value.code == "ORDERPAID"


def test_a_refund_asked_twice_with_the_same_out_refund_no_is_one_refund_that_succeeds(stack):
    out_trade_no = _paid_order(stack)

    first = pay.refund(out_trade_no, f"{out_trade_no}-r1", 129900, 129900, "七天无理由")
    again = pay.refund(out_trade_no, f"{out_trade_no}-r1", 129900, 129900, "七天无理由")
    assert first["status"] == "PROCESSING" and again["refund_id"] == first["refund_id"]
    assert first["amount"]["refund"] == 129900 and first["out_trade_no"] == out_trade_no

    refunds = requests.get(f"{stack.sandbox_url}/sandbox/wxpay/refunds", params={"orderId": out_trade_no},
                           timeout=10).json()["items"]
    assert [refund["refund_id"] for refund in refunds] == [first["refund_id"]]
    assert len([r for r in stack.sandbox.wxpay.refund_requests if r["out_trade_no"] == out_trade_no]) == 2
    settled = _eventually(lambda: (pay.query_refund(f"{out_trade_no}-r1") or {}).get("status") == "SUCCESS")
    assert settled and (pay.query_order(out_trade_no) or {})["trade_state"] == "REFUND"


def test_a_refund_beyond_what_is_left_is_refused_as_not_enough(stack):
    out_trade_no = _paid_order(stack, total=1000)
    pay.refund(out_trade_no, f"{out_trade_no}-r1", 600, 1000, "部分退款")

    with pytest.raises(pay.WxPayRefusedError) as refused:
        pay.refund(out_trade_no, f"{out_trade_no}-r2", 600, 1000, "再退一次")
    assert refused.value.code == "NOT_ENOUGH"
    assert pay.refund(out_trade_no, f"{out_trade_no}-r3", 400, 1000, "余下的")["amount"]["refund"] == 400


def test_a_refund_wechat_pay_never_saw_queries_as_none(stack):
    assert pay.query_refund(unique("r")) is None


def test_the_notification_the_sandbox_makes_for_a_payment_verifies_and_carries_the_transaction(stack):
    out_trade_no = _paid_order(stack)
    body = stack.sandbox.wxpay.payment_notification(out_trade_no)
    headers = stack.sandbox.wxpay_keys.notification_headers(body)

    notification = pay.verify_notification(headers, body, clock.now())
    assert notification.event_type == "TRANSACTION.SUCCESS"
    assert notification.resource == pay.query_order(out_trade_no)
    envelope = json.loads(body)
    assert envelope["resource_type"] == "encrypt-resource" and envelope["summary"] == "支付成功"
    assert envelope["resource"]["original_type"] == envelope["resource"]["associated_data"] == "transaction"


def test_the_member_pays_an_order_once_and_only_an_order_wechat_pay_knows(stack):
    out_trade_no = _paid_order(stack)

    twice = _member_pays(stack, out_trade_no)
    assert twice.status_code == 409 and twice.json()["code"] == "ALREADY_PAID"
    unknown = _member_pays(stack, unique("o"))
    assert unknown.status_code == 404 and unknown.json()["code"] == "NOT_FOUND"


def test_a_lost_payment_notification_can_be_sent_again_and_the_api_status_is_reported(stack):
    out_trade_no = _paid_order(stack)

    resent = requests.post(f"{stack.sandbox_url}/sandbox/wxpay/notify", json={"orderId": out_trade_no}, timeout=30)
    assert resent.status_code == 200 and resent.json()["notified"] is True
    assert isinstance(resent.json()["apiStatus"], int)
    delivered = [d for d in stack.sandbox.wxpay.deliveries if d["outTradeNo"] == out_trade_no]
    assert [d["eventType"] for d in delivered] == ["TRANSACTION.SUCCESS"]
