"""HTTP webhook tools: a tool declared in a YAML file, run as one HTTP request.

An installation connects its booking system or CRM without writing Python: each
`tools/*.yaml` file names the tool, its JSON Schema, and the request to make
(docs/tools-and-flows.md, "Webhook tools"). The request is built from arguments an
LLM chose, so everything it could steer is bounded: placeholders fill only the URL's
path and query, URL-encoded; the host is fixed when the file is loaded; connections
go only through `callwright.netguard` (no loopback, private or link-local address
unless the operator allows it, DNS-rebinding safe, no proxies); no redirects; the
response is capped. Secrets (header values, the signing key) come from the
environment at load, so a missing one fails at start, and are never logged.

Retries reuse the project's one policy (`engines.http_retry`). Every request carries
an `Idempotency-Key` derived from the call, turn, tool and arguments, so a retried
POST is recognisably the same request and the receiver books once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from callwright.actions.tools import (
    ToolCallContext,
    ToolDefinition,
    ToolDefinitionError,
    ToolOutcome,
    ToolRegistry,
)
from callwright.engines import http_retry
from callwright.netguard import guarded_transport

log = logging.getLogger(__name__)

DIR_ENV = "CALLWRIGHT_TOOLS_DIR"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_HEADER = "X-Callwright-Signature"
TIMESTAMP_HEADER = "X-Callwright-Timestamp"
USER_AGENT = "Callwright-webhook/0.1"
MAX_RESPONSE_BYTES = 64 * 1024
MAX_CONTENT_CHARS = 1000  # what the LLM reads of a response without a `say` field

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})
# set by the platform on every request; a file may not override them
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Host",
        "Content-Length",
        "Content-Type",
        "Transfer-Encoding",
        IDEMPOTENCY_HEADER,
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
    )
)


class WebhookConfigError(ValueError):
    """A webhook tool file that cannot be used; the message names the file and field."""


class WebhookError(Exception):
    """A webhook call that did not succeed; the gateway audits its type, never its text."""


class WebhookHTTPError(WebhookError):
    """The receiver answered with a non-2xx status (after any retries)."""

    def __init__(self, tool: str, status: int, attempts: int) -> None:
        super().__init__(f"webhook {tool}: HTTP {status} after {attempts} attempt(s)")
        self.status = status
        self.attempts = attempts


class WebhookResponseTooLarge(WebhookError):
    """The response body exceeded the policy's limit."""


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """What webhook tools may reach: public addresses only, unless the operator allows
    every private address (`allow_private`) or private addresses for named hosts."""

    allow_private: bool = False
    private_hosts: frozenset[str] = frozenset()
    max_response_bytes: int = MAX_RESPONSE_BYTES


class WebhookFile(BaseModel):
    """One `tools/*.yaml` file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    parameters: dict[str, Any]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_secs: float = Field(5.0, gt=0, le=60)
    retries: int = Field(2, ge=0, le=5)
    sign_secret_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    redact: tuple[str, ...] = ()
    sensitive: bool = False

    @field_validator("url")
    @classmethod
    def _url_template(cls, url: str, info: ValidationInfo) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError("must start with http:// or https://")
        if not parts.hostname or "{" in parts.netloc or "}" in parts.netloc:
            raise ValueError("needs a fixed host; placeholders may fill only the path and query")
        if "@" in parts.netloc:
            raise ValueError("credentials in the URL are not allowed; use headers")
        if parts.fragment:
            raise ValueError("a fragment (#...) is never sent; remove it")
        parameters = info.data.get("parameters")
        if not isinstance(parameters, dict):
            return url  # parameters failed on their own; reported there
        properties = parameters.get("properties", {})
        required = set(parameters.get("required", []))
        for name in _PLACEHOLDER.findall(url):
            prop = properties.get(name) if isinstance(properties, dict) else None
            if not isinstance(prop, dict) or name not in required:
                raise ValueError(f"placeholder {{{name}}} must be a required parameter")
            if prop.get("type") not in _SCALAR_TYPES:
                raise ValueError(
                    f"placeholder {{{name}}} must be a string, integer, number or boolean"
                )
        return url

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        taken = sorted(k for k in headers if k.lower() in _RESERVED_HEADERS)
        if taken:
            raise ValueError(f"set by Callwright, cannot be overridden: {taken}")
        return headers


@dataclass(frozen=True, slots=True)
class WebhookHandler:
    """The handler of one webhook tool: `await handler(args, call)` makes the request.

    Equal handlers (same file, same secrets, same policy) make loading idempotent.
    """

    spec: WebhookFile
    policy: WebhookPolicy
    headers: Mapping[str, str] = field(repr=False)  # with secrets filled in
    secret: bytes | None = field(default=None, repr=False)

    async def __call__(self, args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        url = fill_url(self.spec.url, args)
        key = idempotency_key(call, self.spec.name, args)
        body = None if self.spec.method == "GET" else request_body(args, call)
        retry = http_retry.RetryPolicy(
            max_attempts=self.spec.retries + 1,
            backoff=0.2,
            max_backoff=1.0,
            max_retry_after=min(2.0, self.spec.timeout_secs / 2),
        )
        transport = guarded_transport(
            allow_private=self.policy.allow_private,
            private_hosts=self.policy.private_hosts,
            max_connections=2,
        )
        # The gateway bounds the whole call (retries included) by timeout_secs; the
        # client's own timeout is only a backstop for calls made outside it.
        async with httpx.AsyncClient(
            transport=transport,
            trust_env=False,  # no env proxies (they would connect unchecked), no .netrc
            follow_redirects=False,
            timeout=httpx.Timeout(self.spec.timeout_secs + 1.0),
        ) as client:

            async def attempt() -> httpx.Response:
                request = client.build_request(
                    self.spec.method, url, content=body, headers=self._headers(body, key)
                )
                return await client.send(request, stream=True)

            sent = await http_retry.send(attempt, retry)
            response = sent.response
            try:
                if not 200 <= response.status_code < 300:
                    raise WebhookHTTPError(self.spec.name, response.status_code, sent.attempts)
                data = await _read_capped(response, self.policy.max_response_bytes)
            finally:
                await response.aclose()
        return response_outcome(data)

    def _headers(self, body: bytes | None, key: str) -> dict[str, str]:
        """Per attempt: a fresh timestamp, so a receiver's freshness window holds."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **self.headers}
        headers[IDEMPOTENCY_HEADER] = key
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.secret is not None:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = "sha256=" + sign(self.secret, timestamp, body or b"")
        return headers


# ----------------------------------------------------------------- the request
def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def idempotency_key(call: ToolCallContext, tool: str, args: dict[str, Any]) -> str:
    """Stable for the same call, turn, tool and arguments: a retry sends the same key."""
    material = {"call_id": call.call_id, "turn": call.turn, "tool": tool, "arguments": args}
    return hashlib.sha256(_canonical(material)).hexdigest()


def request_body(args: dict[str, Any], call: ToolCallContext) -> bytes:
    """The JSON body of a non-GET request: the arguments and who is calling."""
    caller = {
        "tenant_id": call.tenant_id,
        "call_id": call.call_id,
        "agent_id": call.agent_id,
        "turn": call.turn,
    }
    return _canonical({"arguments": args, "call": caller})


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 hex of `timestamp.body`, as a receiver recomputes it."""
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def fill_url(template: str, args: dict[str, Any]) -> str:
    """The template with each `{arg}` replaced by its URL-encoded value; "/" and
    dot segments are encoded too, so an argument cannot change the path's shape."""

    def value(match: re.Match[str]) -> str:
        raw = args[match.group(1)]
        text = raw if isinstance(raw, str) else json.dumps(raw)
        encoded = quote(text, safe="")
        return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded

    return _PLACEHOLDER.sub(value, template)


# ---------------------------------------------------------------- the response
async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise WebhookResponseTooLarge(f"Content-Length {declared} exceeds {limit} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise WebhookResponseTooLarge(f"response exceeds {limit} bytes")
    return bytes(body)


def response_outcome(body: bytes) -> ToolOutcome:
    """JSON's `say` is what the LLM reads, else the body's text (truncated); the parsed
    JSON is the outcome's data (an object as is, anything else as `value`)."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed: Any = json.loads(text) if text else None
    except json.JSONDecodeError:
        parsed = None
    data: dict[str, Any] = {}
    if isinstance(parsed, dict):
        data = parsed
    elif parsed is not None:
        data = {"value": parsed}
    say = data.get("say")
    content = say if isinstance(say, str) else text
    if len(content) > MAX_CONTENT_CHARS:
        content = content[: MAX_CONTENT_CHARS - 3] + "..."
    return ToolOutcome(content, data)


# ------------------------------------------------------------------ loading
def webhook_tools_dir(given: Path | None = None) -> Path:
    """`--tools-dir`, else $CALLWRIGHT_TOOLS_DIR, else ./tools."""
    if given is not None:
        return given
    return Path(os.environ.get(DIR_ENV) or "tools")


def _format(errors: list[Any]) -> str:
    lines = []
    for err in errors:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def _env(name: str, source: str, where: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise WebhookConfigError(
            f"{source}: {where} needs the environment variable {name}, which is not set"
        )
    return value


def _fill_env(value: str, source: str, where: str) -> str:
    return _ENV_REF.sub(lambda m: _env(m.group(1), source, where), value)


def parse_webhook(data: Any, source: str, policy: WebhookPolicy) -> ToolDefinition:
    """A tool definition from a parsed file; every problem is a WebhookConfigError."""
    if not isinstance(data, dict):
        raise WebhookConfigError(f"{source}: a webhook tool must be a mapping")
    try:
        spec = WebhookFile.model_validate(data)
    except ValidationError as exc:
        raise WebhookConfigError(
            f"{source}: invalid webhook tool\n{_format(exc.errors())}"
        ) from None
    headers = {k: _fill_env(v, source, f"headers.{k}") for k, v in spec.headers.items()}
    secret = None
    if spec.sign_secret_env is not None:
        secret = _env(spec.sign_secret_env, source, "sign_secret_env").encode()
    handler = WebhookHandler(spec, policy, headers, secret)
    try:
        return ToolDefinition(
            name=spec.name,
            description=spec.description,
            parameters=spec.parameters,
            handler=handler,
            timeout_secs=spec.timeout_secs,
            sensitive=spec.sensitive,
            redact=spec.redact,
        )
    except ToolDefinitionError as exc:
        raise WebhookConfigError(f"{source}: {exc}") from None


def load_webhook_file(path: Path, policy: WebhookPolicy) -> ToolDefinition:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WebhookConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise WebhookConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_webhook(data, str(path), policy)


def load_webhook_tools(
    directory: Path | str, registry: ToolRegistry, *, policy: WebhookPolicy
) -> list[str]:
    """Register every `*.yaml`/`*.yml` webhook tool in `directory`; the names, sorted
    by file. A missing directory has none. Loading the same files again is a no-op
    (the CLI checks before the app starts); a name taken by another tool is an error."""
    root = Path(directory)
    if not root.is_dir():
        return []
    names: list[str] = []
    for path in sorted(root.iterdir()):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        definition = load_webhook_file(path, policy)
        if definition.name in registry:
            existing = registry.get(definition.name)
            if existing.handler != definition.handler:
                raise WebhookConfigError(
                    f"{path}: a tool named {definition.name!r} is already registered"
                )
        else:
            registry.register(definition)
        names.append(definition.name)
        log.info("webhook tool %s loaded from %s", definition.name, path)
    return names
