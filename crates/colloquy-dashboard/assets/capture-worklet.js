// The playground's microphone: an AudioWorklet that hands each block of captured samples to
// the page, which encodes and sends them. It runs in an AudioContext at the agent's input rate,
// so the browser resamples the microphone for it.
class Capture extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) this.port.postMessage(channel.slice(0));
    return true;
  }
}
registerProcessor("capture", Capture);
