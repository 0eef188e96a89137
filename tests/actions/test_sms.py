"""SMS through Twilio's REST API, against a real HTTP server on 127.0.0.1 that records
every request and answers as Twilio does (201 + the Message resource, or Twilio's
error JSON)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import httpx
import pytest

from callwright.actions.builtin import server_tool_names
from callwright.actions.gateway import GatewayResult, ToolAudit, ToolGateway, ToolStatus
from callwright.actions.sms import (
    SEND_SMS,
    SmsConfigError,
    SmsError,
    SmsRejected,
    TwilioSms,
    register_sms_tools,
    sms_provider_from_env,
    sms_region_from_env,
    to_e164,
)
from callwright.actions.tools import ToolRegistry
from callwright.engines.http_retry import RetryPolicy
from callwright.netguard import AddressRefused
from tests.helpers.http_recorder import Answer, RecordingServer, Request, serving

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "auth-token-secret"
FROM = "+15005550006"
LOCAL = frozenset({"127.0.0.1"})

INVALID_TO = {
    "code": 21211,
    "message": "The 'To' number +14155550100 is not a valid phone number.",
    "more_info": "https://www.twilio.com/docs/errors/21211",
    "status": 400,
}


class Twilio(RecordingServer):
    """Answers the planned (status, JSON) in order, then 201 with a new message."""

    def __init__(self) -> None:
        super().__init__()
        # (status, JSON), or None: read the request, then drop the connection
        self.plan: list[tuple[int, dict[str, object]] | None] = []

    async def respond(self, req: Request) -> Answer:
        if self.plan:
            planned = self.plan.pop(0)
            return None if planned is None else (planned[0], json.dumps(planned[1]).encode())
        form = parse_qs(req.body.decode())
        sid = f"SM{len(self.requests):032x}"
        message = {"sid": sid, "status": "queued", "to": form["To"][0], "body": form["Body"][0]}
        return 201, json.dumps(message).encode()


@pytest.fixture
async def twilio() -> AsyncIterator[Twilio]:
    srv = Twilio()
    async with serving(srv):
        yield srv


def provider(base_url: str, **kw: object) -> TwilioSms:
    return TwilioSms(
        account_sid=SID,
        auth_token=TOKEN,
        from_=FROM,
        base_url=base_url,
        private_hosts=LOCAL,
        **kw,  # type: ignore[arg-type]
    )


def raw_gateway(sms: TwilioSms, audits: list[ToolAudit]) -> ToolGateway:
    registry = ToolRegistry()
    assert register_sms_tools(registry, sms, default_region="US") == [SEND_SMS]
    return ToolGateway(
        tenant_id="t1",
        call_id="c1",
        agent_id="a1",
        allowed=[SEND_SMS],
        audit=audits.append,
        registry=registry,
        caller_said=lambda: "Yes, please send it.",
    )


class Confirmed:
    """send_sms is sensitive: the caller says yes to every read-back (these tests are
    about the SMS; the read-back itself is tested below and in test_gateway.py)."""

    def __init__(self, gateway: ToolGateway, audits: list[ToolAudit]) -> None:
        self.gateway = gateway
        self.audits = audits

    async def call(self, name: str, arguments: str, *, turn: int) -> GatewayResult:
        result = await self.gateway.call(name, arguments, turn=turn)
        if result.status is ToolStatus.NEEDS_CONFIRMATION:
            self.audits.pop()  # the read-back's record: the tests look at the send's
            result = await self.gateway.call(name, arguments, turn=turn + 1)
        return result


def gateway(sms: TwilioSms, audits: list[ToolAudit]) -> Confirmed:
    return Confirmed(raw_gateway(sms, audits), audits)


async def test_nothing_is_sent_before_the_caller_confirms(twilio: Twilio) -> None:
    audits: list[ToolAudit] = []
    gw = raw_gateway(provider(twilio.base_url), audits)
    first = await gw.call(SEND_SMS, args("(415) 555-0100"), turn=1)
    assert first.status is ToolStatus.NEEDS_CONFIRMATION
    assert "to: (as given)" in first.content  # a redacted number is not read out
    assert twilio.requests == []


def args(to: str, message: str = "Your visit: Tue 10:00 at Main St & 5th. Reply STOP") -> str:
    return json.dumps({"to": to, "message": message})


# --- the request is Twilio's --------------------------------------------------------------


async def test_send_sms_makes_twilios_request(twilio: Twilio) -> None:
    audits: list[ToolAudit] = []
    gw = gateway(provider(twilio.base_url), audits)
    result = await gw.call(SEND_SMS, args("(415) 555-0100"), turn=3)

    assert result.status is ToolStatus.OK
    assert "ending 00" in result.content
    [req] = twilio.requests
    assert req.method == "POST"
    assert req.target == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert req.headers["authorization"] == "Basic " + base64.b64encode(
        f"{SID}:{TOKEN}".encode()
    ).decode("ascii")
    assert parse_qs(req.body.decode(), strict_parsing=True) == {
        "To": ["+14155550100"],
        "From": [FROM],
        "Body": ["Your visit: Tue 10:00 at Main St & 5th. Reply STOP"],
    }
    [audit] = audits
    assert audit.arguments["to"] == "[redacted]"
    assert audit.data == {
        "sent": True,
        "to_ending": "00",
        "message_id": f"SM{1:032x}",
        "status": "queued",
    }
    assert "5550100" not in json.dumps(audit.to_dict())


async def test_messaging_service_sid_replaces_from(twilio: Twilio) -> None:
    sms = TwilioSms(
        account_sid=SID,
        auth_token=TOKEN,
        messaging_service_sid="MG0123",
        base_url=twilio.base_url + "/",
        private_hosts=LOCAL,
    )
    receipt = await sms.send("+442079460958", "hello")
    assert receipt.status == "queued"
    assert parse_qs(twilio.requests[0].body.decode()) == {
        "To": ["+442079460958"],
        "MessagingServiceSid": ["MG0123"],
        "Body": ["hello"],
    }


@pytest.mark.parametrize(
    ("text", "region", "e164"),
    [
        ("(415) 555-0100", "US", "+14155550100"),
        ("415.555.2671", "US", "+14155552671"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
    ],
)
def test_numbers_are_sent_in_e164(text: str, region: str, e164: str) -> None:
    assert to_e164(text, region) == e164


@pytest.mark.parametrize("to", ["12345", "555-0100", "call me maybe", "+1 000 000 0000"])
async def test_an_invalid_number_is_never_sent(twilio: Twilio, to: str) -> None:
    audits: list[ToolAudit] = []
    result = await gateway(provider(twilio.base_url), audits).call(SEND_SMS, args(to), turn=1)
    assert "ask the caller to repeat" in result.content
    assert twilio.requests == []
    assert audits[0].data == {"sent": False, "reason": "invalid_number"}
    assert audits[0].arguments["to"] == "[redacted]"


async def test_a_too_long_message_is_refused_by_the_gateway(twilio: Twilio) -> None:
    audits: list[ToolAudit] = []
    gw = gateway(provider(twilio.base_url), audits)
    result = await gw.call(SEND_SMS, args("4155550100", "x" * 321), turn=1)
    assert result.status is ToolStatus.BAD_ARGUMENTS
    assert twilio.requests == []


# --- errors --------------------------------------------------------------------------------


async def test_a_twilio_error_is_a_failed_call_with_a_safe_message(twilio: Twilio) -> None:
    twilio.plan = [(400, INVALID_TO)]
    audits: list[ToolAudit] = []
    result = await gateway(provider(twilio.base_url), audits).call(
        SEND_SMS, args("4155550100"), turn=1
    )
    assert result.status is ToolStatus.FAILED
    assert "did not work" in result.content
    for secret in ("21211", "4155550100", "valid phone", TOKEN):
        assert secret not in result.content
    assert audits[0].error_type == "SmsRejected"
    assert len(twilio.requests) == 1


async def test_twilios_error_fields_are_parsed(twilio: Twilio) -> None:
    twilio.plan = [(400, INVALID_TO)]
    with pytest.raises(SmsRejected) as info:
        await provider(twilio.base_url).send("+14155550100", "hi")
    assert (info.value.http_status, info.value.code) == (400, 21211)
    assert info.value.message == INVALID_TO["message"]
    assert "4155550100" not in str(info.value)  # the logged text leaves the number out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refused_connection_is_retried(twilio: Twilio) -> None:
    port = _free_port()
    waits: list[float] = []
    servers: list[asyncio.Server] = []

    async def sleep(seconds: float) -> None:  # the backoff: Twilio comes up meanwhile
        waits.append(seconds)
        if not servers:
            servers.append(await asyncio.start_server(twilio.handle, "127.0.0.1", port))

    sms = provider(f"http://127.0.0.1:{port}", retry=RetryPolicy(max_attempts=3, sleep=sleep))
    try:
        receipt = await sms.send("+14155550100", "hi")
    finally:
        for srv in servers:
            srv.close()
    assert receipt.message_id.startswith("SM")
    assert len(waits) == 1
    assert len(twilio.requests) == 1


async def test_refused_every_time_fails_after_the_attempts() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    sms = provider(f"http://127.0.0.1:{_free_port()}", retry=RetryPolicy(sleep=sleep))
    with pytest.raises(SmsError, match="3 attempt"):
        await sms.send("+14155550100", "hi")
    assert len(waits) == 2


@pytest.mark.parametrize(
    "answer", [(500, {"code": 20500, "message": "Internal Server Error"}), (503, {}), None]
)
async def test_nothing_is_retried_once_the_request_was_sent(
    twilio: Twilio, answer: tuple[int, dict[str, object]] | None
) -> None:
    twilio.plan = [answer]  # None: the request arrives, the answer is lost
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    sms = provider(twilio.base_url, retry=RetryPolicy(max_attempts=3, sleep=sleep))
    with pytest.raises((SmsRejected, httpx.TransportError)):
        await sms.send("+14155550100", "hi")
    assert len(twilio.requests) == 1
    assert waits == []


async def test_loopback_is_refused_unless_allowed(twilio: Twilio) -> None:
    sms = TwilioSms(account_sid=SID, auth_token=TOKEN, from_=FROM, base_url=twilio.base_url)
    with pytest.raises(AddressRefused):
        await sms.send("+14155550100", "hi")
    assert twilio.requests == []


def test_the_auth_token_is_not_in_the_repr() -> None:
    assert TOKEN not in repr(provider("http://127.0.0.1:1"))


# --- configuration -------------------------------------------------------------------------

COMPLETE = {
    "CALLWRIGHT_SMS_PROVIDER": "twilio",
    "TWILIO_ACCOUNT_SID": SID,
    "TWILIO_AUTH_TOKEN": TOKEN,
    "TWILIO_FROM": FROM,
}


def test_complete_configuration() -> None:
    sms = sms_provider_from_env(COMPLETE)
    assert isinstance(sms, TwilioSms)
    assert (sms.account_sid, sms.auth_token, sms.from_) == (SID, TOKEN, FROM)
    assert sms.url == f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
    other = sms_provider_from_env({**COMPLETE, "CALLWRIGHT_SMS_BASE_URL": "http://127.0.0.1:9"})
    assert isinstance(other, TwilioSms)
    assert other.url.startswith("http://127.0.0.1:9/2010-04-01/")
    assert sms_region_from_env({}) == "US"
    assert sms_region_from_env({"CALLWRIGHT_SMS_REGION": "gb"}) == "GB"


def test_no_configuration_is_no_provider() -> None:
    assert sms_provider_from_env({}) is None


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("TWILIO_ACCOUNT_SID", "TWILIO_ACCOUNT_SID"),
        ("TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN"),
        ("TWILIO_FROM", "TWILIO_FROM"),
        ("CALLWRIGHT_SMS_PROVIDER", "CALLWRIGHT_SMS_PROVIDER"),
    ],
)
def test_half_a_configuration_names_what_is_missing(missing: str, named: str) -> None:
    env = {k: v for k, v in COMPLETE.items() if k != missing}
    with pytest.raises(SmsConfigError, match=named):
        sms_provider_from_env(env)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"CALLWRIGHT_SMS_PROVIDER": "vonage"}, "CALLWRIGHT_SMS_PROVIDER"),
        ({"CALLWRIGHT_SMS_BASE_URL": "ftp://x"}, "base URL"),
    ],
)
def test_wrong_values_are_refused(extra: dict[str, str], named: str) -> None:
    with pytest.raises(SmsConfigError, match=named):
        sms_provider_from_env({**COMPLETE, **extra})
    with pytest.raises(SmsConfigError, match="CALLWRIGHT_SMS_REGION"):
        sms_region_from_env({"CALLWRIGHT_SMS_REGION": "XX"})


def test_server_tools_name_send_sms_only_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in COMPLETE:
        monkeypatch.delenv(name, raising=False)
    assert SEND_SMS not in server_tool_names(ToolRegistry())
    for name, value in COMPLETE.items():
        monkeypatch.setenv(name, value)
    assert SEND_SMS in server_tool_names(ToolRegistry())


def test_an_installations_own_send_sms_wins() -> None:
    registry = ToolRegistry()
    sms = provider("http://127.0.0.1:1")
    assert register_sms_tools(registry, sms) == [SEND_SMS]
    assert register_sms_tools(registry, sms) == []
