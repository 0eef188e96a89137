"""`callwright serve`, optionally profiled or with one piece swapped, for experiments.

Used by `capacity.py --profile` and `capacity.py --variant`; the stock server is started
directly (`callwright serve`), never through this file. Settings come from the
environment, so the server's own command line stays the same:

* CW_BENCH_PROFILE=OUT.prof  run under cProfile, timing CPU time (time.process_time),
  not wall time: other processes on a shared machine must not show up as hot spots;
* CW_BENCH_WS=websockets|websockets-sansio|wsproto  the uvicorn WebSocket implementation
  instead of the one `callwright serve` picks;
* CW_BENCH_LOOP=asyncio|uvloop  the event loop implementation uvicorn runs (`callwright
  serve` lets uvicorn pick: uvloop when it is installed);
* CW_BENCH_NO_PERSIST=1  calls no longer persist their events and turns (the call row
  itself is still written): measures what per-event persistence costs;
* CW_BENCH_DIAG=OUT.json  changes nothing, records: every garbage collection of
  generation 1 or 2 (duration), the event loop's lag (a task asking to wake every
  5 ms records how late it woke), every loop iteration whose callbacks ran for over
  15 ms together (with the slowest callbacks named: what the loop was doing when it
  stalled; asyncio only, so run it with CW_BENCH_LOOP=asyncio), and the CPU time of
  each of the process's threads, written at exit.

    python bench/serve_variant.py serve --port 8000 --agents-dir DIR --data-dir DIR
"""

from __future__ import annotations

import cProfile
import os
import sys
import time
from pathlib import Path
from typing import Any


def _patch() -> None:
    ws = os.environ.get("CW_BENCH_WS")
    loop = os.environ.get("CW_BENCH_LOOP")
    if ws or loop:
        import uvicorn

        real_run = uvicorn.run

        def run(app: Any, **kwargs: Any) -> None:
            if ws:
                kwargs["ws"] = ws
            if loop:
                kwargs["loop"] = loop
            real_run(app, **kwargs)

        uvicorn.run = run  # type: ignore[assignment]
    if os.environ.get("CW_BENCH_NO_PERSIST"):
        from callwright.sessions import runtime

        def observe(self: Any, event: Any) -> None:
            return None

        runtime.Call.observe = observe  # type: ignore[method-assign]


def _diagnostics(out: str) -> None:
    import asyncio
    import atexit
    import gc
    import json

    from callwright.sessions import runtime

    collections: list[tuple[float, int, float]] = []  # (when, generation, seconds)
    lags: list[tuple[float, float]] = []  # (when, lag seconds) for lags over 2 ms
    state: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] < 1:
            return
        if phase == "start":
            state["t"] = time.perf_counter()
        elif "t" in state:
            collections.append(
                (time.monotonic(), info["generation"], time.perf_counter() - state.pop("t"))
            )

    gc.callbacks.append(on_gc)

    # per-iteration accounting: which callbacks made a loop iteration long
    stalls: list[tuple[float, float, int, list[tuple[float, str]]]] = []
    cur: list[tuple[float, str]] = []
    acc = {"busy": 0.0, "n": 0}

    def describe(handle: Any) -> str:
        cb = getattr(handle, "_callback", None)
        owner = getattr(cb, "__self__", None)
        if isinstance(owner, asyncio.Task):
            coro = owner.get_coro()
            frame = getattr(coro, "cr_frame", None)
            where = ""
            if frame is not None:
                where = f"@{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}"
            return f"task {getattr(coro, '__qualname__', coro)}{where}"
        return repr(cb)[:120]

    real_handle_run = asyncio.events.Handle._run

    def handle_run(self: Any) -> None:
        t = time.perf_counter()
        real_handle_run(self)
        d = time.perf_counter() - t
        acc["busy"] += d
        acc["n"] += 1
        if d > 0.001:
            cur.append((d, describe(self)))

    asyncio.events.Handle._run = handle_run  # type: ignore[method-assign]
    import asyncio.base_events as base_events

    real_once = base_events.BaseEventLoop._run_once

    def run_once(self: Any) -> None:
        cur.clear()
        acc["busy"] = 0.0
        acc["n"] = 0
        real_once(self)
        if acc["busy"] > 0.015:
            top = sorted(cur, reverse=True)[:8]
            stalls.append((time.monotonic(), acc["busy"], int(acc["n"]), top))

    base_events.BaseEventLoop._run_once = run_once  # type: ignore[method-assign]

    async def monitor() -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.005
            await asyncio.sleep(0.005)
            lag = loop.time() - due
            if lag > 0.002:
                lags.append((time.monotonic(), lag))

    real_start = runtime.CallRuntime.start

    async def start(self: Any, preload: bool = True) -> None:
        await real_start(self, preload)
        state["task"] = asyncio.ensure_future(monitor())  # type: ignore[assignment]

    runtime.CallRuntime.start = start  # type: ignore[method-assign]

    def threads() -> list[tuple[str, float]]:
        rows = []
        tick = os.sysconf("SC_CLK_TCK")
        for tid in os.listdir("/proc/self/task"):
            try:
                task = Path("/proc/self/task") / tid
                name = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                rows.append((f"{tid} {name}", (int(fields[11]) + int(fields[12])) / tick))
            except OSError:
                continue
        return sorted(rows, key=lambda r: -r[1])

    def dump() -> None:
        from callwright.pipeline import vad_batch

        batching = [(b.batches, b.windows) for b in vad_batch._BATCHERS.values()]
        with open(out, "w") as f:
            json.dump(
                {
                    "gc": collections,
                    "lags": lags,
                    "stalls": stalls,
                    "threads": threads(),
                    "vad_batches": batching,
                },
                f,
            )

    atexit.register(dump)


def main() -> None:
    sys.argv = ["callwright", *sys.argv[1:]]
    _patch()
    if os.environ.get("CW_BENCH_DIAG"):
        _diagnostics(os.environ["CW_BENCH_DIAG"])
    from callwright.cli import app

    out = os.environ.get("CW_BENCH_PROFILE")
    prof = cProfile.Profile(time.process_time) if out else None
    if prof is not None:
        prof.enable()
    try:
        app()
    except SystemExit:
        pass
    finally:
        if prof is not None and out:
            prof.disable()
            prof.dump_stats(out)


if __name__ == "__main__":
    main()
