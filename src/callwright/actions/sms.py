"""SMS confirmation: a `send_sms` tool over a small provider interface (Twilio first).

An agent that has just booked a visit offers to text the details; the caller says
yes and gives a number. The number is parsed and validated with `phonenumbers` (in
the installation's default region) and sent in E.164; a number that is not valid is
never sent, and the LLM is told to ask the caller to repeat it.

`TwilioSms` speaks Twilio's REST API directly (the Messages resource: a form-encoded
POST with HTTP basic auth), through `callwright.netguard` like every outbound call
the platform makes. Retries use the project's one policy (`engines.http_retry`),
narrowed: Twilio's Messages API takes no idempotency key, so a POST that may have
reached it is never sent again (a lost answer to a delivered request would text the
caller twice). Only failures before a byte of the request left (the connection was
refused, timed out, or no pooled connection came) are retried; any answer, a 5xx
included, and any error after sending end the attempt.

Phone numbers are personal data: the tool's `to` argument is redacted in the audit
record, whose data keeps only the number's last two digits (enough to tell a caller
"the text went to the number ending 00").
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx
import phonenumbers

from callwright.actions.tools import (
    ToolCallContext,
    ToolDefinition,
    ToolOutcome,
    ToolRegistry,
)
from callwright.engines import http_retry
from callwright.netguard import guarded_transport

log = logging.getLogger(__name__)

PROVIDER_ENV = "CALLWRIGHT_SMS_PROVIDER"
BASE_URL_ENV = "CALLWRIGHT_SMS_BASE_URL"
REGION_ENV = "CALLWRIGHT_SMS_REGION"
SID_ENV = "TWILIO_ACCOUNT_SID"
TOKEN_ENV = "TWILIO_AUTH_TOKEN"
FROM_ENV = "TWILIO_FROM"
SERVICE_ENV = "TWILIO_MESSAGING_SERVICE_SID"
TWILIO_BASE_URL = "https://api.twilio.com"
DEFAULT_REGION = "US"
SEND_SMS = "send_sms"
MAX_MESSAGE_CHARS = 320  # two concatenated GSM-7 segments; a confirmation, not a letter
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "Callwright-sms/0.1"

# Failures that happen before the request is written: the only safe ones to retry.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
# up to ~1.5 s of backoff: inside the tool's timeout, short enough for a live call
DEFAULT_RETRY = http_retry.RetryPolicy(max_attempts=3, backoff=0.2, max_backoff=1.0)


@dataclass(frozen=True, slots=True)
class SmsReceipt:
    """The provider accepted the message: its id (Twilio's `SM...` sid) and status
    (`queued`, `accepted`, ...; delivery happens later)."""

    message_id: str
    status: str


class SmsProvider(Protocol):
    """Sends one text; `to` is already E.164. Raises `SmsError` when not accepted."""

    async def send(self, to: str, body: str) -> SmsReceipt: ...


class SmsConfigError(ValueError):
    """SMS configured incompletely or wrongly; the message names the variable."""


class SmsError(Exception):
    """A message the provider did not accept; the gateway audits the type only."""


class SmsRejected(SmsError):
    """The provider answered with an error. `message` may quote the number, so it is
    kept as an attribute and left out of the exception text (which is logged)."""

    def __init__(self, http_status: int, code: int | None, message: str) -> None:
        super().__init__(f"SMS rejected: HTTP {http_status}, provider code {code}")
        self.http_status = http_status
        self.code = code
        self.message = message


# ------------------------------------------------------------------------- Twilio
@dataclass(frozen=True, slots=True)
class TwilioSms:
    """Twilio's Messages resource: `POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json`.

    One of `from_` (a Twilio number, short code or sender id) and
    `messaging_service_sid` is required; with both, Twilio sends from `from_` within
    the service. `private_hosts` lets named hosts resolve to non-public addresses
    (tests on 127.0.0.1); the real API needs none.
    """

    account_sid: str
    auth_token: str = field(repr=False)
    from_: str | None = None
    messaging_service_sid: str | None = None
    base_url: str = TWILIO_BASE_URL
    timeout_secs: float = 8.0
    retry: http_retry.RetryPolicy = DEFAULT_RETRY
    private_hosts: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.account_sid or not self.auth_token:
            raise SmsConfigError("Twilio needs an account SID and an auth token")
        if not (self.from_ or self.messaging_service_sid):
            raise SmsConfigError("Twilio needs a sender: From or MessagingServiceSid")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SmsConfigError(f"SMS base URL {self.base_url!r}: needs http(s)://host")
        if "@" in parts.netloc or parts.query or parts.fragment:
            raise SmsConfigError(f"SMS base URL {self.base_url!r}: only scheme, host, path")
        # only transport failures before sending are retried, and no status ever is
        narrowed = _narrowed(self.retry)
        object.__setattr__(self, "retry", narrowed)

    @property
    def url(self) -> str:
        account = quote(self.account_sid, safe="")
        return f"{self.base_url.rstrip('/')}/2010-04-01/Accounts/{account}/Messages.json"

    def form(self, to: str, body: str) -> dict[str, str]:
        """The form fields, in Twilio's names."""
        fields = {"To": to}
        if self.from_:
            fields["From"] = self.from_
        if self.messaging_service_sid:
            fields["MessagingServiceSid"] = self.messaging_service_sid
        fields["Body"] = body
        return fields

    async def send(self, to: str, body: str) -> SmsReceipt:
        transport = guarded_transport(private_hosts=self.private_hosts, max_connections=1)
        async with httpx.AsyncClient(
            transport=transport,
            trust_env=False,  # no env proxies (they would connect unchecked), no .netrc
            follow_redirects=False,
            auth=httpx.BasicAuth(self.account_sid, self.auth_token),
            timeout=httpx.Timeout(self.timeout_secs, connect=min(3.0, self.timeout_secs)),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        ) as client:

            async def attempt() -> httpx.Response:
                request = client.build_request("POST", self.url, data=self.form(to, body))
                return await client.send(request, stream=True)

            try:
                sent = await http_retry.send(attempt, self.retry)
            except http_retry.TransportFailed as exc:
                raise SmsError(f"SMS provider unreachable after {exc.attempts} attempt(s)") from exc
            response = sent.response
            try:
                data = await _read_json(response)
            finally:
                await response.aclose()
        return twilio_receipt(response.status_code, data)


def _narrowed(policy: http_retry.RetryPolicy) -> http_retry.RetryPolicy:
    return replace(policy, retry_errors=NOT_SENT_ERRORS, retry_statuses=frozenset())


async def _read_json(response: httpx.Response) -> dict[str, Any]:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise SmsError(f"SMS provider answer exceeds {MAX_RESPONSE_BYTES} bytes")
    try:
        parsed = json.loads(bytes(body)) if body else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        parsed = None
    return parsed if isinstance(parsed, dict) else {}


def twilio_receipt(http_status: int, data: Mapping[str, Any]) -> SmsReceipt:
    """A receipt from a 2xx answer's `sid` and `status`; `SmsRejected` from an error
    answer's `code` and `message` (Twilio's error format), or any other answer."""
    sid, status = data.get("sid"), data.get("status")
    if 200 <= http_status < 300 and isinstance(sid, str) and sid:
        return SmsReceipt(sid, status if isinstance(status, str) else "unknown")
    code = data.get("code")
    message = data.get("message")
    raise SmsRejected(
        http_status,
        code if isinstance(code, int) else None,
        message if isinstance(message, str) else "",
    )


# -------------------------------------------------------------------- numbers
class InvalidPhoneNumber(ValueError):
    """Not a number that can receive a text in the given region's numbering plan."""


def to_e164(text: str, region: str) -> str:
    """`text` as E.164 ("(415) 555-0100" in US -> "+14155550100"); a number with a
    leading + or 00 keeps its own country."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_region(region: str) -> str:
    region = region.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise SmsConfigError(f"{REGION_ENV}={region!r}: not a region code like US or GB")
    return region


# ----------------------------------------------------------------------- tool
@dataclass(frozen=True, slots=True)
class SendSmsHandler:
    """`send_sms`: validate the number, send, and say what happened in a sentence."""

    provider: SmsProvider
    region: str

    async def __call__(self, args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        try:
            to = to_e164(str(args["to"]), self.region)
        except InvalidPhoneNumber:
            return ToolOutcome(
                "not sent: that is not a valid phone number; ask the caller to repeat "
                f"the number, then call {SEND_SMS} again",
                {"sent": False, "reason": "invalid_number"},
            )
        receipt = await self.provider.send(to, str(args["message"]))
        ending = to[-2:]
        log.info(
            "sms %s sent in call %s (status %s)", receipt.message_id, call.call_id, receipt.status
        )
        return ToolOutcome(
            f"The text message was sent to the number ending {ending}.",
            {
                "sent": True,
                "to_ending": ending,
                "message_id": receipt.message_id,
                "status": receipt.status,
            },
        )


def sms_tools(
    provider: SmsProvider, *, default_region: str = DEFAULT_REGION, timeout_secs: float = 10.0
) -> list[ToolDefinition]:
    """The SMS tools on `provider`; numbers without a country code are read in
    `default_region`."""
    handler = SendSmsHandler(provider, check_region(default_region))
    return [
        ToolDefinition(
            name=SEND_SMS,
            description="Send the caller a short text message (SMS), e.g. to confirm a "
            "booking. Only once the caller agreed and gave the number; read the number "
            "back to them first.",
            parameters={
                "type": "object",
                "properties": {
                    "to": {
                        "type": "string",
                        "minLength": 3,
                        "maxLength": 32,
                        "description": "the phone number, as the caller said it",
                    },
                    "message": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_MESSAGE_CHARS,
                        "description": "the text to send, plain and short",
                    },
                },
                "required": ["to", "message"],
                "additionalProperties": False,
            },
            handler=handler,
            timeout_secs=timeout_secs,
            sensitive=True,
            redact=("to",),
        )
    ]


def register_sms_tools(
    registry: ToolRegistry, provider: SmsProvider, *, default_region: str = DEFAULT_REGION
) -> list[str]:
    """Register the SMS tools a registry lacks (an installation's own tool of the same
    name wins); return the names registered."""
    added = []
    for definition in sms_tools(provider, default_region=default_region):
        if definition.name not in registry:
            registry.register(definition)
            added.append(definition.name)
    return added


# ---------------------------------------------------------------- environment
def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def sms_provider_from_env(environ: Mapping[str, str] | None = None) -> SmsProvider | None:
    """The provider `CALLWRIGHT_SMS_PROVIDER` names, configured from the environment;
    None when SMS is not configured at all. Half a configuration is an error that
    names what is missing, so it fails at start rather than on a caller."""
    env = _environ(environ)
    provider = env.get(PROVIDER_ENV, "").strip().lower()
    if not provider:
        stray = [n for n in (SID_ENV, TOKEN_ENV, FROM_ENV, SERVICE_ENV) if env.get(n)]
        if stray:
            raise SmsConfigError(
                f"{stray[0]} is set but {PROVIDER_ENV} is not; set {PROVIDER_ENV}=twilio"
            )
        return None
    if provider != "twilio":
        raise SmsConfigError(f"{PROVIDER_ENV}={provider!r}: the only provider is 'twilio'")
    for name in (SID_ENV, TOKEN_ENV):
        if not env.get(name):
            raise SmsConfigError(f"{PROVIDER_ENV}=twilio needs {name}, which is not set")
    if not (env.get(FROM_ENV) or env.get(SERVICE_ENV)):
        raise SmsConfigError(
            f"{PROVIDER_ENV}=twilio needs {FROM_ENV} (or {SERVICE_ENV}), which is not set"
        )
    return TwilioSms(
        account_sid=env[SID_ENV],
        auth_token=env[TOKEN_ENV],
        from_=env.get(FROM_ENV) or None,
        messaging_service_sid=env.get(SERVICE_ENV) or None,
        base_url=env.get(BASE_URL_ENV) or TWILIO_BASE_URL,
    )


def sms_region_from_env(environ: Mapping[str, str] | None = None) -> str:
    """`CALLWRIGHT_SMS_REGION`, checked: where numbers without a country code belong."""
    return check_region(_environ(environ).get(REGION_ENV) or DEFAULT_REGION)


def sms_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment configures an SMS provider (raises on half of one)."""
    return sms_provider_from_env(environ) is not None
