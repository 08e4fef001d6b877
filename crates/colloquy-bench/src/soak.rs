//! `colloquy-bench soak [--minutes N]`: a mixed load held for a while against one node on
//! SQLite, then two nodes sharing PostgreSQL (when `COLLOQUY_TEST_DATABASE_URL` names one),
//! watching what grows. Each interval reports every node's resident memory, open file
//! descriptors, the database's size and the interval's p99 latency and errors; the run fails
//! when memory grows more than 10 % after the warm-up, descriptors grow, or any request fails.
//!
//! The load: clients creating, reading, patching and deleting agents and tools; live
//! conversations over the WebSocket whose every turn calls a webhook tool; test runs; and
//! reads of the tool-call audit, per tool and per conversation.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::backend;
use crate::live;
use crate::load::quantile;
use crate::node::{self, Node};

/// What one interval saw.
#[derive(Debug, Default, Clone)]
struct Interval {
    latencies_us: Vec<u64>,
    errors: Vec<String>,
}

/// The load's tally, shared by its clients: the interval being filled.
#[derive(Default)]
struct Tally(Mutex<Interval>);

impl Tally {
    fn ok(&self, took: Duration) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).latencies_us.push(took.as_micros() as u64);
    }

    fn error(&self, what: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).errors.push(what);
    }

    fn take(&self) -> Interval {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// One row of the report: a node at the end of an interval.
struct Sample {
    at: Duration,
    rss: Vec<u64>,
    fds: Vec<usize>,
    db_bytes: u64,
    requests: usize,
    p99_ms: f64,
    errors: usize,
}

/// Runs the soak; `Ok(true)` when every goal held.
pub async fn soak(binary: &Path, minutes: u64) -> anyhow::Result<bool> {
    let (interval, warmup) = if minutes <= 2 {
        (Duration::from_secs(10), Duration::from_secs(20))
    } else {
        (Duration::from_secs(60), Duration::from_secs(60))
    };
    let length = Duration::from_secs(minutes * 60);
    let fakes = Fakes::start().await?;
    let mut passed = true;

    let sqlite = vec![Node::start(binary, &fakes.envs(None)).await?];
    passed &= phase("one node on SQLite", &sqlite, length, interval, warmup, None).await?;
    drop(sqlite);

    if let Ok(base) = std::env::var("COLLOQUY_TEST_DATABASE_URL") {
        let schema = format!("colloquy_soak_{}", std::process::id());
        let url = backend::with_schema(&base, &schema).await?;
        let key = colloquy_core::keys::generate_token();
        let secret = colloquy_core::secret_key::SecretKey::generate().to_hex();
        let mut envs = fakes.envs(Some(&url));
        envs.push(("COLLOQUY_BOOTSTRAP_API_KEY", key));
        envs.push(("COLLOQUY_SECRET_KEY", secret));
        let a = Node::start(binary, &envs).await?;
        let b = Node::start(binary, &envs).await?;
        let nodes = vec![a, b];
        let db = Some((base.as_str(), schema.as_str()));
        passed &= phase("two nodes on PostgreSQL", &nodes, length, interval, warmup, db).await?;
        drop(nodes);
        backend::drop_schema(&base, &schema).await;
    } else {
        say("(PostgreSQL phase skipped: COLLOQUY_TEST_DATABASE_URL is not set)");
    }
    Ok(passed)
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

/// One phase: the load on `nodes` for `length`, sampled every `interval`.
async fn phase(
    name: &str, nodes: &[Node], length: Duration, interval: Duration, warmup: Duration,
    postgres: Option<(&str, &str)>,
) -> anyhow::Result<bool> {
    let setup = Setup::create(&nodes[0]).await?;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for (i, node) in nodes.iter().cycle().take(8).enumerate() {
        let target =
            Target { base: node.base.clone(), key: node.key.clone(), setup: setup.clone() };
        let (tally, stop) = (tally.clone(), stop.clone());
        clients.push(tokio::spawn(async move { target.run(i % 4, &tally, &stop).await }));
    }
    say(&format!("\n## {name}\n"));
    say("| time | RSS (MB) | open fds | database (MB) | requests | p99 (ms) | errors |");
    say("|---|---|---|---|---|---|---|");
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut errors_seen = Vec::new();
    while started.elapsed() < length {
        tokio::time::sleep(interval.min(length.saturating_sub(started.elapsed()))).await;
        let seen = tally.take();
        let mut latencies = seen.latencies_us.clone();
        latencies.sort_unstable();
        let sample = Sample {
            at: started.elapsed(),
            rss: nodes.iter().map(Node::rss_bytes).collect(),
            fds: nodes.iter().map(Node::open_fds).collect(),
            db_bytes: database_bytes(nodes, postgres).await,
            requests: latencies.len(),
            p99_ms: quantile(&latencies, 0.99),
            errors: seen.errors.len(),
        };
        say(&row(&sample));
        errors_seen.extend(seen.errors);
        samples.push(sample);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }
    Ok(judge(&samples, warmup, &errors_seen, 8))
}

fn row(s: &Sample) -> String {
    let mb = |b: u64| format!("{:.1}", b as f64 / 1e6);
    format!(
        "| {:.0} s | {} | {} | {} | {} | {:.1} | {} |",
        s.at.as_secs_f64(),
        s.rss.iter().map(|b| mb(*b)).collect::<Vec<_>>().join(" / "),
        s.fds.iter().map(ToString::to_string).collect::<Vec<_>>().join(" / "),
        mb(s.db_bytes),
        s.requests,
        s.p99_ms,
        s.errors
    )
}

/// The goals: memory within 10 % of the first sample after the warm-up, descriptors no more
/// than the clients' connections above it, no error.
fn judge(samples: &[Sample], warmup: Duration, errors: &[String], clients: usize) -> bool {
    let Some(base) = samples.iter().find(|s| s.at >= warmup) else {
        say("too short to judge: no sample after the warm-up");
        return false;
    };
    let last = samples.last().unwrap_or(base);
    let mut ok = true;
    for (node, (&before, &after)) in base.rss.iter().zip(&last.rss).enumerate() {
        let growth = after as f64 / before.max(1) as f64 - 1.0;
        let fine = growth <= 0.10;
        ok &= fine;
        say(&format!(
            "node {node}: RSS {:.1} → {:.1} MB after the warm-up ({:+.1} %, goal ≤ +10 %): {}",
            before as f64 / 1e6,
            after as f64 / 1e6,
            growth * 100.0,
            verdict(fine)
        ));
    }
    for (node, (&before, &after)) in base.fds.iter().zip(&last.fds).enumerate() {
        let fine = after <= before + clients;
        ok &= fine;
        say(&format!(
            "node {node}: open fds {before} → {after} (goal: no growth beyond the {clients} clients' connections): {}",
            verdict(fine)
        ));
    }
    let requests: usize = samples.iter().map(|s| s.requests).sum();
    say(&format!("{requests} requests, {} errors: {}", errors.len(), verdict(errors.is_empty())));
    for e in errors.iter().take(10) {
        say(&format!("  error: {e}"));
    }
    ok && errors.is_empty() && requests > 0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

async fn database_bytes(nodes: &[Node], postgres: Option<(&str, &str)>) -> u64 {
    match postgres {
        None => nodes
            .iter()
            .map(|n| {
                let db = n.database();
                let size = |p: std::path::PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
                size(db.clone()) + size(db.with_extension("db-wal"))
            })
            .sum(),
        Some((base, schema)) => backend::schema_bytes(base, schema).await,
    }
}

/// The fake LLM (calls the `lookup` tool, then answers; passes every test) and the webhook
/// the tool calls.
struct Fakes {
    llm: String,
}

impl Fakes {
    async fn start() -> anyhow::Result<Fakes> {
        let router = Router::new().route("/v1/chat/completions", post(llm));
        let llm = format!("{}/v1", node::serve(router).await?);
        Ok(Fakes { llm })
    }

    fn envs(&self, database_url: Option<&str>) -> Vec<(&'static str, String)> {
        let mut envs = vec![
            ("OPENAI_BASE_URL", self.llm.clone()),
            ("OPENAI_API_KEY", "sk-soak".to_owned()),
            ("COLLOQUY_WEBHOOK_ALLOW", "127.0.0.1".to_owned()),
        ];
        if let Some(url) = database_url {
            envs.push(("COLLOQUY_DATABASE_URL", url.to_owned()));
        }
        envs
    }
}

async fn llm(axum::Json(body): axum::Json<Value>) -> impl axum::response::IntoResponse {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let system = messages.first().and_then(|m| m["content"].as_str()).unwrap_or_default();
    let last_role = messages.last().and_then(|m| m["role"].as_str()).unwrap_or_default();
    let delta = if system.starts_with("You evaluate") {
        json!({"content": r#"{"result": "success", "rationale": "soak"}"#})
    } else if last_role == "tool" || body.get("tools").is_none() {
        json!({"content": "It is sunny."})
    } else {
        json!({"tool_calls": [{"index": 0, "id": "call_soak", "type": "function",
            "function": {"name": "lookup", "arguments": "{\"city\": \"Paris\"}"}}]})
    };
    let finish = if delta.get("tool_calls").is_some() { "tool_calls" } else { "stop" };
    let chunk = json!({"choices": [{"index": 0, "delta": delta}]});
    let done = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]});
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        format!("data: {chunk}\n\ndata: {done}\n\ndata: [DONE]\n\n"),
    )
}

/// What the load works on: a public agent with the webhook tool, its tool and a test.
#[derive(Clone)]
struct Setup {
    agent_id: String,
    tool_id: String,
    test_id: String,
}

impl Setup {
    async fn create(node: &Node) -> anyhow::Result<Setup> {
        let client = reqwest::Client::new();
        let webhook = node::serve(
            Router::new().route("/lookup", post(|| async { axum::Json(json!({"sky": "sunny"})) })),
        )
        .await?;
        let tool_id = live::lookup_tool(node, &webhook).await?;
        let agent = node
            .post(
                &client,
                "/v1/convai/agents/create",
                &json!({"name": "soak",
                "conversation_config": {"conversation": {"text_only": true}, "agent": {
                    "first_message": "", "prompt": {"prompt": "Use lookup.", "llm": "gpt-4o-mini",
                    "tool_ids": [tool_id]}}}}),
            )
            .await?;
        let test = node
            .post(
                &client,
                "/v1/convai/agent-testing/create",
                &json!({"name": "soak",
                "success_condition": "answers",
                "chat_history": [{"role": "user", "message": "weather?", "time_in_call_secs": 0}]}),
            )
            .await?;
        Ok(Setup {
            agent_id: agent["agent_id"].as_str().unwrap_or_default().to_owned(),
            tool_id,
            test_id: test["id"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

/// One client of the load, bound to a node.
struct Target {
    base: String,
    key: String,
    setup: Setup,
}

impl Target {
    /// Repeats its kind of work until `stop`: 0 CRUD, 1 conversations, 2 test runs, 3 audit.
    async fn run(&self, kind: usize, tally: &Tally, stop: &AtomicBool) {
        let client = reqwest::Client::new();
        let mut last_conversation = None;
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let outcome = match kind {
                0 => self.crud(&client, tally, i).await,
                1 => self.conversation(tally).await.map(|id| last_conversation = Some(id)),
                2 => self.test_run(&client, tally).await,
                _ => self.audit(&client, tally, last_conversation.as_deref()).await,
            };
            if let Err(e) = outcome {
                tally.error(format!("{e:#}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            i += 1;
        }
    }

    async fn call(
        &self, client: &reqwest::Client, tally: &Tally, method: reqwest::Method, path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let started = Instant::now();
        let mut request = client
            .request(method.clone(), format!("{}{path}", self.base))
            .header("xi-api-key", &self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let r = request.send().await?;
        let status = r.status();
        let bytes = r.bytes().await?;
        anyhow::ensure!(status.is_success(), "{method} {path}: {status}");
        tally.ok(started.elapsed());
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn crud(&self, client: &reqwest::Client, tally: &Tally, i: u64) -> anyhow::Result<()> {
        use reqwest::Method;
        let body = json!({"name": format!("soak {i}"), "conversation_config": {}});
        let agent =
            self.call(client, tally, Method::POST, "/v1/convai/agents/create", Some(&body)).await?;
        let path = format!("/v1/convai/agents/{}", agent["agent_id"].as_str().unwrap_or_default());
        self.call(client, tally, Method::GET, &path, None).await?;
        self.call(client, tally, Method::PATCH, &path, Some(&json!({"name": "renamed"}))).await?;
        self.call(client, tally, Method::GET, "/v1/convai/agents?page_size=30", None).await?;
        self.call(client, tally, Method::DELETE, &path, None).await?;
        Ok(())
    }

    async fn conversation(&self, tally: &Tally) -> anyhow::Result<String> {
        let url = format!(
            "{}/v1/convai/conversation?agent_id={}",
            self.base.replacen("http://", "ws://", 1),
            self.setup.agent_id
        );
        let started = Instant::now();
        let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
        let hello = json!({"type": "conversation_initiation_client_data"});
        socket.send(Message::text(hello.to_string())).await?;
        let meta = wait_for(&mut socket, "conversation_initiation_metadata").await?;
        tally.ok(started.elapsed());
        for _ in 0..2 {
            let started = Instant::now();
            let message = json!({"type": "user_message", "text": "What is the weather in Paris?"});
            socket.send(Message::text(message.to_string())).await?;
            wait_for(&mut socket, "agent_response").await?;
            tally.ok(started.elapsed());
        }
        socket.close(None).await?;
        Ok(meta["conversation_initiation_metadata_event"]["conversation_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    async fn test_run(&self, client: &reqwest::Client, tally: &Tally) -> anyhow::Result<()> {
        use reqwest::Method;
        let path = format!("/v1/convai/agents/{}/run-tests", self.setup.agent_id);
        let body = json!({"tests": [{"test_id": self.setup.test_id}]});
        let invocation = self.call(client, tally, Method::POST, &path, Some(&body)).await?;
        let path = format!(
            "/v1/convai/test-invocations/{}",
            invocation["id"].as_str().unwrap_or_default()
        );
        let started = Instant::now();
        loop {
            let got = self.call(client, tally, Method::GET, &path, None).await?;
            let runs = got["test_runs"].as_array().cloned().unwrap_or_default();
            if runs.iter().all(|r| r["status"] != "pending") {
                anyhow::ensure!(
                    runs.iter().all(|r| r["status"] == "passed"),
                    "a test run failed: {got}"
                );
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "a test run took over a minute"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn audit(
        &self, client: &reqwest::Client, tally: &Tally, conversation: Option<&str>,
    ) -> anyhow::Result<()> {
        use reqwest::Method;
        let path = format!("/v1/convai/tools/{}/executions?page_size=30", self.setup.tool_id);
        self.call(client, tally, Method::GET, &path, None).await?;
        if let Some(id) = conversation.filter(|c| !c.is_empty()) {
            self.call(
                client,
                tally,
                Method::GET,
                &format!("/api/tool-calls?executionId={id}"),
                None,
            )
            .await?;
        }
        self.call(client, tally, Method::GET, "/v1/convai/conversations?page_size=30", None)
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    }
}

/// Reads events until one of type `kind` ([`crate::live::wait_for`]), for at most 30 s: a
/// turn that never ends is an error of the soak, not a hang of it.
async fn wait_for(socket: &mut crate::live::Socket, kind: &str) -> anyhow::Result<Value> {
    tokio::time::timeout(Duration::from_secs(30), crate::live::wait_for(socket, kind))
        .await
        .map_err(|_| anyhow::anyhow!("no {kind} within 30 s"))?
}
