"""The cross-call VAD batcher keeps each call's order and never mixes a call twice."""

from __future__ import annotations

import asyncio

import numpy as np

from callwright.pipeline.vad_batch import VadBatcher


class CountingVAD:
    """Scores a window by its first sample; records every batch it ran."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def probabilities(self, streams, windows):
        self.batches.append([id(s) for s in streams])
        return [float(w[0]) for w in windows]


async def test_batches_across_calls_in_order():
    engine = CountingVAD()
    batcher = VadBatcher(engine, max_delay=0.005, max_batch=3)
    a, b = object(), object()
    seen: list[tuple[str, float]] = []
    w = lambda v: np.full(512, v, np.float32)  # noqa: E731
    batcher.submit(a, w(0.1), lambda p: seen.append(("a", p)))
    batcher.submit(b, w(0.2), lambda p: seen.append(("b", p)))
    # a second window of `a` forces the first batch out: a call's state is sequential
    batcher.submit(a, w(0.3), lambda p: seen.append(("a", p)))
    assert [len(x) for x in engine.batches] == [2]
    await asyncio.sleep(0.02)  # the timer flushes the rest
    assert [len(x) for x in engine.batches] == [2, 1]
    assert [(k, round(p, 2)) for k, p in seen] == [("a", 0.1), ("b", 0.2), ("a", 0.3)]
    for _ in range(3):  # a full batch goes at once
        batcher.submit(object(), w(0.5), lambda p: None)
    assert [len(x) for x in engine.batches] == [2, 1, 3]
