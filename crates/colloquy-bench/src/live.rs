//! The live-conversation scenarios: per-turn platform overhead over the WebSocket protocol at
//! several numbers of concurrent conversations, and the server's memory with many idle ones.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::load;
use crate::node::{self, Node};
use crate::report::{Goal, Row};
use crate::scenarios::Sizes;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a conversation with a public agent and waits for its metadata.
async fn open(node: &Node, agent_id: &str) -> anyhow::Result<Socket> {
    let url = format!(
        "{}/v1/convai/conversation?agent_id={agent_id}",
        node.base.replacen("http://", "ws://", 1)
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    socket
        .send(Message::text(
            json!({"type": "conversation_initiation_client_data"}).to_string(),
        ))
        .await?;
    wait_for(&mut socket, "conversation_initiation_metadata").await?;
    Ok(socket)
}

/// Reads events until one of type `kind`; answers pings on the way.
async fn wait_for(socket: &mut Socket, kind: &str) -> anyhow::Result<Value> {
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

/// An agent with no first message on the zero-latency LLM.
async fn agent(node: &Node) -> anyhow::Result<String> {
    let created = node
        .post(
            &reqwest::Client::new(),
            "/v1/convai/agents/create",
            &json!({"name": "bench live", "conversation_config": {"agent": {"first_message": "", "prompt": {"prompt": "Be brief.", "llm": "gpt-4o-mini"}}}}),
        )
        .await?;
    Ok(created["agent_id"].as_str().unwrap_or_default().to_owned())
}

/// The fake LLM's own answer time, measured by direct clients at the same concurrency as the
/// conversations (so it carries the same machine load).
async fn llm_direct(
    llm: &str,
    concurrency: usize,
    requests_each: usize,
) -> anyhow::Result<Vec<u64>> {
    let client = reqwest::Client::new();
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let workers = (0..concurrency).map(|_| {
        let client = client.clone();
        let body = body.clone();
        let url = format!("{llm}/chat/completions");
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(requests_each);
            for _ in 0..requests_each {
                let started = Instant::now();
                let r = client.post(&url).json(&body).send().await?;
                r.bytes().await?;
                latencies.push(started.elapsed().as_micros() as u64);
            }
            anyhow::Ok(latencies)
        })
    });
    let mut all = Vec::new();
    for worker in futures_util::future::join_all(workers).await {
        all.extend(worker??);
    }
    all.sort_unstable();
    Ok(all)
}

/// Per-turn overhead: `user_message` → `agent_response` over the WebSocket, at each number of
/// concurrent conversations, minus the fake LLM's own time measured directly in the same run.
pub async fn turns(binary: &std::path::Path, sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let llm = node::fake_llm(Duration::ZERO).await?;
    let most = sizes.turn_conversations.iter().copied().max().unwrap_or(1);
    let node = Node::start(
        binary,
        &[
            ("OPENAI_BASE_URL", llm.clone()),
            ("OPENAI_API_KEY", "sk-bench".into()),
            (
                "COLLOQUY_MAX_CONVERSATIONS_PER_WORKSPACE",
                (most * 2).to_string(),
            ),
        ],
    )
    .await?;
    let agent_id = agent(&node).await?;
    let mut rows = Vec::new();
    for &conversations in sizes.turn_conversations {
        let mut sockets = Vec::with_capacity(conversations);
        for _ in 0..conversations {
            sockets.push(open(&node, &agent_id).await?);
        }
        let turns = sizes.turns_per_conversation;
        let workers = sockets.into_iter().map(|mut socket| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(turns);
                for i in 0..turns {
                    let started = Instant::now();
                    let message = json!({"type": "user_message", "text": format!("turn {i}")});
                    socket.send(Message::text(message.to_string())).await?;
                    wait_for(&mut socket, "agent_response").await?;
                    latencies.push(started.elapsed().as_micros() as u64);
                }
                let _ = socket.close(None).await;
                anyhow::Ok(latencies)
            })
        });
        let mut all = Vec::new();
        for worker in futures_util::future::join_all(workers).await {
            all.extend(worker??);
        }
        all.sort_unstable();
        let direct = llm_direct(&llm, conversations, turns).await?;
        let label = format!("per-turn overhead, {conversations} concurrent conversations");
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
            (
                "COLLOQUY_MAX_CONVERSATIONS_PER_WORKSPACE",
                (count * 2).to_string(),
            ),
        ],
    )
    .await?;
    let agent_id = agent(&node).await?;
    let before = node.rss_bytes();
    let mut sockets = Vec::with_capacity(count);
    let opening = futures_util::stream::iter(0..count)
        .map(|_| open(&node, &agent_id))
        .buffer_unordered(64);
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
