"""Powertools Logger, Metrics and Tracer, created on first use.

Logs are JSON with a correlation id per request. Phone numbers, openids,
session keys and tokens are masked in each record as it is written
(`chalicelib.log_format`), exception text and traceback included.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from typing import TYPE_CHECKING, Any

from chalicelib.masking import mask

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer

__all__ = ["logger", "metrics", "tracer", "traced", "mask", "count", "info", "alarm"]

SERVICE = "siyu"


@functools.cache
def logger() -> Logger:
    from aws_lambda_powertools import Logger

    from chalicelib.log_format import MaskingFormatter

    log = Logger(
        service=SERVICE, level=os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"), logger_formatter=MaskingFormatter()
    )
    # Chalice's `app.log` is this same logger: one JSON line per record, none through the root logger.
    logging.getLogger(SERVICE).propagate = False
    return log


@functools.cache
def metrics() -> Metrics:
    from aws_lambda_powertools import Metrics

    return Metrics(namespace="siyu", service=SERVICE)


def count(name: str, value: int = 1) -> None:
    """Publish one business metric now, as an EMF line CloudWatch turns into a metric."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace="siyu") as metric:
        metric.add_dimension(name="service", value=SERVICE)


def info(message: str, **fields: Any) -> None:
    logger().info(message, extra=fields)


def alarm(metric: str, message: str, **fields: Any) -> None:
    """Something a person must look at: an error line, and the metric its alarm watches."""
    logger().error(message, extra=fields)
    count(metric)


@functools.cache
def tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    # Offline there is no X-Ray daemon: POWERTOOLS_TRACE_DISABLED=true.
    return Tracer(service=SERVICE)


def traced(name: str) -> contextlib.AbstractContextManager:
    """An X-Ray subsegment around a handler; nothing (not even an import) when tracing is off."""
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() == "true":
        return contextlib.nullcontext()
    return tracer().provider.in_subsegment(f"## {name}")
