"""Batches VAD windows from every call in the process into one inference.

A VAD engine that offers `probabilities(streams, windows)` is run on many calls'
windows at once: at 100 calls this is the biggest single cost of the framework, and
Silero costs ~35 µs a window in batches instead of ~95 µs alone. Windows wait at most
`max_delay` (4 ms) for company; each call's windows keep their order, and a call
never has two windows in one batch (its recurrent state feeds the next).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Callback = Callable[[float], None]


class VadBatcher:
    def __init__(self, engine: Any, *, max_delay: float = 0.004, max_batch: int = 64) -> None:
        self.engine = engine
        self.max_delay = max_delay
        self.max_batch = max_batch
        self._streams: list[Any] = []
        self._windows: list[np.ndarray] = []
        self._callbacks: list[Callback] = []
        self._members: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.batches = 0
        self.windows = 0

    def submit(self, stream: Any, window: np.ndarray, callback: Callback) -> None:
        if id(stream) in self._members:
            self.flush()  # its previous window must be scored first
        self._streams.append(stream)
        self._windows.append(window)
        self._callbacks.append(callback)
        self._members.add(id(stream))
        if len(self._streams) >= self.max_batch:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_delay, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._streams:
            return
        streams, windows, callbacks = self._streams, self._windows, self._callbacks
        self._streams, self._windows, self._callbacks = [], [], []
        self._members.clear()
        probs = self.engine.probabilities(streams, windows)
        self.batches += 1
        self.windows += len(streams)
        for callback, prob in zip(callbacks, probs, strict=True):
            try:
                callback(prob)
            except Exception:  # one call's failure must not starve the others
                log.exception("VAD callback failed")


_BATCHERS: dict[tuple[int, int], VadBatcher] = {}


def batcher_for(engine: Any) -> VadBatcher | None:
    """The running loop's batcher for `engine`, or None if it cannot batch."""
    if not hasattr(engine, "probabilities"):
        return None
    key = (id(asyncio.get_running_loop()), id(engine))
    batcher = _BATCHERS.get(key)
    if batcher is None:
        batcher = _BATCHERS[key] = VadBatcher(engine)
    return batcher
