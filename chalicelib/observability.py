"""Powertools Logger, Metrics and Tracer, created on first use.

Logs are JSON with a correlation id per request. Phone numbers, openids,
session keys and tokens are masked wherever they appear in a log record.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer

__all__ = ["logger", "metrics", "tracer", "traced", "mask", "count"]

SERVICE = "siyu"
_SENSITIVE_KEYS = re.compile(r"(phone|openid|unionid|session_?key|token|secret|authorization|code)", re.I)
_PHONE = re.compile(r"(?<!\d)(1\d{2})\d{4}(\d{4})(?!\d)")


def mask(value: object, key: str = "") -> object:
    """A copy of `value` with secrets and personal identifiers hidden."""
    if isinstance(value, dict):
        return {k: mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v, key) for v in value]
    if key and _SENSITIVE_KEYS.search(key) and value not in (None, ""):
        return "***"
    if isinstance(value, str):
        return _PHONE.sub(r"\1****\2", value)
    return value


@functools.lru_cache(maxsize=1024)
def _sensitive_name(name: str) -> bool:
    return _SENSITIVE_KEYS.search(name) is not None


class _MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, (dict, str)):
            record.msg = mask(record.msg)
        for name, value in list(vars(record).items()):
            if _sensitive_name(name) and value not in (None, ""):
                setattr(record, name, "***")
        return True


@functools.cache
def logger() -> Logger:
    from aws_lambda_powertools import Logger

    log = Logger(service=SERVICE, level=os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"))
    log.addFilter(_MaskingFilter())
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
