"""Agent configs checked against the engines this installation has."""

from __future__ import annotations

import pytest

from callwright.agents.checks import check_agents, engine_problems, tool_problems
from callwright.agents.config import AgentConfig
from callwright.agents.loader import AgentConfigError
from callwright.engines import registry


def agent(**engines: object) -> AgentConfig:
    return AgentConfig.model_validate(
        {"agent_id": "a", "agent_name": "A", "prompts": {"system": "hi"}, "engines": engines}
    )


def test_the_default_engines_are_known() -> None:
    assert engine_problems(agent()) == []


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("asr", "asr"),
        ("llm", "llm"),
        ("tts", "tts"),
        ("vad", "vad"),
        ("embed", "embed"),
        ("rerank", "rerank"),
        ("tts_fallback", "tts"),
    ],
)
def test_every_engine_field_is_checked(field: str, kind: str) -> None:
    problems = engine_problems(agent(**{field: {"name": "nonesuch"}}))
    assert len(problems) == 1
    assert problems[0].startswith(f"engines.{field}.name: unknown {kind} engine 'nonesuch'")


def test_an_engine_registered_by_the_installation_is_known() -> None:
    name = "test-checks-tts"
    assert engine_problems(agent(tts={"name": name}))
    registry.register("tts", name)(lambda **_: None)
    try:
        assert engine_problems(agent(tts={"name": name})) == []
    finally:
        registry._FACTORIES.pop(("tts", name))


def test_check_agents_names_every_agent_and_field() -> None:
    good, bad = agent(), agent(llm={"name": "gpt"}, vad={"name": "loud"})
    check_agents({"good": good}, known_tools=())
    with pytest.raises(AgentConfigError) as err:
        check_agents({"good": good, "a": bad}, known_tools=())
    text = str(err.value)
    assert "agent 'a': engines.llm.name: unknown llm engine 'gpt'" in text
    assert "agent 'a': engines.vad.name: unknown vad engine 'loud'" in text


def test_tools_must_be_registered() -> None:
    a = agent()
    a = a.model_copy(update={"tools": ["book", "cancel"]})
    assert tool_problems(a, known_tools={"book"}) == [
        "tools[1]: unknown tool 'cancel'; registered: ['book']"
    ]
    assert tool_problems(a, known_tools={"book", "cancel"}) == []
