"""The Powertools log formatter that masks each record as it is finally written.

Masking the finished record, rather than the `LogRecord` on its way, covers
what only exists at the end: the message with its `%s` arguments applied,
extra keys at any depth, appended keys, the exception text and the
serialised stack trace.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from chalicelib.masking import mask

__all__ = ["MaskingFormatter"]

# Written by Powertools itself; an id or a timestamp could otherwise pass for a spaced phone number.
_OWN_KEYS = frozenset({
    "level", "location", "timestamp", "service", "sampling_rate", "xray_trace_id", "correlation_id",
    "cold_start", "function_name", "function_memory_size", "function_arn", "function_request_id",
})


class MaskingFormatter(LambdaPowertoolsFormatter):
    """`LambdaPowertoolsFormatter`, with phones, openids, session keys and tokens hidden in every field."""

    def serialize(self, log: dict[str, Any]) -> str:  # type: ignore[override]
        masked = {
            key: value if key in _OWN_KEYS else mask(value, key, default=self.json_default)
            for key, value in log.items()
        }
        return super().serialize(masked)  # type: ignore[arg-type]
