"""One session format for every channel (browser, phone, SIP, simulation).

Transports normalise what they know about a call into `SessionInfo`; everything
downstream (pipeline settings, storage, policy) reads only this.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

Channel = Literal["web", "phone", "sip", "webrtc", "sim"]
Consent = Literal["granted", "denied", "unknown"]


@dataclass(slots=True)
class SecurityPolicy:
    record_audio: bool = True  # recordings need consent "granted" or "unknown" under this flag
    store_transcripts: bool = True
    redact_pii: bool = False  # honoured by the guardrails layer once it lands


@dataclass(slots=True)
class AudioFormat:
    encoding: Literal["pcm16", "mulaw"] = "pcm16"
    sample_rate: int = 16000


@dataclass(slots=True)
class SessionInfo:
    tenant_id: str
    agent_id: str
    agent_version: int
    channel: Channel
    language: str
    input_format: AudioFormat
    output_format: AudioFormat
    user_id: str | None = None
    consent: Consent = "unknown"
    security: SecurityPolicy = field(default_factory=SecurityPolicy)
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    audio_ref: str | None = None  # the recording's URI once stored
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def may_record(self) -> bool:
        return self.security.record_audio and self.consent != "denied"
