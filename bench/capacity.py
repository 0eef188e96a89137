"""Framework capacity: how many real-time calls one core holds with zero-cost engines.

    .venv/bin/python bench/capacity.py --sessions 1 10 50 100 200 --duration 60 \\
        --out bench/results/capacity.json

For each configuration (Silero VAD ungated and/or gated at -60 dBFS; recordings on
and/or off) and each N, the script:

1. writes a bench agent (the engines of agents/zero-cost.yaml: scripted ASR, LLM, TTS
   doing no inference, real Silero VAD; no greeting, no idle timers; no extra
   endpointing wait) into a temporary agents directory;
2. starts a fresh server pinned to one core:
   `taskset -c 0 <venv>/bin/callwright serve --port P --agents-dir DIR --data-dir TMP`
   (`CALLWRIGHT_RECORD=false` for the runs without recordings);
3. places one warm-up call, then reads the idle RSS;
4. ramps N simulated callers (this process, pinned to the other core; see
   capacity_loadgen.py) over a few seconds, waits for them to settle, then measures
   for `--duration` seconds: each caller streams 20 ms PCM16 frames on an absolute
   real-time schedule, speaks an espeak-ng line (1.7-2.0 s), waits for
   `agent_speech_ended`, pauses 1.0-1.3 s and speaks again;
5. hangs up and stops the server (SIGINT).

Metrics, per turn whose last speech frame was sent inside the window:

* raw reply latency: last speech frame written -> first reply audio frame read;
* added latency: raw minus the endpointing delay of that exact audio, i.e. the frames
  from the last speech frame to the frame that completes the 32 ms window on which the
  server's own VAD (same weights, parameters and gate, run offline on the same audio at
  the same window alignment) declares STOP. This is what the framework adds on top of
  the VAD: loop delays, queueing, the pipeline, the transport, loopback TCP;
* raw minus the configured stop time (0.3 s), as the issue defines it; it still holds
  the VAD's own tail (the window grid and Silero's decay after the last syllable, 0-80 ms);
* late frames: a reply audio frame read after the moment it should start playing, when
  the reply's first frame starts playing on arrival and frames play back to back at
  20 ms (no jitter buffer beyond what the server's ~80 ms lead gives).

Per run: server CPU seconds per session-minute (utime+stime from /proc/PID/stat over
the window, divided by N x window minutes), memory per session ((RSS at the end of
the window - idle RSS) / N), and the generator's own CPU use and tick lateness: if the
generator saturates, the run is flagged and its numbers are not the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from capacity_loadgen import (
    FRAME_SECS,
    Fleet,
    make_utterances,
    vad_stop_delays,
)

AGENT_ID = "bench-capacity"
VAD_STOP_SECS = 0.3
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGETS = {"p95_added_ms": 30.0, "cpu_s_per_session_min": 1.0, "mb_per_session": 3.0}

AGENT_YAML = """\
# Written by bench/capacity.py: the engines of agents/zero-cost.yaml.
agent_id: {agent_id}
agent_name: Capacity benchmark agent
tenant_id: default
prompts:
  system: You are a benchmark agent.
greeting: null
engines:
  asr: {{name: scripted}}
  llm: {{name: scripted, options: {{reply: "Sure. You said {{user}}. Anything else?"}}}}
  tts: {{name: scripted, options: {{sample_rate: 16000}}}}
  vad: {{name: silero{vad_options}}}
  tts_fallback: null
turn_taking:
  vad_stop_secs: {stop}
  speculative_reply: false
  endpointing_delay_secs: 0.0
  # the scripted ASR's text cut at any word may end in "for"/"an": no extra patience
  incomplete_delay_secs: 0.0
  idle_reprompt_secs: null
  idle_hangup_secs: null
"""


# ------------------------------------------------------------------ /proc helpers
def proc_cpu_secs(pid: int) -> float:
    """utime + stime of a whole process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def core_busy_secs(cores: tuple[int, ...]) -> dict[int, float]:
    """Busy time (everything but idle and iowait) of each core since boot, in seconds."""
    out: dict[int, float] = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *vals = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
                v = [int(x) for x in vals]
                out[int(name[3:])] = (sum(v[:8]) - v[3] - v[4]) / CLK_TCK
    return out


async def wait_quiet(cores: tuple[int, ...], max_wait: float, limit: float = 0.1) -> float:
    """Wait (up to max_wait s) until no core in `cores` is busier than `limit` over 2 s:
    other jobs on a shared machine would distort latency. Returns the last busiest load."""
    deadline = time.monotonic() + max_wait
    while True:
        a = core_busy_secs(cores)
        await asyncio.sleep(2.0)
        b = core_busy_secs(cores)
        load = max((b[c] - a[c]) / 2.0 for c in cores)
        if load <= limit or time.monotonic() > deadline:
            return load


def src_version() -> str:
    """The commit the server runs, plus a digest of uncommitted changes under src/:
    a session editing src/ while a long benchmark runs would otherwise go unnoticed."""
    repo = Path(__file__).resolve().parent.parent

    def git(*a: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *a], capture_output=True, text=True, check=False
        ).stdout

    import hashlib

    head = git("rev-parse", "--short", "HEAD").strip()
    dirty = git("diff", "HEAD", "--", "src") + git("status", "--porcelain", "--", "src")
    return head + (f"+dirty:{hashlib.sha1(dirty.encode()).hexdigest()[:8]}" if dirty else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    # nearest-rank percentile
    k = max(0, min(len(v) - 1, int(-(-q * len(v) // 100)) - 1))
    return v[k]


def r1(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


# ------------------------------------------------------------------ the server
class Server:
    def __init__(
        self,
        workdir: Path,
        agents_dir: Path,
        *,
        record: bool,
        core: int,
        profile: Path | None = None,
        variant: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=workdir))
        self.log_path = self.data_dir.with_suffix(".log")
        args = ["serve", "--port", str(self.port)]
        args += ["--agents-dir", str(agents_dir), "--data-dir", str(self.data_dir)]
        env = dict(os.environ, CALLWRIGHT_RECORD="true" if record else "false")
        env.pop("CALLWRIGHT_DATABASE_URL", None)
        if profile is None and not variant:
            cli = [str(Path(sys.executable).parent / "callwright"), *args]  # the stock server
        else:
            wrapper = Path(__file__).resolve().parent / "serve_variant.py"
            cli = [sys.executable, str(wrapper), *args]
            env.update(variant or {})
            if profile is not None:
                env["CW_BENCH_PROFILE"] = str(profile)
        self.cmd = ["taskset", "-c", str(core), *cli]
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/readyz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(Exception), urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("server not ready in time")

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)  # recordings: up to ~1 GB at N=200


# ------------------------------------------------------------------ one point
async def warm_up(fleet: Fleet) -> None:
    """One call, one turn: imports and first-call allocations happen before idle RSS."""
    fleet.start()
    caller = await fleet.add_caller()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(t.ended for t in caller.turns):  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    await fleet.hang_up_all()


async def run_point(
    n: int,
    cfg: dict[str, Any],
    args: argparse.Namespace,
    workdir: Path,
    agents_dir: Path,
    utterances: list[tuple[str, bytes]],
    delays: list[list[int]],
    profile: Path | None = None,
) -> dict[str, Any]:
    cores = (args.server_core, args.client_core)
    background = await wait_quiet(cores, args.quiet_wait)
    diag = workdir / f"diag-{cfg['name']}-{n}.json" if args.diag else None
    if diag is not None:
        cfg = {**cfg, "variant": {**(cfg.get("variant") or {}), "CW_BENCH_DIAG": str(diag)}}
    version = src_version()
    server = Server(
        workdir,
        agents_dir,
        record=cfg["record"],
        core=args.server_core,
        profile=profile,
        variant=cfg.get("variant"),
    )
    try:
        await asyncio.to_thread(server.wait_ready)
        mk = dict(host="127.0.0.1", port=server.port, agent_id=AGENT_ID)
        await warm_up(Fleet(utterances=utterances, vad_delays=delays, **mk))  # type: ignore[arg-type]
        await asyncio.sleep(2.0)
        idle_rss = proc_rss_mb(server.pid)
        c0 = proc_cpu_secs(server.pid)
        await asyncio.sleep(3.0)
        idle_cpu = (proc_cpu_secs(server.pid) - c0) / 3.0

        fleet = Fleet(utterances=utterances, vad_delays=delays, **mk)  # type: ignore[arg-type]
        fleet.start()
        ramp = args.ramp if args.ramp is not None else min(10.0, max(1.0, n * 0.05))
        await fleet.ramp(n, ramp)
        await asyncio.sleep(args.settle)
        loop = asyncio.get_running_loop()
        # no collector pauses in the generator while it measures (it makes little garbage
        # with cycles; a gen-2 pass over the VAD/numpy heap takes tens of ms)
        gc.collect()
        gc.freeze()
        gc.disable()
        w0 = loop.time()
        fleet.window = (w0, w0 + args.duration)
        s0, g0 = proc_cpu_secs(server.pid), proc_cpu_secs(os.getpid())
        k0 = core_busy_secs(cores)
        samples: list[tuple[float, float, float]] = []  # (t, server cpu, rss)
        while loop.time() < w0 + args.duration:
            await asyncio.sleep(min(1.0, max(0.0, w0 + args.duration - loop.time())))
            samples.append((loop.time() - w0, proc_cpu_secs(server.pid), proc_rss_mb(server.pid)))
        w1 = loop.time()
        gc.enable()
        s1, g1 = proc_cpu_secs(server.pid), proc_cpu_secs(os.getpid())
        k1 = core_busy_secs(cores)
        end_rss = proc_rss_mb(server.pid)
        fleet.window = (w0, w1)
        active_at_end = sum(1 for c in fleet.callers if c.active)
        # let the replies to the last turns of the window arrive
        await asyncio.sleep(args.tail)
        turns = fleet.turns_in_window()
        await fleet.hang_up_all()
    finally:
        await asyncio.to_thread(server.stop)
    # the exact endpointing delay of every turn: replay each call through the VAD offline
    # (after the server stopped, so it costs the measurement nothing)
    replay_bad = fleet.replay_vad(cfg["gate"])
    diagnostics = summarize_diag(diag, w0, w1) if diag is not None else None

    window = w1 - w0
    answered = [t for t in turns if t.first_reply is not None]
    raw = [(t.first_reply - t.speech_end) * 1000 for t in answered]  # type: ignore[operator]
    added = [
        (t.first_reply - t.speech_end - t.vad_delay_frames * FRAME_SECS) * 1000  # type: ignore[operator]
        for t in answered
    ]
    vad_part = [t.vad_delay_frames * FRAME_SECS * 1000 for t in answered]
    minus_cfg = [x - VAD_STOP_SECS * 1000 for x in raw]
    server_internal = [
        t.server["first_audio_out_ms"] - t.server["vad_stop_ms"]
        for t in answered
        if t.server
        and t.server.get("first_audio_out_ms") is not None
        and t.server.get("vad_stop_ms") is not None
    ]
    frames = sum(t.frames for t in answered)
    late = sum(t.late_frames for t in answered)
    server_cpu = s1 - s0
    gen_cpu = g1 - g0
    session_min = n * window / 60.0
    lat = fleet.stats.tick_lateness
    cpu_series = [round((b[1] - a[1]) / (b[0] - a[0]), 3) for a, b in itertools.pairwise(samples)]
    result: dict[str, Any] = {
        "config": cfg["name"],
        "gate_dbfs": cfg["gate"],
        "record": cfg["record"],
        "variant": cfg.get("variant"),
        "src_version": version,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sessions": n,
        "connected": sum(1 for c in fleet.callers if c.upgraded),
        "active_at_window_end": active_at_end,
        "window_s": round(window, 2),
        "ramp_s": ramp,
        "turns": len(turns),
        "answered": len(answered),
        "timed_out": sum(1 for t in turns if t.first_reply is None),
        "vad_missed_start": sum(1 for t in turns if not t.vad_started),
        "vad_replay_anomalies": replay_bad,
        "vad_exact_turns": sum(1 for t in answered if t.vad_exact),
        "vad_table_misses": sum(
            1
            for t in answered
            if t.table_delay_frames is not None and t.table_delay_frames != t.vad_delay_frames
        ),
        "reply_ms_raw": {
            "p50": r1(pct(raw, 50)),
            "p95": r1(pct(raw, 95)),
            "max": r1(max(raw, default=None)),
        },
        "vad_endpointing_ms": {
            "p50": r1(pct(vad_part, 50)),
            "mean": r1(statistics.fmean(vad_part)) if vad_part else None,
        },
        "added_ms": {
            "p50": r1(pct(added, 50)),
            "p95": r1(pct(added, 95)),
            "p99": r1(pct(added, 99)),
            "max": r1(max(added, default=None)),
        },
        "raw_minus_stop_ms": {"p50": r1(pct(minus_cfg, 50)), "p95": r1(pct(minus_cfg, 95))},
        "server_vad_stop_to_first_audio_ms": {
            "p50": r1(pct(server_internal, 50)),
            "p95": r1(pct(server_internal, 95)),
        },
        "reply_frames": frames,
        "late_frames": late,
        "replies_with_late_frames": sum(1 for t in answered if t.late_frames),
        "max_lateness_ms": r1(max((t.max_late for t in answered), default=0.0) * 1000),
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_util": round(server_cpu / window, 3),
        "server_idle_cpu_util": round(idle_cpu, 4),
        "cpu_s_per_session_min": round(server_cpu / session_min, 3) if n else None,
        "server_cpu_util_per_s": cpu_series,
        "rss_idle_mb": round(idle_rss, 1),
        "rss_end_mb": round(end_rss, 1),
        "mb_per_session": round((end_rss - idle_rss) / n, 2) if n else None,
        "generator_cpu_util": round(gen_cpu / window, 3),
        # CPU use on each pinned core by anything but the server / the generator (other
        # jobs on a shared machine, kernel work): above ~0.05 the latency is suspect
        "foreign_load_server_core": round(
            (k1[args.server_core] - k0[args.server_core] - server_cpu) / window, 3
        ),
        "foreign_load_client_core": round(
            (k1[args.client_core] - k0[args.client_core] - gen_cpu) / window, 3
        ),
        "background_load_before": round(background, 3),
        "generator_tick_late_ms": {
            "p50": r1(pct([x * 1000 for x in lat], 50)),
            "p99": r1(pct([x * 1000 for x in lat], 99)),
            "max": r1(max(lat, default=0.0) * 1000),
            "over_20ms": sum(1 for x in lat if x > 0.02),
        },
        "connect_failures": fleet.stats.connect_failures,
        "closed_early": fleet.stats.closed_early,
        "interruptions": fleet.stats.interruptions,
        "stray_frames": fleet.stats.stray_frames,
        "errors": fleet.stats.errors[:10],
        "diagnostics": diagnostics,
        # per turn: caller, line, raw ms, endpointing ms, added ms, server's
        # vad_stop->first audio ms, reply frames, late frames, speech end (s into window)
        "turn_log": [
            [
                t.caller,
                t.utterance,
                round((t.first_reply - t.speech_end) * 1000, 1),  # type: ignore[operator]
                round(t.vad_delay_frames * FRAME_SECS * 1000),
                round((t.first_reply - t.speech_end - t.vad_delay_frames * FRAME_SECS) * 1000, 1),  # type: ignore[operator]
                (
                    round(t.server["first_audio_out_ms"] - t.server["vad_stop_ms"], 1)
                    if t.server
                    and t.server.get("first_audio_out_ms") is not None
                    and t.server.get("vad_stop_ms") is not None
                    else None
                ),
                t.frames,
                t.late_frames,
                round(t.speech_end - w0, 2),
            ]
            for t in answered
        ],
    }
    # the generator's own core is busy, or its ticks ran late while nothing else was
    result["generator_saturated"] = result["generator_cpu_util"] > 0.8 or (
        (result["generator_tick_late_ms"]["p99"] or 0) > 10
        and result["foreign_load_client_core"] < 0.05
    )
    result["meets_targets"] = bool(
        answered
        and not result["timed_out"]
        and (result["added_ms"]["p95"] or 1e9) < TARGETS["p95_added_ms"]
        and (result["cpu_s_per_session_min"] or 1e9) < TARGETS["cpu_s_per_session_min"]
        and (result["mb_per_session"] or 0) < TARGETS["mb_per_session"]
        and late == 0
    )
    result["broken"] = bool(
        not answered
        or result["timed_out"] > 0.01 * len(turns)
        or (result["added_ms"]["p95"] or 0) > 250
        or result["connect_failures"]
        or result["closed_early"]
    )
    return result


def summarize_diag(path: Path, w0: float, w1: float) -> dict[str, Any] | None:
    """GC pauses and event-loop lag inside the window (from bench/serve_variant.py)."""
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    gcs = [(g, secs) for t, g, secs in d["gc"] if w0 <= t < w1]
    lags = [lag * 1000 for t, lag in d["lags"] if w0 <= t < w1]
    gen2 = [secs * 1000 for g, secs in gcs if g == 2]
    gen1 = [secs * 1000 for g, secs in gcs if g == 1]
    stalls = [(busy, n, top) for t, busy, n, top in d.get("stalls", []) if w0 <= t < w1]
    culprits: dict[str, float] = {}
    for _, _, top in stalls:
        for secs, what in top:
            culprits[what] = culprits.get(what, 0.0) + secs * 1000
    return {
        "loop_iterations_over_15ms": {
            "count": len(stalls),
            "max_ms": r1(max((b * 1000 for b, _, _ in stalls), default=0.0)),
            "max_callbacks": max((n for _, n, _ in stalls), default=0),
            "slowest_callbacks_ms": {
                k: r1(v) for k, v in sorted(culprits.items(), key=lambda kv: -kv[1])[:12]
            },
        },
        "threads_cpu_s": d.get("threads", [])[:8],
        # whole run (batches, windows) per batcher: windows / batches = mean batch size
        "vad_batches": d.get("vad_batches"),
        "gc_gen2": {
            "count": len(gen2),
            "max_ms": r1(max(gen2, default=0.0)),
            "total_ms": r1(sum(gen2)),
        },
        "gc_gen1": {
            "count": len(gen1),
            "max_ms": r1(max(gen1, default=0.0)),
            "total_ms": r1(sum(gen1)),
        },
        "loop_lag_over_2ms": {
            "count": len(lags),
            "p99_ms": r1(pct(lags, 99)),
            "max_ms": r1(max(lags, default=0.0)),
            "over_20ms": sum(1 for x in lags if x > 20),
        },
    }


def summary_line(r: dict[str, Any]) -> str:
    a, raw = r["added_ms"], r["reply_ms_raw"]
    return (
        f"{r['config']:>16} N={r['sessions']:<4} turns={r['answered']:<5} "
        f"raw p50/p95={raw['p50']}/{raw['p95']} ms  added p50/p95={a['p50']}/{a['p95']} ms  "
        f"late={r['late_frames']}/{r['reply_frames']}  cpu={r['server_cpu_util']:.0%} "
        f"({r['cpu_s_per_session_min']} s/session-min)  mem={r['mb_per_session']} MB/session  "
        f"gen cpu={r['generator_cpu_util']:.0%} tick p99={r['generator_tick_late_ms']['p99']} ms"
        f"  foreign load={r['foreign_load_server_core']:.0%}/{r['foreign_load_client_core']:.0%}"
        + ("  BROKEN" if r["broken"] else "")
        + ("  (generator saturated)" if r["generator_saturated"] else "")
    )


def markdown_table(results: dict[str, Any]) -> str:
    """The docs/benchmarks.md table for a results file."""
    head = (
        "| VAD | N | turns | reply raw p50 / p95 (ms) | added p50 / p95 / max (ms) "
        "| raw - 0.3 s p50 / p95 (ms) | late frames | server CPU | CPU s / session-min "
        "| MB / session | generator CPU | other load on server / client core |\n"
        "|---|---:|---:|---|---|---|---|---:|---:|---:|---:|---|\n"
    )
    rows = []
    for r in results["runs"]:
        raw, add, cfg = r["reply_ms_raw"], r["added_ms"], r["raw_minus_stop_ms"]
        vad = "gate -60 dBFS" if r["gate_dbfs"] is not None else "ungated"
        if not r["record"]:
            vad += ", no recording"
        rows.append(
            f"| {vad} | {r['sessions']} | {r['answered']} | {raw['p50']} / {raw['p95']} "
            f"| {add['p50']} / {add['p95']} / {add['max']} | {cfg['p50']} / {cfg['p95']} "
            f"| {r['late_frames']} of {r['reply_frames']} ({r['replies_with_late_frames']} replies,"
            f" max {r['max_lateness_ms']} ms) | {r['server_cpu_util']:.0%} "
            f"| {r['cpu_s_per_session_min']} | {r['mb_per_session']} "
            f"| {r['generator_cpu_util']:.0%} "
            f"| {max(0.0, r['foreign_load_server_core']):.0%} / "
            f"{max(0.0, r['foreign_load_client_core']):.0%} |"
        )
    return head + "\n".join(rows) + "\n"


def print_profile(prof: Path, top: int = 40) -> str:
    import io
    import pstats

    out = io.StringIO()
    st = pstats.Stats(str(prof), stream=out)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# ------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 50, 100, 200])
    ap.add_argument("--duration", type=float, default=60.0, help="measurement window per N (s)")
    ap.add_argument(
        "--ramp",
        type=float,
        default=None,
        help="spread call starts over (s); default min(10, N/20)",
    )
    ap.add_argument("--settle", type=float, default=5.0, help="seconds between ramp end and window")
    ap.add_argument("--tail", type=float, default=8.0, help="seconds of streaming after the window")
    ap.add_argument(
        "--gate",
        choices=["off", "on", "both"],
        default="both",
        help="Silero VAD loudness gate (gate_dbfs -60): off, on or both",
    )
    ap.add_argument("--record", choices=["on", "off", "both"], default="on")
    ap.add_argument("--server-core", type=int, default=0)
    ap.add_argument("--client-core", type=int, default=1)
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="wait up to this long for both cores to be idle before each run",
    )
    ap.add_argument("--keep-going", action="store_true", help="run larger N after a broken one")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="run the server under cProfile (one config and N); writes .prof + .txt",
    )
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="experiment: run the server through bench/serve_variant.py with this "
        "environment (e.g. CW_BENCH_WS=wsproto, CW_BENCH_NO_PERSIST=1); repeatable",
    )
    ap.add_argument(
        "--diag",
        action="store_true",
        help="record GC pauses and event-loop lag in the server (serve_variant.py)",
    )
    ap.add_argument("--append", action="store_true", help="add the runs to an existing --out")
    ap.add_argument("--out", type=Path, default=Path("bench/results/capacity.json"))
    ap.add_argument("--report", type=Path, help="print the markdown table of a results file")
    args = ap.parse_args()
    if args.report is not None:
        print(markdown_table(json.loads(args.report.read_text())), end="")
        return

    os.sched_setaffinity(0, {args.client_core})
    workdir = Path(tempfile.mkdtemp(prefix="cw-capacity-"))
    utterances = make_utterances(workdir / "speech")
    gates = {"off": [None], "on": [-60.0], "both": [None, -60.0]}[args.gate]
    records = {"on": [True], "off": [False], "both": [True, False]}[args.record]
    configs = []
    for gate in gates:
        for record in records:
            name = ("gate-60" if gate is not None else "ungated") + ("" if record else "-norec")
            cfg: dict[str, Any] = {"name": name, "gate": gate, "record": record}
            if args.variant:
                cfg["variant"] = dict(v.split("=", 1) for v in args.variant)
                cfg["name"] += "+" + ",".join(args.variant)
            configs.append(cfg)

    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": _cpu_model(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "server_core": args.server_core,
            "client_core": args.client_core,
        },
        "utterances": [{"text": t, "secs": round(len(p) / 32000, 3)} for t, p in utterances],
        "targets": TARGETS,
    }
    results: dict[str, Any] = {"meta": meta, "runs": []}
    if args.append and args.out.exists():
        results = json.loads(args.out.read_text())
        results.setdefault("more_commands", []).append(meta["command"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for cfg in configs:
        delays = vad_stop_delays(utterances, cfg["gate"])
        cfg_meta = {"vad_stop_delay_frames": delays}
        results.setdefault("vad", {})[cfg["name"]] = cfg_meta
        agents_dir = workdir / f"agents-{cfg['name']}"
        agents_dir.mkdir(exist_ok=True)
        vad_options = "" if cfg["gate"] is None else f", options: {{gate_dbfs: {cfg['gate']}}}"
        (agents_dir / f"{AGENT_ID}.yaml").write_text(
            AGENT_YAML.format(agent_id=AGENT_ID, vad_options=vad_options, stop=VAD_STOP_SECS)
        )
        for n in args.sessions:
            prof = (
                args.out.with_name(f"{args.out.stem}-{cfg['name']}-{n}.prof")
                if args.profile
                else None
            )
            r = asyncio.run(run_point(n, cfg, args, workdir, agents_dir, utterances, delays, prof))
            if prof is not None and prof.exists():
                txt = prof.with_suffix(".txt")
                txt.write_text(print_profile(prof))
                r["profile"] = str(txt)
            results["runs"].append(r)
            print(summary_line(r), flush=True)
            args.out.write_text(json.dumps(results, indent=1))
            if r["broken"] and not args.keep_going:
                print(f"{cfg['name']}: broke at N={n}; skipping larger N", flush=True)
                break
    print(f"wrote {args.out}")


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    main()
