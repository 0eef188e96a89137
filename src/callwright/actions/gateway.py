"""The policy gateway: the one door every tool call of one live call goes through.

An LLM must never reach a production API directly, so each call is checked, in order,
stopping at the first refusal: (a) the agent may use the tool and it is registered;
(b) the arguments are a JSON object valid against the tool's schema; (c) the call's
budget and rolling per-minute rate allow it; (d) the handler runs under the tool's
timeout. Whatever happens, one `ToolAudit` record goes to the audit sink.

Refusals and failures are *returned*, as the text of the tool message, never raised:
the LLM reads "arguments invalid: date: ...; call again with ..." and even a 0.5B
model can correct its call, or tell the caller it cannot be done, instead of the
turn dying on an exception. That text never carries a handler's exception message or
traceback (they may hold hostnames, SQL or other callers' data); the audit record
keeps the exception type, the server log the rest.

Redaction happens before the audit record exists: the record is built from an
already-redacted copy of the arguments, so no sink, log or later bug can leak a
value the tool declared secret. A tool the gateway does not know has declared
nothing, so its arguments are kept only as their names.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from jsonschema.exceptions import ValidationError

from callwright.actions.confirm import is_affirmative
from callwright.actions.tools import (
    DEFAULT_REGISTRY,
    ToolCallContext,
    ToolDefinition,
    ToolOutcome,
    ToolRegistry,
)
from callwright.engines.base import ToolSpec
from callwright.pipeline.context import CallControl

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
RATE_WINDOW_SECS = 60.0
MAX_ERRORS_SHOWN = 3  # schema errors named back to the LLM: enough to fix, short to read
MAX_PROBLEM_CHARS = 160


class ToolStatus(StrEnum):
    OK = "ok"
    NOT_ALLOWED = "not_allowed"
    BAD_ARGUMENTS = "bad_arguments"
    OVER_BUDGET = "over_budget"
    RATE_LIMITED = "rate_limited"
    TIMED_OUT = "timed_out"
    FAILED = "failed"
    # the reply was cancelled (barge-in, hang-up) while the handler ran: audited, since
    # the tool may have acted, then the cancellation goes on
    CANCELLED = "cancelled"
    # a `sensitive` tool read back to the caller, waiting for their yes in a later turn
    NEEDS_CONFIRMATION = "needs_confirmation"


@dataclass(frozen=True, slots=True)
class GatewayResult:
    """What the pipeline needs: `content` is the tool message the LLM reads next."""

    status: ToolStatus
    content: str
    duration_ms: float
    control: CallControl | None = None  # what the call should do after the reply (ok only)


@dataclass(frozen=True, slots=True)
class ToolAudit:
    """One tool call, allowed or refused, as the runtime persists it. `arguments` are
    already redacted; `data` is kept only for `ok`, `error_type` only for `failed`."""

    tenant_id: str
    call_id: str
    agent_id: str
    turn: int
    tool: str
    arguments: dict[str, Any]
    status: ToolStatus
    data: dict[str, Any] | None
    error_type: str | None
    duration_ms: float
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the status as its value, `at` as ISO 8601 with its UTC offset."""
        return {
            "tenant_id": self.tenant_id,
            "call_id": self.call_id,
            "agent_id": self.agent_id,
            "turn": self.turn,
            "tool": self.tool,
            "arguments": self.arguments,
            "status": self.status.value,
            "data": self.data,
            "error_type": self.error_type,
            "duration_ms": self.duration_ms,
            "at": self.at.isoformat(),
        }


AuditSink = Callable[[ToolAudit], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One call in flight: what its audit record and result are built from."""

    context: ToolCallContext
    tool: str
    arguments: dict[str, Any]  # redacted
    started: float  # perf_counter
    at: datetime


class ToolGateway:
    """Tool calls of one live call: `allowed` is the agent's tool list; `audit`
    receives every record (it must not block: the runtime queues them)."""

    def __init__(
        self,
        *,
        tenant_id: str,
        call_id: str,
        agent_id: str,
        allowed: Sequence[str],
        audit: AuditSink,
        registry: ToolRegistry = DEFAULT_REGISTRY,
        max_calls: int = 10,
        max_per_minute: int = 5,
        now: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utcnow,
        caller_said: Callable[[], str] = lambda: "",
    ) -> None:
        if max_calls < 0 or max_per_minute < 0:
            raise ValueError("max_calls and max_per_minute cannot be negative")
        self.tenant_id = tenant_id
        self.call_id = call_id
        self.agent_id = agent_id
        self.allowed = tuple(dict.fromkeys(allowed))
        self.max_calls = max_calls
        self.max_per_minute = max_per_minute
        self._audit = audit
        self._registry = registry
        self._now = now
        self._wall = wall
        self._runs = 0
        self._recent: deque[float] = deque()  # start times of runs in the rate window
        self._caller_said = caller_said  # the caller's latest final words
        self._read_back: dict[str, int] = {}  # sensitive calls read back: key -> turn

    @property
    def calls_run(self) -> int:
        """Calls that passed every check and reached their handler."""
        return self._runs

    def specs(self) -> list[ToolSpec]:
        """The tools to offer the LLM: allowed and registered, in the agent's order."""
        return [self._registry.get(n).spec() for n in self.allowed if n in self._registry]

    async def call(self, name: str, arguments: str, *, turn: int) -> GatewayResult:
        """Check and run one tool call (`arguments`: the JSON text the LLM produced)."""
        context = ToolCallContext(self.tenant_id, self.call_id, self.agent_id, turn)
        started, at = time.perf_counter(), self._wall()
        definition = self._allowed_tool(name)
        if definition is None:
            refused = _refused_arguments(name, arguments, self._registry)
            attempt = _Attempt(context, name, refused, started, at)
            return self._finish(attempt, ToolStatus.NOT_ALLOWED, self._not_allowed(name))
        args, problems = _parse(arguments, definition)
        attempt = _Attempt(context, name, _redact(args, definition.redact), started, at)
        if problems:
            content = f"arguments invalid: {problems}; call {name} again with corrected arguments"
            return self._finish(attempt, ToolStatus.BAD_ARGUMENTS, content)
        if definition.sensitive and not self._confirmed(definition, args, turn):
            return self._finish(attempt, ToolStatus.NEEDS_CONFIRMATION, _ask(definition, args))
        refusal = self._take_slot()
        if refusal is not None:
            return self._finish(attempt, *refusal)
        return await self._run(definition, args, attempt)

    def _confirmed(self, definition: ToolDefinition, args: dict[str, Any], turn: int) -> bool:
        """A sensitive call runs only when the same call was read back in an earlier turn
        and the caller's answer since is a clear yes; otherwise it is (re)read back."""
        key = f"{definition.name}:{json.dumps(args, sort_keys=True)}"
        asked = self._read_back.get(key)
        if asked is not None and turn > asked and is_affirmative(self._caller_said()):
            del self._read_back[key]
            return True
        self._read_back[key] = turn
        return False

    def _allowed_tool(self, name: str) -> ToolDefinition | None:
        if name not in self.allowed or name not in self._registry:
            return None
        return self._registry.get(name)

    def _not_allowed(self, name: str) -> str:
        offered = ", ".join(s.name for s in self.specs()) or "none"
        return (
            f"not done: there is no tool {name!r} here (available: {offered}); "
            "tell the caller you cannot do that on this call"
        )

    def _take_slot(self) -> tuple[ToolStatus, str] | None:
        """Budget, then rate; a call that passes both is counted in each. Synchronous,
        so concurrent calls cannot both take the last slot."""
        if self._runs >= self.max_calls:
            return ToolStatus.OVER_BUDGET, (
                f"not done: the limit of {self.max_calls} actions on this call is reached; "
                "tell the caller you cannot do more on this call"
            )
        now = self._now()
        while self._recent and self._recent[0] <= now - RATE_WINDOW_SECS:
            self._recent.popleft()
        if len(self._recent) >= self.max_per_minute:
            return ToolStatus.RATE_LIMITED, (
                "not done: too many actions in the last minute; "
                "tell the caller it will take a moment, and try again shortly"
            )
        self._runs += 1
        self._recent.append(now)
        return None

    async def _run(
        self, definition: ToolDefinition, args: dict[str, Any], attempt: _Attempt
    ) -> GatewayResult:
        name = definition.name
        scope = asyncio.timeout(definition.timeout_secs)
        try:
            async with scope:
                outcome = await definition.handler(args, attempt.context)
            if not isinstance(outcome, ToolOutcome):
                raise TypeError(f"tool {name!r} returned {type(outcome).__name__}")
        except asyncio.CancelledError:
            self._finish(attempt, ToolStatus.CANCELLED, "cancelled")
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError) and scope.expired():
                content = (
                    f"not done: {name} took too long and was stopped, so it may not have "
                    "gone through; tell the caller you could not confirm it"
                )
                return self._finish(attempt, ToolStatus.TIMED_OUT, content)
            log.warning("tool %s failed in call %s", name, self.call_id, exc_info=True)
            content = f"not done: {name} failed; tell the caller it did not work this time"
            return self._finish(attempt, ToolStatus.FAILED, content, error_type=type(exc).__name__)
        content = outcome.content if outcome.content.strip() else f"{name}: done"
        result = self._finish(attempt, ToolStatus.OK, content, data=dict(outcome.data))
        return replace(result, control=outcome.control)

    def _finish(
        self,
        attempt: _Attempt,
        status: ToolStatus,
        content: str,
        *,
        data: dict[str, Any] | None = None,
        error_type: str | None = None,
    ) -> GatewayResult:
        duration_ms = max(0.0, (time.perf_counter() - attempt.started) * 1000)
        ctx = attempt.context
        record = ToolAudit(
            ctx.tenant_id,
            ctx.call_id,
            ctx.agent_id,
            ctx.turn,
            attempt.tool,
            attempt.arguments,
            status,
            data,
            error_type,
            duration_ms,
            attempt.at,
        )
        self._audit(record)
        return GatewayResult(status, content, duration_ms)


def _ask(definition: ToolDefinition, args: dict[str, Any]) -> str:
    """What the LLM reads when a sensitive call waits for the caller's yes."""
    # redacted arguments (card numbers...) are not read out loud either
    shown = (
        ", ".join(f"{k}: {'(as given)' if k in definition.redact else v}" for k, v in args.items())
        or "no details"
    )
    return (
        f"not done yet: {definition.name} needs the caller's confirmation. Read it back "
        f"to the caller ({shown}) and ask if that is right; call {definition.name} again "
        "with the same arguments only after they say yes"
    )


# --------------------------------------------------------------------- arguments
def _parse(text: str, definition: ToolDefinition) -> tuple[dict[str, Any], str]:
    """The arguments as an object, and what is wrong with them ("" when nothing).

    Empty text reads as `{}`: small models often send "" for a tool without arguments.
    """
    if not text.strip():
        value: Any = {}
    else:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return {}, f"not valid JSON ({exc.msg}); send a JSON object of the parameters"
    if not isinstance(value, dict):
        kind = type(value).__name__
        return {}, f"expected a JSON object of the parameters, got a {kind}"
    # sorted by the field they name, so the same mistake always reads the same way
    problems = sorted(_describe(e) for e in definition.validator.iter_errors(value))
    return value, "; ".join(problems[:MAX_ERRORS_SHOWN])


def _describe(error: ValidationError) -> str:
    """`field: problem`, naming the argument even when the error sits on its parent."""
    path = [str(p) for p in error.absolute_path]
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [str(p) for p in error.validator_value if p not in instance]
        return f"{'.'.join([*path, missing[0]])}: missing (required)"
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = [str(k) for k in instance if k not in known]
        accepted = ", ".join(known) or "none"
        field_name = ".".join([*path, extra[0]]) if extra else ".".join(path) or "arguments"
        return f"{field_name}: not an accepted argument (accepted: {accepted})"
    problem = error.message
    if len(problem) > MAX_PROBLEM_CHARS:
        problem = problem[: MAX_PROBLEM_CHARS - 3] + "..."
    return f"{'.'.join(path) or 'arguments'}: {problem}"


def _redact(args: dict[str, Any], redact: tuple[str, ...]) -> dict[str, Any]:
    """A deep copy with the declared secrets replaced: built before the handler runs,
    so neither the handler's changes nor the record can expose them."""
    return {k: REDACTED if k in redact else copy.deepcopy(v) for k, v in args.items()}


def _refused_arguments(name: str, text: str, registry: ToolRegistry) -> dict[str, Any]:
    """A refused tool's arguments: redacted as declared when the tool is registered,
    else only their names (nothing declares which values are secret)."""
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    if name in registry:
        return _redact(value, registry.get(name).redact)
    return dict.fromkeys(value, REDACTED)
