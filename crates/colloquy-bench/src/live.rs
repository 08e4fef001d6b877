//! The live-conversation scenarios: per-turn platform overhead over the WebSocket protocol at
//! several numbers of concurrent conversations, and the server's memory with many idle ones.

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
    let created = node
        .post(
            &reqwest::Client::new(),
            "/v1/convai/agents/create",
            &json!({"name": "bench live", "conversation_config": {"conversation": {"text_only": true},
                "agent": {"first_message": "", "prompt": {"prompt": "Be brief.", "llm": "gpt-4o-mini"}}}}),
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
    let mut sockets = Vec::with_capacity(conversations);
    for _ in 0..conversations {
        sockets.push(open(node, agent_id).await?);
    }
    let started = Instant::now();
    let workers = sockets.into_iter().enumerate().map(|(i, mut socket)| {
        let at = schedule(rate, conversations, i);
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(turns);
            for k in 0..turns {
                wait_until(at(k)).await;
                latencies.push(turn(&mut socket, &format!("turn {k}")).await?);
            }
            let _ = socket.close(None).await;
            anyhow::Ok(latencies)
        })
    });
    let mut all = Vec::new();
    for worker in futures_util::future::join_all(workers).await {
        all.extend(worker??);
    }
    Ok((all, started.elapsed()))
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
        for (name, q, goal) in [("p50", 0.5, 0.5), ("p99", 0.99, 2.0)] {
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
                goal: Goal::None,
            });
        }
        // Give the server a moment to persist and close the finished conversations.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(rows)
}

/// Server memory with many idle conversations open at once.
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
    let mut sockets = Vec::with_capacity(count);
    let opening =
        futures_util::stream::iter(0..count).map(|_| open(&node, &agent_id)).buffer_unordered(64);
    futures_util::pin_mut!(opening);
    while let Some(socket) = opening.next().await {
        sockets.push(socket?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = node.rss_bytes();
    drop(sockets);
    Ok(vec![Row {
        scenario: format!(
            "RSS with {count} idle WebSocket conversations (idle before: {:.1} MB)",
            before as f64 / 1e6
        ),
        unit: "MB".into(),
        ours: during as f64 / 1e6,
        baseline: None,
        goal: Goal::AtMost(1024.0),
    }])
}
