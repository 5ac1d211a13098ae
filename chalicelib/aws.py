"""boto3 clients for what pynamodb does not cover, created on first use.

Offline, `settings().aws_endpoint` points every client at moto (see local/aws.py).
"""

from __future__ import annotations

import functools
from typing import Any

from chalicelib.config import settings

__all__ = ["stepfunctions"]


@functools.cache
def _client(service: str, region: str, endpoint: str | None) -> Any:
    import boto3

    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint)


def stepfunctions() -> Any:
    """The Step Functions client (start executions, resume parked task tokens)."""
    current = settings()
    return _client("stepfunctions", current.region, current.aws_endpoint or None)
