"""What the logger writes: phones, openids, session keys and tokens never reach its stream."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from chalicelib.log_format import MaskingFormatter
from chalicelib.masking import mask
from chalicelib.observability import logger

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def _raise_with_phone_in_the_cause() -> None:
    try:
        raise LookupError("no member holds 13912345678")
    except LookupError as exc:
        raise RuntimeError("binding failed") from exc


def _raise_with_a_wechat_url() -> None:
    raise ConnectionError("Max retries exceeded with url: /sns/jscode2session?appid=wx1&secret=s3cr3tS3cret&js_code=0a1b2c3d")


def _logged_exception(raiser: Callable[[], None]) -> Callable[[Logger], None]:
    def log(log: Logger) -> None:
        try:
            raiser()
        except Exception:
            log.exception("unhandled error")

    return log


# What is logged, and what must not show in the written line.
LEAKS: dict[str, tuple[Callable[[Logger], None], tuple[str, ...]]] = {
    "a phone as a %s argument": (lambda log: log.info("bound %s", "13912345678"), ("13912345678",)),
    "a +86 hyphenated phone in the message": (lambda log: log.info("call +86 139-1234-5678"), ("139-1234-5678",)),
    "a spaced phone under a harmless extra key": (
        lambda log: log.info("note", extra={"note": "call 139 1234 5678"}), ("139 1234 5678",),
    ),
    "a phone nested deep in an extra": (
        lambda log: log.info("order", extra={"order": {"contact": [{"tel": "0086-13912345678"}]}}), ("13912345678",),
    ),
    "identifiers under their keys": (
        lambda log: log.info("login", extra={"wx": {"openid": "o-sandbox-1", "unionid": "u-1", "session_key": "SK+q=="}}),
        ("o-sandbox-1", "u-1", "SK+q=="),
    ),
    "an openid and a bearer token in text": (
        lambda log: log.warning("refused %s with Authorization: Bearer eyJhbGci.eyJzdWIi.c2ln", OPENID),
        (OPENID, "eyJhbGci.eyJzdWIi.c2ln"),
    ),
    "a phone in a chained exception's traceback": (
        _logged_exception(_raise_with_phone_in_the_cause), ("13912345678",),
    ),
    "secrets in an exception's URL": (_logged_exception(_raise_with_a_wechat_url), ("s3cr3tS3cret", "0a1b2c3d")),
}


def _leaked(written: str, secrets: tuple[str, ...]) -> list[str]:
    unseparated = re.sub(r"[ \-.+()]", "", written)
    return [s for s in secrets if s in written or (s.isdigit() and s in unseparated)]


@pytest.fixture
def plain_formatter() -> Iterator[None]:
    """The application's logger with Powertools' own formatter: masking switched off."""
    handler = logger().registered_handler
    masking = handler.formatter
    handler.setFormatter(LambdaPowertoolsFormatter(service="siyu"))
    try:
        yield
    finally:
        handler.setFormatter(masking)


def test_the_application_logger_writes_through_the_masking_formatter():
    assert isinstance(logger().registered_handler.formatter, MaskingFormatter)


@pytest.mark.parametrize("case", sorted(LEAKS))
def test_nothing_personal_or_secret_reaches_the_log_stream(log_stream, case):
    log, secrets = LEAKS[case]
    log(logger())
    assert log_stream(), "the logger wrote nothing to its stream"
    assert _leaked(log_stream(), secrets) == []


@pytest.mark.parametrize("case", sorted(LEAKS))
def test_without_masking_the_same_check_sees_every_leak(log_stream, plain_formatter, case):
    log, secrets = LEAKS[case]
    log(logger())
    assert _leaked(log_stream(), secrets) == list(secrets)


def test_masked_lines_keep_what_support_needs():
    masked = mask({"memberId": "m1", "phoneBound": True, "status_code": 409, "note": "call +86 138 0013 8000"})
    assert masked == {"memberId": "m1", "phoneBound": True, "status_code": 409, "note": "call 138****8000"}
