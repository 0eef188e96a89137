// The Callwright web page: agent picker, call buttons, transcript and latency panel,
// all on top of the same Callwright.VoiceClient the embeddable widget uses.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const agentSelect = $("agent");
  const startBtn = $("start");
  const hangupBtn = $("hangup");
  const statusEl = $("status");
  const statusText = $("status-text");

  // The server and the worklets' URLs default to where callwright-widget.js came from.
  const client = new Callwright.VoiceClient({ metadata: { source: "web-page" } });
  const view = new Callwright.TranscriptView($("lines"));
  view.attach(client);
  window.callwrightPage = { client, view }; // handy in the devtools console

  let agents = [];
  let agentName = "The agent";

  const STAGES = [
    ["vad_stop_ms", "VAD stop"],
    ["asr_final_ms", "ASR final"],
    ["end_of_turn_ms", "End of turn"],
    ["llm_first_token_ms", "LLM first token"],
    ["tts_first_audio_ms", "TTS first audio"],
    ["first_audio_out_ms", "First audio out"],
  ];

  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusText.textContent = text;
  }

  async function loadAgents() {
    try {
      const res = await fetch("v1/agents", { headers: { accept: "application/json" } });
      if (res.status === 503) {
        setStatus("idle", "The server is starting…");
        setTimeout(loadAgents, 1000);
        return;
      }
      if (!res.ok) throw new Error("HTTP " + res.status);
      agents = await res.json();
    } catch (err) {
      setStatus("error", "Could not load the agents: " + err.message);
      return;
    }
    agentSelect.replaceChildren();
    if (!agents.length) {
      agentSelect.append(new Option("No agents configured", ""));
      setStatus("error", "This server has no agents. Add agent YAML files and restart it.");
      return;
    }
    const wanted =
      new URLSearchParams(location.search).get("agent") || localStorage.getItem("callwright.agent");
    for (const a of agents) {
      agentSelect.append(new Option(a.agent_name + " (" + a.agent_id + ")", a.agent_id));
    }
    const pick =
      agents.find((a) => a.agent_id === wanted) || agents.find((a) => a.default) || agents[0];
    agentSelect.value = pick.agent_id;
    agentSelect.disabled = false;
    startBtn.disabled = false;
    showDescription();
    setStatus("idle", "Ready. Pick an agent and start a call.");
  }

  function showDescription() {
    const a = agents.find((x) => x.agent_id === agentSelect.value);
    $("agent-desc").textContent = a ? a.description || "" : "";
  }

  agentSelect.addEventListener("change", () => {
    localStorage.setItem("callwright.agent", agentSelect.value);
    showDescription();
  });

  startBtn.addEventListener("click", () => {
    view.clear();
    $("empty").hidden = true;
    client.consent = $("consent").checked ? "granted" : "denied";
    client.start(agentSelect.value).catch(() => {}); // failures arrive as the "error" state
  });

  hangupBtn.addEventListener("click", () => client.stop());

  client.on("started", (ev) => {
    agentName = ev.agent_name || "The agent";
  });

  client.on("state", ({ state, reason }) => {
    const busy = client.active;
    startBtn.disabled = busy || !agents.length;
    hangupBtn.disabled = !busy;
    agentSelect.disabled = busy || !agents.length;
    $("consent").disabled = busy;
    if (state === "starting") setStatus("busy", "Asking for the microphone…");
    else if (state === "connecting") setStatus("busy", "Connecting to the agent…");
    else if (state === "live") setStatus("live", "Listening. Go ahead and speak.");
    else if (state === "error") setStatus("error", "Could not call: " + reason);
    else if (state === "ended") {
      setStatus("idle", "Call ended (" + String(reason || "ended").replace(/_/g, " ") + ").");
      // The server sends `end` only when it ends the call; otherwise close the transcript here.
      if (reason === "caller_hangup" || reason === "connection_lost") view.ended(reason);
      setLevel(0);
    }
    // The focused button just got disabled: move focus to the one that now applies.
    const lost = !document.activeElement || document.activeElement === document.body;
    if (state === "live" && (lost || document.activeElement === startBtn)) hangupBtn.focus();
    const over = state === "ended" || state === "error";
    if (over && (lost || document.activeElement === hangupBtn)) startBtn.focus();
  });

  client.on("activity", (who) => {
    if (client.state !== "live") return;
    if (who === "user") setStatus("user", "You are speaking…");
    else if (who === "agent") setStatus("agent", agentName + " is speaking…");
    else if (who === "listening") setStatus("live", "Listening. Go ahead and speak.");
  });

  // Microphone meter: peak level with a slow fall, drawn once per animation frame.
  let level = 0;
  let drawn = -1;
  function setLevel(peak) {
    level = peak === 0 ? 0 : Math.max(peak, level * 0.85);
  }
  client.on("level", setLevel);
  (function draw() {
    const pct = Math.round(Math.min(1, Math.sqrt(level)) * 100); // sqrt: closer to loudness
    if (pct !== drawn) {
      $("mic-level").style.width = pct + "%";
      $("mic-meter").setAttribute("aria-valuenow", String(pct));
      drawn = pct;
    }
    requestAnimationFrame(draw);
  })();

  function fmt(ms) {
    return ms == null ? "–" : Math.round(ms).toLocaleString();
  }

  function renderMetrics(m) {
    $("v2v").textContent = fmt(m.voice_to_voice_ms);
    $("v2v").classList.toggle("none", m.voice_to_voice_ms == null);
    const max = Math.max(1, ...STAGES.map(([k]) => m[k] || 0));
    const rows = [];
    for (const [key, label] of STAGES) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      // Each bar runs from the end of speech to its milestone, on a shared scale.
      const track = document.createElement("span");
      track.className = "track";
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = m[key] == null ? "0" : (100 * Math.max(0, m[key])) / max + "%";
      track.append(bar);
      const val = document.createElement("span");
      val.className = "val";
      val.textContent = fmt(m[key]);
      dd.append(track, val);
      rows.push(dt, dd);
    }
    $("breakdown").replaceChildren(...rows);
    const flags = ["turn " + m.turn];
    if (m.speculative) flags.push("speculative reply");
    if (m.interrupted) flags.push("interrupted");
    $("flags").textContent = flags.join(" · ");
  }
  client.on("turn_metrics", renderMetrics);
  renderMetrics({ turn: "–" });
  $("flags").textContent = "No turn yet.";

  // Connection details, refreshed at most every 250 ms.
  let connPending = false;
  function renderConn() {
    connPending = false;
    const s = client.stats;
    const rate = s.sampleRate || 0;
    const rows = [
      ["Round trip", s.rttMs == null ? "–" : s.rttMs + " ms"],
      ["Audio", rate ? "PCM16 " + rate / 1000 + " kHz both ways" : "–"],
      ["Mic frames sent", s.framesSent.toLocaleString()],
      ["Agent frames received", s.agentFramesReceived.toLocaleString()],
      ["Agent audio played", rate ? (s.playedSamples / rate).toFixed(1) + " s" : "–"],
      ["Underruns", s.underruns + (s.underruns ? " (" + s.underrunMs + " ms)" : "")],
      ["Barge-in clears", String(s.clears)],
    ];
    const out = [];
    for (const [k, v] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      out.push(dt, dd);
    }
    $("conn").replaceChildren(...out);
  }
  function scheduleConn() {
    if (!connPending) {
      connPending = true;
      setTimeout(renderConn, 250);
    }
  }
  client.on("stats", scheduleConn);
  client.on("event", scheduleConn);
  client.on("state", scheduleConn);
  renderConn();

  loadAgents();
})();
