"""The `callwright` command line, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers.system import REPO


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callwright.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_agents_validate_good_and_bad(tmp_path: Path) -> None:
    ok = cli("agents", "validate", str(REPO / "agents" / "clinic-receptionist.yaml"))
    assert ok.returncode == 0 and "ok (clinic-receptionist" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent_id: x\nagent_name: X\nprompts: {system: hi}\ngreetng: hello\n")
    res = cli("agents", "validate", str(bad))
    assert res.returncode == 1 and "greetng: unknown field" in res.stderr


def test_a_misspelt_engine_fails_validate_and_serve(tmp_path: Path) -> None:
    demo = (REPO / "agents" / "clinic-receptionist.yaml").read_text()
    assert "  tts: {name: piper}\n" in demo
    agents = tmp_path / "agents"
    agents.mkdir()
    bad = agents / "clinic.yaml"
    bad.write_text(demo.replace("  tts: {name: piper}\n", "  tts: {name: pipr}\n"))
    res = cli("agents", "validate", str(bad))
    assert res.returncode == 1
    assert "engines.tts.name: unknown tts engine 'pipr'" in res.stderr
    assert "'piper'" in res.stderr  # the known names are listed
    # the server refuses to start, saying why, instead of falling back to espeak
    served = cli("serve", "--agents-dir", str(agents), "--data-dir", str(tmp_path / "data"))
    assert served.returncode == 2
    assert "engines.tts.name: unknown tts engine 'pipr'" in served.stderr


def test_tools_must_be_registered_by_a_tool_module(tmp_path: Path) -> None:
    demo = (REPO / "agents" / "zero-cost.yaml").read_text()
    agent = tmp_path / "shop.yaml"
    agent.write_text(demo + "tools: [order_status]\n")
    res = cli("agents", "validate", str(agent))
    assert res.returncode == 1 and "tools[0]: unknown tool 'order_status'" in res.stderr
    ok = cli("agents", "validate", str(agent), "--tool-module", "tests.helpers.example_tools")
    assert ok.returncode == 0, ok.stderr
    broken = cli("agents", "validate", str(agent), "--tool-module", "tests.helpers.nonesuch")
    assert broken.returncode == 2
    assert "tool module 'tests.helpers.nonesuch' could not be imported" in broken.stderr


WEBHOOK = """
name: book_visit
description: Book a visit.
parameters: {type: object, properties: {date: {type: string}}, required: [date]}
url: "https://bookings.example/v1/book?date={date}"
headers: {Authorization: "Bearer ${CW_TEST_BOOKING_TOKEN}"}
"""


def test_webhook_tools_load_before_agents_are_checked(tmp_path: Path) -> None:
    demo = (REPO / "agents" / "zero-cost.yaml").read_text()
    agents = tmp_path / "agents"
    agents.mkdir()
    agent = agents / "shop.yaml"
    agent.write_text(demo + "tools: [book_visit]\n")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "book.yaml").write_text(WEBHOOK)
    missing = cli("agents", "validate", str(agent), "--tools-dir", str(tools))
    assert missing.returncode == 2
    assert "headers.Authorization needs the environment variable CW_TEST_BOOKING_TOKEN" in (
        missing.stderr
    )
    served = cli("serve", "--agents-dir", str(agents), "--tools-dir", str(tools))
    assert served.returncode == 2 and "CW_TEST_BOOKING_TOKEN" in served.stderr
    (tools / "book.yaml").write_text(WEBHOOK.replace("${CW_TEST_BOOKING_TOKEN}", "t"))
    ok = cli("agents", "validate", str(agent), "--tools-dir", str(tools))
    assert ok.returncode == 0, ok.stderr
    (tools / "book.yaml").write_text(WEBHOOK.replace("url:", "urls:"))
    bad = cli("agents", "validate", str(agent), "--tools-dir", str(tools))
    assert bad.returncode == 2 and "urls: unknown field" in bad.stderr


def test_doctor_reports_each_engine(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "zero.yaml").write_text((REPO / "agents" / "zero-cost.yaml").read_text())
    res = cli("doctor", "--agents-dir", str(agents), "--json")
    assert res.returncode == 0, res.stderr
    report = {(r["kind"], r["name"]): r for r in json.loads(res.stdout)}
    assert set(report) == {
        ("asr", "scripted"),
        ("llm", "scripted"),
        ("tts", "scripted"),
        ("vad", "silero"),
    }
    assert all(r["ok"] and r["seconds"] >= 0 for r in report.values())
    (agents / "broken.yaml").write_text(
        "agent_id: broken\nagent_name: B\nprompts: {system: hi}\n"
        "engines: {asr: {name: nosuch}, llm: {name: scripted}, tts: {name: scripted},"
        " tts_fallback: null}\n"
    )
    res = cli("doctor", "--agents-dir", str(agents))
    assert res.returncode == 1
    assert "FAIL asr  nosuch" in res.stdout and "unknown asr engine 'nosuch'" in res.stdout


def test_call_refuses_a_missing_wav(tmp_path: Path) -> None:
    res = cli("call", "--wav", str(tmp_path / "nope.wav"), "--out", str(tmp_path / "o"))
    assert res.returncode != 0 and "no such file" in res.stderr


def test_kb_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "faq.md").write_text(
        "# FAQ\n\n## Parking\nThe Pier Road garage charges 3 dollars for two hours.\n\n"
        "## Flu shots\nFlu vaccines are given every Tuesday morning.\n"
    )
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not a pdf")
    res = cli("kb", "ingest", "faq", str(docs), "--data-dir", data)
    assert res.returncode == 1, res.stdout + res.stderr  # one document failed...
    assert "added" in res.stdout and "faq.md" in res.stdout
    assert "failed" in res.stdout and "broken.pdf" in res.stdout  # ...and says why
    listed = cli("kb", "list", "--data-dir", data)
    assert listed.returncode == 0 and "faq" in listed.stdout and "1 docs" in listed.stdout
    found = cli("kb", "search", "where do i leave my car", "--kb", "faq", "--json",
                "--data-dir", data)  # fmt: skip
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert "3 dollars" in hits[0]["text"] and hits[0]["source"] == "faq.md"
    again = cli("kb", "ingest", "faq", str(docs / "faq.md"), "--data-dir", data)
    assert again.returncode == 0 and "unchanged" in again.stdout
    missing = cli("kb", "search", "x", "--kb", "nope", "--data-dir", data)
    assert missing.returncode == 2 and "nope" in missing.stderr
    gone = cli("kb", "delete", "faq", "--yes", "--data-dir", data)
    assert gone.returncode == 0
    assert "faq" not in cli("kb", "list", "--data-dir", data).stdout
