"""The embedded LLM: llama.cpp (llama-cpp-python) on the Qwen2.5-Coder-0.5B GGUF.

One `Llama` context serves every call in the process, so requests run one at a time
on a dedicated worker thread (a single-thread executor is the lock). Tokens cross to
the event loop through `loop.call_soon_threadsafe` into an `asyncio.Queue`; closing
the async iterator sets a stop flag the worker checks after every token, and
`aclose()` returns once the worker is done with the request, so a barge-in frees the
model within one token (prompt evaluation itself is one llama.cpp call and is not
interrupted); a request paused between slices (below) ends at its next turn without
generating another token.

Prompt caching. On 2 CPU cores prompt evaluation dominates latency (about 4 s for a
520-token prompt, 0.3 s when its prefix is already in the KV cache), so:

* llama-cpp-python's `generate()` already reuses the longest common token prefix
  of the live context, so a fixed system prompt (see `warmup()`) and the history of
  the conversation that ran last cost nothing on the next turn.
* With several conversations (`session_key`), switching to another key first saves
  the live sequence's KV cells (`llama_state_seq_get_data`, about 12 KB a token for
  this model) under the old key, then restores the new key's cells if it has any.
  If it has none, the live context stays: it shares at least the system prompt.
  (The saved states: engines/llamacpp_states.py.)

Two conversations at once. A reply that is already speaking has audio queued ahead of
the caller, so it can wait; a caller who just stopped talking cannot. Generation runs
in slices of `slice_tokens` tokens: when another conversation's request is waiting,
the running one pauses after its slice (its KV cells saved under its key, its sampler
kept) and goes to the back of the queue; it resumes exactly where it stopped, so the
text is the same as uninterrupted (tested, greedy). A request without a session key
runs to its end: its context could not be restored.

`Llama.save_state()` / `LlamaRAMCache` were measured and rejected: `save_state`
also copies the logits buffer (`n_tokens x n_vocab` floats, 104 MB for a 172-token
context with Qwen's 151,936-token vocabulary), 0.28 s and ~106 MB per snapshot,
whereas the sequence state is 2.1 MB and 1-2 ms to save or restore; and the
RAM cache saves after every completion (not only on a switch) and only when a
stream runs to its end, so a barge-in loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callwright.engines.base import ChatMessage, EngineError, LLMDelta, ToolCall, ToolSpec
from callwright.engines.llamacpp_grammar import ToolTurns
from callwright.engines.llamacpp_states import SeqStateCache, restore_sequence, save_sequence
from callwright.engines.registry import register
from callwright.engines.tool_calls import TextToolCallParser, ToolCallAccumulator

_DONE = object()


@dataclass(slots=True)
class TurnStats:
    """What one `stream()` call cost; `reused_tokens` came from the KV cache."""

    session_key: str | None = None
    reused_tokens: int = 0
    evaluated_prompt_tokens: int = 0
    completion_tokens: int = 0
    # llama.cpp decode calls this turn: the first is the prompt, then one per token fed back
    decode_calls: int = 0
    restored_session: bool = False
    cancelled: bool = False
    first_token_s: float | None = None
    total_s: float = 0.0

    @property
    def prompt_tokens(self) -> int:
        return self.reused_tokens + self.evaluated_prompt_tokens


@dataclass(slots=True)
class _Request:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    max_tokens: int
    temperature: float
    session_key: str | None
    stats: TurnStats = field(default_factory=TurnStats)


@dataclass(eq=False, slots=True)
class _Job:
    """A generation request while it runs in slices on the worker thread."""

    req: _Request
    stop: threading.Event
    emit: Callable[[object], None]
    gen: Generator[None, None, None] | None = None  # paused generation (None: not started)
    sampler: Any = None  # llama-cpp-python's sampler chain: it carries penalty history
    slices: int = 0
    paused_at: int = 0  # the worker's run count when it paused


def messages_for_template(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """OpenAI-shaped messages whose tool-call arguments are objects, as HF templates expect.

    Qwen's template renders `arguments | tojson`; passing the OpenAI JSON string would
    quote it twice and the history would no longer match what the model wrote.
    """
    out = []
    for m in messages:
        msg = m.to_openai()
        for call in msg.get("tool_calls", []):
            fn = call["function"]
            with contextlib.suppress(ValueError):
                fn["arguments"] = json.loads(fn["arguments"])
        out.append(msg)
    return out


class LlamaCppLLM:
    """llama.cpp chat completion with per-session KV reuse (see the module docstring)."""

    name = "llamacpp"

    def __init__(
        self,
        model_path: str | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int = 2,
        n_batch: int = 512,
        max_sessions: int = 32,
        session_cache_mb: int = 256,
        seed: int | None = None,
        repeat_penalty: float = 1.1,
        n_gpu_layers: int = 0,
        warm_system_prompt: str | None = None,
        slice_tokens: int = 12,
        constrain_tools: bool = True,
        tool_threshold: float = 0.5,
    ) -> None:
        import llama_cpp
        from llama_cpp import Llama

        from callwright.engines.model_files import qwen_gguf_path

        path = Path(model_path).expanduser() if model_path else qwen_gguf_path()
        if not path.is_file():
            raise EngineError(f"llama.cpp model file {path} does not exist")
        self.model_path = path
        self._llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_batch=n_batch,
            n_gpu_layers=n_gpu_layers,  # >0 offloads layers on a CUDA/Metal build
            verbose=False,
            seed=llama_cpp.LLAMA_DEFAULT_SEED if seed is None else seed,
        )
        self._seed = seed
        self._repeat_penalty = repeat_penalty
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        self.slice_tokens = max(1, slice_tokens)
        self._waiting: list[str | None] = []  # session keys of queued work, in order
        self._waiting_lock = threading.Lock()
        self._paused: set[str] = set()  # keys of paused generations: never evicted
        self._runs = 0  # work items the worker has started
        self.preemptions = 0
        self._states = SeqStateCache(max_sessions, session_cache_mb * 1024 * 1024)
        self._live_key: str | None = None
        self._turn: TurnStats | None = None
        self.last_stats: TurnStats | None = None
        self.evaluated_tokens_total = 0
        self._closed = False
        # turns with tools: decided at the first token, calls under a grammar
        self._tool_turns = ToolTurns(self._llm, tool_threshold) if constrain_tools else None
        self._install_eval_counter()
        if warm_system_prompt:
            self._warmup_sync(warm_system_prompt, None)

    # ------------------------------------------------------------------ instrumentation
    def _install_eval_counter(self) -> None:
        """Count tokens llama.cpp evaluates: the first `eval` of a turn is the prompt suffix
        that was not in the cache; `n_tokens` at that moment is the reused prefix."""
        inner: Callable[[Sequence[int]], None] = self._llm.eval

        def counting_eval(tokens: Sequence[int]) -> None:
            turn = self._turn
            if turn is not None:
                if turn.decode_calls == 0:
                    turn.reused_tokens = int(self._llm.n_tokens)
                    turn.evaluated_prompt_tokens = len(tokens)
                turn.decode_calls += 1
            self.evaluated_tokens_total += len(tokens)
            inner(tokens)

        self._llm.eval = counting_eval  # type: ignore[method-assign]

    # ------------------------------------------------------------------ session states
    @property
    def cached_sessions(self) -> list[str]:
        return self._states.keys()

    def _save_live(self) -> None:
        key = self._live_key
        if key is None:
            return
        state = save_sequence(self._llm)
        if state is not None:
            self._states.put(key, state, keep=self._paused)

    def _switch_session(self, key: str | None) -> bool:
        """Make `key`'s conversation the live context; True if a saved state was restored."""
        if key == self._live_key:
            return False
        self._save_live()
        state = self._states.pop(key) if key is not None else None
        self._live_key = key
        return state is not None and restore_sequence(self._llm, state)

    # ------------------------------------------------------------------ generation
    def _chunks(self, req: _Request) -> Iterator[dict[str, Any]]:
        if req.tools and self._tool_turns is not None:
            return self._tool_turns.chunks(
                req.messages,
                req.tools,
                max_tokens=req.max_tokens,
                temperature=req.temperature,
                repeat_penalty=self._repeat_penalty,
                seed=self._seed,
            )
        kwargs: dict[str, Any] = {}
        if req.tools:
            kwargs["tools"] = req.tools
        if self._seed is not None:
            kwargs["seed"] = self._seed
        messages: Any = req.messages
        return self._llm.create_chat_completion(  # type: ignore[return-value]
            messages=messages,
            stream=True,
            max_tokens=req.max_tokens,
            temperature=req.temperature,
            repeat_penalty=self._repeat_penalty,
            **kwargs,
        )

    def _generation(self, job: _Job) -> Generator[None, None, None]:
        """Worker thread: generate, emitting `LLMDelta`s; yields after every token, where
        the slice runner may pause it. Stops after the token in flight once `stop` is set."""
        req, stop, emit = job.req, job.stop, job.emit
        stats = req.stats
        t0 = time.perf_counter()
        chunks: Iterator[dict[str, Any]] | None = None
        try:
            if stop.is_set():  # abandoned while queued behind another request
                stats.cancelled = True
                return
            stats.restored_session = self._switch_session(req.session_key)
            tagged = (
                TextToolCallParser([t["function"]["name"] for t in req.tools])
                if req.tools
                else None
            )
            native = ToolCallAccumulator()
            finish: str | None = None
            chunks = self._chunks(req)
            for chunk in chunks:
                if stop.is_set():
                    stats.cancelled = True
                    break
                choice = chunk["choices"][0]
                delta = choice.get("delta") or {}
                text = delta.get("content") or ""
                native.add(delta.get("tool_calls"))
                if text:
                    stats.completion_tokens += 1
                    if stats.first_token_s is None:
                        stats.first_token_s = time.perf_counter() - t0
                    if tagged is not None:
                        text = tagged.feed(text)
                    if text:
                        emit(LLMDelta(text=text))
                    yield
                finish = choice.get("finish_reason") or finish
            if stats.cancelled:
                return
            calls: list[ToolCall] = native.finish()
            if tagged is not None:
                rest = tagged.flush()
                if rest:
                    emit(LLMDelta(text=rest))
                calls += tagged.calls
            if calls:
                emit(LLMDelta(tool_calls=calls))
                finish = "tool_calls"
            emit(LLMDelta(finish_reason=finish or "stop"))
        except ValueError as exc:  # llama-cpp-python reports context overflow this way
            emit(EngineError(f"llama.cpp: {exc}"))
        except Exception as exc:
            emit(EngineError(f"llama.cpp generation failed: {type(exc).__name__}: {exc}"))
        finally:
            if isinstance(chunks, Generator):  # llama-cpp-python's stream: free its state now
                chunks.close()
            stats.total_s += time.perf_counter() - t0

    def _submit(self, key: str | None, fn: Callable[[], None]) -> Future[None]:
        """Queue work for the worker thread, noting its session key for the slicer."""
        with self._waiting_lock:
            self._waiting.append(key)

        def run() -> None:
            with self._waiting_lock:
                self._waiting.remove(key)
            self._runs += 1
            fn()

        try:
            return self._executor.submit(run)
        except RuntimeError:
            with self._waiting_lock:
                self._waiting.remove(key)
            raise

    def _others_waiting(self, key: str) -> bool:
        with self._waiting_lock:
            return any(k != key for k in self._waiting)

    def _run_slice(self, job: _Job) -> None:
        """Worker thread: run `job` until it ends, or for a slice if others wait."""
        try:
            if self._slice(job):
                return  # paused, queued again
        except BaseException as exc:  # never leave a stream waiting for its end
            job.emit(EngineError(f"llama.cpp worker failed: {type(exc).__name__}: {exc}"))
            job.emit(_DONE)
            raise
        self.last_stats = job.req.stats
        job.emit(_DONE)

    def _slice(self, job: _Job) -> bool:
        """One slice of `job`; True if it paused (and is queued again)."""
        key = job.req.session_key
        gen = job.gen
        if gen is not None:  # resuming a paused generation
            assert key is not None
            self._paused.discard(key)
            if job.stop.is_set():  # abandoned while paused: end it without a token more
                job.req.stats.cancelled = True
                gen.close()
                return False
            # its context: still live if nothing ran since, else saved under its key (a
            # request of the same conversation in between would have consumed it)
            untouched = key == self._live_key and self._runs == job.paused_at + 1
            if not untouched and (key == self._live_key or not self._switch_session(key)):
                job.emit(EngineError("llama.cpp: a paused conversation's state was lost"))
                gen.close()
                return False
            self._llm._sampler = job.sampler
        else:
            gen = job.gen = self._generation(job)
        job.slices += 1
        self._turn = job.req.stats
        tokens = 0
        try:
            for _ in gen:
                tokens += 1
                if (
                    key is not None
                    and tokens >= self.slice_tokens
                    and not job.stop.is_set()
                    and self._others_waiting(key)
                ):
                    # pause: whatever runs next saves this context under its key
                    job.sampler = self._llm._sampler
                    job.paused_at = self._runs
                    self._paused.add(key)
                    try:
                        self._submit(key, lambda: self._run_slice(job))
                    except RuntimeError:  # shutting down: finish here instead
                        self._paused.discard(key)
                        continue
                    self.preemptions += 1
                    return True
        finally:
            self._turn = None
        return False

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        max_tokens: int = 256,
        temperature: float = 0.3,
        session_key: str | None = None,
    ) -> AsyncIterator[LLMDelta]:
        if self._closed:
            raise EngineError("llama.cpp engine is closed")
        req = _Request(
            messages=messages_for_template(messages),
            tools=[t.to_openai() for t in tools] or None,
            max_tokens=max_tokens,
            temperature=temperature,
            session_key=session_key,
            stats=TurnStats(session_key=session_key),
        )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening
                stop.set()

        job = _Job(req, stop, emit)
        done = loop.create_future()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        def emit_or_finish(item: object) -> None:
            emit(item)
            if item is _DONE:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(finished)

        job.emit = emit_or_finish

        self._submit(session_key, lambda: self._run_slice(job))
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, LLMDelta)
                yield item
        finally:
            stop.set()
            # Return only once the worker is done with this request (within one token
            # when it is running; a paused or queued one ends at its next turn).
            with contextlib.suppress(Exception):
                await asyncio.shield(done)

    # ------------------------------------------------------------------ warm-up / lifecycle
    def _warmup_sync(self, system_prompt: str, tools: list[dict[str, Any]] | None) -> None:
        messages: Any = [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": "Hi"},
        ]
        self._switch_session(None)
        kwargs: dict[str, Any] = {"tools": tools} if tools else {}
        self._llm.create_chat_completion(messages=messages, max_tokens=1, temperature=0.0, **kwargs)
        if tools and self._tool_turns is not None:
            self._tool_turns.call_starts()

    async def warmup(self, system_prompt: str, tools: Sequence[ToolSpec] = ()) -> None:
        """Evaluate `system_prompt` (and the tool list, which Qwen's template puts in the
        system turn) so the first real turn finds it in the KV cache."""
        tool_list = [t.to_openai() for t in tools] or None
        await asyncio.wrap_future(
            self._submit(None, lambda: self._warmup_sync(system_prompt, tool_list))
        )

    def _prefill_sync(self, messages: Any, session_key: str | None) -> None:
        self._switch_session(session_key)
        self._llm.create_chat_completion(messages=messages, max_tokens=1, temperature=0.0)

    async def prefill(self, messages: Sequence[ChatMessage], *, session_key: str | None) -> None:
        """Evaluate a conversation's prompt ahead of its turn (retrieved passages while
        the caller is still speaking): the turn then reuses it as a cached prefix.
        Queued like any request, so it never delays a reply already generating."""
        if self._closed:
            return
        msgs = messages_for_template(messages)
        await asyncio.wrap_future(
            self._submit(session_key, lambda: self._prefill_sync(msgs, session_key))
        )

    async def aclose(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, True)
        self._states.clear()


@register("llm", "llamacpp")
def create(**options: Any) -> LlamaCppLLM:
    return LlamaCppLLM(**options)
