"""Tool modules named on the command line or in the environment."""

from __future__ import annotations

import pytest

from callwright.actions.modules import ENV, ToolModuleError, load_tool_modules, tool_modules


def test_names_from_options_and_the_environment_each_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, " shop.tools, ,crm.tools,shop.tools")
    assert tool_modules(["crm.tools", "x"]) == ["crm.tools", "x", "shop.tools"]
    monkeypatch.delenv(ENV)
    assert tool_modules() == []


def test_a_module_that_fails_to_import_is_named() -> None:
    with pytest.raises(ToolModuleError, match=r"'callwright\.nonesuch' could not be imported"):
        load_tool_modules(["callwright.nonesuch"])
