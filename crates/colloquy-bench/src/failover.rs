//! Two nodes on one PostgreSQL under a mixed load, one of them killed with SIGKILL halfway:
//! what each node served, and the requests that still failed although clients retried a
//! connection error on the other node, as a load balancer in front of them would.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::backend::Backend;
use crate::node::Node;
use crate::report::{Goal, Row};
use crate::scenarios::Sizes;

/// What the load's clients saw.
#[derive(Default)]
struct Seen {
    /// Requests each node answered with a 2xx.
    served: [AtomicUsize; 2],
    /// Requests sent again to the other node after a connection error.
    retried: AtomicUsize,
    /// Requests that failed after that: a non-2xx answer, or both nodes unreachable.
    failed: Mutex<Vec<String>>,
}

/// The two-node scenario on `backend`, which must be PostgreSQL.
pub async fn two_nodes(binary: &Path, sizes: Sizes, backend: &Backend) -> anyhow::Result<Vec<Row>> {
    let url = backend.fresh_database().await?.context("two nodes need PostgreSQL")?;
    let envs = [
        ("COLLOQUY_DATABASE_URL", url),
        ("COLLOQUY_BOOTSTRAP_API_KEY", colloquy_core::keys::generate_token()),
        ("COLLOQUY_SECRET_KEY", colloquy_core::secret_key::SecretKey::generate().to_hex()),
    ];
    let a = Node::start(binary, &envs).await?;
    let mut b = Node::start(binary, &envs).await?;
    // One client for every worker: building one reads the system's CA roots, which fifty
    // workers each doing so would spend the first half of the run on.
    let client = reqwest::Client::new();
    let agent = a
        .post(
            &client,
            "/v1/convai/agents/create",
            &json!({"name": "failover", "conversation_config": {}}),
        )
        .await?;
    let agent_id = agent["agent_id"].as_str().unwrap_or_default().to_owned();
    let bases = [a.base.clone(), b.base.clone()];
    let seen = std::sync::Arc::new(Seen::default());
    let started = Instant::now();
    let deadline = started + sizes.window * 2;
    let workers: Vec<_> = (0..sizes.connections)
        .map(|i| {
            let worker = Worker {
                client: client.clone(),
                bases: bases.clone(),
                key: a.key.clone(),
                node: i % 2,
                seen: seen.clone(),
            };
            let agent_id = agent_id.clone();
            tokio::spawn(async move { worker.run(&agent_id, deadline).await })
        })
        .collect();
    tokio::time::sleep(sizes.window).await;
    let b_served = seen.served[1].load(Ordering::Relaxed);
    let b_lived = started.elapsed();
    b.kill();
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed();
    let failed = seen.failed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let label = format!(
        "two nodes on one PostgreSQL, mixed load (GET, list, create, delete agents), {} connections",
        sizes.connections
    );
    let rate = |n: usize, over: Duration| n as f64 / over.as_secs_f64();
    Ok(vec![
        Row {
            scenario: format!("{label}: node A, the whole run"),
            unit: "req/s".into(),
            ours: rate(seen.served[0].load(Ordering::Relaxed), elapsed),
            baseline: None,
            goal: Goal::None,
        },
        Row {
            scenario: format!("{label}: node B, until it was killed halfway"),
            unit: "req/s".into(),
            ours: rate(b_served, b_lived),
            baseline: None,
            goal: Goal::None,
        },
        Row {
            scenario: format!(
                "{label}: requests failed after node B was killed with SIGKILL ({} retried on node A after a connection error{})",
                seen.retried.load(Ordering::Relaxed),
                failed.first().map_or(String::new(), |f| format!("; first failure: {f}"))
            ),
            unit: "requests".into(),
            ours: failed.len() as f64,
            baseline: None,
            goal: Goal::AtMost(0.0),
        },
    ])
}

/// One client of the load: it sends to its node until that node stops answering, then to the
/// other, retrying the request that met the connection error.
struct Worker {
    client: reqwest::Client,
    bases: [String; 2],
    key: String,
    node: usize,
    seen: std::sync::Arc<Seen>,
}

impl Worker {
    async fn run(mut self, agent_id: &str, deadline: Instant) {
        let mut created: Option<String> = None;
        let mut i = 0usize;
        while Instant::now() < deadline {
            let (method, path, body) = match (i % 4, created.take()) {
                (0, kept) => {
                    created = kept;
                    (reqwest::Method::GET, format!("/v1/convai/agents/{agent_id}"), None)
                }
                (1, kept) => {
                    created = kept;
                    (reqwest::Method::GET, "/v1/convai/agents?page_size=30".to_owned(), None)
                }
                (2, _) => (
                    reqwest::Method::POST,
                    "/v1/convai/agents/create".to_owned(),
                    Some(json!({"name": format!("failover {i}"), "conversation_config": {}})),
                ),
                (_, Some(id)) => (reqwest::Method::DELETE, format!("/v1/convai/agents/{id}"), None),
                (_, None) => {
                    i += 1;
                    continue;
                }
            };
            if let Some(answer) = self.send(&method, &path, body.as_ref()).await {
                created = answer["agent_id"].as_str().map(str::to_owned);
            }
            i += 1;
        }
    }

    /// Sends one request, once more to the other node after a connection error (a DELETE
    /// the first node carried out before it died then finds nothing, which is its success);
    /// the answer's JSON when it succeeded.
    async fn send(
        &mut self, method: &reqwest::Method, path: &str, body: Option<&Value>,
    ) -> Option<Value> {
        for attempt in 0..2 {
            match self.exchange(method, path, body).await {
                Ok((status, bytes)) => {
                    let done_before = attempt == 1
                        && method == reqwest::Method::DELETE
                        && status == reqwest::StatusCode::NOT_FOUND;
                    if !status.is_success() && !done_before {
                        self.fail(format!("{method} {path}: {status}"));
                        return None;
                    }
                    self.seen.served[self.node].fetch_add(1, Ordering::Relaxed);
                    return Some(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
                }
                Err(_) if attempt == 0 => {
                    self.seen.retried.fetch_add(1, Ordering::Relaxed);
                    self.node = 1 - self.node;
                }
                Err(e) => self.fail(format!("{method} {path}: {e}")),
            }
        }
        None
    }

    async fn exchange(
        &self, method: &reqwest::Method, path: &str, body: Option<&Value>,
    ) -> reqwest::Result<(reqwest::StatusCode, Vec<u8>)> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.bases[self.node]))
            .header("xi-api-key", &self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await?;
        let status = answer.status();
        Ok((status, answer.bytes().await?.to_vec()))
    }

    fn fail(&self, what: String) {
        self.seen.failed.lock().unwrap_or_else(|e| e.into_inner()).push(what);
    }
}
