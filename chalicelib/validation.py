"""The base of every request body model: camelCase on the wire, snake_case in code."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["RequestModel", "ID_PATTERN"]

ID_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"


class RequestModel(BaseModel):
    """Unknown fields are ignored; known ones are checked strictly by `Call.body`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
