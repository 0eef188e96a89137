"""`callwright serve`, optionally profiled or with one piece swapped, for experiments.

Used by `capacity.py --profile` and `capacity.py --variant`; the stock server is started
directly (`callwright serve`), never through this file. Settings come from the
environment, so the server's own command line stays the same:

* CW_BENCH_PROFILE=OUT.prof  run under cProfile, timing CPU time (time.process_time),
  not wall time: other processes on a shared machine must not show up as hot spots;
* CW_BENCH_WS=websockets|websockets-sansio|wsproto  the uvicorn WebSocket implementation
  instead of the one `callwright serve` picks;
* CW_BENCH_NO_PERSIST=1  calls no longer persist their events and turns (the call row
  itself is still written): measures what per-event persistence costs;
* CW_BENCH_DIAG=OUT.json  changes nothing, records: every garbage collection of
  generation 1 or 2 (duration), and the event loop's lag (a task asking to wake every
  5 ms records how late it woke), written at exit.

    python bench/serve_variant.py serve --port 8000 --agents-dir DIR --data-dir DIR
"""

from __future__ import annotations

import cProfile
import os
import sys
import time
from typing import Any


def _patch() -> None:
    ws = os.environ.get("CW_BENCH_WS")
    if ws:
        import uvicorn

        real_run = uvicorn.run

        def run(app: Any, **kwargs: Any) -> None:
            kwargs["ws"] = ws
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

    def dump() -> None:
        with open(out, "w") as f:
            json.dump({"gc": collections, "lags": lags}, f)

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
