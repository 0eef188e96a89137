from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from callwright.audio.mulaw import ulaw_encode
from callwright.sessions.model import AudioFormat
from callwright.transports.protocol import (
    SCHEMA_FILES,
    ProtocolError,
    StartMessage,
    client_schema,
    parse_client_message,
    protocol_schema,
)
from callwright.transports.websocket import AudioDecoder

DOC_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "protocol.schema.json"
PACKAGED_SCHEMA = (
    Path(__file__).resolve().parents[2] / "src" / "callwright" / "schemas" / "protocol.schema.json"
)


def test_published_schemas_are_current():
    assert set(SCHEMA_FILES) == {DOC_SCHEMA, PACKAGED_SCHEMA}
    for path in (DOC_SCHEMA, PACKAGED_SCHEMA):
        assert json.loads(path.read_text()) == protocol_schema(), (
            "regenerate with: python -m callwright.transports.protocol"
        )


def _published(definition: str) -> dict[str, object]:
    """One direction of the published document, as a schema of its own."""
    doc = json.loads(DOC_SCHEMA.read_text())
    return {"$ref": f"#/$defs/{definition}", "$defs": doc["$defs"]}


def test_schema_accepts_what_the_parser_accepts():
    msg = {
        "type": "start",
        "agent_id": "clinic-receptionist",
        "audio": {"encoding": "pcm16", "sample_rate": 48000},
        "consent": "granted",
    }
    jsonschema.validate(msg, client_schema())
    jsonschema.validate(msg, _published("ClientMessage"))
    jsonschema.validate(msg, json.loads(DOC_SCHEMA.read_text()))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**msg, "bogus": 1}, _published("ClientMessage"))
    with pytest.raises(jsonschema.ValidationError):  # a server message is not a client's
        jsonschema.validate({"type": "pong", "id": 1}, _published("ClientMessage"))
    parsed = parse_client_message(json.dumps(msg))
    assert isinstance(parsed, StartMessage) and parsed.audio.sample_rate == 48000


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("not json", "bad_json", "not valid JSON"),
        ("[1, 2]", "bad_message", "JSON object"),
        ('{"type": "dance"}', "bad_message", "type"),
        ('{"type": "start", "audio": {"sample_rate": 12345}}', "bad_message", "audio.sample_rate"),
        ('{"type": "start", "bogus": 1}', "bad_message", "bogus"),
        ("x" * 20000, "message_too_large", "16384"),
    ],
)
def test_bad_messages_get_clear_errors(text, code, fragment):
    with pytest.raises(ProtocolError) as err:
        parse_client_message(text)
    assert err.value.code == code and fragment in err.value.message


def test_audio_decoder_checks_and_converts():
    dec = AudioDecoder(AudioFormat("pcm16", 16000))
    assert dec.decode(bytes(640)) == bytes(640)
    with pytest.raises(ProtocolError, match="even number"):
        dec.decode(bytes(641))
    with pytest.raises(ProtocolError) as err:
        dec.decode(bytes(2 * 16000 + 2))
    assert err.value.code == "audio_too_large"
    mulaw = AudioDecoder(AudioFormat("mulaw", 8000))
    out = mulaw.decode(ulaw_encode(bytes(320)))  # 20 ms at 8 kHz -> ~20 ms at 16 kHz
    assert len(out) % 2 == 0 and 0 < len(out) <= 640
