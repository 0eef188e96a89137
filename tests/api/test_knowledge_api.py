"""Knowledge bases over REST, and a call whose answer comes from one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from callwright.client.caller import SimulatedCaller, Utterance
from tests.helpers.app_server import run_server
from tests.helpers.audio import tone_wav

DOC = b"""# Harbor Clinic

## Parking
The Pier Road garage charges 3 dollars for the first two hours.

## Flu shots
Flu vaccines are given every Tuesday morning.
"""

KNOWLEDGE_AGENT = """
agent_id: kb-agent
agent_name: Knowledge test agent
prompts: {system: You are a test agent.}
knowledge_sources: [clinic]
knowledge: {top_k: 1}
engines:
  asr: {name: scripted, options: {text: "how much does the parking garage cost", words_per_sec: 20}}
  llm: {name: scripted, options: {reply: "It is 7 dollars at the Marina [1]."}}
  tts: {name: scripted, options: {sample_rate: 16000}}
  vad: {name: energy}
  tts_fallback: null
turn_taking: {idle_reprompt_secs: null, idle_hangup_secs: null}
"""


async def _job(http: httpx.AsyncClient, job: dict[str, Any]) -> dict[str, Any]:
    for _ in range(200):
        job = (await http.get(f"/v1/knowledge-jobs/{job['id']}")).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job did not finish: {job}")


async def test_knowledge_base_lifecycle(server) -> None:
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
        r = await http.post("/v1/knowledge-bases", json={"name": "clinic"})
        assert r.status_code == 201 and r.json()["dims"] == 384
        assert (await http.post("/v1/knowledge-bases", json={"name": "clinic"})).status_code == 409
        bad = await http.post("/v1/knowledge-bases", json={"name": "Bad Name!"})
        assert bad.status_code == 422

        r = await http.post(
            "/v1/knowledge-bases/clinic/documents",
            params={"source": "faq.md"},
            content=DOC,
            headers={"content-type": "text/markdown"},
        )
        assert r.status_code == 202 and r.json()["status"] == "queued"
        job = await _job(http, r.json())
        assert job["status"] == "succeeded", job
        assert job["result"]["status"] == "added" and job["result"]["chunks"] == 2

        docs = (await http.get("/v1/knowledge-bases/clinic/documents")).json()
        assert [d["source"] for d in docs] == ["faq.md"]
        hits = (
            await http.post(
                "/v1/knowledge-bases/clinic/search", json={"query": "where do I leave my car"}
            )
        ).json()["hits"]
        assert "3 dollars" in hits[0]["text"] and hits[0]["source"] == "faq.md"
        assert hits[0]["vector_score"] is not None

        # staff documents are not found by a default (caller-level) search
        r = await http.post(
            "/v1/knowledge-bases/clinic/documents",
            params={"source": "internal.md", "tag": "staff"},
            content=b"# Internal\n\n## Door code\nThe back door code is 4417.\n",
            headers={"content-type": "text/markdown"},
        )
        assert (await _job(http, r.json()))["status"] == "succeeded"
        plain = (
            await http.post("/v1/knowledge-bases/clinic/search", json={"query": "door code"})
        ).json()["hits"]
        assert all(h["source"] != "internal.md" for h in plain)
        staff = (
            await http.post(
                "/v1/knowledge-bases/clinic/search",
                json={"query": "door code", "access_tags": ["staff"]},
            )
        ).json()["hits"]
        assert staff and staff[0]["source"] == "internal.md"
        internal = next(
            d
            for d in (await http.get("/v1/knowledge-bases/clinic/documents")).json()
            if d["source"] == "internal.md"
        )
        assert (
            await http.delete(f"/v1/knowledge-bases/clinic/documents/{internal['id']}")
        ).status_code == 204

        # bad input: clear errors, nothing lost
        too_big = await http.post(
            "/v1/knowledge-bases/clinic/documents",
            params={"source": "big.txt"},
            content=b"x" * (20 * 1024 * 1024 + 1),
        )
        assert too_big.status_code == 413
        odd = await http.post(
            "/v1/knowledge-bases/clinic/documents",
            params={"source": "song.mp3"},
            content=b"ID3\x03\x00\x00\x00",
        )
        assert odd.status_code == 415 and ".pdf" in odd.json()["detail"]
        nameless = await http.post("/v1/knowledge-bases/clinic/documents", content=b"hello")
        assert nameless.status_code == 422
        # URL ingestion is SSRF-safe: loopback is refused unless the operator allows it
        r = await http.post(
            "/v1/knowledge-bases/clinic/documents", json={"url": f"{server.base}/healthz"}
        )
        job = await _job(http, r.json())
        assert job["status"] == "failed" and "allow_private" in job["error"]
        missing = await http.post("/v1/knowledge-bases/nope/documents", params={"source": "a.md"})
        assert missing.status_code == 404
        assert (await http.get("/v1/knowledge-bases/clinic/documents")).json() == docs

        assert (
            await http.delete(f"/v1/knowledge-bases/clinic/documents/{docs[0]['id']}")
        ).status_code == 204
        assert (await http.get("/v1/knowledge-bases/clinic")).json()["document_count"] == 0
        assert (await http.delete("/v1/knowledge-bases/clinic")).status_code == 204
        assert (await http.get("/v1/knowledge-bases/clinic")).status_code == 404


async def test_call_answers_from_knowledge_and_flags_ungrounded(tmp_path: Path) -> None:
    kb = tmp_path / "knowledge" / "clinic"
    kb.mkdir(parents=True)
    (kb / "faq.md").write_bytes(DOC)
    async with run_server(
        tmp_path, {"kb-agent": KNOWLEDGE_AGENT}, "kb-agent", knowledge_dir=kb.parent
    ) as srv:
        wav = tone_wav(tmp_path / "q.wav", secs=1.0)
        caller = SimulatedCaller(srv.ws, [Utterance(wav)], tail_secs=0.5, greeting_wait_secs=0)
        result = await caller.run()
        knowledge = [e for e in result.events if e["type"] == "knowledge"]
        assert knowledge and knowledge[0]["used"]["hits"][0]["source"] == "faq.md"
        assert "3 dollars" in knowledge[0]["used"]["passages"][0]
        grounding = knowledge[0]["grounding"]
        assert grounding["flagged"] and {"7", "marina"} <= set(grounding["unsupported"])
        spoken = [t["text"] for t in result.turns() if t["role"] == "assistant"]
        assert spoken == ["It is 7 dollars at the Marina."]  # the [1] is not spoken
        async with httpx.AsyncClient(base_url=srv.base) as http:
            for _ in range(50):
                call = (await http.get(f"/v1/calls/{result.call_id}")).json()
                if call.get("status") == "ended":
                    break
                await asyncio.sleep(0.1)
            reply = call["turns"][-1]
            assert reply["role"] == "assistant" and reply["flagged"] is True
            assert reply["knowledge"]["used"]["hits"][0]["source"] == "faq.md"
            assert reply["metrics"]["retrieval_ms"] is not None
