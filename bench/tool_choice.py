"""Tool choice on the embedded LLM: constrained (first-token decision + grammar) vs not.

    .venv/bin/python bench/tool_choice.py --mode constrained \
        --out bench/results/tool-choice-constrained.json
    .venv/bin/python bench/tool_choice.py --mode unconstrained \
        --out bench/results/tool-choice-unconstrained.json

30 caller lines, each with its expected outcome: no tool, or a tool and key arguments
(a case-insensitive substring of the argument's value). Every line is a first turn
after the same system prompt and three tools, warmed into the KV cache as in a live
call (`warmup(system, tools)`). Reported: the right choice (the right tool, or rightly
none), calls that are valid JSON, calls whose name is offered and whose arguments
match the schema (jsonschema), key arguments right, and time to the first token and
to the complete call. "unconstrained" is the engine with `constrain_tools=False`:
Qwen's template, free sampling, calls parsed from the text (engines/tool_calls.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from callwright.engines.base import ChatMessage, ToolSpec  # noqa: E402
from callwright.engines.llamacpp_llm import LlamaCppLLM  # noqa: E402

SYSTEM = (
    "You are Ava, the phone assistant of Northwind Home Store. The store is open Monday "
    "to Saturday, 9am to 7pm. Delivery is free over 50 dollars. Answer in one short "
    "sentence. Use a tool only when the caller asks for something a tool does."
)


def _obj(props: dict[str, str], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": "string", "description": d} for k, d in props.items()},
        "required": required,
    }


TOOLS = [
    ToolSpec(
        "order_status",
        "Look up the delivery status of a customer's order by its order number",
        _obj({"order_id": "the order number"}, ["order_id"]),
    ),
    ToolSpec(
        "book_appointment",
        "Book an in-store appointment with a design advisor",
        _obj(
            {"day": "day of the week", "time": "time of day", "name": "the caller's name"},
            ["day", "time", "name"],
        ),
    ),
    ToolSpec(
        "transfer_to_human",
        "Transfer the call to a human agent",
        _obj({"reason": "why the caller wants a person"}, ["reason"]),
    ),
]

# (caller line, expected tool or None, key arguments: substrings expected in values)
CASES: list[tuple[str, str | None, dict[str, str]]] = [
    ("Where is my order 48213?", "order_status", {"order_id": "48213"}),
    ("Can you check order number 7731 for me?", "order_status", {"order_id": "7731"}),
    (
        "My package A-5521 hasn't arrived yet, what's going on?",
        "order_status",
        {"order_id": "5521"},
    ),
    ("What's the status of order 90017?", "order_status", {"order_id": "90017"}),
    ("I ordered a lamp, order 3306, when will it come?", "order_status", {"order_id": "3306"}),
    ("Has order 11842 shipped?", "order_status", {"order_id": "11842"}),
    ("Track my order please, it's 66120.", "order_status", {"order_id": "66120"}),
    (
        "Book me an appointment on Tuesday at 3pm, my name is Clara.",
        "book_appointment",
        {"day": "tue", "time": "3", "name": "clara"},
    ),
    (
        "I'm John, can I see an advisor Friday at 10am?",
        "book_appointment",
        {"day": "fri", "time": "10", "name": "john"},
    ),
    (
        "Please schedule a visit for Monday at noon for Priya.",
        "book_appointment",
        {"day": "mon", "name": "priya"},
    ),
    (
        "This is Marco, I'd like an appointment Thursday 4pm.",
        "book_appointment",
        {"day": "thu", "time": "4", "name": "marco"},
    ),
    (
        "Can Lena book a design consultation on Saturday at 11am?",
        "book_appointment",
        {"day": "sat", "time": "11", "name": "lena"},
    ),
    (
        "Reserve Wednesday at 2pm with an advisor, name's Omar.",
        "book_appointment",
        {"day": "wed", "time": "2", "name": "omar"},
    ),
    ("Transfer me to a person please.", "transfer_to_human", {}),
    ("I want to speak to a human.", "transfer_to_human", {}),
    ("Let me talk to a real agent, this is about a refund.", "transfer_to_human", {}),
    ("Can I speak with your manager? I have a complaint.", "transfer_to_human", {}),
    ("Get me a human being right now.", "transfer_to_human", {}),
    ("Put me through to someone in customer service.", "transfer_to_human", {}),
    ("What time do you open on Saturday?", None, {}),
    ("Are you open on Sunday?", None, {}),
    ("Is delivery free?", None, {}),
    ("Hello, who am I speaking to?", None, {}),
    ("Thanks, that's all, goodbye.", None, {}),
    ("Do you sell garden furniture?", None, {}),
    ("How much is delivery for a 30 dollar order?", None, {}),
    ("What's your name?", None, {}),
    ("Can you hear me okay?", None, {}),
    ("What are your opening hours on weekdays?", None, {}),
    ("Okay, great, thank you so much.", None, {}),
]


def _looks_like_call(text: str) -> bool:
    t = text.strip()
    return t.startswith(("{", "```", "<tool_call>")) or '"arguments"' in t


def _schema_ok(name: str, arguments: str) -> bool:
    import jsonschema

    spec = next((t for t in TOOLS if t.name == name), None)
    if spec is None:
        return False
    try:
        jsonschema.validate(json.loads(arguments), spec.parameters)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


async def _one(llm: LlamaCppLLM, line: str, max_tokens: int) -> dict[str, Any]:
    msgs = [ChatMessage("system", SYSTEM), ChatMessage("user", line)]
    t0 = time.perf_counter()
    first: float | None = None
    text, calls = "", []
    async for d in llm.stream(msgs, tools=TOOLS, max_tokens=max_tokens, session_key=None):
        if (d.text or d.tool_calls) and first is None:
            first = time.perf_counter() - t0
        text += d.text
        calls += d.tool_calls
    total = time.perf_counter() - t0
    stats = llm.last_stats
    turns = llm._tool_turns
    router = turns.last_router if turns else None
    return {
        "text": text,
        "calls": [{"name": c.name, "arguments": c.arguments} for c in calls],
        "first_token_s": stats.first_token_s if stats else first,
        "total_s": total,
        "completion_tokens": stats.completion_tokens if stats else None,
        # the router's P(a call opens), constrained mode only
        "call_probability": router.call_probability if router else None,
    }


def _score(expected: str | None, keys: dict[str, str], r: dict[str, Any]) -> dict[str, Any]:
    calls = r["calls"]
    attempted = bool(calls) or _looks_like_call(r["text"])
    chosen = calls[0]["name"] if calls else ("<malformed call>" if attempted else None)
    valid_json = all(_parses(c["arguments"]) for c in calls) and not (attempted and not calls)
    schema_ok = bool(calls) and all(_schema_ok(c["name"], c["arguments"]) for c in calls)
    keys_ok = None
    if expected is not None and chosen == expected:
        args = json.loads(calls[0]["arguments"]) if _parses(calls[0]["arguments"]) else {}
        keys_ok = all(v.lower() in str(args.get(k, "")).lower() for k, v in keys.items())
    return {
        "chosen": chosen,
        "right_choice": chosen == expected,
        "attempted_call": attempted,
        "valid_json": valid_json if attempted else None,
        "schema_ok": schema_ok if attempted else None,
        "key_args_ok": keys_ok,
    }


def _parses(s: str) -> bool:
    try:
        return isinstance(json.loads(s), dict)
    except ValueError:
        return False


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def rate(key: str) -> str:
        vals = [r[key] for r in rows if r[key] is not None]
        return f"{sum(vals)}/{len(vals)}"

    plain = [r["first_token_s"] for r in rows if not r["attempted_call"] and r["first_token_s"]]
    call = [r["total_s"] for r in rows if r["attempted_call"]]
    return {
        "right_choice": rate("right_choice"),
        "right_tool_when_tool_expected": rate_of(rows, lambda r: r["expected"] is not None),
        "right_none_when_no_tool_expected": rate_of(rows, lambda r: r["expected"] is None),
        "calls_valid_json": rate("valid_json"),
        "calls_schema_ok": rate("schema_ok"),
        "key_args_ok_when_right_tool": rate("key_args_ok"),
        "plain_first_token_s_median": statistics.median(plain) if plain else None,
        "call_complete_s_median": statistics.median(call) if call else None,
        "first_token_s_median_all": statistics.median(
            [r["first_token_s"] for r in rows if r["first_token_s"]]
        ),
    }


def rate_of(rows: list[dict[str, Any]], pick: Any) -> str:
    sel = [r for r in rows if pick(r)]
    return f"{sum(r['right_choice'] for r in sel)}/{len(sel)}"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["constrained", "unconstrained"], default="constrained")
    ap.add_argument("--limit", type=int, default=len(CASES))
    ap.add_argument("--max-tokens", type=int, default=60)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    llm = LlamaCppLLM(seed=1234, constrain_tools=args.mode == "constrained")
    await llm.warmup(SYSTEM, TOOLS)
    rows = []
    for line, expected, keys in CASES[: args.limit]:
        r = await _one(llm, line, args.max_tokens)
        row = {"line": line, "expected": expected, **_score(expected, keys, r), **r}
        rows.append(row)
        print(
            f"{row['right_choice']!s:5} {expected!s:18} {row['chosen']!s:18} "
            f"{r['first_token_s'] or 0:5.2f}s {r['total_s']:5.2f}s {line}",
            flush=True,
        )
    summary = _summary(rows)
    print(json.dumps(summary, indent=2))
    if args.out:
        result = {"mode": args.mode, "summary": summary, "rows": rows}
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    await llm.aclose()


if __name__ == "__main__":
    asyncio.run(main())
