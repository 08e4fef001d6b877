//! The live-conversation scenarios: per-turn platform overhead over the WebSocket protocol at
//! several numbers of concurrent conversations, the server's CPU time per turn, and its
//! memory with many idle ones.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::backend::Backend;
use crate::load;
use crate::node::{self, Node};
use crate::report::{Goal, Row};
use crate::scenarios::Sizes;

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a conversation with a public agent and waits for its metadata.
pub(crate) async fn open(node: &Node, agent_id: &str) -> anyhow::Result<Socket> {
    let url = format!(
        "{}/v1/convai/conversation?agent_id={agent_id}",
        node.base.replacen("http://", "ws://", 1)
    );
    // Without Nagle's algorithm, as browsers' WebSockets: a message's last partial segment is
    // not held back until the server acknowledges the ones before it (40 ms of delayed ACK).
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
    socket
        .send(Message::text(json!({"type": "conversation_initiation_client_data"}).to_string()))
        .await?;
    wait_for(&mut socket, "conversation_initiation_metadata").await?;
    Ok(socket)
}

/// Reads events until one of type `kind`; answers pings on the way.
pub(crate) async fn wait_for(socket: &mut Socket, kind: &str) -> anyhow::Result<Value> {
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message? else {
            continue;
        };
        let event: Value = serde_json::from_str(&text)?;
        if event["type"] == kind {
            return Ok(event);
        }
        if event["type"] == "ping" {
            let pong = json!({"type": "pong", "event_id": event["ping_event"]["event_id"]});
            socket.send(Message::text(pong.to_string())).await?;
        }
    }
    anyhow::bail!("the socket closed before {kind}")
}

/// One turn: `user_message` → `agent_response`, in microseconds.
pub(crate) async fn turn(socket: &mut Socket, text: &str) -> anyhow::Result<u64> {
    let sent = Instant::now();
    let message = json!({"type": "user_message", "text": text});
    socket.send(Message::text(message.to_string())).await?;
    wait_for(socket, "agent_response").await?;
    Ok(sent.elapsed().as_micros() as u64)
}

/// A text-only agent with no first message on the zero-latency LLM (these scenarios measure
/// text turns; a voice agent would also synthesize every answer).
pub(crate) async fn agent(node: &Node) -> anyhow::Result<String> {
    text_agent(node, "Be brief.", &[]).await
}

/// A text-only agent with no first message, `prompt` and the tools `tool_ids`: its id.
async fn text_agent(node: &Node, prompt: &str, tool_ids: &[String]) -> anyhow::Result<String> {
    let created = node
        .post(
            &reqwest::Client::new(),
            "/v1/convai/agents/create",
            &json!({"name": "bench live", "conversation_config": {"conversation": {"text_only": true},
                "agent": {"first_message": "", "prompt": {"prompt": prompt, "llm": "gpt-4o-mini",
                    "tool_ids": tool_ids}}}}),
        )
        .await?;
    Ok(created["agent_id"].as_str().unwrap_or_default().to_owned())
}

/// Turns per second offered to the platform in the overhead series, whatever the number of
/// conversations they are spread over: each of N conversations takes a turn every N ÷ this many
/// seconds (1,000 conversations: one turn a second each, a brisk human pace).
const OFFERED_TURNS_PER_SEC: f64 = 1000.0;
/// Latencies each step of the overhead series collects at least (one conversation runs several
/// conversations in a row to get them, so its transcript stays as long as the others').
const MIN_SAMPLES: usize = 2000;

/// When worker `i` of `workers` sends its `k`-th request: `None` is as fast as answers come
/// (closed loop); `Some(rate)` spreads the workers evenly over a period of `workers ÷ rate`.
fn schedule(rate: Option<f64>, workers: usize, i: usize) -> impl Fn(usize) -> Option<Instant> {
    let start = Instant::now();
    let period = rate.map(|r| Duration::from_secs_f64(workers as f64 / r));
    move |k| period.map(|p| start + p.mul_f64(i as f64 / workers as f64) + p * k as u32)
}

async fn wait_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

/// The fake LLM's own answer time, measured by direct clients on the same schedule as the
/// conversations (so it carries the same machine load).
pub(crate) async fn llm_direct(
    llm: &str, concurrency: usize, requests_each: usize, rate: Option<f64>,
) -> anyhow::Result<(Vec<u64>, Duration)> {
    let client = reqwest::Client::new();
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let started = Instant::now();
    let workers = (0..concurrency).map(|i| {
        let client = client.clone();
        let body = body.clone();
        let url = format!("{llm}/chat/completions");
        let at = schedule(rate, concurrency, i);
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(requests_each);
            for k in 0..requests_each {
                wait_until(at(k)).await;
                let sent = Instant::now();
                let r = client.post(&url).json(&body).send().await?;
                r.bytes().await?;
                latencies.push(sent.elapsed().as_micros() as u64);
            }
            anyhow::Ok(latencies)
        })
    });
    let mut all = Vec::new();
    for worker in futures_util::future::join_all(workers).await {
        all.extend(worker??);
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    Ok((all, elapsed))
}

/// `conversations` conversations at once, `turns` turns each on `rate`'s schedule: every
/// `user_message` → `agent_response` time, and the wall time.
pub(crate) async fn conversations_at_once(
    node: &Node, agent_id: &str, conversations: usize, turns: usize, rate: Option<f64>,
) -> anyhow::Result<(Vec<u64>, Duration)> {
    let sockets = open_all(node, agent_id, conversations).await?;
    let (latencies, wall, sockets) = run_turns(sockets, turns, rate).await?;
    for mut socket in sockets {
        let _ = socket.close(None).await;
    }
    Ok((latencies, wall))
}

async fn open_all(node: &Node, agent_id: &str, count: usize) -> anyhow::Result<Vec<Socket>> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        sockets.push(open(node, agent_id).await?);
    }
    Ok(sockets)
}

/// `turns` turns on each socket on `rate`'s schedule: every turn's time and the wall time, the
/// sockets handed back open.
async fn run_turns(
    sockets: Vec<Socket>, turns: usize, rate: Option<f64>,
) -> anyhow::Result<(Vec<u64>, Duration, Vec<Socket>)> {
    let conversations = sockets.len();
    let started = Instant::now();
    let workers = sockets.into_iter().enumerate().map(|(i, mut socket)| {
        let at = schedule(rate, conversations, i);
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(turns);
            for k in 0..turns {
                wait_until(at(k)).await;
                latencies.push(turn(&mut socket, &format!("turn {k}")).await?);
            }
            anyhow::Ok((latencies, socket))
        })
    });
    let mut all = Vec::new();
    let mut sockets = Vec::with_capacity(conversations);
    for worker in futures_util::future::join_all(workers).await {
        let (latencies, socket) = worker??;
        all.extend(latencies);
        sockets.push(socket);
    }
    Ok((all, started.elapsed(), sockets))
}

/// Per-turn overhead: `user_message` → `agent_response` over the WebSocket, at each number of
/// concurrent conversations, minus the fake LLM's own time measured directly in the same run.
///
/// Overhead is measured at a fixed offered load ([`OFFERED_TURNS_PER_SEC`]) spread over the
/// conversations, so it is the platform's own time per turn. Without pauses (every conversation
/// sends its next message the moment it is answered) the machine is saturated and a turn's time
/// is queueing, growing with the number of conversations for any server (the fake LLM alone
/// takes milliseconds at 1,000 clients); that closed loop is reported as capacity instead: turns
/// per second through the platform against requests per second the fake LLM serves alone.
pub async fn turns(
    binary: &std::path::Path, sizes: Sizes, backend: &Backend,
) -> anyhow::Result<Vec<Row>> {
    let llm = node::fake_llm(Duration::ZERO).await?;
    let most = sizes.turn_conversations.iter().copied().max().unwrap_or(1);
    let node = backend
        .start(
            binary,
            &[
                ("OPENAI_BASE_URL", llm.clone()),
                ("OPENAI_API_KEY", "sk-bench".into()),
                ("COLLOQUY_MAX_CONVERSATIONS_PER_WORKSPACE", (most * 2).to_string()),
            ],
        )
        .await?;
    let agent_id = agent(&node).await?;
    let turns = sizes.turns_per_conversation;
    let rate = Some(OFFERED_TURNS_PER_SEC);
    let mut rows = Vec::new();
    for &conversations in sizes.turn_conversations {
        let rounds = MIN_SAMPLES.div_ceil(conversations * turns).min(sizes.max_turn_rounds);
        let mut all = Vec::new();
        for _ in 0..rounds {
            all.extend(
                conversations_at_once(&node, &agent_id, conversations, turns, rate).await?.0,
            );
        }
        all.sort_unstable();
        let (direct, _) = llm_direct(&llm, conversations, turns * rounds, rate).await?;
        let label = format!(
            "per-turn overhead, {conversations} concurrent conversations, {OFFERED_TURNS_PER_SEC:.0} turns/s offered"
        );
        for (name, q, goal) in
            [("p50", 0.5, p50_goal(conversations)), ("p99", 0.99, p99_goal(conversations))]
        {
            let turn = load::quantile(&all, q);
            let own = load::quantile(&direct, q);
            rows.push(Row {
                scenario: format!("{label}: {name} (turn {turn:.2} ms − LLM alone {own:.2} ms)"),
                unit: "ms".into(),
                ours: (turn - own).max(0.0),
                baseline: None,
                goal: Goal::AtMost(goal),
            });
        }
        if conversations > 1 {
            let (closed, wall) =
                conversations_at_once(&node, &agent_id, conversations, turns, None).await?;
            let (direct, direct_wall) = llm_direct(&llm, conversations, turns, None).await?;
            let mut closed = closed;
            closed.sort_unstable();
            rows.push(Row {
                scenario: format!(
                    "capacity, {conversations} conversations without pauses: turns/s against the fake LLM's own requests/s (turn p50 {:.1} ms, LLM alone {:.1} ms)",
                    load::quantile(&closed, 0.5),
                    load::quantile(&direct, 0.5)
                ),
                unit: "/s".into(),
                ours: closed.len() as f64 / wall.as_secs_f64(),
                baseline: Some(direct.len() as f64 / direct_wall.as_secs_f64()),
                goal: capacity_goal(conversations),
            });
        }
        // Give the server a moment to persist and close the finished conversations.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(rows)
}

/// Per-turn overhead p50 goal in milliseconds ([G2] item 3): tighter where the machine is not
/// saturated.
fn p50_goal(conversations: usize) -> f64 {
    match conversations {
        1 => 0.2,
        100 => 0.3,
        _ => 0.5,
    }
}

/// Per-turn overhead p99 goal in milliseconds ([G2] item 3).
fn p99_goal(conversations: usize) -> f64 {
    if conversations >= 1000 { 1.0 } else { 2.0 }
}

/// Capacity against the fake LLM's own rate ([G2] item 1).
fn capacity_goal(conversations: usize) -> Goal {
    match conversations {
        100 => Goal::RatioAtLeast(0.7),
        1000 => Goal::RatioAtLeast(0.5),
        _ => Goal::None,
    }
}

/// Turns a CPU measurement spans, at most as many as the sizes' overhead series runs: /proc
/// counts CPU time in 10 ms ticks, so a run of this many turns at tens of microseconds each
/// spans a dozen ticks or more.
const CPU_TURNS: usize = 2000;

/// Server CPU time per turn, user and system on both cores, from `/proc` ([G2] item 1): a plain
/// agent's turn, and a turn that calls one webhook tool (two LLM requests, the webhook, the
/// audit record). 100 conversations (fewer at small sizes) at 1,000 turns/s offered, the two
/// agents alternated twice, best of two. Only the turns are measured: the conversations are
/// opened before and closed after.
pub async fn cpu_per_turn(binary: &std::path::Path, sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let llm = node::fake_llm(Duration::ZERO).await?;
    let webhook =
        node::serve(axum::Router::new().route(
            "/lookup",
            axum::routing::post(|| async { axum::Json(json!({"sky": "sunny"})) }),
        ))
        .await?;
    let conversations = sizes.turn_conversations.iter().copied().max().unwrap_or(1).min(100);
    let turns =
        CPU_TURNS.div_ceil(conversations).min(sizes.turns_per_conversation * sizes.max_turn_rounds);
    let node = Node::start(
        binary,
        &[
            ("OPENAI_BASE_URL", llm),
            ("OPENAI_API_KEY", "sk-bench".into()),
            ("COLLOQUY_WEBHOOK_ALLOW", "127.0.0.1".into()),
            ("COLLOQUY_MAX_CONVERSATIONS_PER_WORKSPACE", (conversations * 2).to_string()),
        ],
    )
    .await?;
    let plain = agent(&node).await?;
    // The fake LLM calls `lookup` on every turn of an agent that has it, then answers.
    let with_tool =
        text_agent(&node, "Use lookup.", &[lookup_tool(&node, &webhook).await?]).await?;
    let mut per_turn = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        for (i, agent_id) in [&plain, &with_tool].into_iter().enumerate() {
            // A short first round warms the node's caches for this agent.
            conversations_at_once(&node, agent_id, conversations, 2, Some(OFFERED_TURNS_PER_SEC))
                .await?;
            let sockets = open_all(&node, agent_id, conversations).await?;
            let before = node.cpu_time();
            let (done, _, sockets) = run_turns(sockets, turns, Some(OFFERED_TURNS_PER_SEC)).await?;
            let cpu = node.cpu_time().saturating_sub(before);
            per_turn[i].push(cpu.as_secs_f64() * 1e6 / done.len() as f64);
            for mut socket in sockets {
                let _ = socket.close(None).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let label = format!(
        "{conversations} conversations, {turns} turns each at {OFFERED_TURNS_PER_SEC:.0} turns/s, best of two"
    );
    Ok(vec![
        Row {
            scenario: format!("server CPU per plain turn, both cores ({label})"),
            unit: "µs".into(),
            ours: best(&per_turn[0]),
            baseline: None,
            goal: Goal::AtMost(60.0),
        },
        Row {
            scenario: format!(
                "server CPU per turn with one webhook tool call, both cores ({label})"
            ),
            unit: "µs".into(),
            ours: best(&per_turn[1]),
            baseline: None,
            goal: Goal::AtMost(120.0),
        },
    ])
}

/// The webhook tool `lookup` (a city in its body) at `webhook`'s `/lookup`: its id.
pub(crate) async fn lookup_tool(node: &Node, webhook: &str) -> anyhow::Result<String> {
    let tool = node
        .post(
            &reqwest::Client::new(),
            "/v1/convai/tools",
            &json!({"tool_config": {
            "type": "webhook", "name": "lookup", "description": "Looks up the weather",
            "api_schema": {"url": format!("{webhook}/lookup"), "method": "POST",
                "request_body_schema": {"type": "object", "required": ["city"],
                    "properties": {"city": {"type": "string", "description": "City"}}}}}}),
        )
        .await?;
    Ok(tool["id"].as_str().unwrap_or_default().to_owned())
}

/// Server memory with many idle conversations open at once, against a bare axum WebSocket
/// server (a child process, [`bare_websocket`]) holding as many connections with the same
/// buffer settings, each having exchanged one message.
pub async fn idle_memory(binary: &std::path::Path, sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let llm = node::fake_llm(Duration::ZERO).await?;
    let count = sizes.idle_conversations;
    let node = Node::start(
        binary,
        &[
            ("OPENAI_BASE_URL", llm),
            ("OPENAI_API_KEY", "sk-bench".into()),
            ("COLLOQUY_MAX_CONVERSATIONS_PER_WORKSPACE", (count * 2).to_string()),
        ],
    )
    .await?;
    let agent_id = agent(&node).await?;
    let before = node.rss_bytes();
    let sockets = hold(count, || open(&node, &agent_id)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = node.rss_bytes();
    drop(sockets);
    drop(node);

    let (bare_before, bare_during) = bare_websocket_rss(count).await?;
    let per = |during: u64, before: u64| during.saturating_sub(before) as f64 / count as f64 / 1e3;
    Ok(vec![
        Row {
            scenario: format!(
                "RSS with {count} idle WebSocket conversations against a bare axum WebSocket server holding {count} connections, 8 KiB buffers (idle before: {:.1} MB, bare {:.1} MB)",
                before as f64 / 1e6,
                bare_before as f64 / 1e6
            ),
            unit: "MB".into(),
            ours: during as f64 / 1e6,
            baseline: Some(bare_during as f64 / 1e6),
            goal: Goal::RatioAtMost(2.0),
        },
        Row {
            scenario: "memory per idle WebSocket conversation, against a bare connection's".into(),
            unit: "KB".into(),
            ours: per(during, before),
            baseline: Some(per(bare_during, bare_before)),
            goal: Goal::None,
        },
    ])
}

/// RSS of the bare WebSocket server ([`bare_websocket`], a child process) before and while it
/// holds `count` connections, each having exchanged one message.
async fn bare_websocket_rss(count: usize) -> anyhow::Result<(u64, u64)> {
    let mut bare = tokio::process::Command::new(std::env::current_exe()?)
        .arg("bare-websocket")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = bare.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut address = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut tokio::io::BufReader::new(stdout), &mut address)
        .await?;
    let url = format!("ws://{}/ws", address.trim());
    let pid = bare.id().ok_or_else(|| anyhow::anyhow!("the bare server ended"))?;
    let before = node::rss_of(pid);
    let sockets = hold(count, || async {
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await?;
        socket.send(Message::text("hello")).await?;
        socket.next().await.ok_or_else(|| anyhow::anyhow!("closed"))??;
        anyhow::Ok(socket)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = node::rss_of(pid);
    drop(sockets);
    Ok((before, during))
}

/// `count` connections from `open`, 64 being opened at a time, held open.
async fn hold<F, Fut>(count: usize, open: F) -> anyhow::Result<Vec<Socket>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Socket>>,
{
    let mut sockets = Vec::with_capacity(count);
    let opening = futures_util::stream::iter(0..count).map(|_| open()).buffer_unordered(64);
    futures_util::pin_mut!(opening);
    while let Some(socket) = opening.next().await {
        sockets.push(socket?);
    }
    Ok(sockets)
}

/// The idle-memory baseline, run as a child process: a bare axum WebSocket server with the
/// buffer settings of Colloquy's conversation route (8 KiB read and write buffers, messages up
/// to 1 MiB), echoing each message and holding every connection until its peer closes it.
/// Prints its address.
pub async fn bare_websocket() -> anyhow::Result<()> {
    use axum::extract::ws::WebSocketUpgrade;
    const MAX_MESSAGE: usize = 1024 * 1024;
    let router = axum::Router::new().route(
        "/ws",
        axum::routing::get(|ws: WebSocketUpgrade| async move {
            ws.read_buffer_size(8 * 1024)
                .write_buffer_size(8 * 1024)
                .max_write_buffer_size(4 * MAX_MESSAGE)
                .max_message_size(MAX_MESSAGE)
                .max_frame_size(MAX_MESSAGE)
                .on_upgrade(|mut socket| async move {
                    while let Some(Ok(message)) = socket.recv().await {
                        if socket.send(message).await.is_err() {
                            break;
                        }
                    }
                })
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    #[allow(clippy::print_stdout)]
    {
        println!("{}", listener.local_addr()?);
    }
    axum::serve(listener, router).await?;
    Ok(())
}
