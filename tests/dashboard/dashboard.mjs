// The dashboard, end to end, in headless Chromium: sign in, create an agent, hold a playground
// conversation that calls a webhook tool (the fake LLM asks for get_weather when the user says
// "weather"), find the call on the conversation's timeline, filter the tool's execution log,
// run a test and watch it pass, look at an MCP server; then check that another workspace's key
// sees none of it, that forms refuse requests without their CSRF token, that the CSP holds,
// and that the main pages are labelled and keyboard-navigable. Screenshots of every step go
// to $DASHBOARD_SCREENSHOTS.
import { mkdirSync, readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const BASE = process.env.COLLOQUY_URL;
const KEY = process.env.COLLOQUY_KEY;
const OTHER_KEY = process.env.COLLOQUY_OTHER_KEY;
const FAKES = process.env.COLLOQUY_FAKES_URL;
const MCP_URL = process.env.COLLOQUY_MCP_URL;
const SHOTS = process.env.DASHBOARD_SCREENSHOTS;
// axe-core, evaluated in each page through the DevTools protocol (the CSP allows no injected
// script tag, and is not relaxed for the test).
const AXE = readFileSync(process.env.DASHBOARD_AXE, "utf8");
mkdirSync(SHOTS, { recursive: true });

let passed = 0;
let failed = 0;
let shot = 0;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function api(method, path, body, key = KEY) {
  const answer = await fetch(`${BASE}${path}`, {
    method,
    headers: { "xi-api-key": key, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await answer.text();
  check(answer.ok, `${method} ${path}: ${answer.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--autoplay-policy=no-user-gesture-required",
    // The playground's microphone: a fake device that says "hello there" after two seconds.
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${process.env.DASHBOARD_MIC_WAV}%noloop`],
});
const cspViolations = [];

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on("pageerror", (e) => cspViolations.push(`page error: ${e.message}`));
  return { context, page };
}

async function step(name, page, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL - ${name}: ${e.stack || e}`);
  } finally {
    shot += 1;
    const file = `${SHOTS}/${String(shot).padStart(2, "0")}-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}.png`;
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
  }
  if (failed > 0) {
    await browser.close();
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(1);
  }
}

async function signIn(page, key) {
  await page.goto(`${BASE}/`);
  check(page.url().includes("/login"), `not sent to sign in: ${page.url()}`);
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${BASE}/`);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
}

// Every visible form control has an accessible name, every button says what it does, every
// chart has a text alternative.
async function accessibilitySmoke(page) {
  const problems = await page.evaluate(() => {
    const out = [];
    const named = (el) => {
      if (el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")) return true;
      if (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`)) return true;
      return !!el.closest("label");
    };
    for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
      if (!named(el)) out.push(`unlabelled ${el.outerHTML.slice(0, 80)}`);
    }
    for (const el of document.querySelectorAll("button, a[href]")) {
      if (!el.textContent.trim() && !el.getAttribute("aria-label") && !el.hidden) out.push(`nameless ${el.outerHTML.slice(0, 80)}`);
    }
    for (const el of document.querySelectorAll("svg")) {
      if (el.getAttribute("role") !== "img" || !el.getAttribute("aria-label")) out.push("svg without role=img and aria-label");
    }
    if (document.querySelectorAll("h1").length !== 1) out.push("not exactly one h1");
    if (!document.documentElement.lang) out.push("no lang");
    if (!document.querySelector("main")) out.push("no main landmark");
    return out;
  });
  check(problems.length === 0, `accessibility: ${problems.join("; ")} on ${page.url()}`);
  // Keyboard: the first Tab reaches the skip link, which moves focus to the content.
  await page.keyboard.press("Tab");
  const first = await page.evaluate(() => document.activeElement.textContent.trim());
  check(first === "Skip to content", `first Tab focused "${first}"`);
  await page.keyboard.press("Enter");
  const focused = await page.evaluate(() => document.activeElement.id);
  check(focused === "main", `skip link moved focus to "${focused}"`);
  await page.keyboard.press("Tab");
  const next = await page.evaluate(() => document.activeElement.tagName);
  check(["A", "INPUT", "SELECT", "BUTTON", "TEXTAREA", "SUMMARY"].includes(next), `Tab after the skip link reached ${next}`);
}

const weather = await api("POST", "/v1/convai/tools", { tool_config: {
  type: "webhook", name: "get_weather", description: "Current weather",
  api_schema: { url: `${FAKES}/weather`, method: "POST",
    request_body_schema: { type: "object", properties: { city: { type: "string", description: "City" } } } } } });
const mcpServer = await api("POST", "/v1/convai/mcp-servers", { config: { name: "dashboard mcp", url: MCP_URL } });
const { page, context } = await newPage();
let agentId;
let conversationId;
let invocationUrl;

await step("sign in keeps the key in a secure HttpOnly cookie", page, async () => {
  await signIn(page, KEY);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "__Host-colloquy_session");
  check(session, `no session cookie: ${JSON.stringify(cookies)}`);
  check(session.httpOnly && session.secure && session.sameSite === "Strict", `cookie flags: ${JSON.stringify(session)}`);
  check(!session.value.includes(KEY), "the cookie holds the key in clear");
  const visible = await page.evaluate(() => document.cookie + JSON.stringify(localStorage));
  check(!visible.includes("colloquy_session") && !visible.includes(KEY), `scripts can see the session: ${visible}`);
});

await step("a wrong key is refused", page, async () => {
  const { page: other, context: ctx } = await newPage();
  await other.goto(`${BASE}/login`);
  await other.getByLabel("API key").fill("sk_wrong");
  await other.getByRole("button", { name: "Sign in" }).click();
  await other.getByRole("alert").filter({ hasText: "not valid" }).waitFor();
  await ctx.close();
});

await step("create an agent", page, async () => {
  await page.goto(`${BASE}/agents`);
  await page.getByLabel("Name", { exact: true }).fill("Dashboard weather agent");
  await page.getByLabel("System prompt").fill("You tell the weather.");
  await page.getByLabel("First message").fill("Hi, ask me about the weather.");
  await page.getByLabel("LLM (empty for the default)").fill("gpt-4o-mini");
  await page.getByRole("button", { name: "Create agent" }).click();
  await page.waitForURL(/\/agents\/agent_/);
  agentId = page.url().split("/agents/")[1];
  await page.getByRole("heading", { name: "Dashboard weather agent" }).waitFor();
});

await step("set the agent up in its tabs' forms, without JSON", page, async () => {
  const tabs = page.getByRole("navigation", { name: "Agent settings" });
  await tabs.getByRole("link", { name: "Agent", exact: true }).waitFor();
  await page.getByLabel("First message").fill("Hi, ask me about the weather anywhere.");
  await page.getByLabel("Temperature").fill("0.2");
  await page.getByLabel("Language").selectOption("en");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
  await tabs.getByRole("link", { name: "Tools" }).click();
  await page.getByLabel(/get_weather/).check();
  await page.getByLabel(/end_call/).check();
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
  await page.locator(`a[href="/tools/${weather.id}"]`).waitFor();
  check(await page.getByLabel(/get_weather/).isChecked(), "the tool is not shown as chosen");
  const agent = await api("GET", `/v1/convai/agents/${agentId}`);
  const prompt = agent.conversation_config.agent.prompt;
  check(prompt.tool_ids.includes(weather.id), `tool not saved: ${JSON.stringify(prompt.tool_ids)}`);
  check(prompt.built_in_tools.end_call?.params?.system_tool_type === "end_call", "end_call not on");
  check(prompt.temperature === 0.2, `temperature ${prompt.temperature}`);
  check(agent.conversation_config.agent.first_message.endsWith("anywhere."), "first message not saved");
});

await step("a refused setting is shown at its field and changes nothing", page, async () => {
  await page.getByRole("navigation", { name: "Agent settings" }).getByRole("link", { name: "Voice" }).click();
  await page.getByLabel("Speed").fill("3");
  await page.getByRole("button", { name: "Save" }).click();
  const speed = page.getByLabel("Speed");
  await page.locator("#f-conversation-config-tts-speed-error").waitFor();
  check(await speed.getAttribute("aria-invalid") === "true", "the field is not marked invalid");
  check(await speed.inputValue() === "3", "what was typed is gone");
  const agent = await api("GET", `/v1/convai/agents/${agentId}`);
  check(agent.conversation_config.tts.speed !== 3, "the bad value was stored");
});

await step("a bad configuration is refused with the API's message and changes nothing", page, async () => {
  await page.goto(`${BASE}/agents/${agentId}?tab=advanced`);
  await page.getByLabel(/Agent configuration/).fill("{not json");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("alert").filter({ hasText: "Not valid JSON" }).waitFor();
  await page.getByLabel(/Agent configuration/).fill(JSON.stringify({ conversation_config: { agent: { prompt: { temperature: "hot" } } } }));
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("alert").filter({ hasText: "temperature" }).waitFor();
  const agent = await api("GET", `/v1/convai/agents/${agentId}`);
  check(agent.conversation_config.agent.prompt.temperature !== "hot", "the bad value was stored");
});

await step("edit the configuration as JSON in the Advanced tab", page, async () => {
  await page.goto(`${BASE}/agents/${agentId}?tab=advanced`);
  const editor = page.getByLabel(/Agent configuration/);
  const doc = JSON.parse(await editor.inputValue());
  doc.tags = ["dashboard"];
  await editor.fill(JSON.stringify(doc, null, 2));
  await page.getByRole("button", { name: "Save" }).click();
  await page.waitForURL(`${BASE}/agents/${agentId}?tab=advanced&saved=1`);
  const agent = await api("GET", `/v1/convai/agents/${agentId}`);
  check(agent.tags.includes("dashboard"), "tags not saved");
  check(agent.conversation_config.agent.prompt.tool_ids.includes(weather.id), "the tool was lost");
});

await step("search the agents list", page, async () => {
  await page.goto(`${BASE}/agents`);
  await page.getByLabel("Search by name").fill("weather agent");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByRole("link", { name: "Dashboard weather agent" }).waitFor();
  await page.getByLabel("Search by name").fill("no such agent zzz");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByText("No agents match.").waitFor();
});

await step("duplicate and delete an agent", page, async () => {
  await page.goto(`${BASE}/agents/${agentId}`);
  await page.getByRole("button", { name: "Duplicate" }).click();
  await page.waitForURL((u) => u.pathname.startsWith("/agents/agent_") && !u.pathname.endsWith(agentId));
  const copy = page.url().split("/agents/")[1];
  await page.getByRole("link", { name: "Delete" }).click();
  await page.getByRole("heading", { name: /Delete the agent/ }).waitFor();
  const kept = await fetch(`${BASE}/v1/convai/agents/${copy}`, { headers: { "xi-api-key": KEY } });
  check(kept.status === 200, `deleted before it was confirmed: ${kept.status}`);
  await page.getByRole("button", { name: "Delete the agent" }).click();
  await page.waitForURL(`${BASE}/agents`);
  const answer = await fetch(`${BASE}/v1/convai/agents/${copy}`, { headers: { "xi-api-key": KEY } });
  check(answer.status === 404, `the copy is still there: ${answer.status}`);
});

await step("a playground conversation calls the webhook tool live", page, async () => {
  await page.goto(`${BASE}/agents/${agentId}/playground`);
  await page.getByRole("button", { name: "Start conversation" }).click();
  await page.getByRole("status").filter({ hasText: "Connected" }).waitFor();
  await page.locator("#chat-log").getByText("Hi, ask me about the weather anywhere.").waitFor();
  await page.getByLabel("Your message").fill("what is the weather in Paris?");
  await page.getByRole("button", { name: "Send" }).click();
  await page.locator(".toolcall.ok", { hasText: "get_weather" }).waitFor();
  const took = await page.locator(".toolcall.ok", { hasText: "get_weather" }).textContent();
  check(/ok (\d+ µs|\d+\.\d ms|\d+\.\d\d s)$/.test(took), `the playground's duration is not the dashboard's format: ${took}`);
  await page.locator("#chat-log").getByText(/Tool said:.*sunny/).waitFor();
  const href = await page.locator("#conversation-link").getAttribute("href");
  conversationId = decodeURIComponent(href.split("/conversations/")[1]);
  await page.getByRole("button", { name: "End conversation" }).click();
  await page.getByRole("status").filter({ hasText: "ended" }).waitFor();
});

await step("the playground asks before an MCP tool runs", page, async () => {
  const mcpAgent = await api("POST", "/v1/convai/agents/create", { name: "Dashboard MCP agent", conversation_config: { agent: {
    first_message: "", prompt: { prompt: "Use MCP.", llm: "gpt-4o-mini", mcp_server_ids: [mcpServer.id] } } } });
  await page.goto(`${BASE}/agents/${mcpAgent.agent_id}/playground`);
  await page.getByRole("button", { name: "Start conversation" }).click();
  await page.getByRole("status").filter({ hasText: "Connected" }).waitFor();
  await page.getByLabel("Your message").fill("sum please");
  await page.getByRole("button", { name: "Send" }).click();
  await page.getByRole("button", { name: "Approve add" }).click();
  await page.locator(".toolcall.ok", { hasText: "MCP tool add: success" }).waitFor();
  await page.locator("#chat-log").getByText(/Tool said:.*5/).waitFor();
  await page.getByRole("button", { name: "End conversation" }).click();
});

await step("the conversation shows the call inline and on its timeline", page, async () => {
  await page.goto(`${BASE}/conversations?agent_id=${agentId}`);
  await page.locator(`a[href="/conversations/${conversationId}"]`).click();
  await page.locator(".toolcall", { hasText: "get_weather" }).first().waitFor();
  const order = await page.locator("ol.transcript li.agent", { has: page.locator(".toolcall") }).first()
    .evaluate((li) => [...li.children].map((c) => c.className.split(" ")[0]));
  check(order.indexOf("toolcall") < order.indexOf("text"), `the call after the answer: ${order}`);
  check(await page.locator(".toolcall.failed").count() === 0, "the call shows as failed");
  const bars = page.locator("svg.timeline rect.bar.ok");
  check(await bars.count() === 1, `timeline bars: ${await bars.count()}`);
  const overlaps = await page.locator("svg.timeline").evaluate((svg) => {
    const boxes = [...svg.querySelectorAll("text")].map((t) => t.getBoundingClientRect());
    const svgBox = svg.getBoundingClientRect();
    let found = [];
    boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b) => {
      if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) found.push([a.left, b.left]);
    }));
    boxes.forEach((a) => { if (a.right > svgBox.right + 1 || a.left < svgBox.left - 1) found.push(["outside", a.left]); });
    return found;
  });
  check(overlaps.length === 0, `timeline texts overlap or are cut off: ${JSON.stringify(overlaps)}`);
  const label = await page.locator("svg.timeline").getAttribute("aria-label");
  check(/\d+ turns and 1 tool call over/.test(label) && /0 failed/.test(label), `timeline label: ${label}`);
  const duration = /\d+(\.\d+)? (ms|µs|s)/;
  const inline = (await page.locator(".toolcall", { hasText: "get_weather" }).first().textContent()).match(duration)[0];
  const drawn = (await page.locator("svg.timeline text.value").first().textContent()).match(duration)[0];
  check(inline === drawn, `the call lasts ${inline} inline but ${drawn} on the timeline`);
  const userTurns = await page.locator("svg.timeline circle.turn.user").count();
  const replies = await page.locator("svg.timeline rect.turn.agent").count();
  check(userTurns >= 1 && replies >= 2, `turns on the timeline: ${userTurns} user, ${replies} agent`);
  await page.getByRole("link", { name: /Timeline with every call/ }).click();
  const row = page.locator("table tbody tr", { hasText: "get_weather" });
  await row.waitFor();
  check((await row.textContent()).includes("success"), "status not shown");
  check(/\d+(\.\d)? (ms|µs|s)/.test(await row.textContent()), "duration not shown");
  await row.getByText("Show").click();
  await row.getByText(/sunny/).waitFor();
  check(await page.locator("audio.recording").count() === 0, "a typed conversation has no recording");
});

let ticketPath = "/tickets";
await step("a ticket raised on the call shows the turn and the call on the board and its page", page, async () => {
  await page.goto(`${BASE}/conversations/${conversationId}`);
  const turn = await page.locator("ol.transcript").evaluate((ol) => [...ol.children].findIndex((li) => li.querySelector(".toolcall")));
  await page.getByText("Raise a ticket").click();
  await page.getByLabel("Title", { exact: true }).fill("Weather answer was vague");
  await page.getByLabel("What went wrong").fill("The agent did not say the temperature");
  await page.locator('select[name="turn"]').selectOption(String(turn));
  const option = page.locator('select[name="tool_call"] option', { hasText: "get_weather" });
  await page.locator('select[name="tool_call"]').selectOption(await option.getAttribute("value"));
  await page.getByRole("button", { name: "Raise ticket" }).click();
  await page.waitForURL(/\/tickets\/tkt_/);
  ticketPath = new URL(page.url()).pathname;
  await page.getByRole("heading", { name: "Weather answer was vague" }).waitFor();
  await page.locator(".turn-comment .toolcall", { hasText: "get_weather" }).getByText(/sunny/).waitFor();
  await page.getByLabel("Status").selectOption("in_progress");
  await page.getByRole("button", { name: "Save" }).click();
  await page.goto(`${BASE}/tickets`);
  const column = page.locator("section.column", { has: page.getByRole("heading", { name: /In progress/ }) });
  await column.getByText("The agent did not say the temperature").waitFor();
  await page.goto(`${BASE}/search?q=weather`);
  await page.locator("ol.results mark").first().waitFor();
});

await step("the tool log names the agent that made each call", page, async () => {
  await page.goto(`${BASE}/tools/${weather.id}`);
  const row = page.locator("table tbody tr").first();
  await row.waitFor();
  const cells = await row.textContent();
  check(cells.includes("Dashboard weather agent") && !cells.includes(agentId), `agent by id, not name: ${cells}`);
});

await step("the playground's microphone mode speaks and listens, and the recording plays", page, async () => {
  await page.goto(`${BASE}/agents/${agentId}/playground`);
  await page.getByLabel("Talk with the microphone").check();
  await page.getByRole("button", { name: "Start conversation" }).click();
  await page.locator('#playground[data-microphone="on"]').waitFor();
  // The greeting is spoken by the built-in espeak-ng and played.
  await page.locator('#playground[data-speaking="yes"]').waitFor();
  // The fake microphone's words reach the server and end a turn; this server has no speech
  // recognizer configured, so the turn is answered with the contract's error.
  await page.locator("#chat-log").getByText(/speech recognition/).waitFor({ timeout: 20000 });
  const href = await page.locator("#conversation-link").getAttribute("href");
  const spokenId = decodeURIComponent(href.split("/conversations/")[1]);
  await page.getByRole("button", { name: "End conversation" }).click();
  await page.getByRole("status").filter({ hasText: "ended" }).waitFor();
  let recorded = false;
  for (let i = 0; i < 50 && !recorded; i += 1) {
    await page.goto(`${BASE}/conversations/${spokenId}`);
    recorded = await page.locator("audio.recording").count() === 1;
    if (!recorded) await page.waitForTimeout(200);
  }
  check(recorded, "no recording player");
  const src = await page.locator("audio.recording").getAttribute("src");
  const answer = await page.request.get(`${BASE}${src}`);
  check(answer.ok() && answer.headers()["content-type"] === "audio/mpeg" && (await answer.body()).length > 1000,
    `recording: ${answer.status()} ${answer.headers()["content-type"]}`);
});

await step("the tool's execution log filters and the latency histogram shows", page, async () => {
  await page.goto(`${BASE}/tools`);
  await page.getByRole("link", { name: "get_weather" }).click();
  await page.locator("svg.chart rect.cell").first().waitFor();
  const rows = page.locator("table tbody tr");
  check(await rows.count() === 1, `log rows: ${await rows.count()}`);
  await page.getByLabel("Outcome").selectOption("true");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByText("No calls match.").waitFor();
  await page.getByLabel("Outcome").selectOption("false");
  await page.getByLabel("Agent").selectOption(agentId);
  await page.getByRole("button", { name: "Filter" }).click();
  await page.locator(`table tbody tr a[href="/conversations/${conversationId}"]`).waitFor();
  await page.getByLabel("After (UTC)").fill("2099-01-01T00:00");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByText("No calls match.").waitFor();
});

await step("build a webhook tool with a secret header and test it", page, async () => {
  await api("POST", "/v1/convai/secrets", { type: "new", name: "weather token", value: "wx-secret-123" });
  await page.goto(`${BASE}/tools`);
  await page.getByRole("link", { name: "New webhook tool" }).click();
  await page.getByLabel(/^Name/).fill("forecast");
  await page.getByLabel(/^Description/).fill("The forecast for a city");
  await page.getByLabel(/^URL/).fill(`${FAKES}/weather`);
  await page.getByLabel("Header 1 name").fill("Authorization");
  await page.getByLabel("Header 1 secret").selectOption({ label: "weather token" });
  await page.getByLabel("Parameter 1 name").fill("city");
  await page.getByLabel("Parameter 1 description").fill("The city");
  await page.getByRole("button", { name: "Save tool" }).click();
  await page.waitForURL(/\/tools\/tool_/);
  const toolId = page.url().split("/tools/")[1];
  const tool = await api("GET", `/v1/convai/tools/${toolId}`);
  check(tool.tool_config.api_schema.request_headers.Authorization.secret_id, "the header is not the secret");
  check(/"city": "example"/.test(await page.getByLabel(/^Arguments/).inputValue()), "no sample arguments");
  await page.getByLabel(/^Arguments/).fill(JSON.stringify({ city: "Lyon" }));
  await page.getByRole("button", { name: "Test this tool" }).click();
  const result = page.getByRole("status", { name: "Test result" });
  await result.waitFor();
  const said = await result.textContent();
  check(/success/.test(said) && /sunny/.test(said) && /Lyon/.test(said), `test result: ${said}`);
  check(!(await page.content()).includes("wx-secret-123"), "the secret is on the page");
  await page.getByText("test call").first().waitFor();
});

await step("run a test and watch it pass", page, async () => {
  await api("POST", "/v1/convai/agent-testing/create", { name: "answers about the weather", type: "llm",
    success_condition: "The agent answers.", chat_history: [{ role: "user", message: "hello", time_in_call_secs: 0 }],
    success_examples: [], failure_examples: [] });
  await page.goto(`${BASE}/tests?agent_id=${agentId}`);
  await page.getByLabel("Run answers about the weather").check();
  await page.getByRole("button", { name: "Run selected tests" }).click();
  await page.waitForURL(/\/tests\/invocations\//);
  invocationUrl = page.url();
  await page.locator('tr.run[data-status="passed"]').waitFor({ timeout: 30000 });
  await page.getByText("fake judge").waitFor();
  await page.getByRole("button", { name: "Re-run all tests" }).click();
  await page.waitForURL(invocationUrl);
  await page.locator('tr.run[data-status="passed"]').waitFor({ timeout: 30000 });
  await page.goto(`${BASE}/tests?agent_id=${agentId}`);
  await page.locator(`a[href="${new URL(invocationUrl).pathname}"]`).waitFor();
});

await step("make a test from a conversation turn and run it", page, async () => {
  await page.goto(`${BASE}/conversations/${conversationId}`);
  await page.locator("li.agent", { has: page.locator(".toolcall") }).getByRole("link", { name: /Make a test of turn/ }).first().click();
  await page.waitForURL(/\/tests\/new\?/);
  check(await page.getByLabel("Call a tool").isChecked(), "not made a tool-call test");
  const chosen = await page.getByLabel("Tool", { exact: true }).locator("option:checked").textContent();
  check(/get_weather/.test(chosen), `not the tool the turn called: ${chosen}`);
  await page.getByLabel("Name", { exact: true }).fill("asks for the weather (from a conversation)");
  await page.getByLabel(/^Agent to run it on/).selectOption(agentId);
  await page.getByRole("button", { name: "Create test" }).click();
  await page.waitForURL(/\/tests\?agent_id=/);
  await page.getByLabel("Run asks for the weather (from a conversation)").check();
  await page.getByRole("button", { name: "Run selected tests" }).click();
  await page.waitForURL(/\/tests\/invocations\//);
  await page.locator('tr.run[data-status="passed"]').waitFor({ timeout: 30000 });
});

await step("an MCP server shows its connection and tools", page, async () => {
  await page.goto(`${BASE}/mcp-servers`);
  await page.getByRole("link", { name: "dashboard mcp" }).click();
  await page.locator("#connection").getByText("connected").waitFor();
  await page.getByRole("cell", { name: "add", exact: true }).waitFor();
});

await step("add an MCP server in the browser and give its tools to an agent", page, async () => {
  await page.goto(`${BASE}/mcp-servers`);
  await page.getByLabel("Name", { exact: true }).fill("browser mcp");
  await page.getByLabel("URL of the server").fill(MCP_URL);
  const transport = (await api("GET", `/v1/convai/mcp-servers/${mcpServer.id}`)).config.transport;
  await page.getByLabel("Transport").selectOption(transport);
  await page.getByLabel("Tool calls").selectOption("auto_approve_all");
  await page.getByRole("button", { name: "Add server" }).click();
  await page.waitForURL(/\/mcp-servers\/./);
  await page.locator("#connection").getByText("connected").waitFor();
  await page.getByRole("cell", { name: "add", exact: true }).waitFor();
  await page.goto(`${BASE}/agents/${agentId}?tab=tools`);
  await page.getByLabel("browser mcp").check();
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
  const agent = await api("GET", `/v1/convai/agents/${agentId}`);
  check(agent.conversation_config.agent.prompt.mcp_server_ids.length === 1, `mcp servers: ${agent.conversation_config.agent.prompt.mcp_server_ids}`);
});

let kbDocId;
await step("add a document and a file, see their chunks, and search as an agent would", page, async () => {
  await page.goto(`${BASE}/knowledge-base`);
  const textForm = page.getByRole("form", { name: "Add text" });
  await textForm.getByLabel("Name").fill("Opening hours");
  await textForm.getByLabel("Text").fill("# Hours\n\nThe museum opens at nine and closes at six.");
  await textForm.getByRole("button", { name: "Add text" }).click();
  await page.waitForURL(/\/knowledge-base\/doc\/kbdoc_/);
  kbDocId = page.url().split("/knowledge-base/doc/")[1];
  await page.getByRole("heading", { name: "Chunks (1)" }).waitFor();
  await page.goto(`${BASE}/knowledge-base`);
  await page.getByLabel("File (PDF, DOCX, HTML, Markdown, text)").setInputFiles({
    name: "tickets.md", mimeType: "text/markdown", buffer: Buffer.from("# Tickets\n\nTickets cost twelve euros.") });
  await page.getByRole("button", { name: "Upload" }).click();
  await page.waitForURL(/\/knowledge-base\/doc\/kbdoc_/);
  await page.getByRole("heading", { name: "tickets.md" }).waitFor();
  await page.goto(`${BASE}/knowledge-base`);
  await page.getByRole("link", { name: "Opening hours" }).waitFor();
  await page.getByLabel("Ask what an agent would retrieve").fill("when does the museum open");
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator("ol.results mark", { hasText: "museum" }).first().waitFor();
  await page.getByText(/score \d/).first().waitFor();
});

await step("a crawl shows every page it found and why one failed", page, async () => {
  await page.goto(`${BASE}/knowledge-base`);
  const crawlForm = page.getByRole("form", { name: "Crawl a site" });
  await crawlForm.getByLabel("Site address").fill(`${FAKES}/no-such-page`);
  await crawlForm.getByRole("button", { name: "Crawl the site" }).click();
  await page.waitForURL(/\/knowledge-base\/crawl\/crawl_/);
  const failed = page.getByRole("cell", { name: /failed the page could not be fetched/ });
  for (let i = 0; i < 50 && !(await failed.count()); i++) {
    await page.waitForTimeout(100);
    await page.reload();
  }
  await failed.waitFor();
});

await step("forms refuse a missing CSRF token and other sites", page, async () => {
  const cookies = await context.cookies();
  const cookie = cookies.map((c) => `${c.name}=${c.value}`).join("; ");
  const noToken = await fetch(`${BASE}/agents/${agentId}/delete`, { method: "POST", redirect: "manual",
    headers: { cookie, "content-type": "application/x-www-form-urlencoded" }, body: "_csrf=forged" });
  check(noToken.status === 403, `without the token: ${noToken.status}`);
  const csrf = await page.locator('meta[name="csrf-token"]').getAttribute("content");
  const crossSite = await fetch(`${BASE}/agents/${agentId}/delete`, { method: "POST", redirect: "manual",
    headers: { cookie, origin: "http://evil.example", "content-type": "application/x-www-form-urlencoded" }, body: `_csrf=${csrf}` });
  check(crossSite.status === 403, `from another site: ${crossSite.status}`);
  await api("GET", `/v1/convai/agents/${agentId}`);
  const headers = (await fetch(`${BASE}/agents`, { headers: { cookie } })).headers;
  check(/script-src 'self'/.test(headers.get("content-security-policy")), "no CSP");
  check(!/unsafe-inline/.test(headers.get("content-security-policy")), "CSP allows inline code");
});

await step("the home page's numbers are the API's, and its chart's labels do not overlap", page, async () => {
  const stats = await api("GET", "/api/stats?days=7");
  await page.goto(`${BASE}/`);
  const tile = async (label) => (await page.locator(".tile", { hasText: label }).locator(".tile-value").textContent()).trim();
  check(await tile("Conversations") === String(stats.conversations.total), `conversations: ${await tile("Conversations")} against ${stats.conversations.total}`);
  check(stats.conversations.total >= 3, `conversations counted: ${stats.conversations.total}`);
  check(await tile("Tool calls") === String(stats.tool_calls.total), `tool calls: ${await tile("Tool calls")} against ${stats.tool_calls.total}`);
  const passing = stats.tests.pass_rate === null ? "—" : `${(stats.tests.pass_rate * 100).toFixed(1)} %`;
  check(await tile("Tests passing") === passing, `tests passing: ${await tile("Tests passing")} against ${passing}`);
  await page.locator("table tbody tr", { hasText: "get_weather" }).waitFor();
  for (const days of [7, 30]) {
    await page.goto(`${BASE}/?days=${days}`);
    const found = await page.locator("svg.daily").evaluate((svg) => {
      const boxes = [...svg.querySelectorAll("text")].map((t) => t.getBoundingClientRect());
      const out = [];
      boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b) => {
        if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) out.push([a.left, b.left]);
      }));
      return { overlaps: out, bars: svg.querySelectorAll("rect.bar").length };
    });
    check(found.overlaps.length === 0, `the ${days}-day chart's labels overlap: ${JSON.stringify(found.overlaps)}`);
    check(found.bars >= 1, `no bars on the ${days}-day chart`);
  }
});

for (const [path, name] of [["/", "home"], ["/?days=30", "home over 30 days"], ["/agents", "agents"], [`/agents/${agentId}`, "agent"],
  [`/agents/${agentId}?tab=tools`, "agent tools"], [`/agents/${agentId}?tab=knowledge-base`, "agent knowledge base"],
  [`/agents/${agentId}?tab=voice`, "agent voice"], [`/agents/${agentId}?tab=analysis`, "agent analysis"],
  [`/agents/${agentId}?tab=advanced`, "agent json"], [`/agents/${agentId}/playground`, "playground"],
  [`/agents/${agentId}/versions`, "versions"], [`/agents/${agentId}/delete`, "delete agent"],
  ["/conversations", "conversations"], [`/conversations/${conversationId}`, "conversation"],
  [`/conversations/${conversationId}/timeline`, "conversation timeline"], ["/tools", "tools"],
  [`/tools/${weather.id}`, "tool"], ["/tools/new?type=webhook", "new webhook tool"],
  ["/tools/new?type=client", "new client tool"], [`/tools/${weather.id}/edit`, "tool editor"], [`/tests?agent_id=${agentId}`, "tests"], ["/tests/new", "new test"],
  [`/tests/new?conversation_id=${conversationId}&turn=1`, "test from a turn"], [invocationUrl.slice(BASE.length), "invocation"],
  ["/mcp-servers", "mcp servers"], [`/mcp-servers/${mcpServer.id}`, "mcp server"], ["/knowledge-base", "knowledge base"],
  [`/knowledge-base/doc/${kbDocId}`, "document"], ["/knowledge-base/search?q=museum", "knowledge-base search"],
  ["/webhooks", "webhooks"], ["/changes", "change log"],
  ["/search?q=weather", "search"], ["/tickets", "tickets"], [ticketPath, "ticket"], [`/agents/${agentId}/topics`, "topics"]]) {
  await step(`accessibility of the ${name} page`, page, async () => {
    // Every page: labelled and keyboard-navigable, no serious or critical axe-core violation,
    // no console error, and screenshots at a desktop's and a phone's width.
    const errors = [];
    const onConsole = (m) => { if (m.type() === "error") errors.push(m.text()); };
    const onError = (e) => errors.push(`page error: ${e.message}`);
    page.on("console", onConsole);
    page.on("pageerror", onError);
    try {
      await page.goto(`${BASE}${path}`);
      await accessibilitySmoke(page);
      await page.evaluate(AXE);
      const { found, minor, rules } = await page.evaluate(async () => {
        const result = await window.axe.run(document, { resultTypes: ["violations"] });
        const grave = (v) => v.impact === "serious" || v.impact === "critical";
        return {
          found: result.violations.filter(grave)
            .map((v) => `${v.id} (${v.impact}) at ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`),
          minor: result.violations.filter((v) => !grave(v)).map((v) => `${v.id} (${v.impact})`),
          rules: result.passes.length + result.violations.length,
        };
      });
      check(rules > 20, `axe-core checked only ${rules} rules`);
      // No chart's texts overlap one another or run past the chart.
      const crowded = await page.evaluate(() => [...document.querySelectorAll("svg.chart")].flatMap((svg) => {
        const chart = svg.getBoundingClientRect();
        const boxes = [...svg.querySelectorAll("text")].map((t) => [t.textContent, t.getBoundingClientRect()]);
        const out = [];
        boxes.forEach(([ta, a], i) => boxes.slice(i + 1).forEach(([tb, b]) => {
          if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) out.push(`"${ta}" on "${tb}"`);
        }));
        boxes.forEach(([t, a]) => { if (a.right > chart.right + 1 || a.left < chart.left - 1) out.push(`"${t}" outside`); });
        return out;
      }));
      check(crowded.length === 0, `chart texts overlap: ${crowded.join(", ")}`);
      check(found.length === 0, `axe-core: ${found.join("; ")}`);
      if (minor.length > 0) console.log(`  axe-core, moderate or minor on the ${name} page: ${minor.join(", ")}`);
      const file = name.replace(/[^a-z0-9]+/gi, "-");
      await page.screenshot({ path: `${SHOTS}/page-${file}-1280.png`, fullPage: true });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.reload();
      await page.screenshot({ path: `${SHOTS}/page-${file}-390.png`, fullPage: true });
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      check(wide <= 391, `the page is ${wide} px wide on a 390 px screen`);
      check(errors.length === 0, `console errors: ${errors.join("; ")}`);
    } finally {
      page.off("console", onConsole);
      page.off("pageerror", onError);
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });
}

const other = await newPage();
await step("a key of another workspace sees none of it", other.page, async () => {
  const p = other.page;
  await signIn(p, OTHER_KEY);
  const theirs = await api("GET", "/api/stats?days=30", undefined, OTHER_KEY);
  check(theirs.conversations.total === 0 && theirs.tools.length === 0, `another workspace's numbers: ${JSON.stringify(theirs)}`);
  check(!(await p.content()).includes("get_weather"), "another workspace's tools on the home page");
  await p.goto(`${BASE}/agents`);
  await p.getByText("No agents yet").waitFor();
  for (const path of [`/agents/${agentId}`, `/conversations/${conversationId}`, `/tools/${weather.id}`,
    new URL(invocationUrl).pathname, `/mcp-servers/${mcpServer.id}`, `/agents/${agentId}/playground`,
    `/knowledge-base/doc/${kbDocId}`]) {
    const answer = await p.goto(`${BASE}${path}`);
    check(answer.status() === 404, `${path}: ${answer.status()}`);
  }
  await p.goto(`${BASE}/conversations`);
  await p.getByText("No conversations match.").waitFor();
  await p.goto(`${BASE}/tools`);
  await p.getByText("No tools match.").waitFor();
  await p.goto(`${BASE}/mcp-servers`);
  await p.getByText("No MCP servers yet.").waitFor();
  const content = await p.content();
  check(!content.includes("Dashboard weather agent"), "the other workspace's agent leaked");
});

await step("signing out ends the session", page, async () => {
  await page.goto(`${BASE}/agents`);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/login/);
  await page.goto(`${BASE}/agents`);
  check(page.url().includes("/login"), "still signed in");
});

await step("no page broke the content security policy", page, async () => {
  check(cspViolations.length === 0, cspViolations.join("\n"));
});

await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
