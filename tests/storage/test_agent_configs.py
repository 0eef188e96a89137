"""Agent config history on SQLite and PostgreSQL: versioning, canonical JSON, concurrency."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import IntegrityError

from callwright.storage.agent_configs import AgentConfigRepository, canonical_json
from callwright.storage.calls import CallRepository
from callwright.storage.db import Database


async def test_agent_config_versioning(db: Database, calls: CallRepository) -> None:
    configs = AgentConfigRepository(db)
    config = {"prompt": "Be brief.", "tts": {"voice": "joe", "rate": 1.0}, "tools": ["a", "b"]}
    assert await configs.latest("acme", "support") is None
    assert await configs.save_version("acme", "support", config) == 1
    # The same config, keys in another order: same canonical JSON, same version.
    reordered = {"tools": ["a", "b"], "tts": {"rate": 1.0, "voice": "joe"}, "prompt": "Be brief."}
    assert await configs.save_version("acme", "support", reordered) == 1
    changed = {**config, "prompt": "Be very brief."}
    assert await configs.save_version("acme", "support", changed) == 2
    assert await configs.save_version("acme", "support", changed) == 2
    # Going back to an older config is a change too: history stays append-only.
    assert await configs.save_version("acme", "support", config) == 3

    latest = await configs.latest("acme", "support")
    assert latest is not None
    assert (latest.version, latest.config) == (3, config)
    v2 = await configs.get("acme", "support", 2)
    assert v2 is not None
    assert v2.config == changed
    assert canonical_json(v2.config) == canonical_json(changed)
    assert await configs.get("acme", "support", 4) is None

    # Versions are per tenant and per agent.
    assert await configs.save_version("globex", "support", changed) == 1
    assert await configs.save_version("acme", "sales", config) == 1
    assert await configs.get("globex", "support", 2) is None
    agents = await configs.list_agents("acme")
    assert [(a.agent_id, a.latest_version) for a in agents] == [("sales", 1), ("support", 3)]
    assert all(a.updated_at.tzinfo is not None for a in agents)
    assert [a.agent_id for a in await configs.list_agents("globex")] == ["support"]


async def test_concurrent_saves_get_distinct_versions(db: Database, calls: CallRepository) -> None:
    configs = AgentConfigRepository(db)
    versions = await asyncio.gather(
        *(configs.save_version("acme", "race", {"n": n}) for n in range(4))
    )
    assert sorted(versions) == [1, 2, 3, 4]


async def test_save_version_for_unknown_tenant_fails(db: Database) -> None:
    with pytest.raises(IntegrityError):
        await AgentConfigRepository(db).save_version("nobody", "support", {"a": 1})
