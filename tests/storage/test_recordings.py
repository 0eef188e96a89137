"""Recording store safety and the two-track recorder's time alignment."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest

from callwright.audio.wav import wav_bytes
from callwright.storage.recordings import CallRecorder, LocalRecordingStore, RecordingStore

RATE = 16000
FRAME = 320  # 20 ms at 16 kHz


def tone(freq: float, secs: float, rate: int, amp: int = 8000) -> np.ndarray:
    t = np.arange(round(secs * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype("<i2")


def read_stereo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return data[:, 0], data[:, 1]


def caller_frames(recorder: CallRecorder, samples: np.ndarray) -> None:
    for i in range(0, len(samples), FRAME):
        recorder.caller(samples[i : i + FRAME].tobytes())


# ------------------------------------------------------------------ store
async def test_local_store_round_trip(tmp_path: Path) -> None:
    store = LocalRecordingStore(tmp_path / "rec")
    assert isinstance(store, RecordingStore)
    wav = wav_bytes(bytes(640), RATE)
    uri = await store.put("acme", "call-1", wav)
    assert uri == "local:acme/call-1.wav"
    assert (tmp_path / "rec" / "acme" / "call-1.wav").read_bytes() == wav
    assert await store.open(uri) == wav

    source = tmp_path / "finished.wav"
    source.write_bytes(wav_bytes(bytes(1280), RATE))
    assert await store.put("acme", "call-1", source) == uri  # replaces
    assert await store.open(uri) == source.read_bytes()
    assert source.exists()  # put copies; the caller owns its file
    assert not [p for p in (tmp_path / "rec" / "acme").iterdir() if p.name.startswith(".")]

    await store.delete(uri)
    await store.delete(uri)  # already gone: fine
    with pytest.raises(FileNotFoundError):
        await store.open(uri)


@pytest.mark.parametrize(
    ("tenant", "call"),
    [
        ("..", "x"),
        ("acme", "../../etc/passwd"),
        ("acme/../..", "x"),
        ("/etc", "x"),
        ("acme", ".hidden"),
        ("", "x"),
        ("acme", "a\\b"),
        ("acme", "x\x00"),
    ],
)
async def test_local_store_refuses_unsafe_ids(tmp_path: Path, tenant: str, call: str) -> None:
    store = LocalRecordingStore(tmp_path / "rec")
    with pytest.raises(ValueError):
        await store.put(tenant, call, b"RIFF")
    assert not (tmp_path / "rec").exists() or not any((tmp_path / "rec").rglob("*"))


@pytest.mark.parametrize(
    "uri",
    [
        "local:../secret.wav",
        "local:acme/../../secret.wav",
        "local:/etc/passwd",
        "local:acme/..",
        "file:///etc/passwd",
        "local:acme/x.txt",
        "local:a/b/c.wav",
        "/etc/passwd",
    ],
)
async def test_local_store_refuses_path_traversal(tmp_path: Path, uri: str) -> None:
    (tmp_path / "secret.wav").write_bytes(b"secret")
    store = LocalRecordingStore(tmp_path / "rec")
    with pytest.raises(ValueError):
        await store.open(uri)
    with pytest.raises(ValueError):
        await store.delete(uri)
    assert (tmp_path / "secret.wav").exists()


async def test_local_store_refuses_symlinks_out_of_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "call.wav").write_bytes(b"secret")
    root = tmp_path / "rec"
    root.mkdir()
    os.symlink(outside, root / "evil")
    store = LocalRecordingStore(root)
    with pytest.raises(ValueError, match="escapes"):
        await store.open("local:evil/call.wav")
    with pytest.raises(ValueError, match="escapes"):
        await store.put("evil", "call", b"overwrite")
    assert (outside / "call.wav").read_bytes() == b"secret"


# ------------------------------------------------------------------ recorder
def test_agent_audio_lands_at_the_caller_position_in_the_right_channel(tmp_path: Path) -> None:
    rec = CallRecorder(16000, directory=tmp_path)
    caller = tone(300, 2.0, RATE)
    caller_frames(rec, caller[:RATE])  # 1 s of caller speech, agent silent
    agent = tone(1000, 0.5, RATE, amp=5000)
    rec.agent(agent.tobytes())  # the agent answers now: at exactly 1.0 s
    caller_frames(rec, caller[RATE:])
    left, right = read_stereo(rec.finish())

    assert len(left) == 2 * RATE
    assert np.array_equal(left, caller)  # the caller's track is untouched
    assert not right[:RATE].any()  # silence until the agent spoke
    assert np.array_equal(right[RATE : RATE + len(agent)], agent)
    assert not right[RATE + len(agent) :].any()


def test_overlapping_agent_audio_continues_and_gaps_are_silence(tmp_path: Path) -> None:
    rec = CallRecorder(16000, directory=tmp_path)
    a, b, c = (np.full(1600, v, dtype="<i2") for v in (100, 200, 300))  # 100 ms each
    caller_frames(rec, np.zeros(1600, dtype="<i2"))  # caller at 0.1 s
    rec.agent(a.tobytes())  # 0.1-0.2 s
    rec.agent(b.tobytes())  # sent ahead (pacer lead): continues at 0.2-0.3 s
    caller_frames(rec, np.zeros(8000, dtype="<i2"))  # caller at 0.6 s; the agent fell silent
    rec.agent(c.tobytes())  # 0.6-0.7 s, after 0.3 s of silence
    left, right = read_stereo(rec.finish())

    assert len(left) == len(right) == 11200  # the agent outlasted the caller: padded
    assert not left.any()
    assert not right[:1600].any()
    assert (right[1600:3200] == 100).all()
    assert (right[3200:4800] == 200).all()
    assert not right[4800:9600].any()
    assert (right[9600:11200] == 300).all()


def test_real_time_interleaving_has_no_gaps(tmp_path: Path) -> None:
    """Frames alternating at the same pace: the agent track is one unbroken stream."""
    rec = CallRecorder(16000, directory=tmp_path)
    agent = tone(700, 1.0, RATE)
    caller_frames(rec, np.zeros(8000, dtype="<i2"))
    for i in range(0, len(agent), FRAME):
        rec.caller(bytes(2 * FRAME))
        rec.agent(agent[i : i + FRAME].tobytes())
    _, right = read_stereo(rec.finish())
    start = 8000 + FRAME  # the first agent frame came after that tick's caller frame
    assert np.array_equal(right[start : start + len(agent)], agent)


def test_48k_agent_stream_is_resampled_and_placed(tmp_path: Path) -> None:
    rec = CallRecorder(48000, directory=tmp_path)
    caller_frames(rec, np.zeros(8000, dtype="<i2"))  # 0.5 s
    agent = tone(1000, 1.0, 48000)
    for i in range(0, len(agent), 960):  # 20 ms frames at 48 kHz, paced like the caller
        rec.agent(agent[i : i + 960].tobytes())
        rec.caller(bytes(2 * FRAME))
    left, right = read_stereo(rec.finish())
    # 1 s of agent audio after 0.5 s, give or take the resampler's edge (< 2 ms).
    assert abs(rec.agent_samples - (8000 + RATE)) <= 32

    assert len(right) == 8000 + RATE
    loud = np.flatnonzero(np.abs(right.astype(np.int32)) > 1000)
    assert abs(loud[0] - 8000) <= 8  # onset within 0.5 ms of 0.5 s
    assert abs(loud[-1] - (8000 + RATE)) <= 32
    body = right[8000 + 800 : 8000 + RATE - 800].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(body))
    peak_hz = np.argmax(spectrum) * RATE / len(body)
    assert abs(peak_hz - 1000) < 5
    # No dropouts: the 1 kHz tone's envelope stays up through the whole burst.
    envelope = np.abs(body).reshape(-1, 16).max(axis=1)
    assert envelope.min() > 7000
    assert not left.any()


def test_48k_bursts_separated_by_silence(tmp_path: Path) -> None:
    rec = CallRecorder(48000, directory=tmp_path)
    burst = tone(1000, 0.2, 48000)
    rec.agent(burst.tobytes())  # 0.0-0.2 s
    caller_frames(rec, np.zeros(RATE, dtype="<i2"))  # caller reaches 1.0 s
    rec.agent(burst.tobytes())  # 1.0-1.2 s, not right after the first burst
    _, right = read_stereo(rec.finish())
    loud = np.abs(right.astype(np.int32)) > 1000
    first = np.flatnonzero(loud[: RATE // 2])
    second = np.flatnonzero(loud[RATE // 2 :]) + RATE // 2
    assert abs(first[0] - 0) <= 8 and abs(first[-1] - 3200) <= 32
    assert abs(second[0] - RATE) <= 8 and abs(second[-1] - (RATE + 3200)) <= 32


def test_recorder_streams_to_disk_and_cleans_up(tmp_path: Path) -> None:
    rec = CallRecorder(24000, directory=tmp_path, name="call-1", buffer_size=4096)
    for _ in range(100):
        rec.caller(bytes(2 * FRAME))
    raw = sorted(p.name for p in tmp_path.iterdir())
    assert raw == ["call-1.agent.raw", "call-1.caller.raw"]
    assert (tmp_path / "call-1.caller.raw").stat().st_size >= 100 * 2 * FRAME - 4096
    rec.caller(b"\x01")  # half a sample is dropped, not allowed to shift the track
    assert rec.caller_samples == 100 * FRAME
    assert rec.duration_secs == pytest.approx(2.0)
    wav = rec.finish()
    assert rec.finish() == wav  # idempotent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call-1.wav"]
    rec.caller(bytes(640))  # late frames after the end are ignored
    rec.discard()
    assert not any(tmp_path.iterdir())


def test_private_temp_dir_is_removed_by_discard() -> None:
    rec = CallRecorder()
    rec.caller(bytes(640))
    wav = rec.finish()
    assert wav.exists()
    rec.discard()
    assert not rec.directory.exists()


async def test_finish_async_writes_an_empty_call(tmp_path: Path) -> None:
    rec = CallRecorder(directory=tmp_path)
    left, right = read_stereo(await rec.finish_async())
    assert len(left) == len(right) == 0


def test_unsupported_agent_rate_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported sample rate"):
        CallRecorder(12345, directory=tmp_path)
    assert not any(tmp_path.iterdir())
