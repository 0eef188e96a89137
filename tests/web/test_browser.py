"""The web page and the embeddable widget in a real Chromium, against the real server.

Chromium's fake microphone plays an espeak-ng WAV (looped); the page captures it with
its AudioWorklet, streams PCM16 over /v1/voice to `callwright serve` running Whisper
tiny.en, the scripted LLM and espeak TTS, and plays the agent's audio back through its
playback worklet. The tests assert on what a user would see (the transcript) and on the
client's counters (`window.__callwright`), which prove the audio really played.

Screenshots land in pytest's tmp_path (printed with -s) so a person can look at them.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.servers import free_port
from tests.helpers.system import REPO, need_tools

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")
AGENT_ID = "browser-test"
AGENT_YAML = f"""
agent_id: {AGENT_ID}
agent_name: Browser Test Agent
description: Repeats what the caller said.
prompts: {{system: You repeat what the caller said.}}
greeting: null
engines:
  asr: {{name: whisper, options: {{model: tiny.en}}}}
  llm: {{name: scripted, options: {{reply: "You said {{user}}."}}}}
  tts: {{name: espeak}}
  vad: {{name: silero}}
  tts_fallback: null
turn_taking:
  idle_reprompt_secs: null
  idle_hangup_secs: null
"""
KB_AGENT_ID = "browser-kb"
KB_AGENT_YAML = f"""
agent_id: {KB_AGENT_ID}
agent_name: Browser Knowledge Agent
prompts: {{system: You answer from the clinic's documents.}}
knowledge_sources: [clinic]
engines:
  asr: {{name: whisper, options: {{model: tiny.en}}}}
  llm: {{name: scripted, options: {{reply: "Please see the appointments desk [1]."}}}}
  tts: {{name: espeak}}
  vad: {{name: silero}}
  tts_fallback: null
turn_taking:
  idle_reprompt_secs: null
  idle_hangup_secs: null
"""
SPEECH = "I would like to book an appointment for Tuesday morning."
# Words Whisper tiny.en gets right from espeak's voice ("book" it often hears as "welcome").
KEYWORDS = ("appointment", "tuesday")
CALL_TIMEOUT_MS = 90_000  # Whisper on a small shared CPU can be slow; normally ~10 s


def _chromium_args(wav: Path) -> list[str]:
    return [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-gpu",
    ]


def _speech_wav(path: Path, lead_secs: float, tail_secs: float) -> Path:
    """espeak-ng speech as 16-bit mono 48 kHz (what Chromium's fake capture likes best).

    Chromium loops the file: the leading silence covers the time between opening the
    microphone and the call being live; the trailing silence sets when the caller
    speaks again (long: a clean turn; short: a barge-in over the agent's reply).
    """
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), SPEECH], check=True)
    subprocess.run(
        [
            "sox",
            str(raw),
            "-r",
            "48000",
            "-c",
            "1",
            "-b",
            "16",
            str(path),
            "pad",
            str(lead_secs),
            str(tail_secs),
        ],
        check=True,
    )
    raw.unlink()
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`<venv>/bin/callwright serve` on a free loopback port; yields its base URL."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Chromium at {CHROMIUM} (Debian package chromium)")
    need_tools("espeak-ng", "sox")
    pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")
    pytest.importorskip("faster_whisper", reason="needs faster-whisper (the embedded extra)")
    cli = Path(sys.executable).parent / "callwright"
    if not cli.exists():
        pytest.skip(f"needs the callwright command next to {sys.executable}")
    root = tmp_path_factory.mktemp("web-server")
    agents = root / "agents"
    agents.mkdir()
    (agents / f"{AGENT_ID}.yaml").write_text(AGENT_YAML)
    (agents / f"{KB_AGENT_ID}.yaml").write_text(KB_AGENT_YAML)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = root / "server.log"
    cmd = [str(cli), "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--agents-dir", str(agents), "--data-dir", str(root / "data")]
    cmd += ["--knowledge-dir", str(REPO / "knowledge"), "--default-agent", AGENT_ID]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"server exited during start-up:\n{log_path.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"server not ready after 180 s:\n{log_path.read_text()}")
                time.sleep(0.3)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def browser_page(wav: Path, user_data: Path) -> Iterator[tuple[Any, list[str]]]:
    """A fresh Chromium (own profile) whose microphone plays `wav`; yields (page, errors)."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        # Never `playwright install`: Debian's Chromium, launched by path.
        context = pw.chromium.launch_persistent_context(
            str(user_data),
            executable_path=str(CHROMIUM),
            headless=True,
            args=_chromium_args(wav),
            viewport={"width": 1200, "height": 820},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on(
                "console",
                lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
            )
            yield page, errors
        finally:
            context.close()


def _stats(page: Any) -> dict[str, Any]:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.__callwright))")


# The latency panel shows the turn's voice-to-voice time.
LATENCY_SHOWN = r"() => /^[\d,.]+$/.test(document.getElementById('v2v').textContent)"
HAS_FINAL_WITH_KEYWORDS = """([sel, words]) => [...document.querySelectorAll(sel)]
    .some(e => words.every(w => e.textContent.toLowerCase().includes(w)))"""


def test_page_call_shows_transcript_and_plays_agent_audio(server: str, tmp_path: Path) -> None:
    wav = _speech_wav(tmp_path / "caller.wav", lead_secs=1.0, tail_secs=4.0)
    with browser_page(wav, tmp_path / "profile") as (page, errors):
        page.goto(f"{server}/")
        page.wait_for_selector("#agent:not([disabled])")
        assert AGENT_ID in page.eval_on_selector_all("#agent option", "os => os.map(o => o.value)")
        page.select_option("#agent", AGENT_ID)
        page.click("#start")

        # The caller's words, transcribed by Whisper, as a final caller line.
        page.wait_for_function(
            HAS_FINAL_WITH_KEYWORDS,
            arg=["#lines .cw-caller:not(.cw-partial) .cw-text", list(KEYWORDS)],
            timeout=CALL_TIMEOUT_MS,
        )
        # The agent's reply text, then its audio played for real by the playback worklet.
        page.wait_for_function(
            """() => [...document.querySelectorAll('#lines .cw-agent .cw-text')]
                .some(e => /you said/i.test(e.textContent))""",
            timeout=CALL_TIMEOUT_MS,
        )
        page.wait_for_function(
            "() => window.__callwright.playedSamples > window.__callwright.sampleRate * 0.5",
            timeout=CALL_TIMEOUT_MS,
        )
        page.wait_for_function(LATENCY_SHOWN)
        shot = tmp_path / "page-live.png"
        page.screenshot(path=str(shot))
        print(f"screenshot: {shot}")

        stats = _stats(page)
        types = [e["type"] for e in stats["events"]]
        assert stats["state"] == "live", stats
        assert stats["sampleRate"] in (8000, 16000, 22050, 24000, 32000, 44100, 48000)
        assert stats["framesSent"] > 50  # 20 ms frames: more than a second of microphone
        assert stats["agentFramesReceived"] > 10
        assert stats["playedSamples"] > 0
        for t in ("started", "transcript", "agent_text", "agent_speech_started", "turn_metrics"):
            assert t in types, types
        finals = [e["text"] for e in stats["events"] if e["type"] == "transcript" and e["final"]]
        assert any(all(k in f.lower() for k in KEYWORDS) for f in finals), finals
        metrics = next(e for e in stats["events"] if e["type"] == "turn_metrics")
        assert metrics["voice_to_voice_ms"] is not None

        page.click("#hangup")
        page.wait_for_function("() => window.__callwright.state === 'ended'")
        assert "Call ended" in page.inner_text("#status")
        assert page.is_enabled("#start")
        assert not errors, errors


def test_barge_in_clears_playback_and_marks_the_reply_cut_off(server: str, tmp_path: Path) -> None:
    # Half a second of silence after the sentence: the looped caller speaks again while
    # the agent is still repeating it, which is a barge-in.
    wav = _speech_wav(tmp_path / "barge.wav", lead_secs=1.0, tail_secs=0.5)
    with browser_page(wav, tmp_path / "profile") as (page, errors):
        page.goto(f"{server}/?agent={AGENT_ID}")
        page.wait_for_selector("#agent:not([disabled])")
        page.click("#start")
        page.wait_for_function(
            "() => window.__callwright.events.some(e => e.type === 'interruption')",
            timeout=CALL_TIMEOUT_MS,
        )
        # `clear` follows the interruption; the worklet reports the flush.
        page.wait_for_function("() => window.__callwright.clears >= 1", timeout=10_000)
        line = page.wait_for_selector("#lines .cw-agent.cw-interrupted")
        assert line is not None
        assert "cut off" in line.inner_text()
        stats = _stats(page)
        heard = next(e for e in stats["events"] if e["type"] == "interruption")["heard_text"]
        if heard:
            assert heard.split()[0].lower() in line.inner_text().lower()
        assert stats["playedSamples"] > 0
        page.screenshot(path=str(tmp_path / "page-barge-in.png"))
        page.click("#hangup")
        assert not errors, errors


def test_embedded_widget_calls_the_agent(server: str, tmp_path: Path) -> None:
    wav = _speech_wav(tmp_path / "caller.wav", lead_secs=1.0, tail_secs=4.0)
    with browser_page(wav, tmp_path / "profile") as (page, errors):
        # The demo page adds the widget's <script data-agent data-server> tag; the widget
        # mounts itself in a shadow root (Playwright's CSS selectors pierce it).
        page.goto(f"{server}/static/embed.html?agent={AGENT_ID}")
        page.click(".callwright-widget .fab")
        page.wait_for_function(
            """([words]) => {
                const root = document.querySelector('.callwright-widget').shadowRoot;
                return [...root.querySelectorAll('.cw-caller:not(.cw-partial) .cw-text')]
                    .some(e => words.every(w => e.textContent.toLowerCase().includes(w)));
            }""",
            arg=[list(KEYWORDS)],
            timeout=CALL_TIMEOUT_MS,
        )
        page.wait_for_function(
            "() => window.__callwright.playedSamples > window.__callwright.sampleRate * 0.5",
            timeout=CALL_TIMEOUT_MS,
        )
        assert page.inner_text(".callwright-widget .title") == "Browser Test Agent"
        page.screenshot(path=str(tmp_path / "widget-live.png"))
        page.click(".callwright-widget .fab")  # the same button hangs up
        page.wait_for_function("() => window.__callwright.state === 'ended'")
        assert "Talk to us" in page.inner_text(".callwright-widget .fab")
        assert not errors, errors


def test_transcript_shows_the_sources_of_an_answer(server: str, tmp_path: Path) -> None:
    wav = _speech_wav(tmp_path / "caller.wav", lead_secs=1.0, tail_secs=4.0)
    with browser_page(wav, tmp_path / "profile") as (page, errors):
        page.goto(f"{server}/?agent={KB_AGENT_ID}")
        page.wait_for_selector("#agent:not([disabled])")
        page.click("#start")
        line = page.wait_for_selector("#lines .cw-sources", timeout=CALL_TIMEOUT_MS)
        assert line is not None
        text = line.inner_text()
        # passages from the clinic's documents, numbered as the LLM saw them
        assert "Sources: [1] " in text and (".md" in text or ".html" in text), text
        page.wait_for_function(
            """() => [...document.querySelectorAll('#lines .cw-agent .cw-text')]
                .some(e => /appointments desk/i.test(e.textContent))""",
            timeout=CALL_TIMEOUT_MS,
        )
        spoken = page.inner_text("#lines .cw-agent .cw-text")
        assert "[1]" not in spoken  # citations are shown as sources, never spoken
        page.click("#hangup")
        assert not errors, errors
