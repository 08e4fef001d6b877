//! The scenarios. Each returns rows of figures; sizes come from [`Sizes`] (`--quick` or full).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_core::ids::WorkspaceId;
use colloquy_store::{
    AuditStore, AuditWriter, ConnectOptions, ConversationStore, DynStore, SqlStore, ToolExecution,
};
use serde_json::json;

use crate::backend::{Backend, RawPool, with_pool};
use crate::load;
use crate::node::{self, Node};
use crate::report::{Goal, Row};

/// How big and how long.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Duration of each throughput measurement.
    pub window: Duration,
    /// Concurrent connections of the throughput scenarios.
    pub connections: usize,
    /// Audit records behind the executions scenario, per step of the scaling series.
    pub executions: &'static [usize],
    /// Requests timed per latency measurement.
    pub samples: usize,
    /// Duration of the ingest measurement.
    pub ingest_window: Duration,
    /// Test runs of the test-run scenario.
    pub test_runs: usize,
    /// Test runs a node executes at once there.
    pub test_concurrency: usize,
    /// Concurrent conversations of each step of the per-turn overhead series.
    pub turn_conversations: &'static [usize],
    /// Turns each of those conversations takes.
    pub turns_per_conversation: usize,
    /// Most rounds of conversations run one after another to collect enough turns.
    pub max_turn_rounds: usize,
    /// Idle conversations held open for the memory scenario.
    pub idle_conversations: usize,
    /// Agents behind each step of the agent scaling series (the first step created through the
    /// API, the rest copied into the database).
    pub agent_series: &'static [usize],
    /// Knowledge-base chunks behind each step of the retrieval series.
    pub kb_chunks: &'static [usize],
    /// Transcript messages behind each step of the transcript search series.
    pub messages: &'static [usize],
    /// Conversations of the analysis and delivery scenario.
    pub post_call_conversations: usize,
}

impl Sizes {
    /// The full run (about ten minutes on two cores).
    pub const FULL: Sizes = Sizes {
        window: Duration::from_secs(10),
        connections: 50,
        executions: &[10_000, 100_000, 1_000_000],
        samples: 2000,
        ingest_window: Duration::from_secs(10),
        test_runs: 1000,
        test_concurrency: 50,
        turn_conversations: &[1, 100, 1000],
        turns_per_conversation: 20,
        max_turn_rounds: 100,
        idle_conversations: 10_000,
        agent_series: &[1000, 10_000, 100_000],
        kb_chunks: &[10_000, 100_000, 1_000_000],
        messages: &[10_000, 100_000, 1_000_000],
        post_call_conversations: 400,
    };
    /// `--quick` (under two minutes).
    pub const QUICK: Sizes = Sizes {
        window: Duration::from_secs(3),
        connections: 50,
        executions: &[10_000],
        samples: 300,
        ingest_window: Duration::from_secs(3),
        test_runs: 100,
        test_concurrency: 50,
        turn_conversations: &[1, 100],
        turns_per_conversation: 10,
        max_turn_rounds: 20,
        idle_conversations: 1000,
        agent_series: &[100],
        kb_chunks: &[10_000, 100_000],
        messages: &[10_000, 100_000],
        post_call_conversations: 100,
    };
    /// For the smoke test: every scenario, tiny.
    pub const TINY: Sizes = Sizes {
        window: Duration::from_millis(300),
        connections: 4,
        executions: &[500],
        samples: 20,
        ingest_window: Duration::from_millis(300),
        test_runs: 4,
        test_concurrency: 4,
        turn_conversations: &[1, 3],
        turns_per_conversation: 3,
        max_turn_rounds: 2,
        idle_conversations: 20,
        agent_series: &[5],
        kb_chunks: &[1000],
        messages: &[1000],
        post_call_conversations: 10,
    };
}

/// Start-to-ready time and idle memory of a fresh node, and the size of its binary. The first
/// start is made with the binary's pages dropped from the page cache, as on a machine that has
/// not run it for a while (this one drops them within the hour); the second, on a new database
/// too, with them cached.
pub async fn startup(binary: &Path) -> anyhow::Result<Vec<Row>> {
    node::evict_from_page_cache(binary)?;
    let cold = Node::start(binary, &[]).await?.ready_in;
    let node = Node::start(binary, &[]).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (anonymous, file) = node.rss_parts();
    Ok(vec![
        Row {
            scenario: "start to ready (fresh SQLite database, migrations included)".into(),
            unit: "ms".into(),
            ours: node.ready_in.as_secs_f64() * 1000.0,
            baseline: None,
            goal: Goal::AtMost(30.0),
        },
        Row {
            scenario: "start to ready, the binary's pages first dropped from the page cache".into(),
            unit: "ms".into(),
            ours: cold.as_secs_f64() * 1000.0,
            baseline: None,
            goal: Goal::AtMost(30.0),
        },
        Row {
            scenario: format!(
                "idle RSS after start (anonymous {:.1} MB, file-backed {:.1} MB)",
                anonymous as f64 / 1e6,
                file as f64 / 1e6
            ),
            unit: "MB".into(),
            ours: node.rss_bytes() as f64 / 1e6,
            baseline: None,
            goal: Goal::AtMost(15.0),
        },
        Row {
            scenario: "size of the measured binary (a release build is what users install)".into(),
            unit: "MB".into(),
            ours: std::fs::metadata(binary)?.len() as f64 / 1e6,
            baseline: None,
            goal: Goal::AtMost(30.0),
        },
    ])
}

/// GET agent and list agents (page 30) at `connections` connections, against a bare axum
/// handler answering the same bytes; at each size of the agent series, to show how cost grows.
pub async fn agents(binary: &Path, sizes: Sizes, backend: &Backend) -> anyhow::Result<Vec<Row>> {
    let node = backend.start(binary, &[]).await?;
    let client = reqwest::Client::new();
    let first = sizes.agent_series.first().copied().unwrap_or(1);
    let mut last = String::new();
    for i in 0..first {
        let created = node
            .post(
                &client,
                "/v1/convai/agents/create",
                &json!({"name": format!("agent {i}"), "conversation_config": {}}),
            )
            .await?;
        last = created["agent_id"].as_str().unwrap_or_default().to_owned();
    }
    let db = RawPool::connect(&node.database_url()).await?;
    // As after the bulk loads: on PostgreSQL, a table never analysed is planned as a few rows,
    // and a page was read by sorting every agent of the workspace (2.4 against 0.2 ms).
    settle(&db, "agents").await?;
    let mut present = first;
    let mut rows = Vec::new();
    for &target in sizes.agent_series {
        if target > present {
            bulk_agents(&db, &last, present, target - present).await?;
            present = target;
        }
        rows.extend(agent_reads(&node, &client, &last, present, sizes).await?);
    }
    Ok(rows)
}

/// Adds `count` copies of agent `template` straight into the database (creating 100,000
/// through the API would take most of the run); they sort before it, so the pages read them.
async fn bulk_agents(
    db: &RawPool, template: &str, offset: usize, count: usize,
) -> anyhow::Result<()> {
    const COLUMNS: &str = "INSERT INTO agents (id, workspace_id, name, name_lower, tags, archived, \
        voice_id, created_by, created_at, updated_at, last_call_time, call_count_7d, main_branch_id, \
        version_id, link_token, document) ";
    let copies = match db {
        RawPool::Sqlite(_) => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) {COLUMNS} \
             SELECT printf('agent_bulk%09d', n.i + $2), a.workspace_id, 'bulk agent ' || (n.i + $2), \
               'bulk agent ' || (n.i + $2), a.tags, a.archived, a.voice_id, a.created_by, \
               a.created_at - n.i - $2, a.updated_at, a.last_call_time, a.call_count_7d, \
               printf('agtbrch_bulk%09d', n.i + $2), a.version_id, NULL, a.document \
             FROM n, (SELECT * FROM agents WHERE id = $3) a"
        ),
        RawPool::Postgres(_) => format!(
            "{COLUMNS} \
             SELECT 'agent_bulk' || lpad((n.i + $2)::text, 9, '0'), a.workspace_id, \
               'bulk agent ' || (n.i + $2), 'bulk agent ' || (n.i + $2), a.tags, a.archived, \
               a.voice_id, a.created_by, a.created_at - n.i - $2, a.updated_at, a.last_call_time, \
               a.call_count_7d, 'agtbrch_bulk' || lpad((n.i + $2)::text, 9, '0'), a.version_id, \
               NULL, a.document \
             FROM generate_series(1::bigint, $1) AS n(i), (SELECT * FROM agents WHERE id = $3) a"
        ),
    };
    with_pool!(db, |pool| {
        sqlx::query(sqlx::AssertSqlSafe(copies))
            .bind(count as i64)
            .bind(offset as i64)
            .bind(template)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    settle(db, "agents").await
}

/// Lets a bulk load's aftermath pass before anything is timed: on SQLite the WAL is written
/// back; on PostgreSQL the table is vacuumed and analysed (what autovacuum does a minute
/// later) and a checkpoint writes the load out. Timed without this, a load's hundreds of
/// megabytes of WAL being written back held PostgreSQL's connections for seconds.
async fn settle(db: &RawPool, table: &str) -> anyhow::Result<()> {
    match db {
        RawPool::Sqlite(pool) => {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(pool).await?;
        }
        RawPool::Postgres(pool) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
                .execute(pool)
                .await?;
            sqlx::query("CHECKPOINT").execute(pool).await?;
        }
    }
    Ok(())
}

async fn agent_reads(
    node: &Node, client: &reqwest::Client, last: &str, agents: usize, sizes: Sizes,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    // [G2]'s goals (item 4): a GET at half a bare handler's rate, a page of 30 at 0.35.
    for (name, path, goal) in [
        ("GET agent", format!("/v1/convai/agents/{last}"), 0.5),
        ("list agents (page 30)", "/v1/convai/agents?page_size=30".to_owned(), 0.35),
    ] {
        let (_, bytes) = node.get(client, &path).await?;
        let bare = node::bare_server(bytes).await?;
        let theirs =
            load::get(&format!("{bare}{path}"), None, sizes.connections, sizes.window).await;
        let ours = load::get(
            &format!("{}{path}", node.base),
            Some(&node.key),
            sizes.connections,
            sizes.window,
        )
        .await;
        anyhow::ensure!(
            ours.failures == 0,
            "{name}, {agents} agents: {} failed requests",
            ours.failures
        );
        let label = format!("{name}, {agents} agents, {} connections", sizes.connections);
        rows.push(Row {
            scenario: format!("{label}: throughput"),
            unit: "req/s".into(),
            ours: ours.throughput,
            baseline: Some(theirs.throughput),
            goal: Goal::RatioAtLeast(goal),
        });
        rows.push(Row {
            scenario: format!("{label}: p50"),
            unit: "ms".into(),
            ours: ours.p50_ms,
            baseline: Some(theirs.p50_ms),
            goal: Goal::None,
        });
        rows.push(Row {
            scenario: format!("{label}: p99"),
            unit: "ms".into(),
            ours: ours.p99_ms,
            baseline: Some(theirs.p99_ms),
            goal: Goal::None,
        });
    }
    Ok(rows)
}

pub(crate) fn record(
    workspace: &WorkspaceId, tool: &str, agent: &str, conversation: &str, ts: i64, i: usize,
) -> ToolExecution {
    ToolExecution {
        id: colloquy_core::ids::new_uuid(),
        workspace_id: workspace.clone(),
        tool_id: tool.into(),
        tool_name: "lookup".into(),
        tool_type: "webhook".into(),
        tool_request_id: format!("call_{i}"),
        conversation_id: conversation.into(),
        agent_id: agent.into(),
        branch_id: None,
        timestamp_ms: ts,
        latency_us: 1000 + (i % 500) as i64,
        status: if i.is_multiple_of(10) { "error" } else { "success" }.into(),
        is_error: i.is_multiple_of(10),
        error_type: None,
        error_message: None,
        request_payload: Some(r#"{"city":"Paris"}"#.into()),
        response_payload: Some(r#"{"forecast":"sunny"}"#.into()),
        tool_call_details: None,
    }
}

/// p50 and p99 of `samples` sequential GETs of `url` with one header, each answered 2xx.
pub(crate) async fn timed_get(
    client: &reqwest::Client, url: &str, header: (&str, &str), samples: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        latencies.push(elapsed_us(get_ok(client, url, header)).await?);
    }
    Ok(p50_p99(latencies))
}

/// The tool-executions page (30, with is_error + agent_id + time filters) at each size, against
/// the raw SQL of the same page on the same database file; and one conversation's 500 calls.
pub async fn executions(
    binary: &Path, sizes: Sizes, backend: &Backend,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &count in sizes.executions {
        let node = backend.start(binary, &[]).await?;
        let client = reqwest::Client::new();
        let raw = RawPool::connect(&node.database_url()).await?;
        let seeded = seed(&node, &raw, &client, count).await?;
        let label = format!("tool executions page, {count} records");
        let page = executions_page(&node, &raw, &client, &seeded, count, sizes).await?;
        rows.extend(page.rows(&label));
        rows.extend(
            around_the_page(&node, &raw, &client, &seeded, count, sizes, page.ours.1).await?,
        );
        drop((raw, node));
        // A million records a step: each step's database goes before the next is made.
        backend.clean_up().await;
    }
    Ok(rows)
}

/// The records a node holds for the executions scenarios.
struct Seeded {
    tool_id: String,
    workspace: WorkspaceId,
    /// The conversation of the first 500 calls.
    conversation: String,
    /// The calls' time range, in unix seconds.
    start: i64,
    end: i64,
}

/// A client tool on `node` and `count` calls of it, half by `agent_a`, the first 500 in one
/// conversation, written straight into the node's database.
async fn seed(
    node: &Node, raw: &RawPool, client: &reqwest::Client, count: usize,
) -> anyhow::Result<Seeded> {
    let tool = node
        .post(
            client,
            "/v1/convai/tools",
            &json!({"tool_config": {"type": "client", "name": "lookup", "description": "d"}}),
        )
        .await?;
    let tool_id = tool["id"].as_str().unwrap_or_default().to_owned();
    let store = SqlStore::connect(&node.database_url(), &ConnectOptions::default()).await?;
    let workspace: String = with_pool!(raw, |pool| {
        sqlx::query_scalar("SELECT workspace_id FROM tools WHERE id = $1")
            .bind(&tool_id)
            .fetch_one(pool)
            .await
    })?;
    let workspace = WorkspaceId::from(workspace);
    let now = colloquy_core::time::now_ms();
    let conversation = colloquy_core::ids::new_uuid();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..count {
        let agent = if i % 2 == 0 { "agent_a" } else { "agent_b" };
        let conv = if i < 500 { conversation.clone() } else { format!("conv_{}", i / 50) };
        let at = now - (count - i) as i64 * 10;
        batch.push(record(&workspace, &tool_id, agent, &conv, at, i));
        if batch.len() == 1000 || i + 1 == count {
            store.insert_executions(&batch).await?;
            batch.clear();
        }
    }
    let record = colloquy_store::ConversationRecord {
        id: conversation.as_str().into(),
        workspace_id: workspace.clone(),
        agent_id: "agent_a".into(),
        branch_id: None,
        version_id: None,
        source: "ws".into(),
        started_at: now / 1000,
        external_reference: None,
    };
    let progress =
        colloquy_store::ConversationProgress { status: "done".into(), ..Default::default() };
    store.start_conversation(&record, &progress).await?;
    Ok(Seeded {
        tool_id,
        workspace,
        conversation,
        start: (now - count as i64 * 10) / 1000,
        end: now / 1000,
    })
}

/// p50 and p99 of the executions page and of its three baselines, timed in turn.
struct PageTimings {
    ours: (f64, f64),
    raw_page: (f64, f64),
    /// The same SQL in process: SQLite only (PostgreSQL is always across a socket).
    ceiling: Option<(f64, f64)>,
    bare_page: (f64, f64),
}

impl PageTimings {
    fn rows(&self, label: &str) -> Vec<Row> {
        let row = |scenario: &str, ours: f64, baseline: Option<f64>, goal: Goal| Row {
            scenario: format!("{label}: {scenario}"),
            unit: "ms".into(),
            ours,
            baseline,
            goal,
        };
        let mut rows = vec![
            row("p50", self.ours.0, Some(self.raw_page.0), Goal::None),
            row("p99 vs the raw SQL", self.ours.1, Some(self.raw_page.1), Goal::RatioAtMost(1.3)),
            row("p99", self.ours.1, None, Goal::AtMost(2.0)),
        ];
        if let Some(ceiling) = self.ceiling {
            rows.push(row(
                "p99 vs the same SQL in-process",
                self.ours.1,
                Some(ceiling.1),
                Goal::None,
            ));
        }
        rows.push(row(
            "p99 vs a bare handler answering the same bytes",
            self.ours.1,
            Some(self.bare_page.1),
            Goal::None,
        ));
        rows
    }
}

/// The executions page against the raw SQL of the same page (sqlx), the same SQL in process
/// (rusqlite, on SQLite) and a bare handler answering the same bytes.
async fn executions_page(
    node: &Node, raw: &RawPool, client: &reqwest::Client, seeded: &Seeded, count: usize,
    sizes: Sizes,
) -> anyhow::Result<PageTimings> {
    let Seeded { tool_id, workspace, start, end, .. } = seeded;
    let path = format!(
        "/v1/convai/tools/{tool_id}/executions?page_size=30&is_error=false&agent_id=agent_a&start_time={start}&end_time={end}"
    );
    // Loading a million records leaves a gigabyte of dirty pages that the kernel writes back
    // over the next seconds; whatever was timed then paid for it.
    settle(raw, "tool_executions").await?;
    let (_, page_bytes) = node.get(client, &path).await?;
    let bare = node::bare_server(page_bytes).await?;
    let ours_url = format!("{}{path}", node.base);
    let bare_url = format!("{bare}{path}");
    let header = ("xi-api-key", node.key.as_str());
    let mut ceiling = match raw {
        RawPool::Sqlite(_) => Some(PageInProcess::open(&node.database())?),
        RawPool::Postgres(_) => None,
    };
    let sql = format!("SELECT {EXECUTION_COLUMNS} FROM tool_executions {EXECUTION_PAGE}");
    let (span, from_ms, to_ms) =
        ((workspace.as_str(), tool_id.as_str()), start * 1000, end * 1000 + 999);
    // One call of each per round, so a pause of the machine falls on all four alike.
    let mut timings = [(); 4].map(|()| Vec::with_capacity(sizes.samples));
    for _ in 0..sizes.samples {
        timings[0].push(elapsed_us(get_ok(client, &ours_url, header)).await?);
        let page = raw_page(raw, &sql, span, (from_ms, to_ms), count);
        timings[1].push(elapsed_us(page).await?);
        if let Some(ceiling) = &mut ceiling {
            timings[2].push(elapsed_us(async { ceiling.read(span, (from_ms, to_ms)) }).await?);
        }
        timings[3].push(elapsed_us(get_ok(client, &bare_url, header)).await?);
    }
    let [ours, raw_page, in_process, bare_page] = timings.map(p50_p99);
    let ceiling = ceiling.map(|_| in_process);
    Ok(PageTimings { ours, raw_page, ceiling, bare_page })
}

/// The dashboard's tool page on the same records (its log page, 300 calls for the histogram,
/// the tool and its agents) against the API's own page it is built from, and one
/// conversation's calls through `/api/tool-calls`.
async fn around_the_page(
    node: &Node, raw: &RawPool, client: &reqwest::Client, seeded: &Seeded, count: usize,
    sizes: Sizes, page_p99: f64,
) -> anyhow::Result<Vec<Row>> {
    let session = node
        .dashboard_session(
            &reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?,
        )
        .await?;
    let page = format!("/tools/{}?is_error=false&agent_id=agent_a", seeded.tool_id);
    let dashboard = timed_get(
        client,
        &format!("{}{page}", node.base),
        ("cookie", &session),
        sizes.samples.min(300),
    )
    .await?;
    let mut rows = home_stats(node, raw, client, seeded, count, sizes, &session).await?;
    let calls = format!("/api/tool-calls?executionId={}", seeded.conversation);
    let ohallo = timed_get(
        client,
        &format!("{}{calls}", node.base),
        ("xi-api-key", &node.key),
        sizes.samples.min(300),
    )
    .await?;
    // The raw SQL of the same list: every column of the conversation's records, in order.
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM tool_executions \
         WHERE workspace_id = $1 AND conversation_id = $2 ORDER BY timestamp_ms, id"
    );
    let mut direct = Vec::new();
    for _ in 0..sizes.samples.min(300) {
        let read = with_pool!(raw, |pool| {
            let q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(seeded.workspace.as_str())
                .bind(&seeded.conversation);
            elapsed_us(async { Ok(q.fetch_all(pool).await.map(|_| ())?) }).await?
        });
        direct.push(read);
    }
    let direct = p50_p99(direct);
    rows.extend([
        Row {
            scenario: format!(
                "dashboard tool page (log, histogram of 300 calls), {count} records: p99"
            ),
            unit: "ms".into(),
            ours: dashboard.1,
            baseline: Some(page_p99),
            goal: Goal::AtMost(50.0),
        },
        Row {
            scenario: format!(
                "/api/tool-calls of a conversation with {} calls, {count} records: p99 against its raw SQL",
                count.min(500)
            ),
            unit: "ms".into(),
            ours: ohallo.1,
            baseline: Some(direct.1),
            goal: Goal::RatioAtMost(2.0),
        },
    ]);
    Ok(rows)
}

/// Every column the executions endpoint returns.
const EXECUTION_COLUMNS: &str = "id, workspace_id, tool_id, tool_name, tool_type, tool_request_id, \
     conversation_id, agent_id, branch_id, timestamp_ms, latency_us, status, is_error, \
     error_type, error_message, request_payload, response_payload, tool_call_details";

/// The filtered page (workspace, tool, is_error, agent, time range), with one row more than the
/// page, which tells whether another page follows.
const EXECUTION_PAGE: &str = "WHERE workspace_id = $1 AND tool_id = $2 AND is_error = $3 \
     AND agent_id = $4 AND timestamp_ms >= $5 AND timestamp_ms <= $6 \
     ORDER BY timestamp_ms DESC, id DESC LIMIT 31";

/// The page's SQL on a connection of the measuring process, prepared once, reading every
/// column of every row: what the query costs without a driver in between.
struct PageInProcess {
    conn: rusqlite::Connection,
}

impl PageInProcess {
    fn open(database: &Path) -> anyhow::Result<PageInProcess> {
        let conn = rusqlite::Connection::open_with_flags(
            database,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Ok(PageInProcess { conn })
    }

    fn read(
        &mut self, (workspace, tool): (&str, &str), (from_ms, to_ms): (i64, i64),
    ) -> anyhow::Result<()> {
        let sql = format!("SELECT {EXECUTION_COLUMNS} FROM tool_executions {EXECUTION_PAGE}");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows =
            stmt.query(rusqlite::params![workspace, tool, false, "agent_a", from_ms, to_ms])?;
        let mut bytes = 0;
        while let Some(row) = rows.next()? {
            for i in 0..row.as_ref().column_count() {
                bytes += match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        t.len()
                    }
                    _ => 1,
                };
            }
        }
        anyhow::ensure!(bytes > 0, "the page read nothing");
        Ok(())
    }
}

/// The page's SQL through sqlx's pool, as an application reading the file would run it.
async fn raw_page(
    raw: &RawPool, sql: &str, (workspace, tool): (&str, &str), (from_ms, to_ms): (i64, i64),
    records: usize,
) -> anyhow::Result<()> {
    let rows = with_pool!(raw, |pool| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(workspace)
            .bind(tool)
            .bind(false)
            .bind("agent_a")
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(pool)
            .await?
            .len()
    });
    anyhow::ensure!(rows == 31 || records < 100, "raw page has {rows} rows");
    Ok(())
}

/// A GET of `url` with one header, answered 2xx, body read.
async fn get_ok(client: &reqwest::Client, url: &str, header: (&str, &str)) -> anyhow::Result<()> {
    let r = client.get(url).header(header.0, header.1).send().await?;
    anyhow::ensure!(r.status().is_success(), "{}", r.status());
    r.bytes().await?;
    Ok(())
}

/// How long `f` took, in microseconds.
/// The home page's numbers over 30 days (`/api/stats`, read from the per-day tables) and the
/// dashboard's home page, against the same figures aggregated from the audit log itself.
async fn home_stats(
    node: &Node, raw: &RawPool, client: &reqwest::Client, seeded: &Seeded, count: usize,
    sizes: Sizes, session: &str,
) -> anyhow::Result<Vec<Row>> {
    let samples = sizes.samples.min(300);
    let stats = format!("{}/api/stats?days=30", node.base);
    let ours = timed_get(client, &stats, ("xi-api-key", &node.key), samples).await?;
    let home = format!("{}/?days=30", node.base);
    let page = timed_get(client, &home, ("cookie", session), samples).await?;
    let since = colloquy_core::time::now_ms() - 30 * 86_400_000;
    let mut direct = Vec::new();
    // The aggregate reads every record of the month: a few rounds say what it costs.
    for _ in 0..samples.min(10) {
        let read = with_pool!(raw, |pool| {
            let q = sqlx::query(
                "SELECT tool_id, COUNT(*), SUM(CASE WHEN is_error THEN 1 ELSE 0 END), \
                 SUM(latency_us) FROM tool_executions \
                 WHERE workspace_id = $1 AND timestamp_ms >= $2 GROUP BY tool_id",
            )
            .bind(seeded.workspace.as_str())
            .bind(since);
            elapsed_us(async { Ok(q.fetch_all(pool).await.map(|_| ())?) }).await?
        });
        direct.push(read);
    }
    let direct = p50_p99(direct);
    Ok(vec![
        Row {
            scenario: format!(
                "/api/stats over 30 days (per-day tables), {count} tool calls: p99 against the same figures aggregated from the audit log"
            ),
            unit: "ms".into(),
            ours: ours.1,
            baseline: Some(direct.1),
            goal: Goal::AtMost(5.0),
        },
        Row {
            scenario: format!("dashboard home page over 30 days, {count} tool calls: p99"),
            unit: "ms".into(),
            ours: page.1,
            baseline: None,
            goal: Goal::AtMost(20.0),
        },
    ])
}

async fn elapsed_us(
    f: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    f.await?;
    Ok(started.elapsed().as_micros() as u64)
}

/// p50 and p99, in milliseconds.
fn p50_p99(mut latencies: Vec<u64>) -> (f64, f64) {
    latencies.sort_unstable();
    (load::quantile(&latencies, 0.5), load::quantile(&latencies, 0.99))
}

/// Durable audit records per second through the group-commit writer (many concurrent callers,
/// each waiting for its record), against raw batched inserts in one transaction each.
pub async fn ingest(sizes: Sizes, backend: &Backend) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let url = backend
        .fresh_database()
        .await?
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("ingest.db").display()));
    let store = SqlStore::connect(&url, &ConnectOptions::default()).await?;
    store.migrate().await?;
    let store: DynStore = Arc::new(store);
    let ws = store.ensure_workspace("bench").await?;
    let (writer, _task) = AuditWriter::spawn(store.clone());
    let deadline = Instant::now() + sizes.ingest_window;
    let started = Instant::now();
    let callers = (0..256).map(|c| {
        let writer = writer.clone();
        let ws = ws.id.clone();
        tokio::spawn(async move {
            let mut done = 0usize;
            while Instant::now() < deadline {
                let r = record(
                    &ws,
                    "tool_bench",
                    "agent",
                    "conv",
                    colloquy_core::time::now_ms(),
                    c * 1_000_000 + done,
                );
                if writer.record(r).await.is_err() {
                    break;
                }
                done += 1;
            }
            done
        })
    });
    let mut written = 0;
    for c in futures_util::future::join_all(callers).await {
        written += c.unwrap_or(0);
    }
    let ours = written as f64 / started.elapsed().as_secs_f64();
    let baseline = raw_inserts(&store, &ws.id, 500, sizes.ingest_window).await?;
    // 256 callers each waiting for their record can fill a transaction with 256 at most: the
    // same inserts in batches of that size are what any writer could reach here.
    let callers_ceiling = raw_inserts(&store, &ws.id, 256, sizes.ingest_window).await?;
    Ok(vec![
        Row {
            scenario: "audit ingest, 256 callers each awaiting durability: vs raw batched inserts"
                .into(),
            unit: "records/s".into(),
            ours,
            baseline: Some(baseline),
            goal: Goal::RatioAtLeast(0.8),
        },
        Row {
            scenario: "audit ingest, 256 callers: vs raw inserts in batches of 256 (the most 256 waiting callers fill)"
                .into(),
            unit: "records/s".into(),
            ours,
            baseline: Some(callers_ceiling),
            goal: Goal::None,
        },
        Row {
            scenario: "audit ingest, durable records per second".into(),
            unit: "records/s".into(),
            ours,
            baseline: None,
            goal: Goal::AtLeast(20_000.0),
        },
    ])
}

/// Records per second written by `insert_executions` in batches of `batch` for `window`.
async fn raw_inserts(
    store: &DynStore, workspace: &WorkspaceId, batch: usize, window: Duration,
) -> anyhow::Result<f64> {
    let deadline = Instant::now() + window;
    let started = Instant::now();
    let mut written = 0usize;
    while Instant::now() < deadline {
        let records: Vec<ToolExecution> = (0..batch)
            .map(|i| {
                let now = colloquy_core::time::now_ms();
                record(workspace, "tool_raw", "agent", "conv", now, written + i)
            })
            .collect();
        store.insert_executions(&records).await?;
        written += records.len();
    }
    Ok(written as f64 / started.elapsed().as_secs_f64())
}

/// One invocation of `test_runs` LLM tests against a fake LLM with 200 ms latency: wall time
/// against the ideal (runs × LLM calls × 200 ms ÷ concurrency).
pub async fn test_runs(binary: &Path, sizes: Sizes, backend: &Backend) -> anyhow::Result<Vec<Row>> {
    let delay = Duration::from_millis(200);
    let llm = node::fake_llm(delay).await?;
    let node = backend
        .start(
            binary,
            &[
                ("OPENAI_BASE_URL", llm),
                ("OPENAI_API_KEY", "sk-bench".into()),
                ("COLLOQUY_TEST_CONCURRENCY", sizes.test_concurrency.to_string()),
            ],
        )
        .await?;
    let client = reqwest::Client::new();
    let agent = node
        .post(&client, "/v1/convai/agents/create", &json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"llm": "gpt-4o-mini"}}}}))
        .await?;
    let agent_id = agent["agent_id"].as_str().unwrap_or_default().to_owned();
    let tests_count = sizes.test_runs.min(20);
    let repeats = sizes.test_runs.div_ceil(tests_count);
    let mut tests = Vec::new();
    for i in 0..tests_count {
        let t = node
            .post(
                &client,
                "/v1/convai/agent-testing/create",
                &json!({"name": format!("bench {i}"), "success_condition": "greets",
                "chat_history": [{"role": "user", "message": "hi", "time_in_call_secs": 0}]}),
            )
            .await?;
        tests.push(json!({"test_id": t["id"]}));
    }
    let started = Instant::now();
    let invocation = node
        .post(
            &client,
            &format!("/v1/convai/agents/{agent_id}/run-tests"),
            &json!({"tests": tests, "repeat_count": repeats}),
        )
        .await?;
    let id = invocation["id"].as_str().unwrap_or_default().to_owned();
    let runs = invocation["test_runs"].as_array().map_or(0, Vec::len);
    loop {
        let (page, _) =
            node.get(&client, &format!("/v1/convai/test-invocations?agent_id={agent_id}")).await?;
        if page["results"][0]["pending_count"] == 0 {
            anyhow::ensure!(
                page["results"][0]["passed_count"] == runs,
                "not every run passed: {}",
                page["results"][0]
            );
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the invocation {id} did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let ideal = runs as f64 * 2.0 * delay.as_secs_f64() / sizes.test_concurrency as f64;
    Ok(vec![Row {
        scenario: format!(
            "{runs} test runs, LLM at 200 ms, concurrency {}: wall time vs ideal",
            sizes.test_concurrency
        ),
        unit: "s".into(),
        ours: wall,
        baseline: Some(ideal),
        goal: Goal::RatioAtMost(1.5),
    }])
}
