// A voice session of the official conversation client (@elevenlabs/client, its browser bundle)
// in headless Chromium, over a signed URL with connectionType "websocket". Chromium's fake
// microphone plays a WAV file made by espeak-ng (two seconds of silence, "hello there", then
// silence), which starts while the agent is still speaking its long greeting: the page must
// see the greeting's audio, the interruption with the corrected greeting, the user's words,
// the agent's answer, its audio, and the mode go speaking → listening.
//
// Reads COLLOQUY_URL, COLLOQUY_KEY, VOICE_WAV (the fake microphone's file), CLIENT_BUNDLE (the
// client's lib.iife.js) and PLAYWRIGHT (playwright-core's directory) from the environment.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT);
const base = process.env.COLLOQUY_URL;
const key = process.env.COLLOQUY_KEY;
const failures = [];
let passed = 0;

function check(ok, what) {
  console.log(`${ok ? "ok   " : "FAIL "} ${what}`);
  if (ok) passed += 1;
  else failures.push(what);
}

async function api(method, path, body) {
  const answer = await fetch(base + path, {
    method,
    headers: { "xi-api-key": key, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await answer.text();
  if (!answer.ok) throw new Error(`${method} ${path}: ${answer.status} ${text}`);
  return JSON.parse(text);
}

const greeting =
  "Welcome to the voice test. I am going to keep talking for quite a while, so that you have " +
  "plenty of time to interrupt me before I get anywhere near the end of this long greeting.";
const agent = await api("POST", "/v1/convai/agents/create", {
  name: "Browser voice",
  conversation_config: {
    agent: { first_message: greeting, prompt: { prompt: "Echo the user.", llm: "gpt-4o" } },
    asr: { user_input_audio_format: "pcm_16000" },
    tts: { agent_output_audio_format: "pcm_16000" },
  },
  platform_settings: { auth: { enable_auth: true } },
});
const { signed_url: signedUrl } = await api(
  "GET",
  `/v1/convai/conversation/get-signed-url?agent_id=${agent.agent_id}`,
);

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
    "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessChecks",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${process.env.VOICE_WAV}%noloop`],
});
const context = await browser.newContext();
const page = await context.newPage();
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(e.message));
if (process.env.VOICE_DEBUG) {
  page.on("console", (m) => console.log(`console.${m.type()}: ${m.text()}`));
  page.on("websocket", (ws) => {
    console.log(`websocket ${ws.url()}`);
    ws.on("framereceived", (f) => console.log(`<- ${String(f.payload).slice(0, 200)}`));
    ws.on("framesent", (f) => console.log(`-> ${String(f.payload).slice(0, 200)}`));
    ws.on("close", () => console.log("websocket closed"));
  });
}
// The page and the client bundle, served by the test itself under the server's own origin (a
// secure context for getUserMedia, and the socket stays same-host, which Chromium's local
// network access checks ask of a page on loopback).
const origin = `${base}/voice-test`;
await page.route(`${origin}/**`, (route) => {
  const url = new URL(route.request().url());
  if (url.pathname === "/voice-test/client.js") {
    return route.fulfill({ contentType: "application/javascript", body: readFileSync(process.env.CLIENT_BUNDLE) });
  }
  return route.fulfill({ contentType: "text/html", body: `<!doctype html><script src="/voice-test/client.js"></script>` });
});
await page.goto(`${origin}/`);

await page.evaluate(async (signedUrl) => {
  const seen = (window.seen = { messages: [], modes: [], audio: 0, interruptions: [], corrections: [], errors: [], alignments: 0 });
  window.conversation = await ElevenLabsClient.Conversation.startSession({
    signedUrl,
    connectionType: "websocket",
    onMessage: (m) => seen.messages.push({ source: m.source, message: m.message }),
    onModeChange: (m) => seen.modes.push(m.mode),
    onAudio: () => (seen.audio += 1),
    onAudioAlignment: () => (seen.alignments += 1),
    onInterruption: (e) => seen.interruptions.push(e),
    onAgentResponseCorrection: (e) => seen.corrections.push(e),
    onError: (message) => seen.errors.push(String(message)),
  });
}, signedUrl);

async function waitFor(what, predicate, ms = 30000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const seen = await page.evaluate(() => window.seen);
    if (predicate(seen)) return seen;
    await new Promise((r) => setTimeout(r, 200));
  }
  const seen = await page.evaluate(() => window.seen);
  check(false, `${what} (timed out; saw ${JSON.stringify(seen).slice(0, 800)})`);
  return seen;
}

let seen = await waitFor("the greeting's audio plays", (s) => s.audio > 0 && s.modes.includes("speaking"));
check(seen.audio > 0 && seen.modes.includes("speaking"), "the greeting is heard and the mode is speaking");
seen = await waitFor("the user interrupts the greeting", (s) => s.interruptions.length > 0);
check(seen.interruptions.length > 0, "speaking over the greeting interrupts it");
const correction = seen.corrections[0];
check(
  correction && greeting.startsWith(correction.corrected_agent_response) &&
    correction.corrected_agent_response.length < greeting.length,
  `the greeting is corrected to what was heard: ${JSON.stringify(correction)}`,
);
seen = await waitFor("the user's words", (s) => s.messages.some((m) => m.source === "user"));
const said = seen.messages.find((m) => m.source === "user");
check(said && said.message === "hello there", `the user's words are transcribed: ${JSON.stringify(said)}`);
seen = await waitFor(
  "the agent answers",
  (s) => s.messages.some((m) => m.source === "ai" && m.message.startsWith("You said")),
);
check(seen.messages.some((m) => m.source === "ai" && /^You said: hello there/.test(m.message)), "the agent answers them");
seen = await waitFor("the answer is spoken, then the agent listens", (s) => s.modes.at(-1) === "listening" && s.alignments > 1);
check(seen.modes.includes("speaking") && seen.modes.at(-1) === "listening", `modes: ${seen.modes.join(" → ")}`);
check(seen.errors.length === 0, `no errors: ${JSON.stringify(seen.errors)}`);
check(pageErrors.length === 0, `no page errors: ${JSON.stringify(pageErrors)}`);
await page.evaluate(() => window.conversation.endSession());
await browser.close();

console.log(`browser voice: ${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
