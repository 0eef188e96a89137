"""The HTTP reranker against local servers speaking TEI's and Cohere's /rerank formats.

The servers score by word overlap with the query: a stand-in for a cross-encoder
that answers in the real wire format, so the client's requests, ordering and error
handling are tested end to end over HTTP, and so is `KnowledgeSearch` reordering its
candidates by the scores.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from callwright.engines.base import EngineError, RerankEngine
from callwright.engines.http_rerank import HttpReranker
from callwright.engines.registry import get_factory
from callwright.knowledge.search import KnowledgeSearch, SearchParams, rerank
from callwright.knowledge.types import ChunkHit


def _overlap(query: str, text: str) -> float:
    q = set(query.lower().split())
    return len(q & set(text.lower().split())) / max(1, len(q))


class _Handler(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []
    fail_next = 0

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, **body})
        if type(self).fail_next:
            type(self).fail_next -= 1
            self._reply(503, {"error": "loading"})
            return
        if self.path != "/rerank":
            self._reply(404, {"error": "no route"})
        elif "texts" in body:  # TEI
            scores = [_overlap(body["query"], t) for t in body["texts"]]
            self._reply(200, [{"index": i, "score": s} for i, s in enumerate(scores)])
        elif body.get("model") == "bad":
            self._reply(400, {"message": "unknown model bad"})
        else:  # Cohere / Jina; "top1" answers for the best text only, as top_n=1 would
            scores = [_overlap(body["query"], t) for t in body["documents"]]
            top_n = 1 if body.get("model") == "top1" else body["top_n"]
            order = sorted(range(len(scores)), key=lambda i: -scores[i])[:top_n]
            self._reply(
                200, {"results": [{"index": i, "relevance_score": scores[i]} for i in order]}
            )


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def _hits(*texts: str) -> list[ChunkHit]:
    return [ChunkHit(i, 1, 1, i, t, [], "s.md", None, score=1.0) for i, t in enumerate(texts)]


HITS = ("flu shots on tuesday", "parking garage costs three dollars", "parking is free")


QUERY = "how much does the parking garage cost"


@pytest.mark.parametrize(("api", "model"), [("tei", None), ("cohere", "rerank-v3")])
async def test_scores_come_back_in_the_order_of_the_texts(
    server: str, api: str, model: str | None
) -> None:
    r = HttpReranker(base_url=server, api=api, model=model)  # type: ignore[arg-type]
    assert isinstance(r, RerankEngine)
    scores = await r.scores(QUERY, HITS)
    assert scores == pytest.approx([_overlap(QUERY, t) for t in HITS])
    # the Cohere server answered best first; the scores still follow the texts
    assert scores[1] > scores[2] > scores[0]
    last = _Handler.requests[-1]
    if api == "tei":
        assert last["texts"] == list(HITS) and last["raw_scores"] is False
    else:
        assert last["documents"] == list(HITS) and last["model"] == "rerank-v3"
    await r.aclose()


async def test_texts_the_server_leaves_out_score_minus_infinity(server: str) -> None:
    r = HttpReranker(base_url=server, api="cohere", model="top1")
    scores = await r.scores(QUERY, HITS)
    assert scores[1] == pytest.approx(_overlap(QUERY, HITS[1]))
    assert scores[0] == scores[2] == float("-inf")
    # the search puts them last, in the order they came
    out = await rerank(r, QUERY, _hits(*HITS))
    assert [h.chunk_id for h in out] == [1, 0, 2] and out[1].score == float("-inf")
    await r.aclose()


async def test_errors_are_clear_and_transient_ones_retried(server: str) -> None:
    _Handler.fail_next = 1
    before = len(_Handler.requests)
    r = HttpReranker(base_url=server, retry_backoff=0.01)
    assert len(await r.scores("parking", HITS)) == 3  # the 503 was retried
    assert len(_Handler.requests) == before + 2
    bad = HttpReranker(base_url=server, api="cohere", model="bad", max_retries=3)
    with pytest.raises(EngineError, match=r"400.*unknown model"):
        await bad.scores("parking", HITS)
    assert len(_Handler.requests) == before + 3  # a 400 is not retried
    _Handler.fail_next = 5
    tired = HttpReranker(base_url=server, max_retries=1, retry_backoff=0.01)
    with pytest.raises(EngineError, match=r"HTTP 503.*loading.*\(2 attempt"):
        await tired.scores("parking", HITS)
    _Handler.fail_next = 0
    dead = HttpReranker(base_url="http://127.0.0.1:9", max_retries=0, timeout_secs=1)
    with pytest.raises(EngineError, match="unreachable"):
        await dead.scores("parking", HITS)
    with pytest.raises(ValueError, match="model"):
        HttpReranker(api="cohere")
    assert await r.scores("parking", []) == []
    for x in (r, bad, tired, dead):
        await x.aclose()


async def test_search_uses_the_reranker(server: str) -> None:
    class Store:
        async def vector_search(self, filt: Any, query: Any, limit: int) -> list[ChunkHit]:
            hits = _hits(*HITS)
            for h, v in zip(hits, (0.95, 0.9, 0.85), strict=True):
                h.vector_score = v
            return hits

        async def keyword_search(self, *a: Any, **k: Any) -> list[ChunkHit]:
            return []

        async def get_kb(self, tenant: str, name: str) -> Any:
            from datetime import UTC, datetime

            from callwright.knowledge.types import KnowledgeBaseInfo

            now = datetime.now(UTC)
            return KnowledgeBaseInfo(1, tenant, name, "", "fixed:3", 3, {}, 0, now, now)

    class Fixed:
        name, model_id, dims = "fixed", "fixed:3", 3

        async def embed_queries(self, texts: Any) -> Any:
            import numpy as np

            return np.ones((len(texts), 3), dtype=np.float32) / 3**0.5

    search = KnowledgeSearch(Store(), {"fixed:3": Fixed()})  # type: ignore[arg-type,dict-item]
    reranker = get_factory("rerank", "http")(base_url=server)
    result = await search.search(
        "default", ["kb"], "parking garage cost", params=SearchParams(top_k=1), reranker=reranker
    )
    # vector order put the flu passage first; the reranker fixed it
    assert [h.chunk_id for h in result.hits] == [1] and "rerank_ms" in result.timings_ms
    await reranker.aclose()
    await asyncio.sleep(0)
