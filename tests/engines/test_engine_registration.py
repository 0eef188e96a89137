"""Every built-in engine module registers its factory under the configured name, and
importing it stays cheap (heavy libraries load only when an engine is built)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from callwright.engines.registry import get_factory

REAL_ENGINES = [
    ("asr", "whisper"),
    ("llm", "llamacpp"),
    ("llm", "openai"),
    ("tts", "piper"),
    ("tts", "espeak"),
]


@pytest.mark.parametrize(("kind", "name"), REAL_ENGINES)
def test_factory_is_registered(kind: str, name: str) -> None:
    assert callable(get_factory(kind, name))


def test_importing_engine_modules_loads_no_model_runtime() -> None:
    code = (
        "import sys\n"
        "from callwright.engines.registry import get_factory\n"
        f"for kind, name in {REAL_ENGINES!r}:\n"
        "    get_factory(kind, name)\n"
        "heavy = ('faster_whisper', 'ctranslate2', 'llama_cpp', 'piper', 'onnxruntime')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
