"""Tool calls on the embedded model: the model chooses, a grammar writes the call.

With tools offered, a turn of `LlamaCppLLM` runs in two steps on one generation:

1. Decide. At the first token, `FirstTokenRouter` sums the probability the model
   gives to the tokens that open a call (Qwen's `<tool_call>` special token, and
   tokens starting with `{` or a code fence, which the 0.5B model also uses). At
   `threshold` or above it forces `<tool_call>`; below, it removes those tokens, so
   the answer is plain text and cannot start as half a JSON object. Plain answers
   then stream unconstrained from that same first token: nothing is added before the
   first spoken token but one pass over the logits (about 1 ms).
2. Write the call. On a call, that generation stops and a new one continues from
   the prompt plus `<tool_call>\\n` (only those two tokens are evaluated: the prompt
   is in the KV cache) under a GBNF grammar built from the tools' schemas by
   llama.cpp's `json_schema_to_gbnf`: `{"name": <one offered name>, "arguments":
   <that tool's parameters>}` and then only end of text. The call is valid JSON, names
   an offered tool and matches its schema (the types, required keys and enums that
   GBNF can express).

Measured, option (a) rejected (2 cores, Qwen2.5-Coder-0.5B Q4_K_M, 3 tools): one
grammar allowing free text *or* the call costs llama.cpp a pass of the grammar over
all 151,936 vocabulary tokens at every step, and free text (`[^<]*`) matches most
of them: 170 ms a token against 46-52 ms unconstrained, so a plain answer speaks
3x slower. It also cannot accept the `<tool_call>` special token (the grammar sees
token text, which llama.cpp does not give for special tokens), so the model, kept
from its favourite first token, drifted into words ("You can call the
`order_status` function...") where it meant to call.

The chosen design against unconstrained decoding, 30 caller lines
(docs/benchmarks.md, "Tool choice on the embedded LLM"): right choice 19/30 vs
17/30; calls valid JSON and schema-valid 25/25 vs 21/25; first token of a plain
answer 0.16 vs 0.15 s (median, noise); complete call 1.81 vs 1.70 s. The grammar
fixes the form, not the choice: the model over-calls the first tool either way
(a threshold of 0.85 would do better on that set, but was read off it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

TOOL_CALL_TOKEN = "<tool_call>"


def tool_call_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One JSON schema for a call to any of `tools` (OpenAI `tools` entries)."""
    alternatives = []
    for tool in tools:
        fn = tool["function"]
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        alternatives.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn["name"]}, "arguments": params},
                "required": ["name", "arguments"],
            }
        )
    return alternatives[0] if len(alternatives) == 1 else {"oneOf": alternatives}


def tool_call_gbnf(tools: Sequence[dict[str, Any]]) -> str:
    """GBNF whose sentences are exactly the calls `{"name": ..., "arguments": {...}}`
    to one of `tools` with arguments matching that tool's parameter schema."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    schema = json.dumps(tool_call_schema(tools))
    return json_schema_to_gbnf(schema, ["name", "arguments"])


@lru_cache(maxsize=32)
def _grammar(tools_json: str) -> Any:
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(tool_call_gbnf(json.loads(tools_json)), verbose=False)


def tool_call_grammar(tools: Sequence[dict[str, Any]]) -> Any:
    """The `LlamaGrammar` for `tools`, parsed once per distinct tool list."""
    return _grammar(json.dumps(list(tools), sort_keys=True))


def call_start_ids(llm: Any) -> np.ndarray:
    """Token ids that open a tool call: `<tool_call>` and pieces starting `{` or a fence."""
    model = llm._model
    ids = [
        i
        for i in range(llm.n_vocab())
        if model.token_get_text(i).startswith(("{", "```", TOOL_CALL_TOKEN))
    ]
    return np.asarray(ids, dtype=np.intc)


class FirstTokenRouter:
    """llama-cpp-python logits processor: decides call or words at the first token.

    `decided` is None until the first token, then True (call: `<tool_call>` forced)
    or False (words: every call-opening token removed). Later steps pass through.
    """

    def __init__(self, call_token: int, call_starts: np.ndarray, threshold: float) -> None:
        self.call_token = call_token
        self.call_starts = call_starts
        self.threshold = threshold
        self.decided: bool | None = None
        self.call_probability = 0.0

    def __call__(self, input_ids: Any, scores: np.ndarray) -> np.ndarray:
        if self.decided is not None:
            return scores
        logits = scores.astype(np.float64)
        peak = float(logits.max())
        weights = np.exp(logits - peak)
        self.call_probability = float(weights[self.call_starts].sum() / weights.sum())
        self.decided = self.call_probability >= self.threshold
        out = scores.copy()
        if self.decided:
            out[:] = -np.inf
            out[self.call_token] = 0.0
        else:
            out[self.call_starts] = -np.inf
        return out


def _chunk(text: str = "", finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"delta": {"content": text} if text else {}, "finish_reason": finish}]}


class ToolTurns:
    """Runs a turn with tools on a `llama_cpp.Llama` in the two steps of the module
    docstring, yielding chunks shaped like `create_chat_completion(stream=True)`'s."""

    def __init__(self, llm: Any, threshold: float = 0.5) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llm = llm
        self.threshold = threshold
        model = llm._model
        self._formatter = Jinja2ChatFormatter(
            template=llm.metadata["tokenizer.chat_template"],
            eos_token=model.token_get_text(llm.token_eos()),
            bos_token=model.token_get_text(llm.token_bos()) if llm.token_bos() != -1 else "",
        )
        self.call_token = llm.tokenize(TOOL_CALL_TOKEN.encode(), add_bos=False, special=True)
        if len(self.call_token) != 1:
            raise ValueError("the model has no <tool_call> token")
        self._call_starts: np.ndarray | None = None
        self.last_router: FirstTokenRouter | None = None

    def call_starts(self) -> np.ndarray:
        if self._call_starts is None:  # one pass over the vocabulary, ~0.1 s
            self._call_starts = call_start_ids(self.llm)
        return self._call_starts

    def prompt_tokens(self, messages: Any, tools: list[dict[str, Any]]) -> list[int]:
        """The tokens `create_chat_completion` would evaluate for this turn."""
        offered: Any = tools
        prompt = self._formatter(messages=messages, tools=offered).prompt
        tokens: list[int] = self.llm.tokenize(prompt.encode(), add_bos=False, special=True)
        return tokens

    def chunks(
        self,
        messages: Any,
        tools: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float,
        repeat_penalty: float,
        seed: int | None = None,
    ) -> Any:
        """A generator of chunks: words, or the call's JSON text (no tags)."""
        from llama_cpp import LogitsProcessorList

        llm = self.llm
        tokens = self.prompt_tokens(messages, tools)
        if len(tokens) + 1 > llm.n_ctx():
            raise ValueError(
                f"Requested tokens ({len(tokens)}) exceed context window of {llm.n_ctx()}"
            )
        if seed is not None:
            llm.set_seed(seed)
        router = self.last_router = FirstTokenRouter(
            self.call_token[0], self.call_starts(), self.threshold
        )
        sampling = {"temp": temperature, "repeat_penalty": repeat_penalty}
        gen = llm.generate(tokens, logits_processor=LogitsProcessorList([router]), **sampling)
        first = next(gen)
        if router.decided:
            gen.close()
            nl = llm.tokenize(b"\n", add_bos=False, special=False)
            tokens = [*tokens, first, *nl]
            grammar = tool_call_grammar(tools)
            gen = llm.generate(tokens, grammar=grammar, **sampling)
            first = next(gen)
        return self._stream(gen, first, len(tokens), max_tokens)

    def _stream(self, gen: Any, first: int, prompt_len: int, max_tokens: int) -> Any:
        import codecs

        import llama_cpp

        llm = self.llm
        vocab = llm._model.vocab
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        token, count = first, 0
        try:
            while True:
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    yield _chunk(decoder.decode(b"", final=True), "stop")
                    return
                count += 1
                text = decoder.decode(llm.detokenize([token], special=False))
                if text:
                    yield _chunk(text)
                if count >= max_tokens or prompt_len + count >= llm.n_ctx():
                    yield _chunk(decoder.decode(b"", final=True), "length")
                    return
                token = next(gen)
        finally:
            gen.close()
