"""Saved llama.cpp sequence states, one per conversation, for `LlamaCppLLM`.

A conversation's KV cells (`llama_state_seq_get_data`, about 12 KB a token for
Qwen2.5-0.5B) are saved when another conversation takes the shared context and
restored when it comes back, so its prompt prefix is not evaluated again. The cache
keeps the most recently used states within a count and a byte budget.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(slots=True)
class SeqState:
    """The tokens of a sequence and its KV cells as llama.cpp serialised them."""

    tokens: np.ndarray
    data: bytes

    @property
    def nbytes(self) -> int:
        return len(self.data) + self.tokens.nbytes


def save_sequence(llm: Any) -> SeqState | None:
    """The live sequence of a `llama_cpp.Llama`, or None when it is empty or not saved."""
    import llama_cpp

    if llm.n_tokens == 0:
        return None
    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    buf = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
    if written <= 0:
        return None
    return SeqState(llm.input_ids[: llm.n_tokens].copy(), bytes(buf)[:written])


def restore_sequence(llm: Any, state: SeqState) -> bool:
    """Make `state` the live sequence; False (and an empty context) if llama.cpp refuses."""
    import llama_cpp

    ctx = llm._ctx.ctx
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    buf = (ctypes.c_uint8 * len(state.data)).from_buffer_copy(state.data)
    if llama_cpp.llama_state_seq_set_data(ctx, buf, len(state.data), 0) != len(state.data):
        llm.reset()
        return False
    n = len(state.tokens)
    llm.input_ids[:n] = state.tokens
    llm.n_tokens = n
    llm._requires_eval = True  # the logits are not restored: replay the last token
    return True


class SeqStateCache:
    """Saved states by conversation key, least recently used first, within
    `max_sessions` states and `budget_bytes`."""

    def __init__(self, max_sessions: int, budget_bytes: int) -> None:
        self.max_sessions = max_sessions
        self.budget_bytes = budget_bytes
        self._states: OrderedDict[str, SeqState] = OrderedDict()

    def keys(self) -> list[str]:
        return list(self._states)

    def nbytes(self) -> int:
        return sum(s.nbytes for s in self._states.values())

    def put(self, key: str, state: SeqState, *, keep: Collection[str] = ()) -> None:
        """Save `state` as the most recent; evict the oldest states not in `keep` (the
        paused generations, which must find theirs) while over a limit."""
        self._states[key] = state
        self._states.move_to_end(key)
        while len(self._states) > self.max_sessions or self.nbytes() > self.budget_bytes:
            victim = next((k for k in self._states if k not in keep), None)
            if victim is None:
                break
            del self._states[victim]

    def pop(self, key: str) -> SeqState | None:
        return self._states.pop(key, None)

    def clear(self) -> None:
        self._states.clear()
