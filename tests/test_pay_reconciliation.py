"""The pay-reconciliation job against the local stack: the sandbox's WeChat Pay bills against our orders.

Each test pays its orders on a Shanghai day of its own, far from today (our
clock frozen there, the sandbox told which day its transactions belong to), so
no other test's payments are on its bills; then it plants what WeChat Pay's bill
should disagree about and runs the job as EventBridge would the morning after.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import pytest
import requests

import app
from chalicelib import clock
from chalicelib.config import settings
from chalicelib.orders import flow, lifecycle, reconciliation
from chalicelib.orders.models import Order, PayReconciliation
from chalicelib.wechat import pay
from tests.conftest import eventually, unique
from tests.order_helpers import new_sku, new_store, pickup, remote_spot, stock
from tests.test_infra_access_observed import run_observed, scheduled_event

pytestmark = pytest.mark.usefixtures("stack")

PAID_AT = dt.time(14, 0)
RUNS_AT = dt.time(10, 30)


def far_day() -> dt.date:
    """A Shanghai day no other test pays on."""
    return dt.date(2040, 1, 1) + dt.timedelta(days=random.randrange(20000))


def at(day: dt.date, time_of_day: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, time_of_day, clock.SHANGHAI)


class Shop:
    """Orders created and paid over HTTP as of a frozen moment; their executions are not started."""

    def __init__(self, api: Any, stack: Any) -> None:
        self.api, self.stack = api, stack
        self.store = new_store(*remote_spot())
        self.sku = new_sku()
        stock(self.store, self.sku, 50)
        self.openids: list[str] = []

    def paid_order(self, moment: dt.datetime, bill_day: dt.date | None = None) -> dict[str, Any]:
        """An order paid at `moment` (WeChat Pay's success on `bill_day`, that day by default)."""
        with clock.frozen_at(moment):
            openid = unique("recon")
            self.openids.append(openid)
            login = self.api.post("/auth/login", json={"code": f"dev:{openid}"}).json()
            token, member_id = login["token"], login["member"]["memberId"]
            created = self.api.post("/orders", token, json=pickup(self.store, (self.sku, 1)))
            assert created.status_code == 200, created.text
            order_id = created.json()["orderId"]
            paid = requests.post(f"{self.stack.sandbox_url}/sandbox/wxpay/pay",
                                 json={"orderId": order_id, "notify": False}, timeout=30)
            assert paid.status_code == 200, paid.text
            plan_bill(self.stack, bill_day or moment.astimezone(clock.SHANGHAI).date(), assign=[order_id])
            body = self.stack.sandbox.wxpay.payment_notification(order_id)
            self._deliver(self.stack.sandbox.wxpay_keys.notification_headers(body, timestamp=clock.epoch_seconds()),
                          body)
        order = Order.get(order_id, consistent_read=True)
        assert order.status == "paid"
        return {"orderId": order_id, "memberId": member_id, "openid": openid, "payable": int(order.payable),
                "transactionId": order.transaction_id}

    def refunded(self, order: dict[str, Any], moment: dt.datetime) -> dict[str, Any]:
        """The member cancels the paid order at `moment` and WeChat Pay confirms the refund then."""
        with clock.frozen_at(moment):
            token = self.api.login(order["openid"])
            cancelled = self.api.post(f"/orders/{order['orderId']}/cancel", token)
            assert cancelled.status_code == 200, cancelled.text
            # What the order's execution would do next (its executions are not started here).
            lifecycle.finish_refund(Order.get(order["orderId"], consistent_read=True))
            refund = eventually(lambda: next((r for r in sandbox_refunds(self.stack, order["orderId"])
                                              if r["status"] == "SUCCESS"), None), what="the refund to settle")
            resource = {"mchid": settings().wxpay_mchid, "out_trade_no": order["orderId"],
                        "transaction_id": refund["transaction_id"], "out_refund_no": refund["out_refund_no"],
                        "refund_id": refund["refund_id"], "refund_status": "SUCCESS",
                        "success_time": refund["success_time"], "amount": refund["amount"]}
            self._deliver(*self.stack.sandbox.wxpay_keys.notification(
                "REFUND.SUCCESS", resource, timestamp=clock.epoch_seconds()))
        stored = Order.get(order["orderId"], consistent_read=True)
        assert stored.status == "refunded"
        return {**order, "refundNo": stored.refund_no, "refundAmount": int(stored.refund_amount)}

    def _deliver(self, headers: dict[str, str], body: bytes) -> None:
        answer = requests.post(f"{self.stack.api_url}/webhooks/wechatpay", data=body, headers=headers, timeout=30)
        assert answer.status_code == 204, answer.text


@pytest.fixture
def shop(api, stack, monkeypatch) -> Shop:
    monkeypatch.setattr(flow, "start", lambda order_id: None)
    return Shop(api, stack)


def plan_bill(stack: Any, day: dt.date, **plan: Any) -> dict[str, Any]:
    answer = requests.post(f"{stack.sandbox_url}/sandbox/wxpay/bill", json={"date": day.isoformat(), **plan},
                           timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def sandbox_refunds(stack: Any, order_id: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{stack.sandbox_url}/sandbox/wxpay/refunds", params={"orderId": order_id}, timeout=10)
    return answer.json()["items"]


def run_job(day: dt.date) -> dict[str, Any]:
    """The job as EventBridge runs it the morning after `day`, checked against its IAM declaration."""
    moment = at(day + dt.timedelta(days=1), RUNS_AT)
    return run_observed("pay-reconciliation", lambda: app.pay_reconciliation(scheduled_event(moment), None))


def alarms(printed: str, name: str) -> int:
    """How many EMF lines published the metric `name`."""
    return sum(1 for line in map(json.loads, filter(None, printed.splitlines())) if name in line)


def kinds(result: dict[str, Any]) -> list[tuple[str, str | None]]:
    return sorted((m["kind"], m["orderId"]) for m in result["mismatches"])


# --- The bills ------------------------------------------------------------------------------

BILL = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注\r\n"
    "`2031-05-06 14:00:00,`wx1,`1900000001,`0,`,`4200001,`o-1,`oOPENID,`JSAPI,`SUCCESS,`OTHERS,`CNY,`19.99,`0.00,"
    "`0,`0,`0.00,`0.00,`,`,`耳机,`,`0.12,`0.60%,`19.99,`0.00,`\r\n"
    "`2031-05-06 15:00:00,`wx1,`1900000001,`0,`,`4200001,`o-1,`oOPENID,`JSAPI,`REFUND,`OTHERS,`CNY,`0.00,`0.00,"
    "`5001,`o-1-r,`0.10,`0.00,`ORIGINAL,`SUCCESS,`耳机,`,`-0.00,`0.60%,`19.99,`0.10,`\r\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
    "`2,`19.99,`0.10,`0.00,`0.12,`19.99,`0.10\r\n"
)


def test_a_trade_bill_parses_into_lines_and_totals_in_fen_without_the_payers_openid():
    bill = pay.parse_trade_bill(BILL.encode())

    payment, refund = bill.lines
    assert (payment.out_trade_no, payment.transaction_id, payment.total_fen, payment.is_payment) == \
        ("o-1", "4200001", 1999, True)
    assert (refund.out_refund_no, refund.refund_fen, refund.is_refund) == ("o-1-r", 10, True)
    assert (bill.summary.count, bill.summary.settled_fen, bill.summary.refund_fen) == (2, 1999, 10)
    assert "oOPENID" not in repr(bill)


def test_an_amount_that_is_not_yuan_with_two_decimals_makes_the_bill_unreadable():
    assert [pay.fen_of_yuan(text) for text in ("0.01", "19.9", "1299", "-0.12")] == [1, 1990, 129900, -12]
    with pytest.raises(pay.BillIntegrityError):
        pay.parse_trade_bill(BILL.replace("`19.99,`0.00,`0,", "`19.999,`0.00,`0,").encode())
    with pytest.raises(pay.BillIntegrityError):
        pay.parse_trade_bill(BILL.split("总交易单数")[0].encode())


# --- The job --------------------------------------------------------------------------------

def test_a_clean_day_reports_every_line_matched_and_stores_its_result(shop, stack):
    day = far_day()
    first = shop.paid_order(at(day, PAID_AT))
    second = shop.refunded(shop.paid_order(at(day, dt.time(15, 0))), at(day, dt.time(16, 0)))

    result = run_job(day)

    assert result == {"billDate": day.isoformat(), "tradeLines": 2, "refundLines": 1, "matched": 3,
                      "mismatches": [], "mismatchCount": 0}
    assert reconciliation.stored_result(day) == result
    bill = plan_bill(stack, day)
    assert {line["outTradeNo"] for line in bill["lines"]} == {first["orderId"], second["orderId"]}


def test_every_planted_mismatch_is_found_once_and_nothing_else(shop, stack, capsys, log_stream):
    day = far_day()
    missing, wrong_amount, refunded_anyway, fine = (shop.paid_order(at(day, PAID_AT)) for _ in range(4))
    stranger = unique("o-stranger")
    plan_bill(stack, day, drop=[missing["orderId"]], alter={wrong_amount["orderId"]: {"amount": 1}},
              add=[{"type": "payment", "outTradeNo": stranger, "amount": 4200},
                   {"type": "refund", "outTradeNo": refunded_anyway["orderId"], "amount": 500}])
    capsys.readouterr()

    result = run_job(day)

    assert kinds(result) == sorted([
        ("missing_at_wechat", missing["orderId"]),
        ("amount_differs", wrong_amount["orderId"]),
        ("missing_here", stranger),
        ("refund_missing_here", refunded_anyway["orderId"]),
    ])
    by_kind = {m["kind"]: m for m in result["mismatches"]}
    assert by_kind["amount_differs"] == {"orderId": wrong_amount["orderId"], "kind": "amount_differs",
                                         "ourAmount": wrong_amount["payable"], "wechatAmount": 1,
                                         "transactionId": wrong_amount["transactionId"], "refundNo": None}
    assert by_kind["missing_at_wechat"]["ourAmount"] == missing["payable"]
    assert by_kind["missing_here"]["wechatAmount"] == 4200
    assert by_kind["refund_missing_here"]["wechatAmount"] == 500
    assert (result["tradeLines"], result["refundLines"], result["matched"], result["mismatchCount"]) == (4, 1, 2, 4)
    assert fine["orderId"] not in json.dumps(result)
    assert alarms(capsys.readouterr().out, reconciliation.MISMATCH_ALARM) == 4
    logged = log_stream()
    assert stranger in logged
    assert not any(openid in logged for openid in shop.openids)


def test_a_replay_for_the_same_moment_reports_the_same_result_raises_no_alarm_again_and_stores_one_item(
        shop, stack, capsys):
    day = far_day()
    kept, dropped = shop.paid_order(at(day, PAID_AT)), shop.paid_order(at(day, PAID_AT))
    plan_bill(stack, day, drop=[dropped["orderId"]])

    first = run_job(day)
    capsys.readouterr()
    again = run_job(day)

    assert again == first and kinds(first) == [("missing_at_wechat", dropped["orderId"])]
    assert alarms(capsys.readouterr().out, reconciliation.MISMATCH_ALARM) == 0
    assert reconciliation.stored_result(day) == first
    assert PayReconciliation.count(day.isoformat()) == 1
    assert kept["orderId"] not in json.dumps(first)


def test_a_bill_altered_after_it_was_hashed_is_refused_with_an_alarm_and_nothing_stored(shop, stack, capsys):
    day = far_day()
    shop.paid_order(at(day, PAID_AT))
    plan_bill(stack, day, tamper=["tradebill"])
    capsys.readouterr()

    with pytest.raises(pay.BillIntegrityError):
        app.pay_reconciliation(scheduled_event(at(day + dt.timedelta(days=1), RUNS_AT)), None)

    assert alarms(capsys.readouterr().out, reconciliation.REFUSED_ALARM) == 1
    assert reconciliation.stored_result(day) is None


def test_money_on_the_fund_flow_that_no_trade_line_explains_is_a_mismatch(shop, stack):
    day = far_day()
    shop.paid_order(at(day, PAID_AT))
    plan_bill(stack, day, fundFlowAdd=[{"type": "income", "amount": 300}])

    result = run_job(day)

    assert [(m["kind"], m["ourAmount"], m["wechatAmount"] - m["ourAmount"]) for m in result["mismatches"]] == \
        [("fund_flow_differs", result["mismatches"][0]["ourAmount"], 300)]


def test_refunds_wechat_lost_or_changed_are_mismatches(shop, stack):
    day = far_day()
    lost = shop.refunded(shop.paid_order(at(day, PAID_AT)), at(day, dt.time(16, 0)))
    changed = shop.refunded(shop.paid_order(at(day, PAID_AT)), at(day, dt.time(16, 0)))
    plan_bill(stack, day, dropRefunds=[lost["orderId"]], alter={changed["orderId"]: {"refundAmount": 7}})

    result = run_job(day)

    assert kinds(result) == sorted([("refund_missing_at_wechat", lost["orderId"]),
                                    ("refund_amount_differs", changed["orderId"])])
    by_kind = {m["kind"]: m for m in result["mismatches"]}
    assert by_kind["refund_missing_at_wechat"]["refundNo"] == lost["refundNo"]
    assert (by_kind["refund_amount_differs"]["ourAmount"], by_kind["refund_amount_differs"]["wechatAmount"]) == \
        (changed["refundAmount"], 7)


def test_a_payment_wechat_books_on_the_next_day_is_no_mismatch_on_either_day(shop, stack):
    day = far_day()
    # Paid here a second before midnight; WeChat Pay's success time is after it.
    late = shop.paid_order(at(day, dt.time(23, 59, 59)), bill_day=day + dt.timedelta(days=1))
    on_time = shop.paid_order(at(day, PAID_AT))

    today, tomorrow = run_job(day), run_job(day + dt.timedelta(days=1))

    assert (today["mismatches"], today["tradeLines"], today["matched"]) == ([], 1, 1)
    assert (tomorrow["mismatches"], tomorrow["tradeLines"], tomorrow["matched"]) == ([], 1, 1)
    assert late["orderId"] != on_time["orderId"]


def test_a_day_without_a_statement_reports_each_of_our_payments_as_missing_at_wechat(shop, stack):
    day = far_day()
    order = shop.paid_order(at(day, PAID_AT))
    plan_bill(stack, day, drop=[order["orderId"]])
    refused = requests.get(f"{stack.sandbox_url}/sandbox/wxpay/bill", params={"date": day.isoformat()}, timeout=10)
    assert refused.json()["lines"] == []

    result = run_job(day)

    assert result["tradeLines"] == 0 and kinds(result) == [("missing_at_wechat", order["orderId"])]


def test_the_sandbox_bill_plan_names_the_field_it_refuses(stack):
    answer = requests.post(f"{stack.sandbox_url}/sandbox/wxpay/bill",
                           json={"date": "2040-01-01", "add": [{"type": "payment", "outTradeNo": "x", "amount": 1.5}]},
                           timeout=10)
    assert answer.status_code == 400 and "add[0].amount" in answer.json()["message"]
