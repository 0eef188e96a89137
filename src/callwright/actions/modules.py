"""An installation's own tools: Python modules imported at start, which register their
tools with `@tool` (see docs/tools-and-flows.md).

Named by `CALLWRIGHT_TOOL_MODULES` (comma-separated) or `--tool-module`, and imported
before the agents are checked, so an agent listing a tool that no module registers is
refused at `agents validate` and at `serve`, never mid-call.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable

ENV = "CALLWRIGHT_TOOL_MODULES"


class ToolModuleError(ImportError):
    """A tool module that cannot be imported; the message says which and why."""


def tool_modules(given: Iterable[str] = ()) -> list[str]:
    """The modules given, plus those in $CALLWRIGHT_TOOL_MODULES, each once."""
    names = [*given, *os.environ.get(ENV, "").split(",")]
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))


def load_tool_modules(names: Iterable[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise ToolModuleError(
                f"tool module {name!r} could not be imported: {type(exc).__name__}: {exc}"
            ) from exc
