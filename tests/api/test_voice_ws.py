"""The voice WebSocket, end to end through the real server, storage and simulated caller."""

from __future__ import annotations

import asyncio
import json
import wave
from io import BytesIO

import httpx
from websockets.asyncio.client import connect

from callwright.client.caller import SimulatedCaller, Utterance
from tests.helpers.audio import tone_wav


async def test_simulated_call_is_answered_recorded_and_stored(server, tmp_path):
    wav = tone_wav(tmp_path / "q.wav", secs=1.0)
    caller = SimulatedCaller(server.ws, [Utterance(wav)], tail_secs=0.5, greeting_wait_secs=2)
    result = await caller.run()
    caller.save(tmp_path / "out")
    turns = result.turns()
    assert [t["role"] for t in turns] == ["assistant", "user", "assistant"]
    assert turns[0]["text"] == "Hi there."
    assert turns[1]["text"] == "what are your opening hours"
    assert turns[2]["text"] == "You asked: what are your opening hours. We open at nine."
    assert turns[2]["metrics"]["voice_to_voice_ms"] > 0
    assert result.end_reason == "caller_hangup"
    transcript = json.loads((tmp_path / "out" / "transcript.json").read_text())
    assert transcript["turns"] == json.loads(json.dumps(turns))
    with wave.open(str(tmp_path / "out" / "agent.wav")) as w:
        assert w.getframerate() == 16000 and w.getnframes() > 16000  # greeting + reply

    async with httpx.AsyncClient(base_url=server.base) as http:
        # the call is stored once the session has shut down
        for _ in range(50):
            call = (await http.get(f"/v1/calls/{result.call_id}")).json()
            if call.get("status") == "ended":
                break
            await asyncio.sleep(0.1)
        assert call["status"] == "ended" and call["end_reason"] == "caller_hangup"
        assert call["agent_id"] == "echo" and call["channel"] == "sim"
        stored = [(t["role"], t["text"]) for t in call["turns"]]
        assert stored == [(t["role"], t["text"]) for t in turns]
        reply = call["turns"][-1]
        assert reply["metrics"]["voice_to_voice_ms"] > 0 and reply["interrupted"] is False
        listed = (await http.get("/v1/calls")).json()
        assert result.call_id in [c["id"] for c in listed]
        timeline = (await http.get(f"/v1/calls/{result.call_id}/events")).json()
        assert timeline[-1]["type"] == "end"
        assert timeline[-1]["payload"]["reason"] == "caller_hangup"
        finals = await http.get(
            f"/v1/calls/{result.call_id}/events", params={"type": ["transcript"]}
        )
        assert {e["type"] for e in finals.json()} == {"transcript"}
        assert (await http.get("/v1/calls/nope/events")).status_code == 404
        rec = await http.get(f"/v1/calls/{result.call_id}/recording")
        assert rec.status_code == 200 and rec.headers["content-type"] == "audio/wav"
        with wave.open(BytesIO(rec.content)) as w:
            assert w.getnchannels() == 2 and w.getframerate() == 16000
            frames = w.getnframes()
        assert frames > 2 * 16000  # the whole call, both sides


async def test_barge_in_over_the_websocket(server, tmp_path):
    q = tone_wav(tmp_path / "q.wav", secs=1.0)
    barge = tone_wav(tmp_path / "b.wav", secs=1.2)
    caller = SimulatedCaller(server.ws, [Utterance(q), Utterance(barge, offset=0.5)], tail_secs=1.0)
    result = await caller.run()
    kinds = [e["type"] for e in result.events]
    assert "interruption" in kinds and "clear" in kinds
    cut = next(t for t in result.turns() if t.get("interrupted"))
    assert "You asked: what are your opening hours. We open at nine.".startswith(cut["text"])


async def test_bad_input_gets_errors_and_the_call_survives(server):
    async with connect(server.ws) as ws:
        await ws.send(b"\x00\x01")  # audio before start
        assert json.loads(await ws.recv())["code"] == "not_started"
        await ws.send("{nope")
        assert json.loads(await ws.recv())["code"] == "bad_json"
        await ws.send(json.dumps({"type": "start", "agent_id": "ghost"}))
        err = json.loads(await ws.recv())
        assert err["code"] == "unknown_agent" and "ghost" in err["message"]
        await ws.send(json.dumps({"type": "start", "audio": {"sample_rate": 11111}}))
        err = json.loads(await ws.recv())
        assert err["code"] == "bad_message" and "audio.sample_rate" in err["message"]
        await ws.send(
            json.dumps({"type": "start", "audio": {"encoding": "mulaw", "sample_rate": 8000}})
        )
        started = json.loads(await ws.recv())
        assert started["type"] == "started" and started["agent_id"] == "echo"
        await ws.send(json.dumps({"type": "start"}))
        await ws.send(bytes(16001))  # > 1 s of mu-law
        await ws.send(json.dumps({"type": "ping", "id": 7}))
        codes = []
        while len(codes) < 3:
            msg = await ws.recv()
            if isinstance(msg, bytes):
                continue
            event = json.loads(msg)
            if event["type"] in ("error", "pong"):
                codes.append(event.get("code") or event["type"])
        assert codes == ["already_started", "audio_too_large", "pong"]
        # still alive: the greeting's audio keeps coming as mu-law (1 byte a sample, 8 kHz)
        got_audio = False
        for _ in range(200):
            msg = await ws.recv()
            if isinstance(msg, bytes):
                assert len(msg) == 160  # 20 ms at 8 kHz
                got_audio = True
                break
        assert got_audio
        await ws.send(json.dumps({"type": "stop"}))
        while True:
            msg = await ws.recv()
            if isinstance(msg, str) and json.loads(msg)["type"] == "end":
                break


async def test_rest_surfaces(server):
    async with httpx.AsyncClient(base_url=server.base) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        agents = (await http.get("/v1/agents")).json()
        assert [a["agent_id"] for a in agents] == ["echo"] and agents[0]["version"] == 1
        cfg = (await http.get("/v1/agents/echo")).json()
        assert cfg["config"]["engines"]["llm"]["name"] == "scripted"
        assert (await http.get("/v1/agents/nope")).status_code == 404
        assert (await http.get("/v1/calls/nope")).status_code == 404
        assert (await http.get("/v1/calls", params={"limit": 0})).status_code == 422
        assert (await http.get("/openapi.json")).json()["info"]["title"] == "Callwright"
        assert (await http.get("/docs")).status_code == 200
        page = await http.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()


async def test_storage_failures_are_retried_not_lost(server, tmp_path, monkeypatch):
    from callwright.storage.calls import CallRepository

    real = CallRepository.write_calls
    failures = {"left": 2}

    async def flaky(self, batches):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("database is locked")
        return await real(self, batches)

    monkeypatch.setattr(CallRepository, "write_calls", flaky)
    wav = tone_wav(tmp_path / "q.wav", secs=1.0)
    caller = SimulatedCaller(server.ws, [Utterance(wav)], tail_secs=0.5, greeting_wait_secs=2)
    result = await caller.run()
    assert failures["left"] == 0
    async with httpx.AsyncClient(base_url=server.base) as http:
        for _ in range(100):
            call = (await http.get(f"/v1/calls/{result.call_id}")).json()
            if call.get("status") == "ended":
                break
            await asyncio.sleep(0.1)
        assert [t["role"] for t in call["turns"]] == ["assistant", "user", "assistant"]
    events = await CallRepository(server.app.state.runtime.db).list_events(
        "default", result.call_id
    )
    kinds = [e.type for e in events]
    finals = [e for e in events if e.type == "transcript" and e.payload["final"]]
    assert len(finals) == 1 and "turn_metrics" in kinds and kinds[-1] == "end"
    assert len(kinds) == len(set((e.type, str(e.payload)) for e in events)), "no duplicates"
