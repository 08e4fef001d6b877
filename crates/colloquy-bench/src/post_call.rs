//! After the call: how fast finished conversations are analysed and their post-call webhooks
//! delivered (one node on SQLite; one and two nodes sharing PostgreSQL when
//! `COLLOQUY_TEST_DATABASE_URL` names one), and what exporting traces over OTLP costs a turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::any;
use serde_json::json;

use crate::backend;
use crate::live;
use crate::node::{self, Node};
use crate::report::{Goal, Row};
use crate::scenarios::Sizes;

/// Conversations taking their turn at once before the analysis and delivery queue is measured.
const AT_ONCE: usize = 50;

/// Conversations analysed and delivered per second, from the moment they all end to the
/// receiver's last delivery: one node on SQLite, then one and two nodes sharing PostgreSQL.
pub async fn post_call(binary: &std::path::Path, sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let llm = node::fake_llm(Duration::ZERO).await?;
    let envs = |extra: Vec<(&'static str, String)>| {
        let mut envs = vec![
            ("OPENAI_BASE_URL", llm.clone()),
            ("OPENAI_API_KEY", "sk-bench".into()),
            ("COLLOQUY_WEBHOOK_ALLOW", "127.0.0.1".into()),
        ];
        envs.extend(extra);
        envs
    };
    let n = sizes.post_call_conversations;
    let mut rows = Vec::new();
    let sqlite = vec![Node::start(binary, &envs(Vec::new())).await?];
    let rate = drain(&sqlite, n).await?;
    rows.push(row(
        format!("analysed and delivered, one node on SQLite ({n} conversations)"),
        rate,
        None,
    ));
    drop(sqlite);
    let Ok(base) = std::env::var("COLLOQUY_TEST_DATABASE_URL") else {
        return Ok(rows);
    };
    let mut rates = Vec::new();
    for count in [1, 2] {
        let schema = format!("colloquy_bench_post_call_{}_{count}", std::process::id());
        let url = backend::with_schema(&base, &schema).await?;
        let shared = envs(vec![
            ("COLLOQUY_DATABASE_URL", url),
            ("COLLOQUY_BOOTSTRAP_API_KEY", colloquy_core::keys::generate_token()),
            ("COLLOQUY_SECRET_KEY", colloquy_core::secret_key::SecretKey::generate().to_hex()),
        ]);
        let mut nodes = Vec::new();
        for _ in 0..count {
            nodes.push(Node::start(binary, &shared).await?);
        }
        rates.push(drain(&nodes, n).await?);
        drop(nodes);
        backend::drop_schema(&base, &schema).await;
    }
    rows.push(row(
        format!("analysed and delivered, two nodes on PostgreSQL against one ({n} conversations)"),
        rates[1],
        Some(rates[0]),
    ));
    Ok(rows)
}

fn row(scenario: String, rate: f64, baseline: Option<f64>) -> Row {
    Row { scenario, unit: "/s".into(), ours: rate, baseline, goal: Goal::None }
}

/// Runs `n` one-turn conversations over `nodes` with a post-call webhook set, ends them all at
/// once, and answers conversations analysed and delivered per second.
async fn drain(nodes: &[Node], n: usize) -> anyhow::Result<f64> {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let receiver = node::serve(Router::new().fallback(any(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "" }
    })))
    .await?;
    let client = reqwest::Client::new();
    let first = &nodes[0];
    let hook = first
        .post(
            &client,
            "/v1/workspace/webhooks",
            &json!({"settings": {"auth_type": "hmac", "name": "bench", "webhook_url": format!("{receiver}/post-call")}}),
        )
        .await?;
    let settings = json!({"webhooks": {"post_call_webhook_id": hook["webhook_id"]}});
    client
        .patch(format!("{}/v1/convai/settings", first.base))
        .header("xi-api-key", &first.key)
        .json(&settings)
        .send()
        .await?
        .error_for_status()?;
    let agent_id = live::agent(first).await?;
    // Every conversation takes its turn first; then all end at once, so what is timed is the
    // queue draining, not the conversations being had.
    let mut sockets = Vec::with_capacity(n);
    for i in 0..n {
        sockets.push(live::open(&nodes[i % nodes.len()], &agent_id).await?);
    }
    for chunk in sockets.chunks_mut(AT_ONCE) {
        let turns = chunk.iter_mut().map(|socket| live::turn(socket, "hello"));
        for took in futures_util::future::join_all(turns).await {
            took?;
        }
    }
    let started = Instant::now();
    futures_util::future::join_all(sockets.iter_mut().map(|s| s.close(None))).await;
    let deadline = started + Duration::from_secs(300);
    while received.load(Ordering::SeqCst) < n {
        anyhow::ensure!(Instant::now() < deadline, "the deliveries did not all arrive");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Platform CPU time per turn, OTLP export on against off: the same text turns (100
/// conversations at 1,000 turns/s offered) on a node exporting every span to a collector on
/// loopback and on one exporting nothing, alternated twice.
pub async fn otlp(binary: &std::path::Path, sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let llm = node::fake_llm(Duration::ZERO).await?;
    let collector = node::bare_server(Vec::new()).await?;
    let conversations = sizes.turn_conversations.iter().copied().max().unwrap_or(1).min(100);
    let turns = sizes.turns_per_conversation;
    let mut per_turn = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        for (i, on) in [false, true].into_iter().enumerate() {
            let mut envs =
                vec![("OPENAI_BASE_URL", llm.clone()), ("OPENAI_API_KEY", "sk-bench".into())];
            if on {
                envs.push(("OTEL_EXPORTER_OTLP_ENDPOINT", collector.clone()));
            }
            let node = Node::start(binary, &envs).await?;
            let agent_id = live::agent(&node).await?;
            // A first round warms the node; the second is measured.
            live::conversations_at_once(&node, &agent_id, conversations, turns, Some(1000.0))
                .await?;
            let before = node.cpu_time();
            let (done, _) =
                live::conversations_at_once(&node, &agent_id, conversations, turns, Some(1000.0))
                    .await?;
            // The conversations' ends and their analyses belong to the measured work too.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let cpu = node.cpu_time().saturating_sub(before);
            per_turn[i].push(cpu.as_secs_f64() * 1e6 / done.len() as f64);
        }
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(vec![Row {
        scenario: format!(
            "server CPU per turn with OTLP export on, against off ({conversations} conversations, {turns} turns each, best of two)"
        ),
        unit: "µs".into(),
        ours: best(&per_turn[1]),
        baseline: Some(best(&per_turn[0])),
        goal: Goal::RatioAtMost(1.10),
    }])
}
