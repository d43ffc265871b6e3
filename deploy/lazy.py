"""Modules imported on first use, so a run that never parses never imports the parser.

`invoke apply` at head (every deploy's pre-deploy step) reads one catalog query and parses
nothing; importing pglast for it cost ~25 ms per deploy (issue 10). A module that parses binds
`ast = lazy_module("pglast.ast", globals())`: the first attribute read imports pglast.ast and
puts the real module in that name, so later reads are ordinary global lookups.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _LazyModule:
    """Stands in for a module in one namespace until an attribute is read from it."""

    __slots__ = ("_name", "_namespace", "_alias")

    def __init__(self, name: str, namespace: dict[str, Any], alias: str) -> None:
        self._name = name
        self._namespace = namespace
        self._alias = alias

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self._name)
        if self._namespace.get(self._alias) is self:  # from now on, no indirection
            self._namespace[self._alias] = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str, namespace: dict[str, Any], alias: str | None = None) -> ModuleType:
    """A stand-in for module `name`, bound as `alias` (default: its last part) in `namespace`:
    the first attribute read imports the module and rebinds `alias` to it."""
    return _LazyModule(name, namespace, alias or name.rpartition(".")[2])  # type: ignore[return-value]
