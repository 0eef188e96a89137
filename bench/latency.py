"""Voice-to-voice latency with the embedded engines (Whisper tiny.en, Qwen 0.5B, Piper).

Starts `callwright serve` with the demo agent, then calls it with simulated callers
that ask spoken questions (espeak-ng voices) one after another, each after the
previous reply ends. Reports, from the server's own turn metrics, the time from the
end of the caller's speech (arrival of the last voiced audio) to the first reply
audio sent, and where it went: VAD stop, ASR final, LLM first token, TTS first audio.

    .venv/bin/python bench/latency.py --callers 1 --out bench/results/latency-1.json
    .venv/bin/python bench/latency.py --callers 2 --out bench/results/latency-2.json
    .venv/bin/python bench/latency.py --knowledge off ...   # the demo agent without retrieval
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from callwright.client.caller import SimulatedCaller, Utterance
from harness import REPO, ServerProcess, make_speech

QUESTIONS = [
    "What are your opening hours on Saturday?",
    "Where is the clinic located?",
    "How much does a regular visit cost?",
    "Do you accept insurance?",
    "Which doctor sees children?",
    "Are you open on Sunday?",
    "What time do you close on Friday?",
    "I would like to book an appointment with Doctor Patel.",
    "What do I need to book a visit?",
    "Is there a doctor for family medicine?",
    "What is the clinic next to?",
    "Can I come in on Saturday afternoon?",
]
VOICES = ["en-us", "en-us+f3", "en-gb", "en-us+m3"]
STAGES = [
    "vad_stop_ms",
    "asr_final_ms",
    "llm_first_token_ms",
    "tts_first_audio_ms",
    "first_audio_out_ms",
]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


async def one_caller(url: str, wavs: list[Path], delay: float) -> dict[str, Any]:
    await asyncio.sleep(delay)
    caller = SimulatedCaller(
        url,
        [Utterance(w) for w in wavs],
        agent_id="clinic-receptionist",
        reply_timeout=40,
        tail_secs=1.0,
    )
    result = await caller.run()
    return {"call_id": result.call_id, "turns": result.turns()}


async def run(url: str, wavs: list[Path], callers: int) -> list[dict[str, Any]]:
    # callers start a little apart, as real calls do, but their turns overlap
    jobs = []
    for i in range(callers):
        order = wavs[i:] + wavs[:i]
        jobs.append(one_caller(url, order, delay=1.7 * i))
    return await asyncio.gather(*jobs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--callers", type=int, default=1)
    ap.add_argument("--questions", type=int, default=len(QUESTIONS))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--url", default=None, help="a running server's ws URL (default: start one)")
    ap.add_argument(
        "--knowledge",
        choices=["on", "off"],
        default="on",
        help="off: the demo agent without its knowledge base (the pipeline alone)",
    )
    ap.add_argument(
        "--llm-slice-tokens",
        type=int,
        default=None,
        help="llama.cpp slice_tokens for the demo agent (a huge value: no time slicing)",
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        wavs = [
            make_speech(q, tmpdir / f"q{i}.wav", voice=VOICES[i % len(VOICES)], speed=150)
            for i, q in enumerate(QUESTIONS[: args.questions])
        ]
        server = None
        url = args.url
        if url is None:
            t0 = time.monotonic()
            agents = REPO / "agents"
            if args.knowledge == "off" or args.llm_slice_tokens is not None:
                agents = tmpdir / "agents"
                agents.mkdir()
                demo = (REPO / "agents" / "clinic-receptionist.yaml").read_text()
                if args.knowledge == "off":
                    demo = demo.replace("  mode: auto\n", "  mode: off\n")
                if args.llm_slice_tokens is not None:
                    slicing = (
                        f"{{name: llamacpp, options: {{slice_tokens: {args.llm_slice_tokens}}}}}"
                    )
                    demo = demo.replace("  llm: {name: llamacpp}", f"  llm: {slicing}")
                (agents / "clinic-receptionist.yaml").write_text(demo)
            server = ServerProcess(
                agents, tmpdir / "data", default_agent="clinic-receptionist", cwd=REPO
            )
            print(f"server ready in {time.monotonic() - t0:.1f} s", flush=True)
            url = server.ws_url
        try:
            calls = asyncio.run(run(url, wavs, args.callers))
        finally:
            if server is not None:
                server.stop()

    rows = [
        t
        for c in calls
        for t in c["turns"]
        if t["role"] == "assistant" and t["turn"] > 0 and t.get("metrics")
    ]
    v2v = [t["metrics"]["voice_to_voice_ms"] for t in rows if t["metrics"]["voice_to_voice_ms"]]
    summary: dict[str, Any] = {
        "callers": args.callers,
        "turns": len(rows),
        "voice_to_voice_ms": {
            "p50": statistics.median(v2v),
            "p95": pct(v2v, 0.95),
            "min": min(v2v),
            "max": max(v2v),
        },
        "stages_p50_ms": {
            s: statistics.median([t["metrics"][s] for t in rows if t["metrics"].get(s) is not None])
            for s in STAGES
        },
        "interrupted": sum(1 for t in rows if t.get("interrupted")),
    }
    print(json.dumps(summary, indent=2))
    for c in calls:
        for t in c["turns"]:
            lat = (t.get("metrics") or {}).get("voice_to_voice_ms")
            print(f"  {t['role']:9} {t['text'][:70]!r:74} {'' if lat is None else f'{lat:.0f} ms'}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": summary, "calls": calls}, indent=2))


if __name__ == "__main__":
    main()
