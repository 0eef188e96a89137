"""Batches VAD windows from every call in the process into one inference.

A VAD engine that declares `BatchVADEngine` (`probabilities(streams, windows)`) is
run on many calls' windows at once: at 100 calls this is the biggest single cost of
the framework, and Silero costs ~35 µs a window in batches instead of ~95 µs alone.
Windows wait at most `max_delay` (4 ms) for company; each call's windows keep their
order.

A call's recurrent state feeds its next window, so one inference holds at most one
window per call. When a call has several windows waiting (its frames arrived in a
burst after the loop was busy), they go in successive rounds of the same flush,
each round batched with the other calls' windows. The first version flushed
whenever a call submitted twice: after any stall every call's burst then ran one
window per inference, tripling the VAD's cost exactly when the loop was behind, and
the stall fed itself (measured: ~1.06 windows per inference at 100 calls).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from callwright.engines.base import BatchVADEngine, VADEngine

log = logging.getLogger(__name__)

Callback = Callable[[float], None]
_Entry = tuple[Any, np.ndarray, Callback]


class VadBatcher:
    def __init__(
        self, engine: BatchVADEngine, *, max_delay: float = 0.004, max_batch: int = 64
    ) -> None:
        self.engine = engine
        self.max_delay = max_delay
        self.max_batch = max_batch
        self._pending: list[_Entry] = []
        self._streams: set[int] = set()  # calls with a window in _pending
        self._timer: asyncio.TimerHandle | None = None
        self.batches = 0
        self.windows = 0

    def submit(self, stream: Any, window: np.ndarray, callback: Callback) -> None:
        self._pending.append((stream, window, callback))
        self._streams.add(id(stream))
        if len(self._streams) >= self.max_batch:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_delay, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        self._streams.clear()
        while pending:
            # one round: the oldest waiting window of each call, up to max_batch calls
            round_: list[_Entry] = []
            rest: list[_Entry] = []
            seen: set[int] = set()
            for entry in pending:
                key = id(entry[0])
                if key in seen or len(round_) >= self.max_batch:
                    rest.append(entry)
                    seen.add(key)  # its later windows must wait for this one
                else:
                    seen.add(key)
                    round_.append(entry)
            self._run(round_)
            pending = rest

    def _run(self, entries: list[_Entry]) -> None:
        probs = self.engine.probabilities([e[0] for e in entries], [e[1] for e in entries])
        self.batches += 1
        self.windows += len(entries)
        for (_, _, callback), prob in zip(entries, probs, strict=True):
            try:
                callback(prob)
            except Exception:  # one call's failure must not starve the others
                log.exception("VAD callback failed")


_BATCHERS: dict[tuple[int, int], VadBatcher] = {}


def batcher_for(engine: VADEngine) -> VadBatcher | None:
    """The running loop's batcher for `engine`, or None if it cannot batch."""
    if not isinstance(engine, BatchVADEngine):
        return None
    key = (id(asyncio.get_running_loop()), id(engine))
    batcher = _BATCHERS.get(key)
    if batcher is None:
        batcher = _BATCHERS[key] = VadBatcher(engine)
    return batcher
