from __future__ import annotations

from pathlib import Path

import pytest

from callwright.agents.loader import AgentConfigError, load_agent_dir, load_agent_file, parse_agent

REPO = Path(__file__).resolve().parents[2]

MINIMAL = {"agent_id": "desk", "agent_name": "Desk", "prompts": {"system": "Be helpful."}}


def test_repository_agents_are_valid():
    agents = load_agent_dir(REPO / "agents")
    assert "clinic-receptionist" in agents
    demo = agents["clinic-receptionist"]
    # the seeds' structured object
    assert demo.tenant_id == "default" and demo.voice_profile and demo.language == "en-US"
    assert "book appointments" in demo.goals and "do_not_diagnose" in demo.guardrails
    prompt = demo.system_prompt()
    assert "Harbor Family Clinic" in prompt and "do not diagnose" in prompt
    assert prompt == demo.system_prompt()  # byte-identical: the LLM's prompt cache relies on it


def test_unknown_keys_are_rejected_with_the_field_named():
    with pytest.raises(AgentConfigError) as err:
        parse_agent({**MINIMAL, "turn_taking": {"vad_stop_sec": 0.3}})
    assert "turn_taking.vad_stop_sec: unknown field" in str(err.value)


def test_bad_values_name_the_field():
    bad = {**MINIMAL, "agent_id": "Bad Id!", "turn_taking": {"vad_stop_secs": -1}}
    with pytest.raises(AgentConfigError) as err:
        parse_agent(bad)
    text = str(err.value)
    assert "agent_id:" in text and "turn_taking.vad_stop_secs:" in text


def test_idle_hangup_must_follow_reprompt():
    with pytest.raises(AgentConfigError, match="idle_hangup_secs must be greater"):
        parse_agent({**MINIMAL, "turn_taking": {"idle_reprompt_secs": 10, "idle_hangup_secs": 5}})


def test_missing_prompt_and_non_mapping(tmp_path):
    with pytest.raises(AgentConfigError, match="prompts: Field required"):
        parse_agent({"agent_id": "x", "agent_name": "X"})
    f = tmp_path / "a.yaml"
    f.write_text("- just\n- a list\n")
    with pytest.raises(AgentConfigError, match="must be a mapping"):
        load_agent_file(f)
    f.write_text("agent_id: [unclosed\n")
    with pytest.raises(AgentConfigError, match="not valid YAML"):
        load_agent_file(f)


def test_json_configs_and_duplicate_ids(tmp_path):
    import json

    (tmp_path / "a.json").write_text(json.dumps(MINIMAL))
    (tmp_path / "b.yaml").write_text("agent_id: desk\nagent_name: Two\nprompts: {system: hi}\n")
    with pytest.raises(AgentConfigError, match="duplicate agent_id 'desk'"):
        load_agent_dir(tmp_path)


def test_knowledge_mode_off_survives_yaml() -> None:
    import yaml

    from callwright.agents.config import AgentConfig

    data = yaml.safe_load(
        "agent_id: a\nagent_name: A\nprompts: {system: hi}\n"
        "knowledge_sources: [clinic]\nknowledge: {mode: off}\n"
    )
    assert data["knowledge"]["mode"] is False  # what YAML makes of it
    agent = AgentConfig.model_validate(data)
    assert agent.knowledge.mode == "off"
    assert "numbered facts" not in agent.system_prompt()
    on = AgentConfig.model_validate({**data, "knowledge": {}})
    assert "numbered facts" in on.system_prompt()
