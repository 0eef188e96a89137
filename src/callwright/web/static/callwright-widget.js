/*
 * Callwright browser client and embeddable call widget. No dependencies, no build step.
 *
 * window.Callwright.VoiceClient   one call over the WebSocket voice protocol (docs/protocol.md)
 * window.Callwright.TranscriptView renders a call's events as a live transcript
 * window.Callwright.Widget        floating call button + transcript panel for any site
 *
 * Embed on a page:
 *   <script src="https://HOST/static/callwright-widget.js" data-agent="clinic-receptionist"
 *           data-server="https://HOST"></script>
 * Optional attributes: data-label (button text), data-consent (granted|denied|unknown),
 * data-position (right|left). Browsers only give pages the microphone and AudioWorklet
 * in a secure context: serve Callwright over HTTPS (or use it on localhost).
 *
 * Audio: one AudioContext at the device's own rate (when the protocol supports it, else
 * 48 kHz) does both directions. The caller's audio goes out as PCM16 20 ms frames at that
 * rate, and `start` asks for the agent's audio as PCM16 at that same rate, so the server
 * (libsamplerate) does the only resampling and the playback worklet just copies samples.
 */
(function () {
  "use strict";

  const SUPPORTED_RATES = [8000, 16000, 22050, 24000, 32000, 44100, 48000];
  const MAX_EVENTS = 500; // events kept in stats.events (for tests and debugging)
  const MAX_WS_BACKLOG = 192 * 1024; // ~2 s of 48 kHz PCM16: beyond that, drop mic frames
  const PING_EVERY_MS = 5000;
  const script = document.currentScript;
  const clients = new Set(); // every client started on this page, to hang up on pagehide
  const scriptUrl = script && script.src ? new URL(script.src, location.href) : null;

  /** Tiny event emitter: on(type, fn) returns an unsubscribe function. */
  class Emitter {
    constructor() {
      this._handlers = new Map();
    }
    on(type, fn) {
      if (!this._handlers.has(type)) this._handlers.set(type, new Set());
      this._handlers.get(type).add(fn);
      return () => this.off(type, fn);
    }
    off(type, fn) {
      const set = this._handlers.get(type);
      if (set) set.delete(fn);
    }
    emit(type, data) {
      const set = this._handlers.get(type);
      if (!set) return;
      for (const fn of [...set]) {
        try {
          fn(data);
        } catch (err) {
          console.error("callwright: handler for", type, "failed", err);
        }
      }
    }
  }

  function newStats(agentId) {
    return {
      state: "idle",
      agentId: agentId || null,
      callId: null,
      sampleRate: null,
      framesSent: 0,
      bytesSent: 0,
      framesDropped: 0, // mic frames not sent (before `started`, or the socket backed up)
      agentFramesReceived: 0,
      agentBytesReceived: 0,
      playedSamples: 0, // samples the playback worklet actually rendered
      bufferedSamples: 0,
      underruns: 0,
      underrunMs: 0,
      clears: 0,
      clearedSamples: 0,
      rttMs: null,
      lastMetrics: null,
      endReason: null,
      events: [], // server events, each with `t`: ms since start() was called
    };
  }

  /**
   * One voice call. Events (client.on(type, fn)):
   *   "state"  {state, reason?}  idle → starting → connecting → live → ended | error
   *   "event"  every server JSON event; also each one under its own type ("transcript", ...)
   *   "activity" "listening" | "user" | "agent": who is talking
   *   "level"  0..1 microphone peak level, every 20 ms frame
   *   "stats"  the stats object, when playback counters change
   */
  class VoiceClient extends Emitter {
    constructor(options) {
      super();
      const opts = options || {};
      // The script is served from SERVER/static/, so SERVER is its parent (a path prefix
      // behind a reverse proxy included).
      const home = scriptUrl ? new URL("..", scriptUrl).href : location.origin;
      this.server = String(opts.server || home).replace(/\/+$/, "");
      this.assetBase =
        opts.assetBase || (scriptUrl ? new URL(".", scriptUrl).href : this.server + "/static/");
      this.consent = opts.consent || "unknown";
      this.userId = opts.userId || null;
      this.language = opts.language || null;
      this.metadata = Object.assign({ client: "callwright-web" }, opts.metadata || {});
      this.sampleRate = opts.sampleRate || null; // force a rate; default: the device's
      this.state = "idle";
      this.stats = newStats(null);
      this._gen = 0;
    }

    get wsUrl() {
      return this.server.replace(/^http/, "ws") + "/v1/voice";
    }

    get active() {
      return ["starting", "connecting", "live"].includes(this.state);
    }

    /** Start a call; resolves with the `started` event, rejects if the call cannot start. */
    async start(agentId) {
      if (this.active) throw new Error("a call is already in progress");
      const gen = ++this._gen;
      clients.add(this);
      this.stats = newStats(agentId);
      this._t0 = performance.now();
      window.__callwright = this.stats; // the latest call's counters, for tests
      this._endReason = null;
      this._activity = null;
      this._setState("starting");
      try {
        if (!window.isSecureContext || !navigator.mediaDevices || !window.AudioWorkletNode) {
          throw new Error(
            "Microphone access needs a secure page: open Callwright over HTTPS or on localhost."
          );
        }
        // Created synchronously inside the click handler, so autoplay rules allow it.
        const ctx = this._createContext();
        this._ctx = ctx;
        const mic = navigator.mediaDevices.getUserMedia({
          audio: {
            channelCount: 1,
            // All three on: the browser's echo canceller removes the agent's voice from
            // the mic, so barge-in triggers on the caller, not on the speakers.
            echoCancellation: true,
            noiseSuppression: true,
            autoGainControl: true,
          },
          video: false,
        });
        let stream;
        try {
          [stream] = await Promise.all([
            mic,
            ctx.audioWorklet.addModule(new URL("capture-worklet.js", this.assetBase).href),
            ctx.audioWorklet.addModule(new URL("playback-worklet.js", this.assetBase).href),
            ctx.resume(),
          ]);
        } catch (err) {
          mic.then(stopTracks, () => {}); // never leave the microphone open
          throw err;
        }
        if (gen !== this._gen) {
          stopTracks(stream); // stop() was called while we waited
          throw new Error("stopped");
        }
        this._stream = stream;
        if (gen !== this._gen) throw new Error("stopped");
        this._buildGraph(ctx, stream);
        this._setState("connecting");
        return await this._connect(agentId, gen);
      } catch (err) {
        if (gen === this._gen) this._fail(describeError(err));
        throw err;
      }
    }

    /** Hang up. Safe to call at any time. */
    stop() {
      if (!this.active) return;
      this._gen++;
      const ws = this._ws;
      if (ws && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: "stop" }));
        ws.close(1000, "caller hangup");
      }
      this._teardown();
      if (this._started) this._started.reject(new Error("stopped"));
      this._started = null;
      this.stats.endReason = "caller_hangup";
      this._setState("ended", "caller_hangup");
    }

    _createContext() {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      const opts = { latencyHint: "interactive" };
      if (this.sampleRate) opts.sampleRate = this.sampleRate;
      let ctx = new Ctx(opts);
      if (!SUPPORTED_RATES.includes(ctx.sampleRate)) {
        // e.g. a 96 kHz interface: let the browser resample to a rate the protocol takes
        ctx.close();
        ctx = new Ctx({ latencyHint: "interactive", sampleRate: 48000 });
      }
      return ctx;
    }

    _buildGraph(ctx, stream) {
      this.stats.sampleRate = ctx.sampleRate;
      this._mic = ctx.createMediaStreamSource(stream);
      this._capture = new AudioWorkletNode(ctx, "callwright-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        channelCount: 1,
        channelCountMode: "explicit", // downmix anything to mono
        processorOptions: { frameMs: 20 },
      });
      this._capture.port.onmessage = (e) => this._onMicFrame(e.data);
      this._mic.connect(this._capture);
      // The capture node outputs silence; connecting it keeps it pulled by the graph.
      this._capture.connect(ctx.destination);
      this._playback = new AudioWorkletNode(ctx, "callwright-playback", {
        numberOfInputs: 0,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        processorOptions: { prebufferMs: 40, capacitySecs: 8 },
      });
      this._playback.port.onmessage = (e) => this._onPlaybackStats(e.data);
      this._playback.connect(ctx.destination);
    }

    _connect(agentId, gen) {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(this.wsUrl);
        ws.binaryType = "arraybuffer";
        this._ws = ws;
        this._started = { resolve, reject };
        const rate = this._ctx.sampleRate;
        ws.onopen = () => {
          const start = {
            type: "start",
            audio: { encoding: "pcm16", sample_rate: rate },
            output_audio: { encoding: "pcm16", sample_rate: rate },
            consent: this.consent,
            channel: "web",
            metadata: this.metadata,
          };
          if (agentId) start.agent_id = agentId;
          if (this.userId) start.user_id = this.userId;
          if (this.language) start.language = this.language;
          ws.send(JSON.stringify(start));
        };
        ws.onmessage = (e) => {
          if (gen === this._gen) this._onMessage(e.data);
        };
        ws.onclose = (e) => {
          if (gen === this._gen) this._onClose(e);
        };
      });
    }

    _onMessage(data) {
      if (typeof data !== "string") {
        // Agent audio: hand the buffer to the playback worklet without copying it.
        this.stats.agentFramesReceived += 1;
        this.stats.agentBytesReceived += data.byteLength;
        if (this._playback) this._playback.port.postMessage({ type: "audio", pcm: data }, [data]);
        return;
      }
      let ev;
      try {
        ev = JSON.parse(data);
      } catch (err) {
        return;
      }
      const events = this.stats.events;
      events.push(Object.assign({ t: Math.round(performance.now() - this._t0) }, ev));
      if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
      this._handle(ev);
      this.emit("event", ev);
      this.emit(ev.type, ev);
    }

    _handle(ev) {
      const post = (msg) => this._playback && this._playback.port.postMessage(msg);
      switch (ev.type) {
        case "started":
          this.stats.callId = ev.call_id;
          this.stats.agentId = ev.agent_id;
          this.agentName = ev.agent_name;
          this._setState("live");
          this._setActivity("listening");
          this._pingTimer = setInterval(() => this._ping(), PING_EVERY_MS);
          this._ping();
          if (this._started) this._started.resolve(ev);
          this._started = null;
          break;
        case "clear":
          post({ type: "clear" }); // barge-in: silence the agent now, not after the buffer
          break;
        case "agent_speech_started":
          this._setActivity("agent");
          break;
        case "agent_speech_ended":
        case "interruption":
          post({ type: "end" });
          this._setActivity(ev.type === "interruption" ? "user" : "listening");
          break;
        case "user_speech_started":
          if (this._activity !== "agent") this._setActivity("user");
          break;
        case "user_speech_stopped":
          if (this._activity === "user") this._setActivity("listening");
          break;
        case "turn_metrics":
          this.stats.lastMetrics = ev;
          break;
        case "pong":
          if (this._pingSent && ev.id === this._pingSent.id) {
            this.stats.rttMs = Math.round(performance.now() - this._pingSent.at);
            this._pingSent = null;
          }
          break;
        case "error":
          // Before `started` an error means the call cannot start (unknown agent, ...).
          if (this.state !== "live") this._fail(ev.message || ev.code, ev.code);
          break;
        case "end":
          this._endReason = ev.reason || "ended";
          post({ type: "end" });
          this._finishAfterPlayback();
          break;
        default:
          break;
      }
    }

    _ping() {
      const ws = this._ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      this._pingSent = { id: "p" + Math.round(performance.now()), at: performance.now() };
      ws.send(JSON.stringify({ type: "ping", id: this._pingSent.id }));
    }

    _onMicFrame(msg) {
      this.emit("level", msg.peak);
      const ws = this._ws;
      if (this.state !== "live" || this._endReason || !ws || ws.readyState !== WebSocket.OPEN) {
        this.stats.framesDropped += 1;
        return;
      }
      if (ws.bufferedAmount > MAX_WS_BACKLOG) {
        // The network can't keep up; stale caller audio is worse than a gap.
        this.stats.framesDropped += 1;
        return;
      }
      ws.send(msg.pcm);
      this.stats.framesSent += 1;
      this.stats.bytesSent += msg.pcm.byteLength;
    }

    _onPlaybackStats(s) {
      if (s.type !== "stats") return;
      const st = this.stats;
      st.playedSamples = s.played;
      st.bufferedSamples = s.buffered;
      st.underruns = s.underruns;
      st.underrunMs = s.underrunMs;
      st.clears = s.clears;
      st.clearedSamples = s.clearedSamples;
      this.emit("stats", st);
    }

    _finishAfterPlayback() {
      // The agent hung up (goodbye): let its last words play out before closing audio.
      const gen = this._gen;
      const deadline = performance.now() + 2000;
      const check = () => {
        if (gen !== this._gen) return;
        if (this.stats.bufferedSamples > 0 && performance.now() < deadline) {
          setTimeout(check, 50);
          return;
        }
        this._gen++;
        this._teardown();
        this.stats.endReason = this._endReason;
        this._setState("ended", this._endReason);
      };
      setTimeout(check, 100);
    }

    _onClose(e) {
      if (this._endReason) return; // `end` received: _finishAfterPlayback closes up
      if (this.state === "live") {
        this._gen++;
        this._teardown();
        this.stats.endReason = "connection_lost";
        this._setState("ended", "connection_lost");
      } else {
        this._fail(e.reason || "could not connect to " + this.wsUrl + " (code " + e.code + ")");
      }
    }

    _fail(message, code) {
      this._gen++;
      this._teardown();
      this.stats.endReason = code || "error";
      this.error = message;
      if (this._started) this._started.reject(new Error(message));
      this._started = null;
      this._setState("error", message);
    }

    _teardown() {
      clearInterval(this._pingTimer);
      this._pingTimer = null;
      if (this._ws) {
        const ws = this._ws;
        ws.onmessage = ws.onclose = null;
        if (ws.readyState <= WebSocket.OPEN) ws.close(1000); // CONNECTING or OPEN
      }
      if (this._stream) stopTracks(this._stream);
      if (this._capture) this._capture.port.onmessage = null;
      if (this._ctx && this._ctx.state !== "closed") this._ctx.close().catch(() => {});
      this._ws = this._stream = this._ctx = this._mic = this._capture = this._playback = null;
      this._setActivity(null);
    }

    _setState(state, reason) {
      this.state = state;
      this.stats.state = state;
      this.emit("state", { state, reason: reason || null });
    }

    _setActivity(activity) {
      if (activity === this._activity) return;
      this._activity = activity;
      this.emit("activity", activity);
    }
  }

  function stopTracks(stream) {
    for (const track of stream.getTracks()) track.stop();
  }

  function describeError(err) {
    if (!err) return "unknown error";
    if (err.name === "NotAllowedError") return "Microphone permission was denied.";
    if (err.name === "NotFoundError") return "No microphone was found.";
    if (err.name === "AbortError" && /worklet|module/i.test(err.message || "")) {
      return "Could not load the audio worklets (cross-origin embeds need CORS on /static).";
    }
    return err.message || String(err);
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function words(text) {
    return String(text || "").split(/\s+/).filter(Boolean);
  }

  function norm(word) {
    return word.toLowerCase().replace(/[^\p{L}\p{N}']/gu, "");
  }

  /**
   * Live transcript in a list element (<ol>/<ul>). Caller partials are shown greyed
   * (class cw-partial) and replaced by the final; agent text is appended as it
   * arrives; an interruption strikes out the words the caller did not hear.
   * Lines: li.cw-line.cw-caller / .cw-agent / .cw-system, with .cw-who and .cw-text.
   */
  class TranscriptView {
    constructor(list, options) {
      const opts = options || {};
      this.list = list;
      this.callerLabel = opts.callerLabel || "You";
      this.agentLabel = opts.agentLabel || "Agent";
      this.pending = null; // the caller's partial line
      this.agent = null; // the agent line being spoken: {li, text, turn, closed}
    }

    clear() {
      this.list.replaceChildren();
      this.pending = null;
      this.agent = null;
    }

    attach(client) {
      return client.on("event", (ev) => this.handle(ev));
    }

    handle(ev) {
      switch (ev.type) {
        case "started":
          if (ev.agent_name) this.agentLabel = ev.agent_name;
          this.system("Connected to " + this.agentLabel + ".");
          break;
        case "transcript":
          if (ev.final) this.callerFinal(ev.text);
          else this.callerPartial(ev.text);
          break;
        case "agent_text":
          this.agentText(ev.turn, ev.text);
          break;
        case "agent_speech_ended":
          if (this.agent) this.agent.closed = true;
          break;
        case "interruption":
          this.interrupted(ev.heard_text);
          break;
        case "tool_call":
          this.system("Tool call: " + ev.name + "(" + ev.arguments + ")");
          break;
        case "tool_result":
          this.system(
            "Tool " + ev.name + ": " + String(ev.status).replace(/_/g, " ") +
              " (" + Math.round(ev.duration_ms) + " ms)",
            ev.status === "ok" ? "" : "cw-error"
          );
          break;
        case "knowledge":
          this.sources(ev);
          break;
        case "error":
          this.system("Error: " + (ev.message || ev.code), "cw-error");
          break;
        case "end":
          this.ended(ev.reason);
          break;
        default:
          break;
      }
    }

    /** Where the agent's answer came from: the passages' sources, and a grounding flag. */
    sources(ev) {
      const hits = (ev.used && ev.used.hits) || [];
      const names = hits.map((h) => {
        const section = (h.headings || []).slice(-1)[0];
        return "[" + h.n + "] " + h.source + (section ? " > " + section : "");
      });
      const flagged = ev.grounding && ev.grounding.flagged;
      const text = names.length
        ? "Sources: " + names.join("; ")
        : "No matching knowledge for this question.";
      this.system(
        text + (flagged ? " (unverified: " + ev.grounding.unsupported.join(", ") + ")" : ""),
        "cw-sources" + (flagged ? " cw-flagged" : "")
      );
    }

    ended(reason) {
      if (this.pending) this.pending.remove();
      this.pending = null;
      this.agent = null;
      const why = reason ? " (" + String(reason).replace(/_/g, " ") + ")" : "";
      this.system("Call ended" + why + ".");
    }

    _line(kind, who, extra) {
      const li = el("li", "cw-line cw-" + kind + (extra ? " " + extra : ""));
      li.append(el("span", "cw-who", who), el("span", "cw-text"));
      return li;
    }

    _append(li) {
      const list = this.list;
      const scroller = list.closest("[data-cw-scroll]") || list;
      const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
      list.append(li);
      if (atBottom) scroller.scrollTop = scroller.scrollHeight;
    }

    callerPartial(text) {
      if (!text) return;
      if (!this.pending) {
        this.pending = this._line("caller", this.callerLabel, "cw-partial");
        // Screen readers get the final line only, not every partial.
        this.pending.setAttribute("aria-hidden", "true");
        this._append(this.pending);
      }
      this.pending.querySelector(".cw-text").textContent = text;
    }

    callerFinal(text) {
      const li = this._line("caller", this.callerLabel);
      li.querySelector(".cw-text").textContent = text;
      // A new node (not an edit of the partial) so a live region announces it.
      if (this.pending) this.pending.replaceWith(li);
      else this._append(li);
      this.pending = null;
    }

    agentText(turn, text) {
      let a = this.agent;
      if (!a || a.closed || a.turn !== turn) {
        const li = this._line("agent", this.agentLabel);
        a = this.agent = { li, text: "", turn, closed: false };
        // Keep the caller's pending partial below the agent's line.
        if (this.pending) this.list.insertBefore(li, this.pending);
        else this._append(li);
      }
      const t = String(text || "").trim();
      if (!t) return;
      // One element per chunk: a live region announces additions, not edits.
      a.li.querySelector(".cw-text").append(el("span", "cw-chunk", (a.text ? " " : "") + t));
      a.text = a.text ? a.text + " " + t : t;
    }

    interrupted(heard) {
      const a = this.agent;
      if (!a) return;
      a.closed = true;
      const full = words(a.text);
      const got = words(heard);
      const matches = got.length <= full.length && got.every((w, i) => norm(w) === norm(full[i]));
      const box = a.li.querySelector(".cw-text");
      box.replaceChildren();
      a.li.classList.add("cw-interrupted");
      if (matches) {
        if (got.length) box.append(el("span", "cw-heard", full.slice(0, got.length).join(" ")));
        const rest = full.slice(got.length).join(" ");
        if (rest) {
          if (got.length) box.append(" ");
          const del = el("del", "cw-unheard", rest);
          del.title = "not heard: the caller interrupted";
          box.append(del);
        }
      } else {
        box.append(el("span", "cw-heard", heard || ""));
        box.title = "full reply: " + a.text;
      }
      a.li.append(el("span", "cw-note", heard ? "cut off" : "cut off before a word was heard"));
    }

    system(text, extra) {
      const li = el("li", "cw-line cw-system" + (extra ? " " + extra : ""), text);
      if (this.pending) this.list.insertBefore(li, this.pending);
      else this._append(li);
    }
  }

  const WIDGET_CSS = `
    :host { all: initial; }
    * { box-sizing: border-box; }
    .wrap { position: fixed; bottom: 20px; z-index: 2147483000; display: flex; flex-direction: column;
      gap: 12px; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #17202a; }
    .wrap.right { right: 20px; align-items: flex-end; }
    .wrap.left { left: 20px; align-items: flex-start; }
    .fab { display: inline-flex; align-items: center; gap: 8px; border: 0; border-radius: 999px;
      padding: 12px 18px; background: #0b6e4f; color: #fff; font: inherit; font-weight: 600;
      cursor: pointer; box-shadow: 0 6px 20px rgba(0,0,0,.25); }
    .fab:hover { background: #095c42; }
    .fab.live { background: #c0392b; }
    .fab.live:hover { background: #a93226; }
    .fab:focus-visible, button:focus-visible { outline: 3px solid #f5b041; outline-offset: 2px; }
    .fab svg { width: 20px; height: 20px; fill: currentColor; }
    .panel { width: min(360px, calc(100vw - 40px)); background: #fff; border-radius: 14px;
      box-shadow: 0 10px 30px rgba(0,0,0,.25); overflow: hidden; display: flex; flex-direction: column; }
    .panel[hidden] { display: none; }
    header { display: flex; align-items: center; justify-content: space-between; gap: 8px;
      padding: 10px 14px; background: #0b6e4f; color: #fff; }
    header strong { font-size: 15px; }
    .close { border: 0; background: transparent; color: #fff; font-size: 20px; line-height: 1;
      cursor: pointer; padding: 2px 6px; border-radius: 6px; }
    .status { padding: 6px 14px; font-size: 13px; color: #4d5a66; border-bottom: 1px solid #e5e8eb; }
    .log { height: 260px; overflow-y: auto; padding: 8px 14px; }
    ol { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 6px; }
    .cw-line { display: flex; flex-direction: column; max-width: 88%; padding: 6px 10px; border-radius: 10px; }
    .cw-who { font-size: 11px; font-weight: 600; text-transform: uppercase; letter-spacing: .04em; opacity: .7; }
    .cw-caller { align-self: flex-end; background: #e3f2ec; }
    .cw-agent { align-self: flex-start; background: #f0f2f4; }
    .cw-partial { color: #7b8794; font-style: italic; }
    .cw-system { align-self: center; max-width: 100%; font-size: 12px; color: #6b7782; padding: 2px; }
    .cw-error { color: #b03a2e; }
    .cw-unheard { color: #8a949e; }
    .cw-note { font-size: 11px; color: #b03a2e; margin-top: 2px; }
  `;

  const MIC_ICON =
    '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 7 0 0 0 19 11h-2z"/></svg>';
  const HANGUP_ICON =
    '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 9c-1.6 0-3.15.25-4.6.72v3.1c0 .39-.23.74-.56.9-.98.49-1.87 1.12-2.66 1.85-.18.18-.43.28-.7.28-.28 0-.53-.11-.71-.29L.29 13.08A.956.956 0 0 1 0 12.37c0-.28.11-.53.29-.71C3.34 8.78 7.46 7 12 7s8.66 1.78 11.71 4.67c.18.18.29.43.29.71 0 .28-.11.53-.29.71l-2.48 2.48c-.18.18-.43.29-.71.29-.27 0-.52-.11-.7-.28a11.27 11.27 0 0 0-2.67-1.85.996.996 0 0 1-.56-.9v-3.1C15.15 9.25 13.6 9 12 9z"/></svg>';

  /** The floating call button + transcript panel, isolated in a shadow root. */
  class Widget {
    constructor(options) {
      const opts = options || {};
      this.agentId = opts.agent || null;
      this.label = opts.label || "Talk to us";
      this.client = new VoiceClient({
        server: opts.server,
        assetBase: opts.assetBase,
        consent: opts.consent,
        metadata: { source: "widget" },
      });
      this.host = document.createElement("div");
      this.host.className = "callwright-widget";
      const root = this.host.attachShadow({ mode: "open" });
      root.innerHTML =
        "<style>" + WIDGET_CSS + "</style>" +
        '<div class="wrap ' + (opts.position === "left" ? "left" : "right") + '">' +
        '<section class="panel" role="dialog" aria-label="Voice call" hidden>' +
        '<header><strong class="title">Voice call</strong>' +
        '<button class="close" type="button" aria-label="Close panel">×</button></header>' +
        '<div class="status" role="status" aria-live="polite">Ready.</div>' +
        '<div class="log" data-cw-scroll>' +
        '<ol role="log" aria-live="polite" aria-relevant="additions"></ol></div>' +
        "</section>" +
        '<button class="fab" type="button" aria-expanded="false"></button>' +
        "</div>";
      this.root = root;
      this.fab = root.querySelector(".fab");
      this.panel = root.querySelector(".panel");
      this.statusEl = root.querySelector(".status");
      this.titleEl = root.querySelector(".title");
      this.view = new TranscriptView(root.querySelector("ol"));
      this.view.attach(this.client);
      this._render();
      this.fab.addEventListener("click", () => this.toggleCall());
      root.querySelector(".close").addEventListener("click", () => this._showPanel(false));
      this.panel.addEventListener("keydown", (e) => {
        if (e.key === "Escape") this._showPanel(false);
      });
      this.client.on("state", (s) => this._onState(s));
      this.client.on("activity", (a) => this._onActivity(a));
      this.client.on("started", (ev) => {
        this.titleEl.textContent = ev.agent_name || "Voice call";
      });
    }

    mount(parent) {
      (parent || document.body).append(this.host);
      return this;
    }

    toggleCall() {
      if (this.client.active) {
        this.client.stop();
        return;
      }
      this.view.clear();
      this._showPanel(true);
      this.client.start(this.agentId).catch(() => {}); // failures arrive as a state
    }

    _showPanel(show) {
      this.panel.hidden = !show;
      this.fab.setAttribute("aria-expanded", String(show));
    }

    _render() {
      const live = this.client.active;
      this.fab.classList.toggle("live", live);
      this.fab.innerHTML = (live ? HANGUP_ICON : MIC_ICON) + "<span></span>";
      this.fab.querySelector("span").textContent = live ? "Hang up" : this.label;
    }

    _onState(s) {
      this._render();
      const text = {
        starting: "Starting the microphone…",
        connecting: "Connecting…",
        live: "Connected. Go ahead and speak.",
        ended: "Call ended.",
      }[s.state];
      this.statusEl.textContent = s.state === "error" ? "Could not call: " + s.reason : text || "";
      // The server sends `end` only when it ends the call; otherwise close the transcript here.
      if (s.state === "ended" && (s.reason === "caller_hangup" || s.reason === "connection_lost")) {
        this.view.ended(s.reason);
      }
    }

    _onActivity(a) {
      const text = {
        listening: "Listening…",
        user: "You are speaking…",
        agent: "Agent speaking…",
      }[a];
      if (text && this.client.state === "live") this.statusEl.textContent = text;
    }
  }

  // Stop any call when the page goes away, so the server sees a hangup at once.
  window.addEventListener("pagehide", () => {
    for (const c of clients) c.stop();
  });

  window.Callwright = { VoiceClient, TranscriptView, Widget, SUPPORTED_RATES, version: "0.1.0" };

  // Auto-mount when embedded with data-agent (or data-widget) on the script tag.
  if (script && ("agent" in script.dataset || "widget" in script.dataset)) {
    const mount = () => {
      window.Callwright.widget = new Widget({
        agent: script.dataset.agent || null,
        server: script.dataset.server,
        label: script.dataset.label,
        consent: script.dataset.consent,
        position: script.dataset.position,
      }).mount();
    };
    if (document.body) mount();
    else document.addEventListener("DOMContentLoaded", mount);
  }
})();
