// Callwright microphone capture (AudioWorklet).
//
// Converts the microphone's float samples to PCM16 (signed 16-bit little-endian, the
// protocol's `pcm16`) at the AudioContext's own rate, and posts one 20 ms frame at a
// time to the main thread, which sends it as one binary WebSocket message. Frames keep
// coming during silence too: the server's turn-taking runs on the caller's audio clock.

class CallwrightCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const frameMs = (options.processorOptions && options.processorOptions.frameMs) || 20;
    // `sampleRate` is the AudioWorkletGlobalScope's rate: the AudioContext's.
    this.frameSize = Math.round((sampleRate * frameMs) / 1000);
    this.frame = new Int16Array(this.frameSize);
    this.filled = 0;
    this.peak = 0;
  }

  process(inputs) {
    const input = inputs[0];
    // No input connected yet (or the track ended): nothing to capture this quantum.
    if (!input || input.length === 0) return true;
    const channel = input[0]; // mono: getUserMedia is asked for one channel
    for (let i = 0; i < channel.length; i++) {
      let s = channel[i];
      if (s > 1) s = 1;
      else if (s < -1) s = -1;
      const a = s < 0 ? -s : s;
      if (a > this.peak) this.peak = a;
      this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.filled === this.frameSize) this.flush();
    }
    return true;
  }

  flush() {
    // Int16Array is little-endian on every platform browsers run on; transfer the
    // buffer instead of copying it, and start a fresh one.
    const buffer = this.frame.buffer;
    this.port.postMessage({ pcm: buffer, peak: this.peak }, [buffer]);
    this.frame = new Int16Array(this.frameSize);
    this.filled = 0;
    this.peak = 0;
  }
}

registerProcessor("callwright-capture", CallwrightCapture);
