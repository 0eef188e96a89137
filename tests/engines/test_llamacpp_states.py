"""The saved-state cache of the llama.cpp engine: recency, limits, paused conversations
(the save/restore through llama.cpp itself is tested with the model, test_llamacpp_llm)."""

from __future__ import annotations

import numpy as np

from callwright.engines.llamacpp_states import SeqState, SeqStateCache


def state(nbytes: int) -> SeqState:
    return SeqState(np.zeros(0, dtype=np.int32), bytes(nbytes))


def test_the_least_recently_saved_state_goes_first() -> None:
    cache = SeqStateCache(max_sessions=2, budget_bytes=1_000)
    cache.put("a", state(10))
    cache.put("b", state(10))
    cache.put("a", state(10))  # a is now the most recent
    cache.put("c", state(10))
    assert cache.keys() == ["a", "c"]


def test_the_byte_budget_evicts_too() -> None:
    cache = SeqStateCache(max_sessions=10, budget_bytes=250)
    for key in "abc":
        cache.put(key, state(100))
    assert cache.keys() == ["b", "c"] and cache.nbytes() == 200


def test_states_of_paused_generations_are_kept_over_the_limit() -> None:
    cache = SeqStateCache(max_sessions=1, budget_bytes=1_000)
    cache.put("paused", state(10))
    cache.put("b", state(10), keep={"paused"})
    assert cache.keys() == ["paused"]  # the only state that may go is the new one
    cache.put("c", state(10), keep={"paused", "c"})
    assert cache.keys() == ["paused", "c"]  # nothing may go: over the limit for now


def test_pop_takes_the_state_out() -> None:
    cache = SeqStateCache(max_sessions=4, budget_bytes=1_000)
    saved = state(10)
    cache.put("a", saved)
    assert cache.pop("a") is saved
    assert cache.pop("a") is None and cache.keys() == []
