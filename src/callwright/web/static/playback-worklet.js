// Callwright agent audio playback (AudioWorklet).
//
// A ring buffer of float samples fed with the agent's PCM16 frames, which the server
// sends at exactly this AudioContext's rate (the client asks for it in `start`), so
// nothing is resampled here. The server paces its frames at most ~80 ms ahead of real
// time, so the buffer stays short and a barge-in wastes almost nothing.
//
// Messages in:  {type: "audio", pcm: ArrayBuffer}  PCM16 little-endian mono
//               {type: "clear"}  barge-in: drop everything buffered, at once
//               {type: "end"}    the reply is complete: running dry next is not an underrun
// Messages out: {type: "stats", ...counters}, also sent at once after a clear or underrun.

class CallwrightPlayback extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.capacity = Math.round(sampleRate * (opts.capacitySecs || 8));
    this.ring = new Float32Array(this.capacity);
    this.read = 0;
    this.write = 0;
    this.size = 0;
    // Start (or restart after running dry) once this much is buffered, or once the
    // first queued sample has waited that long: the tail of a reply may be shorter.
    this.prebufferSecs = (opts.prebufferMs || 40) / 1000;
    this.prebuffer = Math.round(sampleRate * this.prebufferSecs);
    this.playing = false;
    this.waitingSince = null;
    // Underrun detection: the buffer ran dry while a reply was still streaming, and its
    // audio resumed later. Draining at a reply's end is normal; the main thread marks
    // the end with "end" (agent_speech_ended, interruption), and "clear" ends it too.
    this.replyOpen = false;
    this.dryAt = null;
    this.stats = {
      played: 0, // samples actually rendered to the output
      received: 0, // samples received
      buffered: 0,
      underruns: 0,
      underrunMs: 0,
      overflowSamples: 0, // oldest samples dropped because the ring was full
      clears: 0,
      clearedSamples: 0,
    };
    this.dirty = false;
    this.lastReport = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(msg) {
    if (msg.type === "audio") this.push(new Int16Array(msg.pcm));
    else if (msg.type === "clear") this.clear();
    else if (msg.type === "end") this.replyOpen = false;
  }

  push(pcm) {
    const n = pcm.length;
    if (n === 0) return;
    if (this.dryAt !== null && this.replyOpen) {
      this.stats.underruns += 1;
      this.stats.underrunMs += Math.round((currentTime - this.dryAt) * 1000);
      this.report(true);
    }
    this.dryAt = null;
    this.replyOpen = true;
    const over = this.size + n - this.capacity;
    if (over > 0) {
      // Keep latency bounded: drop the oldest audio rather than the newest.
      this.read = (this.read + over) % this.capacity;
      this.size -= over;
      this.stats.overflowSamples += over;
    }
    let w = this.write;
    for (let i = 0; i < n; i++) {
      this.ring[w] = pcm[i] / 32768;
      if (++w === this.capacity) w = 0;
    }
    this.write = w;
    this.size += n;
    this.stats.received += n;
    if (!this.playing && this.waitingSince === null) this.waitingSince = currentTime;
    this.dirty = true;
  }

  clear() {
    this.stats.clears += 1;
    this.stats.clearedSamples += this.size;
    this.read = this.write = this.size = 0;
    this.playing = false;
    this.waitingSince = null;
    this.replyOpen = false;
    this.dryAt = null;
    this.report(true);
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const n = out.length;
    if (!this.playing) {
      const waited = this.waitingSince !== null && currentTime - this.waitingSince;
      if (this.size > 0 && (this.size >= this.prebuffer || waited >= this.prebufferSecs)) {
        this.playing = true;
        this.waitingSince = null;
      }
    }
    let k = 0;
    if (this.playing) {
      k = Math.min(n, this.size);
      const first = Math.min(k, this.capacity - this.read);
      out.set(this.ring.subarray(this.read, this.read + first), 0);
      if (k > first) out.set(this.ring.subarray(0, k - first), first);
      this.read = (this.read + k) % this.capacity;
      this.size -= k;
      this.stats.played += k;
      if (k < n) {
        // Ran dry inside this render quantum: silence goes out from here. (Reaching
        // exactly zero is fine: the next frame may still arrive in time.)
        this.playing = false;
        this.dryAt = currentTime + k / sampleRate;
      }
      this.dirty = true;
    }
    if (k < n) out.fill(0, k);
    this.report(false);
    return true;
  }

  report(now) {
    // At most ~20 reports a second: enough for meters and tests, cheap for the thread.
    if (!now && (!this.dirty || currentTime - this.lastReport < 0.05)) return;
    this.stats.buffered = this.size;
    this.port.postMessage({ type: "stats", ...this.stats });
    this.lastReport = currentTime;
    this.dirty = false;
  }
}

registerProcessor("callwright-playback", CallwrightPlayback);
