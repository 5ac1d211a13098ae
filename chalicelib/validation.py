"""The bases of the contract's models: camelCase on the wire, snake_case in code.

Request bodies are `RequestModel`s, validated strictly at the edge. Answers are
`ResponseModel`s: the edge passes what a service returns through the route's
model, so an answer always matches the schema /openapi.json publishes. A list
answer is a `Page` of items with an opaque `nextCursor`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

__all__ = [
    "RequestModel",
    "QueryModel",
    "ResponseModel",
    "Page",
    "Error",
    "Timestamp",
    "Day",
    "PlausibleMoment",
    "PlausibleDate",
    "EARLIEST",
    "LATEST",
    "ID_PATTERN",
]

ID_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"

# Services format times themselves (ISO-8601 with offset); the schema says what they are.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Day = Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]

Item = TypeVar("Item")

# Times outside these years are mistakes, and would overflow date arithmetic near the ends of time.
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2099, 12, 31)


def _plausible(value: dt.date) -> dt.date:
    if not EARLIEST.year <= value.year <= LATEST.year:
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
    return value


PlausibleMoment = Annotated[dt.datetime, AfterValidator(_plausible)]
PlausibleDate = Annotated[dt.date, AfterValidator(_plausible)]


class RequestModel(BaseModel):
    """Unknown fields are ignored; known ones are checked strictly by the edge."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class QueryModel(BaseModel):
    """Query parameters: strings coerced to the field's type, unknown ones ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class ResponseModel(BaseModel):
    """An answer: fields a service did not set stay out of it; fields it did not declare are dropped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Page(ResponseModel, Generic[Item]):
    """A page of a list; `nextCursor` continues it and is null on the last page."""

    items: list[Item]
    next_cursor: str | None


class Error(ResponseModel):
    """Every refusal of the API."""

    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", examples=["INVALID_REQUEST"])
    message: str
