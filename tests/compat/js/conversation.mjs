// A text conversation held by the official @elevenlabs/client against Colloquy: a webhook tool
// and a client tool in a public agent's conversation, then a private agent through a signed URL,
// then an MCP tool call approved and denied through the client's approval callback.
// Needs COLLOQUY_URL, COLLOQUY_KEY, COLLOQUY_PUBLIC_AGENT, COLLOQUY_PRIVATE_AGENT, COLLOQUY_MCP_AGENT.
import WebSocket from "ws";
import { Conversation } from "@elevenlabs/client";

// Node 20 has no global WebSocket; the client uses the global one.
globalThis.WebSocket = WebSocket;

const base = process.env.COLLOQUY_URL;
const origin = base.replace("http://", "ws://");
let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** Starts a session and returns helpers to wait for agent messages. */
async function session(options) {
  const messages = [];
  const waiters = [];
  let disconnected = null;
  const conversation = await Conversation.startSession({
    textOnly: true,
    connectionType: "websocket",
    ...options,
    onMessage: (m) => {
      messages.push(m);
      waiters.splice(0).forEach((w) => w());
    },
    onDisconnect: (d) => {
      disconnected = d;
      waiters.splice(0).forEach((w) => w());
    },
    onError: (e) => console.log("client error:", e),
  });
  const agentMessage = async (predicate, timeoutMs = 10000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = messages.find((m) => m.source === "ai" && predicate(m.message));
      if (found) return found.message;
      if (Date.now() > deadline) throw new Error(`no matching agent message; got ${JSON.stringify(messages)}`);
      await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
    }
  };
  return { conversation, messages, agentMessage, disconnected: () => disconnected };
}

await check("public agent: first message, webhook tool, client tool", async () => {
  const calls = [];
  const s = await session({
    agentId: process.env.COLLOQUY_PUBLIC_AGENT,
    origin,
    clientTools: { show_map: async (params) => { calls.push(params); return `map of ${params.city}`; } },
  });
  const id = s.conversation.getId();
  assert(/^[0-9a-f-]{36}$/.test(id), `conversation id ${id}`);
  await s.agentMessage((m) => m === "Hello from Colloquy!");
  s.conversation.sendUserMessage("what is the weather");
  const weather = await s.agentMessage((m) => m.includes("sunny"));
  assert(weather.startsWith("Tool said:"), weather);
  s.conversation.sendUserMessage("show me a map");
  await s.agentMessage((m) => m.includes("map of Lyon"));
  assert(calls.length === 1 && calls[0].city === "Lyon", JSON.stringify(calls));
  await s.conversation.endSession();
  const r = await fetch(`${base}/api/tool-calls?executionId=${id}`, { headers: { authorization: `Bearer ${process.env.COLLOQUY_KEY}` } });
  const recorded = await r.json();
  const names = recorded.map((c) => c.toolName);
  assert(JSON.stringify(names) === JSON.stringify(["get_weather", "show_map"]), JSON.stringify(recorded));
});

await check("private agent through a signed URL", async () => {
  const r = await fetch(`${base}/v1/convai/conversation/get-signed-url?agent_id=${process.env.COLLOQUY_PRIVATE_AGENT}`, {
    headers: { "xi-api-key": process.env.COLLOQUY_KEY },
  });
  const { signed_url } = await r.json();
  assert(signed_url && signed_url.startsWith("ws://"), signed_url);
  const s = await session({ signedUrl: signed_url });
  s.conversation.sendUserMessage("hello");
  await s.agentMessage((m) => m.startsWith("You said: hello"));
  await s.conversation.endSession();
});

await check("a file uploaded without a key goes to the LLM with a multimodal message", async () => {
  const s = await session({ agentId: process.env.COLLOQUY_PUBLIC_AGENT, origin, clientTools: { show_map: async () => "x" } });
  await s.agentMessage((m) => m === "Hello from Colloquy!");
  const png = Buffer.from("89504e470d0a1a0a0000000d4948445200000001000000010806000000", "hex");
  const { fileId } = await s.conversation.uploadFile(new File([png], "dot.png", { type: "image/png" }));
  assert(fileId && fileId.startsWith("cfile_"), fileId);
  s.conversation.sendMultimodalMessage({ text: "what is this", fileId });
  await s.agentMessage((m) => m.startsWith("You said: what is this [image_url]"));
  await s.conversation.endSession();
});

await check("end_call ends the session from the server", async () => {
  const s = await session({ agentId: process.env.COLLOQUY_PUBLIC_AGENT, origin, clientTools: { show_map: async () => "x" } });
  s.conversation.sendUserMessage("bye now");
  const deadline = Date.now() + 10000;
  while (!s.disconnected() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert(s.disconnected(), "the session ended");
});

await check("MCP tool calls wait for onMCPToolApprovalRequest", async () => {
  const asked = [];
  const states = [];
  let status = null;
  let answer = true;
  const s = await session({
    agentId: process.env.COLLOQUY_MCP_AGENT,
    origin,
    onMCPConnectionStatus: (st) => { status = st; },
    onMCPToolCall: (call) => states.push(call.state),
    onMCPToolApprovalRequest: async (call) => { asked.push(call); return answer; },
  });
  const id = s.conversation.getId();
  s.conversation.sendUserMessage("sum please");
  await s.agentMessage((m) => m.trim() === "Tool said: 5");
  assert(asked.length === 1 && asked[0].tool_name === "add", JSON.stringify(asked));
  assert(JSON.stringify(asked[0].parameters) === JSON.stringify({ a: 2, b: 3 }), JSON.stringify(asked[0]));
  assert(status && status.integrations[0].is_connected && status.integrations[0].tool_count === 6, JSON.stringify(status));
  answer = false;
  s.conversation.sendUserMessage("sum please again");
  await s.agentMessage((m) => m.includes("denied"));
  assert(JSON.stringify(states) === JSON.stringify(["awaiting_approval", "loading", "success", "awaiting_approval", "failure"]), JSON.stringify(states));
  await s.conversation.endSession();
  const r = await fetch(`${base}/api/tool-calls?executionId=${id}`, { headers: { authorization: `Bearer ${process.env.COLLOQUY_KEY}` } });
  const recorded = (await r.json()).map((c) => `${c.toolName}:${c.status}`);
  assert(JSON.stringify(recorded) === JSON.stringify(["add:success", "add:error"]), JSON.stringify(recorded));
});

console.log(`js-client: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
