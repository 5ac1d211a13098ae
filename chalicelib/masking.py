"""Hiding phone numbers, WeChat identifiers, session keys and tokens from anything that is logged.

`mask` takes any structure a log record can hold and returns a copy that is
safe to write: a value under a sensitive key is replaced whatever it is, and
every string is searched for phones, bearer tokens, `key=value` secrets and
WeChat openids, so what a message, an argument or an exception's text says is
covered as well as what its keys are called.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

__all__ = ["HIDDEN", "mask", "mask_text", "sensitive_key"]

HIDDEN = "***"

_SENSITIVE_WORDS = r"phone|mobile|openid|unionid|session_?key|token|secret|password|authorization|js_?code"
# A key named exactly `code` is a WeChat login or phone code; `status_code` or `errcode` is not.
_SENSITIVE_KEY = re.compile(rf"({_SENSITIVE_WORDS})|^code$", re.I)

# Mainland mobiles as people write them: 13800138000, 138 0013 8000, 138-0013-8000, +86 138..., 0086-138...
_PHONE = re.compile(
    r"(?<![\d+])(?:(?:\+|00)?86[ \-.]?|\(\+?86\)[ ]?)?"
    r"(1[3-9]\d)[ \-.]?(\d{4})[ \-.]?(\d{4})(?!\d)"
)
_BEARER = re.compile(r"(Bearer\s+)[^\s\"',;]+", re.I)
# `secret=...`, `"openid": "..."`, `'session_key': '...'` inside text (URLs, reprs, JSON in a message).
_KEYED_VALUE = re.compile(rf"((?:{_SENSITIVE_WORDS}|\bcode)[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}}\]]+)", re.I)
# A WeChat openid or unionid: `o` + 27 URL-safe characters, with both letters of mixed case and digits.
_OPENID = re.compile(r"(?<![\w-])o(?=[\w-]{27}(?![\w-]))(?=[\w-]*[A-Z])(?=[\w-]*\d)[\w-]{27}(?![\w-])")


@functools.lru_cache(maxsize=1024)
def sensitive_key(name: str) -> bool:
    """Whether a value under this key is hidden whatever it looks like."""
    return _SENSITIVE_KEY.search(name) is not None


def mask_text(text: str) -> str:
    """`text` with phones shown as `138****8000` and tokens, keyed secrets and openids hidden."""
    text = _BEARER.sub(rf"\g<1>{HIDDEN}", text)
    text = _KEYED_VALUE.sub(rf"\g<1>{HIDDEN}", text)
    text = _OPENID.sub(HIDDEN, text)
    return _PHONE.sub(r"\1****\3", text)


def mask(value: Any, key: str = "", *, default: Callable[[Any], Any] = str) -> Any:
    """A copy of `value` safe to log; objects that are not JSON types become `default(value)` first."""
    if key and sensitive_key(key) and value not in (None, "") and not isinstance(value, bool):
        return HIDDEN
    if isinstance(value, dict):
        return {k: mask(v, str(k), default=default) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [mask(v, key, default=default) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and _PHONE.fullmatch(str(value)):
        return mask_text(str(value))
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return mask(default(value), key, default=default)
