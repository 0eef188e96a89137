"""The cross-call VAD batcher keeps each call's order and never puts a call twice in
one inference, even when a call's windows arrive in a burst."""

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
    # a second window of `a` waits for a second round: a call's state is sequential
    batcher.submit(a, w(0.3), lambda p: seen.append(("a", p)))
    assert engine.batches == []
    await asyncio.sleep(0.02)  # the timer flushes both rounds
    assert engine.batches == [[id(a), id(b)], [id(a)]]
    assert [(k, round(p, 2)) for k, p in seen] == [("a", 0.1), ("b", 0.2), ("a", 0.3)]
    for _ in range(3):  # a full batch goes at once
        batcher.submit(object(), w(0.5), lambda p: None)
    assert [len(x) for x in engine.batches] == [2, 1, 3]


async def test_a_burst_of_every_call_is_scored_in_rounds():
    """After a stall every call delivers several windows at once: they go as rounds of
    one window per call, not one inference per window."""
    engine = CountingVAD()
    batcher = VadBatcher(engine, max_delay=0.005, max_batch=64)
    calls = [object() for _ in range(10)]
    seen: dict[int, list[float]] = {id(c): [] for c in calls}
    for c in calls:  # each call's burst arrives together, as its receive task reads it
        for k in range(3):
            batcher.submit(c, np.full(512, k / 10, np.float32), seen[id(c)].append)
    await asyncio.sleep(0.02)
    assert [len(b) for b in engine.batches] == [10, 10, 10]
    assert all(len(set(b)) == len(b) for b in engine.batches)
    assert all([round(p, 1) for p in v] == [0.0, 0.1, 0.2] for v in seen.values())


async def test_rounds_respect_max_batch_and_order():
    engine = CountingVAD()
    batcher = VadBatcher(engine, max_delay=0.005, max_batch=2)
    a, b, c = object(), object(), object()
    order: list[str] = []
    w = np.zeros(512, np.float32)
    batcher.submit(a, w, lambda p: order.append("a1"))
    batcher.submit(a, w, lambda p: order.append("a2"))
    batcher.submit(b, w, lambda p: order.append("b1"))  # two calls: a full batch, flushed
    assert engine.batches == [[id(a), id(b)], [id(a)]]
    assert order == ["a1", "b1", "a2"]
    batcher.submit(c, w, lambda p: order.append("c1"))
    await asyncio.sleep(0.02)
    assert engine.batches[-1] == [id(c)]
