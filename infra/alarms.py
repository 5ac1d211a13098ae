"""The stage's CloudWatch alarms, every one notifying the same SNS topic.

- an invariant the nightly audits prove was broken (the EMF metrics in `BREACH_METRICS`);
- the API answering 5xx to more than `API_5XX_RATE` of its requests;
- a function's errors or throttles, per function;
- an order execution that failed;
- an event left in the jobs' dead-letter queue.

Subscribe whoever answers them to the topic (its ARN is the stack's `AlarmTopicArn` output).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from chalicelib.observability import SERVICE
from infra.cfn import get_att, ref
from infra.functions import Function
from infra.stage import Stage

__all__ = [
    "ALARM_TOPIC_RESOURCE", "METRIC_NAMESPACE", "BREACH_METRICS", "MONEY_METRICS", "API_5XX_RATE", "alarm_resources",
]

ALARM_TOPIC_RESOURCE = "AlarmTopic"
# chalicelib.observability.count publishes business metrics here, with the dimension service=siyu.
METRIC_NAMESPACE = "siyu"
# A job that finds a broken invariant publishes how many it found (none: 0 or nothing).
BREACH_METRICS = ("LedgerBreaches", "InventoryBreaches", "CouponLockBreaches")
# Money that did not move as it should: each one is a person to call (orders.lifecycle, orders.payment).
MONEY_METRICS = {
    "PaymentAmountMismatch": "A payment notification's amount did not match its order; the order stays unpaid.",
    "PaidAfterClose": "WeChat Pay took money for a closed order; it is being refunded.",
    "SecondPayment": "A second transaction arrived for a paid order.",
    "RefundNotSucceeded": "WeChat Pay reports a refund ABNORMAL or CLOSED: the member has not got the money back.",
    "CompensationRefused": "An execution failed for an order a store holds; it was not refunded.",
}
API_5XX_RATE = 0.05
_FIVE_MINUTES = 300


def _metric(namespace: str, name: str, dimensions: dict[str, Any], statistic: str = "Sum") -> dict[str, Any]:
    return {
        "Namespace": namespace,
        "MetricName": name,
        "Dimensions": [{"Name": key, "Value": value} for key, value in dimensions.items()],
        "Statistic": statistic,
    }


def _alarm(stage: Stage, name: str, description: str, metric: dict[str, Any], *, threshold: float = 0,
           period: int = _FIVE_MINUTES, periods: int = 1, datapoints: int = 1) -> dict[str, Any]:
    """Alarms when the metric is above `threshold` in `datapoints` of the last `periods` periods."""
    topic = [ref(ALARM_TOPIC_RESOURCE)]
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": stage.resource_name(name),
            "AlarmDescription": description,
            **metric,
            "Period": period,
            "EvaluationPeriods": periods,
            "DatapointsToAlarm": datapoints,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            # No datapoint means nothing happened: no request, no error, no breach published.
            "TreatMissingData": "notBreaching",
            "AlarmActions": topic,
            "OKActions": topic,
        },
    }


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _breach_alarms(stage: Stage) -> dict[str, Any]:
    return {
        f"{metric}Alarm": _alarm(
            stage, _kebab(metric), f"A nightly audit found broken invariants ({METRIC_NAMESPACE}/{metric}).",
            _metric(METRIC_NAMESPACE, metric, {"service": SERVICE}), period=3600,
        )
        for metric in BREACH_METRICS
    } | {
        f"{metric}Alarm": _alarm(stage, _kebab(metric), description,
                                 _metric(METRIC_NAMESPACE, metric, {"service": SERVICE}))
        for metric, description in MONEY_METRICS.items()
    }


def _function_alarms(stage: Stage, function: Function) -> dict[str, Any]:
    dimensions = {"FunctionName": ref(function.resource)}
    return {
        f"{function.resource}ErrorsAlarm": _alarm(
            stage, f"{function.name}-errors", f"{function.name} ended in an error.",
            _metric("AWS/Lambda", "Errors", dimensions),
        ),
        f"{function.resource}ThrottlesAlarm": _alarm(
            stage, f"{function.name}-throttles", f"{function.name} was throttled (no concurrency left).",
            _metric("AWS/Lambda", "Throttles", dimensions),
        ),
    }


def alarm_resources(stage: Stage, functions: Iterable[Function], *, api_name: str | None, state_machine: str,
                    dead_letter_queue: str | None, segmented_machine: str | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {
        ALARM_TOPIC_RESOURCE: {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": stage.resource_name("alarms")}},
        **_breach_alarms(stage),
    }
    for function in functions:
        resources.update(_function_alarms(stage, function))
    if api_name is not None:
        # 5XXError's average over a period is the share of requests that got a 5xx.
        resources["ApiServerErrorsAlarm"] = _alarm(
            stage, "api-5xx-rate", f"More than {API_5XX_RATE:.0%} of API requests answered 5xx.",
            _metric("AWS/ApiGateway", "5XXError", {"ApiName": api_name, "Stage": stage.api_stage}, "Average"),
            threshold=API_5XX_RATE, periods=3, datapoints=2,
        )
    resources["OrderExecutionsFailedAlarm"] = _alarm(
        stage, "order-executions-failed", "An order's execution failed.",
        _metric("AWS/States", "ExecutionsFailed", {"StateMachineArn": ref(state_machine)}),
    )
    if segmented_machine is not None:
        resources["WholeTableJobsFailedAlarm"] = _alarm(
            stage, "whole-table-jobs-failed", "A whole-table job's run failed; starting it again resumes it.",
            _metric("AWS/States", "ExecutionsFailed", {"StateMachineArn": ref(segmented_machine)}),
        )
    if dead_letter_queue is not None:
        resources["JobsDeadLettersAlarm"] = _alarm(
            stage, "jobs-dead-letters", "A scheduled job gave up on an event; it waits in the dead-letter queue.",
            _metric("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                    {"QueueName": get_att(dead_letter_queue, "QueueName")}, "Maximum"),
        )
    return resources
