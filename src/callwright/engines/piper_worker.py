"""Piper text-to-speech worker process: `python -m callwright.engines.piper_worker`.

Piper (piper-tts) is GPL-3.0, so Callwright (Apache-2.0) never imports it: this
module is the only one that does, and it runs as its own program, talking over
pipes. It loads the voice once and then serves requests until stdin closes.

Protocol. Requests are newline-delimited JSON on stdin:
    {"id": "r1", "text": "Hello there.", "speaker": null}    synthesise
    {"cancel": "r1"}                                          stop r1 at the next sentence
Responses are frames on stdout: a 4-byte big-endian length, a JSON header of that
length, then `n` bytes of payload:
    {"kind": "ready", "sample_rate": 22050, "n": 0}           once, after loading
    {"id": "r1", "kind": "audio", "n": 12345, "word_ends": [4864, ...]}
                                                 PCM16 mono, one sentence; word_ends (samples
                                                 into it) when the voice gives alignments
    {"id": "r1", "kind": "end", "n": 0, "cancelled": false}
    {"id": "r1", "kind": "error", "n": 0, "message": "..."}
Requests run one at a time in arrival order; a separate thread reads stdin so a
cancel is seen while a request is being synthesised.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import queue
import struct
import sys
import threading
from typing import IO, Any

HEADER = struct.Struct(">I")


def write_frame(out: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    header = {**header, "n": len(payload)}
    raw = json.dumps(header, separators=(",", ":")).encode()
    out.write(HEADER.pack(len(raw)) + raw + payload)
    out.flush()


def read_frame(inp: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """Read one frame; None at end of stream (also used by the parent process)."""
    head = _read_exact(inp, HEADER.size)
    if head is None:
        return None
    (size,) = HEADER.unpack(head)
    raw = _read_exact(inp, size)
    if raw is None:
        return None
    header = json.loads(raw)
    n = int(header.get("n", 0))
    payload = _read_exact(inp, n) if n else b""
    if payload is None:
        return None
    return header, payload


def _read_exact(inp: IO[bytes], n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = inp.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class _Inbox:
    """Requests read from stdin by a thread; cancels apply to queued or running ids."""

    def __init__(self) -> None:
        self.requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._live: set[str] = set()
        self._cancelled: set[str] = set()

    def reader(self, stream: IO[bytes]) -> None:
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "cancel" in msg:
                with self._lock:
                    if msg["cancel"] in self._live:
                        self._cancelled.add(str(msg["cancel"]))
            elif "id" in msg:
                with self._lock:
                    self._live.add(str(msg["id"]))
                self.requests.put(msg)
        self.requests.put(None)

    def cancelled(self, req_id: str) -> bool:
        with self._lock:
            return req_id in self._cancelled

    def done(self, req_id: str) -> None:
        with self._lock:
            self._live.discard(req_id)
            self._cancelled.discard(req_id)


def _with_alignments(model_path: str) -> tuple[str | bytes, bool]:
    """The voice patched in memory to output phoneme durations (needs `onnx`); the
    plain path if that is not possible, so a voice always loads."""
    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output

        model = onnx.load(model_path)
        add_alignment_output(model)
        return model.SerializeToString(), True
    except Exception as exc:  # no onnx, or a voice already patched / not patchable
        print(f"piper worker: no word timings ({type(exc).__name__}: {exc})", file=sys.stderr)
        return model_path, False


def _word_ends(alignments: Any) -> list[int]:
    """Sample offsets where each word ends: Piper's phonemes separate words with " "."""
    if not alignments:
        return []
    ends: list[int] = []
    pos = 0
    for a in alignments:
        pos += int(a.num_samples)
        if a.phoneme == " ":
            ends.append(pos)
    ends.append(pos)
    return ends


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--model", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    ap.add_argument("--length-scale", type=float, default=None)
    ap.add_argument(
        "--no-alignments",
        action="store_true",
        help="do not patch the voice for phoneme alignments (word timings)",
    )
    args = ap.parse_args(argv)

    # Keep the protocol stream private: anything a library prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    onnxruntime = importlib.import_module("onnxruntime")  # untyped; comes with piper-tts
    from piper import PiperVoice, SynthesisConfig
    from piper.config import PiperConfig

    with open(args.config, encoding="utf-8") as fh:
        config_dict = json.load(fh)
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    model: str | bytes = args.model
    aligned = False
    if not args.no_alignments:
        model, aligned = _with_alignments(args.model)
    voice = PiperVoice(
        config=PiperConfig.from_dict(config_dict),
        session=onnxruntime.InferenceSession(
            model, sess_options=opts, providers=["CPUExecutionProvider"]
        ),
    )
    speakers: dict[str, int] = config_dict.get("speaker_id_map") or {}
    write_frame(
        out, {"kind": "ready", "sample_rate": voice.config.sample_rate, "alignments": aligned}
    )

    inbox = _Inbox()
    threading.Thread(target=inbox.reader, args=(sys.stdin.buffer,), daemon=True).start()
    while (req := inbox.requests.get()) is not None:
        req_id = str(req["id"])
        cancelled = inbox.cancelled(req_id)
        try:
            if cancelled:
                write_frame(out, {"id": req_id, "kind": "end", "cancelled": True})
                continue
            speaker = req.get("speaker")
            syn = SynthesisConfig(
                speaker_id=speakers.get(str(speaker)) if speaker is not None else None,
                length_scale=args.length_scale,
            )
            text = str(req.get("text", ""))
            for chunk in voice.synthesize(text, syn_config=syn, include_alignments=aligned):
                if inbox.cancelled(req_id):
                    cancelled = True
                    break
                header: dict[str, Any] = {"id": req_id, "kind": "audio"}
                ends = _word_ends(chunk.phoneme_alignments)
                if ends:
                    header["word_ends"] = ends
                write_frame(out, header, chunk.audio_int16_bytes)
            cancelled = cancelled or inbox.cancelled(req_id)
            write_frame(out, {"id": req_id, "kind": "end", "cancelled": cancelled})
        except BrokenPipeError:
            return 0
        except Exception as exc:  # reported to the parent; the worker keeps serving
            write_frame(
                out, {"id": req_id, "kind": "error", "message": f"{type(exc).__name__}: {exc}"}
            )
        finally:
            inbox.done(req_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
