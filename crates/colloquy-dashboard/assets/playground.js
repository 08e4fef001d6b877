// The playground: a live conversation with an agent over the same WebSocket protocol the
// official clients speak, typed (a text-only conversation) or, with the microphone on, spoken
// (voice.js captures and plays the audio). The page asks the dashboard for a one-time signed URL
// (the API key never reaches this script), then shows messages and tool calls as they happen.
import { listen, Speaker } from "/assets/voice.js";

const root = document.getElementById("playground");
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const log = document.getElementById("chat-log");
const statusLine = document.getElementById("status");
const startButton = document.getElementById("start");
const endButton = document.getElementById("end");
const composer = document.getElementById("composer");
const input = document.getElementById("message");
const conversationLink = document.getElementById("conversation-link");
const voiceToggle = document.getElementById("voice");

let socket = null;
let streaming = null;
const toolCalls = new Map();
// A voice conversation: its speaker, the microphone's stop, the typed messages whose
// transcripts are not shown again, and the last answer's entry (for its correction).
let voice = null;
let lastAnswer = null;

function setStatus(text) {
  statusLine.textContent = text;
}

function entry(role, who, text) {
  const item = document.createElement("li");
  item.className = role;
  const label = document.createElement("div");
  label.className = "who";
  label.textContent = who;
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  item.append(label, body);
  log.append(item);
  item.scrollIntoView({ block: "nearest" });
  return body;
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function toolStarted(event) {
  const item = document.createElement("li");
  item.className = "tool";
  const box = document.createElement("div");
  box.className = "toolcall running";
  box.dataset.callId = event.tool_call_id;
  box.textContent = `Tool ${event.tool_name} (${event.tool_type}): running…`;
  item.append(box);
  log.append(item);
  toolCalls.set(event.tool_call_id, { box, started: performance.now() });
}

// A duration the way every page of the dashboard writes one (format.rs's duration_secs):
// "840 µs", "12.3 ms", "1.42 s", "3 min 5 s".
function duration(ms) {
  const secs = ms / 1000;
  if (secs <= 0) return "0 s";
  if (secs < 0.001) return `${Math.round(secs * 1e6)} µs`;
  if (secs < 1) return `${(secs * 1000).toFixed(1)} ms`;
  if (secs < 60) return `${secs.toFixed(2)} s`;
  return `${Math.floor(secs / 60)} min ${Math.round(secs % 60)} s`;
}

function toolFinished(event) {
  const known = toolCalls.get(event.tool_call_id);
  // Timed here, from the request to the response the browser saw.
  const elapsed = known ? duration(performance.now() - known.started) : "";
  const box = known ? known.box : (toolStarted(event), toolCalls.get(event.tool_call_id).box);
  box.className = event.is_error ? "toolcall failed" : "toolcall ok";
  box.textContent = `Tool ${event.tool_name} (${event.tool_type}): ${event.is_error ? "failed" : "ok"} ${elapsed}`.trim();
}

// An MCP call's progress; one that awaits approval gets Approve and Reject buttons, and the
// agent waits for the answer.
const mcpCalls = new Map();
function mcpCall(call) {
  let box = mcpCalls.get(call.tool_call_id);
  if (!box) {
    const item = document.createElement("li");
    item.className = "tool";
    box = document.createElement("div");
    item.append(box);
    log.append(item);
    mcpCalls.set(call.tool_call_id, box);
  }
  box.replaceChildren();
  const line = document.createElement("div");
  box.append(line);
  if (call.state === "awaiting_approval") {
    box.className = "toolcall running";
    line.textContent = `MCP tool ${call.tool_name} asks to run with ${JSON.stringify(call.parameters)}`;
    for (const [label, approved] of [["Approve", true], ["Reject", false]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = approved ? "" : "secondary";
      button.textContent = `${label} ${call.tool_name}`;
      button.addEventListener("click", () => {
        send({ type: "mcp_tool_approval_result", tool_call_id: call.tool_call_id, is_approved: approved });
        line.textContent = `MCP tool ${call.tool_name}: ${approved ? "approved" : "rejected"}`;
        box.querySelectorAll("button").forEach((b) => b.remove());
      });
      box.append(" ", button);
    }
  } else {
    box.className = call.state === "failure" ? "toolcall failed" : call.state === "success" ? "toolcall ok" : "toolcall running";
    const detail = call.state === "failure" ? `: ${call.error_message}` : "";
    line.textContent = `MCP tool ${call.tool_name}: ${call.state}${detail}`;
  }
}

function handle(message) {
  switch (message.type) {
    case "conversation_initiation_metadata": {
      const id = message.conversation_initiation_metadata_event.conversation_id;
      conversationLink.href = `/conversations/${encodeURIComponent(id)}`;
      conversationLink.textContent = `Conversation ${id}`;
      conversationLink.hidden = false;
      setStatus(voice ? "Connected. Speak, or type." : "Connected. Say something.");
      if (voice) startVoice(message.conversation_initiation_metadata_event);
      input.disabled = false;
      composer.querySelector("button").disabled = false;
      endButton.disabled = false;
      input.focus();
      break;
    }
    case "agent_chat_response_part": {
      const part = message.text_response_part;
      if (part.type === "start") streaming = entry("agent", "Agent", "");
      else if (part.type === "delta") (streaming || (streaming = entry("agent", "Agent", ""))).textContent += part.text;
      break;
    }
    case "agent_response": {
      const text = message.agent_response_event.agent_response;
      if (streaming) streaming.textContent = text;
      else streaming = entry("agent", "Agent", text);
      lastAnswer = streaming;
      streaming = null;
      break;
    }
    case "user_transcript": {
      const text = message.user_transcription_event.user_transcript;
      if (voice && voice.typed[0] === text) voice.typed.shift();
      else if (voice) entry("user", "You (spoken)", text);
      break;
    }
    case "audio":
      if (voice && voice.speaker) voice.speaker.play(message.audio_event);
      break;
    case "interruption":
      if (voice && voice.speaker) voice.speaker.interrupt(message.interruption_event.event_id);
      break;
    case "agent_response_correction":
      if (lastAnswer) {
        lastAnswer.textContent = `${message.agent_response_correction_event.corrected_agent_response} … (interrupted)`;
        lastAnswer.parentElement.classList.add("interrupted");
      }
      break;
    case "agent_tool_request":
      toolStarted(message.agent_tool_request);
      break;
    case "agent_tool_response":
      toolFinished(message.agent_tool_response);
      break;
    case "mcp_tool_call":
      mcpCall(message.mcp_tool_call);
      break;
    case "client_tool_call": {
      const call = message.client_tool_call;
      entry("tool", "Client tool", `${call.tool_name} asked the client; the playground runs no client tools.`);
      send({ type: "client_tool_result", tool_call_id: call.tool_call_id, result: "The dashboard playground runs no client tools.", is_error: true });
      break;
    }
    case "ping":
      send({ type: "pong", event_id: message.ping_event.event_id });
      break;
    case "error":
      entry("tool", "Error", message.error_event.message);
      break;
    default:
      break;
  }
}

startButton.addEventListener("click", async () => {
  startButton.disabled = true;
  setStatus("Connecting…");
  const answer = await fetch(root.dataset.sessionUrl, { method: "POST", headers: { "x-csrf-token": csrf } });
  if (!answer.ok) {
    setStatus(`Could not start: ${answer.status} ${await answer.text()}`);
    startButton.disabled = false;
    return;
  }
  const { signed_url: url } = await answer.json();
  voice = voiceToggle.checked ? { speaker: null, stop: null, typed: [] } : null;
  socket = new WebSocket(url);
  // Typed conversations are text only, as the official clients' textOnly; the microphone makes
  // a voice conversation, spoken and recorded.
  const init = voice ? {} : { conversation_config_override: { conversation: { text_only: true } } };
  socket.addEventListener("open", () => send({ type: "conversation_initiation_client_data", ...init }));
  socket.addEventListener("message", (event) => handle(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    setStatus(`Conversation ended${event.reason ? `: ${event.reason}` : "."}`);
    input.disabled = true;
    composer.querySelector("button").disabled = true;
    endButton.disabled = true;
    startButton.disabled = false;
    socket = null;
    stopVoice();
  });
});

async function startVoice(metadata) {
  voice.speaker = new Speaker(metadata.agent_output_audio_format, (speaking) => {
    root.dataset.speaking = speaking ? "yes" : "no";
    setStatus(speaking ? "The agent is speaking…" : "Listening.");
  });
  try {
    voice.stop = await listen(metadata.user_input_audio_format, (chunk) => send({ user_audio_chunk: chunk }));
    root.dataset.microphone = "on";
  } catch (error) {
    setStatus(`The microphone could not start (${error.message}); type instead.`);
  }
}

function stopVoice() {
  if (!voice) return;
  if (voice.stop) voice.stop();
  if (voice.speaker) voice.speaker.close();
  root.dataset.microphone = "off";
  voice = null;
}

endButton.addEventListener("click", () => {
  if (socket) socket.close(1000, "ended in the playground");
});

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  entry("user", "You", text);
  if (voice) voice.typed.push(text);
  send({ type: "user_message", text });
  input.value = "";
});
