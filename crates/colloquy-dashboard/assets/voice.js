// The playground's voice: the microphone captured at the agent's input format and sent as
// `user_audio_chunk`s, and the agent's `audio` events played in order, stopped at an
// `interruption`. Formats are the protocol's: 16-bit little-endian PCM at a rate, or µ-law.
"use strict";

const CHUNK_MS = 100;

function rateOf(format) {
  return Number(format.split("_")[1]) || 16000;
}

function ulawToLinear(byte) {
  const u = ~byte & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  return u & 0x80 ? 0x84 - t : t - 0x84;
}

function linearToUlaw(sample) {
  const sign = sample < 0 ? 0x80 : 0;
  let magnitude = Math.min(Math.abs(sample), 32635) + 0x84;
  let exponent = 7;
  for (let mask = 0x4000; (magnitude & mask) === 0 && exponent > 0; mask >>= 1) exponent -= 1;
  const mantissa = (magnitude >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function encode(samples, format) {
  if (format.startsWith("ulaw")) {
    return Uint8Array.from(samples, (s) => linearToUlaw(Math.round(Math.max(-1, Math.min(1, s)) * 32767)));
  }
  const out = new DataView(new ArrayBuffer(samples.length * 2));
  samples.forEach((s, i) => out.setInt16(i * 2, Math.round(Math.max(-1, Math.min(1, s)) * 32767), true));
  return new Uint8Array(out.buffer);
}

function decode(base64, format) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  if (format.startsWith("ulaw")) return Float32Array.from(bytes, (b) => ulawToLinear(b) / 32768);
  const view = new DataView(bytes.buffer);
  const out = new Float32Array(Math.floor(bytes.length / 2));
  for (let i = 0; i < out.length; i += 1) out[i] = view.getInt16(i * 2, true) / 32768;
  return out;
}

// Starts the microphone; `send` gets each encoded chunk. Resolves to a function that stops it.
export async function listen(inputFormat, send) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
  const context = new AudioContext({ sampleRate: rateOf(inputFormat) });
  await context.audioWorklet.addModule("/assets/capture-worklet.js");
  const source = context.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(context, "capture");
  const perChunk = (context.sampleRate * CHUNK_MS) / 1000;
  let pending = new Float32Array(0);
  capture.port.onmessage = ({ data }) => {
    const joined = new Float32Array(pending.length + data.length);
    joined.set(pending);
    joined.set(data, pending.length);
    pending = joined;
    while (pending.length >= perChunk) {
      send(toBase64(encode(pending.subarray(0, perChunk), inputFormat)));
      pending = pending.slice(perChunk);
    }
  };
  source.connect(capture);
  return () => {
    stream.getTracks().forEach((t) => t.stop());
    context.close();
  };
}

// Plays the agent's audio in order; `onSpeaking(bool)` follows whether anything is playing.
export class Speaker {
  constructor(outputFormat, onSpeaking) {
    this.format = outputFormat;
    this.context = new AudioContext({ sampleRate: rateOf(outputFormat) });
    this.next = 0;
    this.playing = new Set();
    this.dropUpTo = 0;
    this.onSpeaking = onSpeaking;
  }

  play(event) {
    if (event.event_id <= this.dropUpTo) return;
    const samples = decode(event.audio_base_64, this.format);
    if (samples.length === 0) return;
    const buffer = this.context.createBuffer(1, samples.length, this.context.sampleRate);
    buffer.copyToChannel(samples, 0);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    this.next = Math.max(this.next, this.context.currentTime);
    source.start(this.next);
    this.next += buffer.duration;
    this.playing.add(source);
    this.onSpeaking(true);
    source.onended = () => {
      this.playing.delete(source);
      if (this.playing.size === 0) this.onSpeaking(false);
    };
  }

  // The user interrupted answer `eventId`: what is queued of it stops now.
  interrupt(eventId) {
    this.dropUpTo = Math.max(this.dropUpTo, eventId);
    this.playing.forEach((s) => s.stop());
    this.playing.clear();
    this.next = 0;
    this.onSpeaking(false);
  }

  close() {
    this.context.close();
  }
}
