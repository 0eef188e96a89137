"""The conversation as the LLM sees it: a fixed system prompt, then the turns.

The system prompt stays first and unchanged so engines with a prompt cache reuse it
every turn. Assistant turns hold only what the caller heard: an interrupted reply is
cut to the words played. The history keeps the caller's words only: context added to
a turn (retrieved passages) is in that turn's prompt and nowhere after, so passages
never pile up (on a CPU LLM every history token is prefill, and a history that
overflows its bound invalidates the whole prompt cache).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callwright.engines.base import ChatMessage


@dataclass(slots=True)
class Conversation:
    system_prompt: str
    max_messages: int = 40
    max_chars: int = 4000  # ~1000 tokens of history: small LLM contexts overflow otherwise
    messages: list[ChatMessage] = field(default_factory=list)

    def add_user(self, text: str) -> None:
        # two user utterances in a row (the agent never answered) merge into one
        if self.messages and self.messages[-1].role == "user":
            self.messages[-1].content = f"{self.messages[-1].content} {text}".strip()
        else:
            self.messages.append(ChatMessage(role="user", content=text))

    def add_assistant(self, text: str) -> ChatMessage:
        msg = ChatMessage(role="assistant", content=text)
        self.messages.append(msg)
        return msg

    def for_llm(self) -> list[ChatMessage]:
        recent: list[ChatMessage] = []
        used = 0
        for msg in reversed(self.messages[-self.max_messages :]):
            used += len(msg.content)
            if recent and used > self.max_chars:
                break
            recent.append(msg)
        recent.reverse()
        return [ChatMessage(role="system", content=self.system_prompt), *recent]
