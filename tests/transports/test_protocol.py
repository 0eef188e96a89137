from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from callwright.audio.mulaw import ulaw_encode
from callwright.sessions.model import AudioFormat
from callwright.transports.protocol import (
    ProtocolError,
    StartMessage,
    client_schema,
    parse_client_message,
)
from callwright.transports.websocket import AudioDecoder

DOC_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "protocol.schema.json"


def test_published_schema_is_current():
    assert json.loads(DOC_SCHEMA.read_text()) == client_schema(), (
        "regenerate with: python -m callwright.transports.protocol > docs/protocol.schema.json"
    )


def test_schema_accepts_what_the_parser_accepts():
    msg = {
        "type": "start",
        "agent_id": "clinic-receptionist",
        "audio": {"encoding": "pcm16", "sample_rate": 48000},
        "consent": "granted",
    }
    jsonschema.validate(msg, client_schema())
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
