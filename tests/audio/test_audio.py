from __future__ import annotations

import numpy as np
import pytest

from callwright.audio.mulaw import ulaw_decode, ulaw_encode
from callwright.audio.pcm import Reframer, float_to_pcm16, pcm16_to_float
from callwright.audio.resample import StreamResampler, resample
from callwright.audio.wav import read_wav, write_wav


def sine(freq: float, rate: int, secs: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * secs)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp).astype(np.float32)


def test_mulaw_round_trip_is_close_and_matches_g711_points():
    pcm = float_to_pcm16(sine(440, 8000, 0.1))
    back = np.frombuffer(ulaw_decode(ulaw_encode(pcm)), dtype="<i2").astype(float)
    orig = np.frombuffer(pcm, dtype="<i2").astype(float)
    snr = 10 * np.log10(np.sum(orig**2) / np.sum((orig - back) ** 2))
    assert snr > 30  # G.711 gives ~38 dB on a loud tone
    # well-known code points: silence is 0xFF, full-scale negative is 0x00
    assert ulaw_encode(np.array([0], "<i2").tobytes()) == b"\xff"
    assert ulaw_encode(np.array([-32768], "<i2").tobytes()) == b"\x00"
    assert np.frombuffer(ulaw_decode(b"\xff"), "<i2")[0] == 0


def test_stream_resampler_matches_one_shot_and_keeps_the_tone():
    x = float_to_pcm16(sine(1000, 48000, 0.5))
    stream = StreamResampler(48000, 16000)
    chunks = [stream.process(x[i : i + 1920]) for i in range(0, len(x), 1920)]
    chunks.append(stream.process(b"", last=True))
    y = np.frombuffer(b"".join(chunks), "<i2").astype(np.float32)
    assert abs(len(y) - 8000) <= 40  # the converter's few ms of delay
    spectrum = np.abs(np.fft.rfft(y[1000:7000]))
    peak_hz = np.argmax(spectrum) * 16000 / 6000
    assert abs(peak_hz - 1000) < 5
    one_shot = np.frombuffer(resample(x, 48000, 16000), "<i2")
    assert abs(len(one_shot) - 8000) <= 2


def test_resampler_refuses_unknown_rates():
    with pytest.raises(ValueError, match="unsupported sample rate"):
        StreamResampler(12345, 16000)


def test_reframer_cuts_exact_frames_and_flushes_padded():
    r = Reframer(160)
    frames = r.push(bytes(100)) + r.push(bytes(300)) + r.push(bytes(250))
    assert [len(f) for f in frames] == [320, 320]
    assert r.pending == 10
    tail = r.flush()
    assert tail is not None and len(tail) == 320
    assert r.flush() is None


def test_pcm_float_round_trip():
    x = sine(300, 16000, 0.05)
    assert np.allclose(pcm16_to_float(float_to_pcm16(x)), x, atol=1 / 32768)


def test_wav_round_trip_and_stereo_mixdown(tmp_path):
    pcm = float_to_pcm16(sine(300, 22050, 0.1))
    write_wav(tmp_path / "m.wav", pcm, 22050)
    assert read_wav(tmp_path / "m.wav") == (pcm, 22050)
    stereo = np.stack([np.frombuffer(pcm, "<i2"), np.zeros(len(pcm) // 2, "<i2")], axis=1)
    write_wav(tmp_path / "s.wav", stereo.astype("<i2").tobytes(), 22050, channels=2)
    mono, rate = read_wav(tmp_path / "s.wav")
    assert rate == 22050 and len(mono) == len(pcm)
