"""The one retry policy of the engines that call HTTP services (chat, embeddings, rerank).

Retried statuses, because waiting can fix them:
  408 request timeout   the server gave up on a slow or idle request before reading it
  425 too early         the server refuses a request that might be replayed (TLS 0-RTT)
  429 too many requests rate limited; except an exhausted quota (OpenAI's
                        `insufficient_quota`), which waiting does not refill
  500 internal error    model servers answer this for transient faults (a worker crash,
                        out of memory under a burst)
  502 bad gateway, 503 unavailable, 504 gateway timeout
                        a proxy without a healthy backend, a model still loading, a
                        server shedding load
Not retried, because the same request gets the same answer: every other 4xx (bad
key, unknown model, input too long) including 409 (a conflict is not resolved by
sending the request again; the servers we speak do not use it for lock contention),
501 and 505 (the server lacks the feature: llama.cpp without `--embedding`), and
the other 5xx, which are not standard.

Transport errors retried: connect errors and timeouts, pool timeouts, write errors
and timeouts, read errors and remote protocol errors (a kept-alive connection the
server had closed). Read timeouts are not: the server has the request and is busy
with it, so a second copy doubles its load and the caller's wait.

Waits: the server's `Retry-After` (seconds or an HTTP date; OpenAI's
`retry-after-ms`) when it sends one, else capped exponential backoff with jitter so
that many calls hit by one outage do not come back in step. A `Retry-After` longer
than the policy's `max_retry_after` ends the retrying at once: the caller gets the
error now rather than after a wait nobody on a call can afford.

Every attempt happens before the caller sees any of the response: for a streamed
chat reply, retries end when the response headers arrive, so a reply is never
restarted after words of it were spoken.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC

import httpx
from tenacity import AsyncRetrying, RetryCallState

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

RETRY_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.RemoteProtocolError,
)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts and how long between them; each engine builds one from its
    options. `sleep` is injectable so tests check the waits without waiting."""

    max_attempts: int = 3
    backoff: float = 0.25  # the first backoff; it doubles with every attempt
    max_backoff: float = 8.0
    max_retry_after: float = 20.0  # the longest Retry-After waited for
    jitter: float = 0.5  # up to this fraction of a backoff is taken off at random
    sleep: Sleep = asyncio.sleep
    # What may be retried; a caller whose request is not safe to repeat narrows these
    # (statuses outside RETRY_STATUSES are never retried).
    retry_errors: tuple[type[httpx.TransportError], ...] = RETRY_ERRORS
    retry_statuses: frozenset[int] = RETRY_STATUSES

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")

    def backoff_for(self, attempt: int) -> float:
        """The wait after failed attempt `attempt` (1-based) when the server names none."""
        base = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return max(0.0, base * (1.0 - self.jitter * random.random()))


@dataclass(slots=True)
class Sent:
    """The response to the last attempt (any status) and how many attempts it took."""

    response: httpx.Response
    attempts: int
    retry_after: float | None = None  # set when a Retry-After too long to wait ended retrying

    @property
    def note(self) -> str:
        """A suffix for an error message saying why the engine stopped retrying."""
        if self.retry_after is not None:
            return f" (asked to retry after {self.retry_after:.0f} s; not waiting that long)"
        if self.attempts > 1:
            return f" ({self.attempts} attempt(s))"
        return ""


class TransportFailed(Exception):
    """Every attempt failed before a response came (or the last retryable one did)."""

    def __init__(self, error: httpx.TransportError, attempts: int) -> None:
        super().__init__(f"{type(error).__name__}: {error or 'connection failed'}")
        self.error = error
        self.attempts = attempts


def retry_after(response: httpx.Response, *, now: float | None = None) -> float | None:
    """The wait the server asks for: `retry-after-ms`, or `Retry-After` in seconds or
    as an HTTP date; None when it names none (or nothing readable)."""
    ms = response.headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000
        except ValueError:
            pass
        else:
            if math.isfinite(value):
                return max(0.0, value)
    header = response.headers.get("retry-after")
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT ("-0000" parses as naive)
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


async def is_retryable(response: httpx.Response) -> bool:
    """Whether waiting and sending the same request again can succeed."""
    status = response.status_code
    if status not in RETRY_STATUSES:
        return False
    if status == 429:
        body = await response.aread()  # small; a streamed response is read here too
        return b"insufficient_quota" not in body
    return True


async def send(request: Callable[[], Awaitable[httpx.Response]], policy: RetryPolicy) -> Sent:
    """Send with retries: `request` makes one attempt (a fresh request each time).

    Returns the last response, whatever its status: the engine words its own error.
    Raises `TransportFailed` when the attempts ran out on retryable transport errors;
    other httpx errors (a read timeout) propagate unchanged on the attempt they hit.
    """
    attempts = 0
    too_long: float | None = None

    async def attempt() -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return await request()

    async def should_retry(state: RetryCallState) -> bool:
        outcome = state.outcome
        assert outcome is not None
        if outcome.failed:
            return isinstance(outcome.exception(), policy.retry_errors)
        response = outcome.result()
        return response.status_code in policy.retry_statuses and await is_retryable(response)

    def asked(state: RetryCallState) -> float | None:
        outcome = state.outcome
        if outcome is None or outcome.failed:
            return None
        return retry_after(outcome.result())

    def wait(state: RetryCallState) -> float:
        server = asked(state)
        return policy.backoff_for(state.attempt_number) if server is None else server

    def stop(state: RetryCallState) -> bool:
        nonlocal too_long
        if state.attempt_number >= policy.max_attempts:
            return True
        server = asked(state)
        if server is not None and server > policy.max_retry_after:
            too_long = server
            return True
        return False

    async def discard(state: RetryCallState) -> None:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            await outcome.result().aclose()  # frees the connection of a streamed response

    def gave_up(state: RetryCallState) -> Sent:
        outcome = state.outcome
        assert outcome is not None
        if outcome.failed:
            error = outcome.exception()
            assert isinstance(error, httpx.TransportError)
            raise TransportFailed(error, attempts) from error
        return Sent(outcome.result(), attempts, too_long)

    retrying = AsyncRetrying(
        sleep=policy.sleep,
        retry=should_retry,
        wait=wait,
        stop=stop,
        before_sleep=discard,
        retry_error_callback=gave_up,
    )
    result: Sent | httpx.Response = await retrying(attempt)
    if isinstance(result, Sent):
        return result
    assert isinstance(result, httpx.Response)
    return Sent(result, attempts)
