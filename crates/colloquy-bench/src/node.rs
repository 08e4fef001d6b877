//! What the benchmarks run against: the `colloquy` binary as a child process on a fresh SQLite
//! database, a bare axum server as the HTTP baseline, and a fake OpenAI-compatible LLM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{any, post};
use serde_json::{Value, json};

/// A running `colloquy serve`.
pub struct Node {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin key.
    pub key: String,
    /// Spawn to first 200 from `/healthz`.
    pub ready_in: Duration,
    /// Its working directory (database and secret key).
    pub dir: tempfile::TempDir,
    /// `COLLOQUY_DATABASE_URL` when it was given one (a PostgreSQL schema of its own).
    database_url: Option<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Node {
    /// Starts `binary` with `envs` on a new database and waits until it is ready.
    pub async fn start(binary: &Path, envs: &[(&str, String)]) -> anyhow::Result<Node> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        // Nodes sharing a database are given their one key; a lone node makes its own.
        let key = envs
            .iter()
            .find(|(k, _)| *k == "COLLOQUY_BOOTSTRAP_API_KEY")
            .map_or_else(colloquy_core::keys::generate_token, |(_, v)| v.clone());
        let started = Instant::now();
        let mut command = Command::new(binary);
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(dir.path())
            .env_remove("COLLOQUY_CONFIG")
            .env("COLLOQUY_BOOTSTRAP_API_KEY", &key)
            .env("COLLOQUY_RATE_LIMIT_PER_MINUTE", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(server_log(port)?);
        for (k, v) in envs {
            command.env(k, v);
        }
        let database_url =
            envs.iter().find(|(k, _)| *k == "COLLOQUY_DATABASE_URL").map(|(_, v)| v.clone());
        let child = command.spawn()?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("{} did not become ready", binary.display());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Node { child, base, key, ready_in: started.elapsed(), dir, database_url })
    }

    /// The server's resident memory, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        rss_of(self.child.id())
    }

    /// The server's resident memory as (anonymous, file-backed) bytes. The file-backed part is
    /// mostly the binary's code, and varies between runs of one binary with what the page
    /// cache holds of the file (fault-around maps the cached neighbours of each page touched).
    pub fn rss_parts(&self) -> (u64, u64) {
        let pid = self.child.id();
        (status_bytes(pid, "RssAnon"), status_bytes(pid, "RssFile"))
    }

    /// The server's open file descriptors (sockets, database files, pipes).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, Iterator::count)
    }

    /// CPU time the server has used so far (user and system), from `/proc` (clock ticks of
    /// 10 ms).
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at `state`.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
        Duration::from_millis(ticks * 10)
    }

    /// The SQLite database file.
    pub fn database(&self) -> PathBuf {
        self.dir.path().join("colloquy-data/colloquy.db")
    }

    /// The URL of the node's database, PostgreSQL's or its SQLite file's.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.database().display()))
    }

    /// Kills the server with SIGKILL, as a crashed machine would stop it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// POSTs JSON with the admin key and returns the JSON answer (error on non-2xx).
    pub async fn post(
        &self, client: &reqwest::Client, path: &str, body: &Value,
    ) -> anyhow::Result<Value> {
        let r = client
            .post(format!("{}{path}", self.base))
            .header("xi-api-key", &self.key)
            .json(body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "POST {path}: {status} {v}");
        Ok(v)
    }

    /// GETs with the admin key.
    pub async fn get(
        &self, client: &reqwest::Client, path: &str,
    ) -> anyhow::Result<(Value, Vec<u8>)> {
        let r = client
            .get(format!("{}{path}", self.base))
            .header("xi-api-key", &self.key)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "GET {path}: {}", r.status());
        let bytes = r.bytes().await?.to_vec();
        Ok((serde_json::from_slice(&bytes).unwrap_or(Value::Null), bytes))
    }

    /// Signs in to the dashboard with the admin key; returns the session's `Cookie` value.
    pub async fn dashboard_session(&self, client: &reqwest::Client) -> anyhow::Result<String> {
        let cookie_of = |r: &reqwest::Response, name: &str| {
            r.headers()
                .get_all(reqwest::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|c| c.starts_with(name))
                .and_then(|c| c.split(';').next())
                .map(str::to_owned)
        };
        let form = client.get(format!("{}/login", self.base)).send().await?;
        let login = cookie_of(&form, "__Host-colloquy_login=")
            .ok_or_else(|| anyhow::anyhow!("no login cookie"))?;
        let token = login.split_once('=').map(|(_, v)| v.to_owned()).unwrap_or_default();
        let r = client
            .post(format!("{}/login", self.base))
            .header(reqwest::header::COOKIE, &login)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("api_key={}&_csrf={token}", self.key))
            .send()
            .await?;
        cookie_of(&r, "__Host-colloquy_session=")
            .ok_or_else(|| anyhow::anyhow!("sign-in failed: {}", r.status()))
    }
}

/// Drops `file`'s pages from the page cache (those not mapped by a running process).
#[cfg(target_os = "linux")]
pub fn evict_from_page_cache(file: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(file)?;
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)?;
    Ok(())
}

/// Dropping a file's pages is Linux's `posix_fadvise`; elsewhere the start is measured as found.
#[cfg(not(target_os = "linux"))]
pub fn evict_from_page_cache(_file: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Where a node's log goes: nowhere, or a file per node in `COLLOQUY_BENCH_LOGS` (a directory)
/// when a scenario's failures need the server's side.
fn server_log(port: u16) -> anyhow::Result<Stdio> {
    let Some(dir) = std::env::var_os("COLLOQUY_BENCH_LOGS") else { return Ok(Stdio::null()) };
    std::fs::create_dir_all(&dir)?;
    Ok(std::fs::File::create(Path::new(&dir).join(format!("node-{port}.log")))?.into())
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of process `pid`, in bytes (0 when it is gone).
pub(crate) fn rss_of(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS")
}

/// A memory figure of process `pid`'s `/proc/.../status` (`VmRSS`, `RssAnon`, `RssFile`), in
/// bytes; 0 when it cannot be read.
pub(crate) fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Serves `router` on a free loopback port and returns its base URL.
pub(crate) async fn serve(router: Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(base)
}

/// The baseline of the API scenarios: a bare axum handler answering every request with
/// `body` as JSON, on the same machine.
pub async fn bare_server(body: Vec<u8>) -> anyhow::Result<String> {
    let router = Router::new().fallback(any(move || {
        let body = body.clone();
        async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
    }));
    serve(router).await
}

/// An OpenAI-compatible LLM that waits `delay`, then streams an answer: a passing verdict to
/// the test judge, a summary to a post-call analysis (its forced `record_analysis` call), a call
/// of `lookup` to an agent that offers that tool (then "Hello" once it has the result), "Hello"
/// to everyone else.
pub async fn fake_llm(delay: Duration) -> anyhow::Result<String> {
    let router = Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::Json<Value>| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let system = body["messages"][0]["content"].as_str().unwrap_or_default();
            // The judges' verdicts: a test's, and the guardrails' (nothing found).
            let text = if system.starts_with("You evaluate") {
                r#"{"result": "success", "rationale": "benchmark"}"#
            } else if system.starts_with("You detect prompt-injection") {
                r#"{"injection": false, "reason": "benchmark"}"#
            } else if system.starts_with("You check an AI agent's reply") {
                r#"{"injection": false, "scores": {"profanity": 0.0, "violence": 0.0}, "rules": {"1": {"violates": false, "reason": "benchmark"}}}"#
            } else {
                "Hello"
            };
            // An agent offering the `lookup` tool has it called once a turn, then answers.
            let offers_lookup = body["tools"]
                .as_array()
                .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == "lookup"));
            let answering_a_result = body["messages"]
                .as_array()
                .and_then(|m| m.last())
                .is_some_and(|m| m["role"] == "tool");
            let delta = if body["tool_choice"]["function"]["name"] == "record_analysis" {
                let summary =
                    r#"{"transcript_summary": "A greeting.", "call_summary_title": "Hello"}"#;
                json!({"tool_calls": [{"index": 0, "id": "call_bench", "type": "function",
                    "function": {"name": "record_analysis", "arguments": summary}}]})
            } else if offers_lookup && !answering_a_result {
                json!({"tool_calls": [{"index": 0, "id": "call_lookup", "type": "function",
                    "function": {"name": "lookup", "arguments": "{\"city\": \"Paris\"}"}}]})
            } else {
                json!({"content": text})
            };
            let finish = if offers_lookup && !answering_a_result { "tool_calls" } else { "stop" };
            let chunk = json!({"choices": [{"index": 0, "delta": delta}]});
            let done = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]});
            (
                [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
                format!("data: {chunk}\n\ndata: {done}\n\ndata: [DONE]\n\n"),
            )
        }),
    );
    Ok(format!("{}/v1", serve(router).await?))
}
