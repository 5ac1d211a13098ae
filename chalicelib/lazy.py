"""Modules imported on first use, so a cold start pays only for the handler it runs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["LazyModule", "LazyNames", "LazyName"]


class LazyModule:
    """Stands for a module until an attribute is first read, then imports it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _module(self) -> ModuleType:
        return importlib.import_module(self._name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._module(), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name}>"


@dataclass(frozen=True)
class LazyName:
    """One attribute of a module, imported when `resolve` is first called."""

    module: str
    name: str

    def resolve(self) -> Any:
        return getattr(importlib.import_module(self.module), self.name)


class LazyNames:
    """A module's attributes named without importing it: `schemas.Login` is a `LazyName`.

    Route declarations name their models this way, so importing app.py imports
    no model (nor pydantic) until a request or the OpenAPI document needs it.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> LazyName:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return LazyName(self._name, attribute)

    def __repr__(self) -> str:
        return f"<lazy names of {self._name}>"
