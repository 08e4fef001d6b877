//! Several nodes on one PostgreSQL database, and moving a SQLite database to PostgreSQL: two
//! `colloquy serve` processes sharing resources, conversations, signed URLs and one invocation's
//! test runs (and surviving one of them being killed), and `colloquy migrate --from --to`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use colloquy_core::keys::generate_token;
use colloquy_core::secret_key::SecretKey;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fakes::with_llm;
use crate::fakes::{FakeLlm, Reply, Webhook, call, text};
use crate::helpers::{
    Backend, ChildServer, TestApp, TestDb, client, colloquy_bin, invocation_done,
    invocation_summary, poll, postgres_configured, status_json,
};
use crate::tools::webhook;
use crate::ws::{connect, initiate, next, open, say, until};

/// The agent says "Hello, friend" (or reads a tool result back); the judge passes it; the word
/// "lookup" calls the webhook tool.
fn script(req: &Value) -> Reply {
    let messages = req["messages"].as_array().unwrap();
    let system = messages[0]["content"].as_str().unwrap_or_default();
    let last = messages.last().unwrap();
    if system.starts_with("You evaluate") {
        return text(r#"{"result": "success", "rationale": "judged"}"#);
    }
    if last["role"] == "tool" {
        return text(&format!("Tool said: {}", last["content"].as_str().unwrap()));
    }
    if last["content"].as_str().unwrap_or_default().contains("lookup") {
        return call("lookup", json!({"city": "Paris"}));
    }
    text("Hello, friend")
}

fn judged(llm: &FakeLlm) -> usize {
    llm.requests()
        .iter()
        .filter(|r| {
            r["messages"][0]["content"].as_str().is_some_and(|s| s.starts_with("You evaluate"))
        })
        .count()
}

/// A node and the key it is used with.
struct Node {
    server: ChildServer,
    key: String,
}

impl Node {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = client()
            .request(method, format!("{}{path}", self.server.base))
            .header("xi-api-key", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        status_json(request.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    fn ws(&self, query: &str) -> String {
        crate::ws::url(&self.server.base, query)
    }
}

async fn start_node(
    dir: &std::path::Path, db: &TestDb, secret: &str, key: &str, llm: &FakeLlm,
) -> Node {
    let llm_url = format!("{}/v1", llm.base);
    let server = ChildServer::start(
        dir,
        &[
            ("COLLOQUY_DATABASE_URL", db.url.as_str()),
            ("COLLOQUY_SECRET_KEY", secret),
            ("COLLOQUY_BOOTSTRAP_API_KEY", key),
            ("OPENAI_BASE_URL", llm_url.as_str()),
            ("OPENAI_API_KEY", "sk-fake"),
            ("COLLOQUY_WEBHOOK_ALLOW", "127.0.0.1"),
            ("COLLOQUY_TEST_CONCURRENCY", "8"),
        ],
    )
    .await;
    Node { server, key: key.to_owned() }
}

/// The invocation's summary once it has no pending run, asking `node`.
async fn finished(node: &Node, agent: &str, invocation: &str, within: Duration) -> Value {
    invocation_summary(&node.server.base, &node.key, agent, invocation, within).await
}

#[tokio::test]
async fn two_nodes_share_one_postgresql_database() {
    if !postgres_configured() {
        eprintln!("skipped: set COLLOQUY_TEST_DATABASE_URL to run the multi-node test");
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = SecretKey::generate().to_hex();
    let key = generate_token();
    let llm_a = {
        let slow = Arc::new(AtomicBool::new(false));
        (
            slow.clone(),
            FakeLlm::openai(move |req| {
                if slow.load(Ordering::Relaxed) {
                    Reply::After(Duration::from_secs(120), Box::new(script(req)))
                } else {
                    script(req)
                }
            }),
        )
    };
    let (slow_a, llm_a) = (llm_a.0, llm_a.1.await);
    let llm_b = FakeLlm::openai(script).await;

    // Both start at once on the empty database: one migrates while the other waits for the
    // advisory lock, and the bootstrap key is installed once.
    let (a, b) = tokio::join!(
        start_node(dir.path(), &db, &secret, &key, &llm_a),
        start_node(dir.path(), &db, &secret, &key, &llm_b),
    );
    let store = db.store().await;
    use colloquy_store::KeyStore as _;
    assert_eq!(store.list_keys(None, None, 100).await.unwrap().len(), 1, "one bootstrap key");

    // What one node writes, the other reads at once.
    let hook = Webhook::start(200, r#"{"forecast": "sunny"}"#, Duration::ZERO).await;
    let (s, tool) =
        a.post("/v1/convai/tools", webhook("lookup", &format!("{}/weather", hook.base))).await;
    assert_eq!(s, 200, "{tool}");
    let (s, agent) = a
        .post("/v1/convai/agents/create", json!({"name": "shared", "conversation_config": {"agent": {
            "first_message": "", "prompt": {"prompt": "p", "llm": "gpt-4o-mini", "tool_ids": [tool["id"]]}}}}))
        .await;
    assert_eq!(s, 200, "{agent}");
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    let (s, on_b) = b.get(&format!("/v1/convai/agents/{agent_id}")).await;
    assert_eq!((s, on_b["name"].as_str()), (200, Some("shared")));
    let (s, _) = b
        .call(
            Method::PATCH,
            &format!("/v1/convai/agents/{agent_id}"),
            Some(json!({"name": "renamed on b"})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, on_a) = a.get(&format!("/v1/convai/agents/{agent_id}")).await;
    assert_eq!(on_a["name"], "renamed on b");

    // Both nodes patching the agent at once make versions in a line: none is lost, and each
    // version's parent is the one before it. Every writer gets through: a writer loses a race
    // only to another's commit, and it retries more times than there are other writers.
    let agent_path = format!("/v1/convai/agents/{agent_id}");
    let writes = (0..8).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        let body = json!({"tags": [format!("writer-{i}")]});
        node.call(Method::PATCH, &agent_path, Some(body))
    });
    let answers = futures_util::future::join_all(writes).await;
    let mut seqs = Vec::new();
    for (s, answer) in &answers {
        assert_eq!(*s, 200, "{answer}");
        let version = answer["version_id"].as_str().unwrap();
        let (_, meta) = a.get(&format!("{agent_path}/versions/{version}")).await;
        let parent = meta["parents"]["in_branch_parent_id"].as_str().unwrap();
        let (_, parent) = b.get(&format!("{agent_path}/versions/{parent}")).await;
        let seq = meta["seq_no_in_branch"].as_i64().unwrap();
        assert_eq!(parent["seq_no_in_branch"].as_i64().unwrap() + 1, seq);
        seqs.push(seq);
    }
    let written = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), written, "no two writers took the same place: {answers:?}");
    assert_eq!(written, 8, "every writer succeeds: {answers:?}");

    // The same for an MCP server's read-modify-write: eight approvals added at once on both
    // nodes all get through, and none is lost to another's write.
    let (s, server) = a
        .post(
            "/v1/convai/mcp-servers",
            json!({"config": {"name": "docs", "url": "https://mcp.example.com/sse"}}),
        )
        .await;
    assert_eq!(s, 200, "{server}");
    let approvals =
        format!("/v1/convai/mcp-servers/{}/tool-approvals", server["id"].as_str().unwrap());
    let approving = (0..8).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        let body = json!({"tool_name": format!("tool-{i}"), "tool_description": "d",
            "input_schema": {"type": "object"}, "approval_policy": "auto_approved"});
        node.post(&approvals, body)
    });
    for (s, answer) in futures_util::future::join_all(approving).await {
        assert_eq!(s, 200, "{answer}");
    }
    let (_, server) =
        b.get(&format!("/v1/convai/mcp-servers/{}", server["id"].as_str().unwrap())).await;
    let approved = server["config"]["tool_approval_hashes"].as_array().unwrap();
    assert_eq!(approved.len(), 8, "{server}");

    // A conversation on one node; its tool calls through the other's audit APIs.
    let (mut socket, conversation) =
        open(&a.ws(&format!("agent_id={agent_id}")), Default::default()).await;
    say(&mut socket, "lookup the weather").await;
    let events = until(&mut socket, "agent_response").await;
    assert!(
        events.last().unwrap()["agent_response_event"]["agent_response"]
            .as_str()
            .unwrap()
            .contains("sunny"),
        "{events:?}"
    );
    // The other node counts it live, and stops once it ends.
    let live = format!("/v1/convai/analytics/live-count?agent_id={agent_id}");
    assert_eq!(b.get(&live).await.1["count"], 1);
    drop(socket);
    let left = poll(Duration::from_secs(5), Duration::from_millis(50), async || {
        (b.get(&live).await.1["count"] == 0).then_some(())
    })
    .await;
    assert!(left.is_some(), "an ended conversation leaves every node's count");
    let (s, calls) = b.get(&format!("/api/tool-calls?executionId={conversation}")).await;
    assert_eq!(s, 200, "{calls}");
    assert_eq!(calls[0]["toolName"], "lookup");
    let (_, executions) =
        b.get(&format!("/v1/convai/tools/{}/executions", tool["id"].as_str().unwrap())).await;
    assert_eq!(executions["executions"][0]["conversation_id"], conversation.as_str());

    // A signed URL from one node is good on the other (once).
    let (s, private) = a
        .post("/v1/convai/agents/create", json!({"conversation_config": {"agent": {"first_message": "Hi", "prompt": {"llm": "gpt-4o-mini"}}},
            "platform_settings": {"auth": {"enable_auth": true}}}))
        .await;
    assert_eq!(s, 200);
    let (_, signed) = a
        .get(&format!(
            "/v1/convai/conversation/get-signed-url?agent_id={}",
            private["agent_id"].as_str().unwrap()
        ))
        .await;
    let url = signed["signed_url"].as_str().unwrap().replacen(
        &a.server.base.replacen("http://", "ws://", 1),
        &b.server.base.replacen("http://", "ws://", 1),
        1,
    );
    assert!(url.starts_with(&b.server.base.replacen("http://", "ws://", 1)), "{url}");
    let (mut socket, _) = connect(&url, &[]).await;
    initiate(&mut socket, Default::default()).await;
    assert_eq!(next(&mut socket).await["type"], "conversation_initiation_metadata");
    drop(socket);
    let (mut again, _) = connect(
        &url.replacen(
            &b.server.base.replacen("http://", "ws://", 1),
            &a.server.base.replacen("http://", "ws://", 1),
            1,
        ),
        &[],
    )
    .await;
    initiate(&mut again, Default::default()).await;
    let refused = until(&mut again, "conversation_initiation_metadata").await;
    assert!(
        refused.last().unwrap().get("close").is_some(),
        "a used signature is spent on every node: {refused:?}"
    );

    // One invocation of 200 runs is worked by both nodes, each run judged once.
    let mut tests = Vec::new();
    for i in 0..4 {
        let (s, t) = a
            .post(
                "/v1/convai/agent-testing/create",
                json!({"name": format!("greets {i}"), "success_condition": "friendly",
                "chat_history": [{"role": "user", "message": "hi", "time_in_call_secs": 0}]}),
            )
            .await;
        assert_eq!(s, 200, "{t}");
        tests.push(json!({"test_id": t["id"]}));
    }
    let body = json!({"tests": tests, "repeat_count": 50});
    let path = format!("/v1/convai/agents/{agent_id}/run-tests");
    let (s, first) = a.post(&path, body.clone()).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["test_runs"].as_array().unwrap().len(), 200);
    let summary =
        finished(&b, &agent_id, first["id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(
        (summary["passed_count"].as_i64(), summary["pending_count"].as_i64()),
        (Some(200), Some(0)),
        "{summary}"
    );
    let (on_a, on_b) = (judged(&llm_a), judged(&llm_b));
    assert_eq!(on_a + on_b, 200, "every run judged exactly once ({on_a} on a, {on_b} on b)");
    assert!(on_a > 0 && on_b > 0, "both nodes worked: {on_a} on a, {on_b} on b");

    // Node a stops answering, holds its runs (its heartbeat keeps their leases), and is
    // killed: node b retakes them once the default lease runs out and finishes the invocation.
    slow_a.store(true, Ordering::Relaxed);
    let held_before = llm_a.requests().len();
    let judged_b = judged(&llm_b);
    let (s, second) = b.post(&path, body).await;
    assert_eq!(s, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while llm_a.requests().len() == held_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(llm_a.requests().len() > held_before, "node a took runs of the second invocation");
    a.server.kill9();
    let killed = Instant::now();
    let summary =
        finished(&b, &agent_id, second["id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(
        (summary["passed_count"].as_i64(), summary["pending_count"].as_i64()),
        (Some(200), Some(0)),
        "{summary}"
    );
    assert_eq!(
        judged(&llm_b) - judged_b,
        200,
        "node b judged every run of the second invocation once"
    );
    assert!(
        killed.elapsed() < Duration::from_secs(30),
        "a dead node's runs retaken within 30 s by default"
    );

    // A node joining later takes runs too; a cancellation on one node is seen by every node,
    // and the runs the other holds end cancelled.
    let llm_c =
        FakeLlm::openai(|req| Reply::After(Duration::from_secs(120), Box::new(script(req)))).await;
    let c = start_node(dir.path(), &db, &secret, &key, &llm_c).await;
    let (s, third) = b.post(&path, json!({"tests": tests, "repeat_count": 50})).await;
    assert_eq!(s, 200);
    let third_id = third["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while llm_c.requests().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!llm_c.requests().is_empty(), "the new node took runs");
    let (s, cancelled) =
        b.post(&format!("/v1/convai/test-invocations/{third_id}/cancel"), json!({})).await;
    assert_eq!(s, 200, "{cancelled}");
    let seen_b = finished(&b, &agent_id, &third_id, Duration::from_secs(10)).await;
    let seen_c = finished(&c, &agent_id, &third_id, Duration::from_secs(10)).await;
    assert_eq!(seen_b, seen_c, "both nodes report the same");
    assert_eq!(seen_c["pending_count"], 0, "{seen_c}");
    assert!(seen_c["failed_count"].as_i64().unwrap() > 0, "cancelled runs: {seen_c}");
    let (_, detail) = c.get(&format!("/v1/convai/test-invocations/{third_id}")).await;
    assert!(
        detail["test_runs"].as_array().unwrap().iter().all(|r| r["status"] != "pending"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_sqlite_database_moves_to_postgresql_whole() {
    if !postgres_configured() {
        eprintln!("skipped: set COLLOQUY_TEST_DATABASE_URL to run the migration test");
        return;
    }
    let llm = FakeLlm::openai(script).await;
    let hook = Webhook::start(200, r#"{"forecast": "sunny"}"#, Duration::ZERO).await;
    let app = TestApp::spawn_with(Backend::Sqlite, with_llm(&llm)).await;
    let key = app.admin_key.clone();
    let (_, secret) = app
        .post(
            "/v1/convai/secrets",
            &key,
            &json!({"type": "new", "name": "token", "value": "moved-secret-value"}),
        )
        .await;
    let mut tool = webhook("lookup", &format!("{}/weather", hook.base));
    tool["tool_config"]["api_schema"]["request_headers"] =
        json!({"Authorization": {"secret_id": secret["secret_id"]}});
    let (s, tool) = app.post("/v1/convai/tools", &key, &tool).await;
    assert_eq!(s, 200, "{tool}");
    let (s, _) = app
        .post(
            "/v1/convai/mcp-servers",
            &key,
            &json!({"config": {"name": "docs", "url": "https://mcp.example.com/sse"}}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, document) = app
        .post(
            "/v1/convai/knowledge-base/text",
            &key,
            &json!({"name": "moving doc", "text": "The archive moved to Lisbon in spring."}),
        )
        .await;
    assert_eq!(s, 200, "{document}");
    let (s, agent) = app
        .post(
            "/v1/convai/agents/create",
            &key,
            &json!({"name": "moving", "conversation_config": {"agent": {"first_message": "",
            "prompt": {"prompt": "p", "llm": "gpt-4o-mini", "tool_ids": [tool["id"]],
            "knowledge_base": [{"type": "text", "name": "moving doc", "id": document["id"]}]}}}}),
        )
        .await;
    assert_eq!(s, 200, "{agent}");
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    let ws = |base: &str| crate::ws::url(base, &format!("agent_id={agent_id}"));
    let converse = |url: String| async move {
        let (mut socket, id) = open(&url, Default::default()).await;
        say(&mut socket, "lookup").await;
        let events = until(&mut socket, "agent_response").await;
        assert!(
            events.last().unwrap()["agent_response_event"]["agent_response"]
                .as_str()
                .unwrap()
                .contains("sunny")
        );
        id
    };
    let conversation = converse(ws(&app.base)).await;
    let (s, test) = app
        .post(
            "/v1/convai/agent-testing/create",
            &key,
            &json!({"name": "greets", "success_condition": "friendly",
            "chat_history": [{"role": "user", "message": "hi", "time_in_call_secs": 0}]}),
        )
        .await;
    assert_eq!(s, 200, "{test}");
    let (s, invocation) = app
        .post(
            &format!("/v1/convai/agents/{agent_id}/run-tests"),
            &key,
            &json!({"tests": [{"test_id": test["id"]}]}),
        )
        .await;
    assert_eq!(s, 200, "{invocation}");
    let invocation_id = invocation["id"].as_str().unwrap().to_owned();
    let done = invocation_done(&app.base, &key, &invocation_id, Duration::from_secs(10)).await;
    assert_eq!(done["test_runs"][0]["status"], "passed", "{done}");
    let (_, calls_before) =
        app.get(&format!("/api/tool-calls?executionId={conversation}"), &key).await;
    let (_, agents_before) = app.get("/v1/convai/agents", &key).await;
    let sqlite = app.stop().await;

    let target = TestDb::new(Backend::Postgres).await;
    let output = tokio::process::Command::new(colloquy_bin())
        .args(["migrate", "--from", &sqlite.url, "--to", &target.url])
        .env_remove("COLLOQUY_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("copied and verified"), "{stdout}");
    assert!(
        stdout.contains("tool_executions") && stdout.contains("COLLOQUY_SECRET_KEY_FILE"),
        "{stdout}"
    );
    let source = colloquy_store::transfer::summarize(&sqlite.store().await).await.unwrap();
    let copied = colloquy_store::transfer::summarize(&target.store().await).await.unwrap();
    assert_eq!(source, copied, "same rows, same checksums");
    for table in [
        "agents",
        "tools",
        "secrets",
        "mcp_servers",
        "tool_executions",
        "conversations",
        "test_runs",
        "api_keys",
        "kb_documents",
        "kb_chunks",
        "agent_documents",
    ] {
        let t = copied.iter().find(|t| t.table == table).unwrap();
        assert!(t.rows > 0, "{table} was carried");
    }
    // The copied tables were analysed: the planner knows their rows (-1 until a table is).
    let pool = sqlx::PgPool::connect(&target.url).await.unwrap();
    let planned: f32 =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'agents'::regclass")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(planned >= 1.0, "agents analysed: reltuples {planned}");
    pool.close().await;

    // Again into the same, now populated, database: refused, nothing written.
    let again = tokio::process::Command::new(colloquy_bin())
        .args(["migrate", "--from", &sqlite.url, "--to", &target.url])
        .env_remove("COLLOQUY_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    assert_eq!(colloquy_store::transfer::summarize(&target.store().await).await.unwrap(), copied);

    // A PostgreSQL node with the SQLite node's secret key serves it all, secrets included.
    let key_file = sqlite.dir.path().join("secret.key");
    let dir = tempfile::tempdir().unwrap();
    let llm_url = format!("{}/v1", llm.base);
    let node = ChildServer::start(
        dir.path(),
        &[
            ("COLLOQUY_DATABASE_URL", target.url.as_str()),
            ("COLLOQUY_SECRET_KEY_FILE", key_file.to_str().unwrap()),
            ("OPENAI_BASE_URL", llm_url.as_str()),
            ("OPENAI_API_KEY", "sk-fake"),
            ("COLLOQUY_WEBHOOK_ALLOW", "127.0.0.1"),
        ],
    )
    .await;
    let node = Node { server: node, key: key.clone() };
    let (s, agents_after) = node.get("/v1/convai/agents").await;
    assert_eq!((s, &agents_after), (200, &agents_before));
    let (_, calls_after) = node.get(&format!("/api/tool-calls?executionId={conversation}")).await;
    assert_eq!(calls_after, calls_before);
    let (_, found) = node.get("/v1/convai/knowledge-base/search?query=lisbon").await;
    assert_eq!(found["results"][0]["document"]["id"], document["id"], "indexed on the new node");
    let (_, inv_after) = node.get(&format!("/v1/convai/test-invocations/{invocation_id}")).await;
    assert_eq!(inv_after["test_runs"][0]["status"], "passed");
    converse(node.ws(&format!("agent_id={agent_id}"))).await;
    let sent = hook.received();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1].headers["authorization"], "moved-secret-value",
        "the secret opened on the new node"
    );
}

/// A node computing embeddings with `embeddings`, from a `colloquy.toml` in `dir`, holding an
/// index for two seconds between saves.
async fn indexing_node(
    dir: &std::path::Path, db: &TestDb, secret: &str, key: &str,
    embeddings: &crate::fakes::FakeEmbeddings,
) -> Node {
    std::fs::write(
        dir.join("colloquy.toml"),
        format!(
            "[embeddings.providers.fake]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n\n\
             [[embeddings.routes]]\nmodel = \"e5_mistral_7b_instruct\"\nprovider = \"fake\"\n\
             provider_model = \"bag-of-words-64\"\n",
            embeddings.base
        ),
    )
    .unwrap();
    let server = ChildServer::start(
        dir,
        &[
            ("COLLOQUY_DATABASE_URL", db.url.as_str()),
            ("COLLOQUY_SECRET_KEY", secret),
            ("COLLOQUY_BOOTSTRAP_API_KEY", key),
            ("COLLOQUY_JOB_LEASE_SECS", "2"),
            ("COLLOQUY_WEBHOOK_ALLOW", "127.0.0.1"),
        ],
    )
    .await;
    Node { server, key: key.to_owned() }
}

#[tokio::test]
async fn a_killed_nodes_embedding_index_is_finished_by_another() {
    if !postgres_configured() {
        eprintln!("skipped: set COLLOQUY_TEST_DATABASE_URL to run the multi-node test");
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let secret = SecretKey::generate().to_hex();
    let key = generate_token();
    let slow = crate::fakes::FakeEmbeddings::start(Duration::from_secs(30)).await;
    let fast = crate::fakes::FakeEmbeddings::start(Duration::ZERO).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = indexing_node(dir_a.path(), &db, &secret, &key, &slow).await;
    let text: String =
        (0..40).map(|i| format!("# Section {i}\n\nPart {i} of the long manual.\n\n")).collect();
    let (s, doc) = a.post("/v1/convai/knowledge-base/text", json!({"text": text})).await;
    assert_eq!(s, 200, "{doc}");
    let doc = doc["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/convai/knowledge-base/{doc}/rag-index");
    let (s, index) = a.post(&path, json!({"model": "e5_mistral_7b_instruct"})).await;
    assert_eq!(s, 200, "{index}");

    // Node a leases it and is killed in the middle of its first batch.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, got) = a.get(&path).await;
        if got["indexes"][0]["status"] == "processing" {
            break;
        }
        assert!(Instant::now() < deadline, "node a never took the index: {got}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.server.kill9();
    let killed = Instant::now();

    let b = indexing_node(dir_b.path(), &db, &secret, &key, &fast).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let (_, got) = b.get(&path).await;
        if got["indexes"][0]["status"] == "succeeded" {
            break got["indexes"][0].clone();
        }
        assert!(Instant::now() < deadline, "node b did not finish the index: {got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["progress_percentage"], 100.0);
    assert_eq!(done["document_model_index_usage"]["used_bytes"], 40 * 64 * 4, "{done}");
    assert!(fast.requests() >= 2, "node b embedded every batch itself");
    assert!(killed.elapsed() < Duration::from_secs(30), "taken over within seconds");
}

#[tokio::test]
async fn a_killed_nodes_crawl_goes_on_from_where_it_stopped() {
    if !postgres_configured() {
        eprintln!("skipped: set COLLOQUY_TEST_DATABASE_URL to run the multi-node test");
        return;
    }
    // A chain of pages, each answering after a pause: node a is killed mid-chain.
    use axum::routing::get;
    let served = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = served.clone();
    let site = axum::Router::new().route(
        "/p/{n}",
        get(move |axum::extract::Path(n): axum::extract::Path<u32>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(format!("/p/{n}"));
                tokio::time::sleep(Duration::from_millis(400)).await;
                let next = if n < 5 {
                    format!(r#"<a href="/p/{}">next</a>"#, n + 1)
                } else {
                    String::new()
                };
                axum::response::Html(format!(
                    "<html><body><p>Stop number {n} of the tram.</p>{next}</body></html>"
                ))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, site).await });

    let db = TestDb::new(Backend::Postgres).await;
    let secret = SecretKey::generate().to_hex();
    let key = generate_token();
    let embeddings = crate::fakes::FakeEmbeddings::start(Duration::ZERO).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = indexing_node(dir_a.path(), &db, &secret, &key, &embeddings).await;
    let (s, job) = a
        .post(
            "/v1/convai/knowledge-base/crawl",
            json!({"url": format!("{base}/p/1"), "max_depth": 5}),
        )
        .await;
    assert_eq!(s, 200, "{job}");
    let path = format!("/v1/convai/knowledge-base/crawl/{}", job["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, got) = a.get(&path).await;
        if got["pages_scraped"].as_i64().unwrap_or(0) >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "node a did not crawl: {got}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.server.kill9();
    let b = indexing_node(dir_b.path(), &db, &secret, &key, &embeddings).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let (_, got) = b.get(&path).await;
        if got["status"] == "succeeded" {
            break got;
        }
        assert!(Instant::now() < deadline, "node b did not finish the crawl: {got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (done["pages_identified"].as_i64(), done["pages_scraped"].as_i64()),
        (Some(5), Some(5)),
        "{done}"
    );
    let folder = done["root_folder_id"].as_str().unwrap();
    let (_, docs) = b.get(&format!("/v1/convai/knowledge-base?parent_folder_id={folder}")).await;
    assert_eq!(docs["documents"].as_array().unwrap().len(), 5, "each page stored once: {docs}");
    let fetched = served.lock().unwrap().clone();
    assert!(fetched.len() <= 6, "pages read before the kill were not read again: {fetched:?}");
}
