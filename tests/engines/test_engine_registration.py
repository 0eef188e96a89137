"""Every built-in engine module registers its factory under the configured name,
importing it stays cheap (heavy libraries load only when an engine is built), and the
hub refuses what a factory builds unless it fills its kind's Protocol."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from callwright.engines import registry
from callwright.engines.base import EngineError, RerankEngine
from callwright.engines.registry import (
    KIND_PROTOCOLS,
    EngineHub,
    EngineTypeError,
    get_factory,
    protocol_members,
)

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


# ----------------------------------------------------------------------------- contracts
class GoodReranker:
    name = "good"

    def __init__(self) -> None:
        self.closed = False

    async def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        return [float(len(t)) for t in texts]

    async def aclose(self) -> None:
        self.closed = True


class RerankerWithoutScores:
    """The old `rerank(query, hits)` shape: it must not load as a RerankEngine."""

    name = "old"

    def __init__(self) -> None:
        self.closed = False

    async def rerank(self, query: str, hits: Sequence[Any]) -> list[Any]:
        return list(hits)

    async def aclose(self) -> None:
        self.closed = True


def _register(monkeypatch: pytest.MonkeyPatch, kind: str, name: str, build: Any) -> list[Any]:
    """Registers `build` for this test only; returns the list of what it built."""
    built: list[Any] = []

    def factory(**options: Any) -> Any:
        built.append(build())
        return built[-1]

    monkeypatch.setitem(registry._FACTORIES, (kind, name), factory)
    return built


async def test_a_factory_that_builds_the_wrong_thing_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = _register(monkeypatch, "rerank", "test-old", RerankerWithoutScores)
    hub = EngineHub()
    with pytest.raises(EngineTypeError) as info:
        await hub.get("rerank", "test-old")
    message = str(info.value)
    assert "rerank engine 'test-old'" in message and "RerankerWithoutScores" in message
    assert message.endswith("does not fill RerankEngine: it lacks scores")
    assert isinstance(info.value, TypeError) and isinstance(info.value, EngineError)
    assert built[0].closed  # what it built is released, not leaked
    with pytest.raises(EngineTypeError):  # and not cached: every load is refused
        await hub.get("rerank", "test-old")
    assert len(built) == 2
    report = await hub.probe("rerank", "test-old")
    assert not report.ok and report.error is not None
    assert report.error.startswith("EngineTypeError: the rerank engine 'test-old'")
    await hub.aclose()


async def test_missing_attributes_are_named_too(monkeypatch: pytest.MonkeyPatch) -> None:
    class Mute:
        sample_rate = 16000

    _register(monkeypatch, "tts", "test-mute", Mute)
    with pytest.raises(
        EngineTypeError, match=r"does not fill TTSEngine: it lacks name, synthesize"
    ):
        await EngineHub().get("tts", "test-mute")


async def test_a_good_engine_loads_once_and_is_closed_with_the_hub(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = _register(monkeypatch, "rerank", "test-good", GoodReranker)
    hub = EngineHub()
    engine = await hub.get("rerank", "test-good")
    assert isinstance(engine, RerankEngine) and await engine.scores("q", ["ab", "c"]) == [2, 1]
    assert await hub.get("rerank", "test-good") is engine and len(built) == 1
    await hub.aclose()
    assert engine.closed


@pytest.mark.parametrize(
    ("kind", "name"),
    [("asr", "scripted"), ("llm", "scripted"), ("tts", "scripted"), ("vad", "energy")],
)
async def test_built_in_engines_fill_their_protocols(kind: str, name: str) -> None:
    hub = EngineHub()
    engine = await hub.get(kind, name)
    assert isinstance(engine, KIND_PROTOCOLS[kind])
    await hub.aclose()


def test_protocol_members_include_the_extended_protocols() -> None:
    from callwright.engines.base import BatchVADEngine, TimedTTSEngine

    assert protocol_members(RerankEngine) == ["name", "scores"]
    assert protocol_members(TimedTTSEngine) == [
        "name", "sample_rate", "synthesize", "synthesize_timed"
    ]  # fmt: skip
    assert "open_stream" in protocol_members(BatchVADEngine)
