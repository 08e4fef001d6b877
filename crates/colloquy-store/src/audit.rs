//! The tool-call audit log (DESIGN.md §3.2): append-only records of every tool call, and the
//! group-commit writer that makes records durable in batches while each caller waits for its
//! own record.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Semaphore, mpsc, oneshot};

use colloquy_core::ids::{AgentId, ConversationId, ToolId, WorkspaceId};

use crate::db::transaction;
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, fetch_all, values_placeholders};
use crate::{Backend, SqlStore, Store, StoreError, StoreResult};

/// One tool call.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ToolExecution {
    /// UUIDv7.
    pub id: String,
    /// Workspace of the conversation.
    #[sqlx(try_from = "String")]
    pub workspace_id: WorkspaceId,
    /// The tool record's id, or the derived id of an MCP tool.
    #[sqlx(try_from = "String")]
    pub tool_id: ToolId,
    /// The tool's name as the LLM called it.
    pub tool_name: String,
    /// `webhook`, `client`, `system`, `mcp`.
    pub tool_type: String,
    /// The LLM's call id.
    pub tool_request_id: String,
    /// Conversation the call happened in.
    #[sqlx(try_from = "String")]
    pub conversation_id: ConversationId,
    /// Agent that made it.
    #[sqlx(try_from = "String")]
    pub agent_id: AgentId,
    /// The agent's branch.
    pub branch_id: Option<String>,
    /// Unix milliseconds when the call started.
    pub timestamp_ms: i64,
    /// Duration in microseconds.
    pub latency_us: i64,
    /// `success`, `error` or `timeout`.
    pub status: String,
    /// Whether the call failed.
    pub is_error: bool,
    /// Error category, if failed.
    pub error_type: Option<String>,
    /// Error message, if failed.
    pub error_message: Option<String>,
    /// Arguments as JSON text (secrets redacted).
    pub request_payload: Option<String>,
    /// Result as text (secrets redacted).
    pub response_payload: Option<String>,
    /// `tool_call_details` as JSON text (secrets redacted).
    pub tool_call_details: Option<String>,
}
sqlite_row!(ToolExecution {
    id,
    workspace_id,
    tool_id,
    tool_name,
    tool_type,
    tool_request_id,
    conversation_id,
    agent_id,
    branch_id,
    timestamp_ms,
    latency_us,
    status,
    is_error,
    error_type,
    error_message,
    request_payload,
    response_payload,
    tool_call_details,
});

/// Filters of a tool's execution list.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    /// Only failed (true) or successful (false) calls.
    pub is_error: Option<bool>,
    /// Only this agent's calls.
    pub agent_id: Option<AgentId>,
    /// Only this branch's calls.
    pub branch_id: Option<String>,
    /// Calls at or after this unix millisecond.
    pub start_ms: Option<i64>,
    /// Calls at or before this unix millisecond.
    pub end_ms: Option<i64>,
    /// Nothing unless the tool has a record in the workspace. A deleted tool's calls stay in
    /// the log; this lets a reader that shows them only for a tool that exists check it in the
    /// page's own statement, and look the tool up only when the page is empty.
    pub of_existing_tool: bool,
}

/// The audit log.
#[async_trait]
pub trait AuditStore {
    /// Appends records in one transaction, updating the per-tool statistics with them.
    async fn insert_executions(&self, records: &[ToolExecution]) -> StoreResult<()>;
    /// A tool's calls, newest first, after `(timestamp_ms, id)`.
    async fn list_tool_executions(
        &self, workspace_id: &WorkspaceId, tool_id: &ToolId, filter: &ExecutionFilter,
        after: Option<(i64, String)>, limit: u32,
    ) -> StoreResult<Vec<ToolExecution>>;
    /// Every call of a conversation, oldest first.
    async fn conversation_executions(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId,
    ) -> StoreResult<Vec<ToolExecution>>;
    /// The workspace's calls among `ids`.
    async fn executions_by_id(
        &self, workspace_id: &WorkspaceId, ids: &[String],
    ) -> StoreResult<Vec<ToolExecution>>;
}

const COLUMNS: &str = "id, workspace_id, tool_id, tool_name, tool_type, tool_request_id, conversation_id, \
     agent_id, branch_id, timestamp_ms, latency_us, status, is_error, error_type, error_message, \
     request_payload, response_payload, tool_call_details";

/// Records per INSERT statement on SQLite: each statement is one call into the library, and
/// 128 rows of 18 columns stay well inside its limit on bound parameters.
const ROWS_PER_INSERT: usize = 128;
/// Columns of a `tool_executions` row, as bound by `insert_executions`.
const ROW_PARAMS: usize = 18;

/// PostgreSQL takes a batch as one array per column: a single statement of 18 parameters
/// whatever the batch's size, where rows of values would be statements of 2,304 parameters
/// each, every one of them sent, parsed and planned.
const INSERT_COLUMNS: &str = "INSERT INTO tool_executions (id, workspace_id, tool_id, \
     tool_name, tool_type, tool_request_id, conversation_id, agent_id, branch_id, timestamp_ms, \
     latency_us, status, is_error, error_type, error_message, request_payload, response_payload, \
     tool_call_details) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
     $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], \
     $12::text[], $13::boolean[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[])";

/// Writes a batch's rows inside an open transaction, each database its own way (the body of
/// `transaction!` is compiled once per backend, and picks its implementation here).
trait InsertBatch {
    async fn insert_batch(&mut self, records: &[ToolExecution]) -> StoreResult<()>;
}

impl InsertBatch for sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn insert_batch(&mut self, records: &[ToolExecution]) -> StoreResult<()> {
        for chunk in records.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO tool_executions ({COLUMNS}) VALUES {}",
                values_placeholders(chunk.len(), ROW_PARAMS, false)
            );
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                insert = insert
                    .bind(&r.id)
                    .bind(r.workspace_id.as_str())
                    .bind(r.tool_id.as_str())
                    .bind(&r.tool_name)
                    .bind(&r.tool_type)
                    .bind(&r.tool_request_id)
                    .bind(r.conversation_id.as_str())
                    .bind(r.agent_id.as_str())
                    .bind(&r.branch_id)
                    .bind(r.timestamp_ms)
                    .bind(r.latency_us)
                    .bind(&r.status)
                    .bind(r.is_error)
                    .bind(&r.error_type)
                    .bind(&r.error_message)
                    .bind(&r.request_payload)
                    .bind(&r.response_payload)
                    .bind(&r.tool_call_details);
            }
            insert.execute(&mut **self).await?;
        }
        Ok(())
    }
}

impl InsertBatch for sqlx::Transaction<'_, sqlx::Postgres> {
    async fn insert_batch(&mut self, records: &[ToolExecution]) -> StoreResult<()> {
        fn column<'a, T>(
            records: &'a [ToolExecution], f: impl Fn(&'a ToolExecution) -> T,
        ) -> Vec<T> {
            records.iter().map(f).collect()
        }
        sqlx::query(INSERT_COLUMNS)
            .bind(column(records, |r| r.id.as_str()))
            .bind(column(records, |r| r.workspace_id.as_str()))
            .bind(column(records, |r| r.tool_id.as_str()))
            .bind(column(records, |r| r.tool_name.as_str()))
            .bind(column(records, |r| r.tool_type.as_str()))
            .bind(column(records, |r| r.tool_request_id.as_str()))
            .bind(column(records, |r| r.conversation_id.as_str()))
            .bind(column(records, |r| r.agent_id.as_str()))
            .bind(column(records, |r| r.branch_id.as_deref()))
            .bind(column(records, |r| r.timestamp_ms))
            .bind(column(records, |r| r.latency_us))
            .bind(column(records, |r| r.status.as_str()))
            .bind(column(records, |r| r.is_error))
            .bind(column(records, |r| r.error_type.as_deref()))
            .bind(column(records, |r| r.error_message.as_deref()))
            .bind(column(records, |r| r.request_payload.as_deref()))
            .bind(column(records, |r| r.response_payload.as_deref()))
            .bind(column(records, |r| r.tool_call_details.as_deref()))
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn insert_executions(&self, records: &[ToolExecution]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut stats: std::collections::BTreeMap<(&str, &str), (i64, i64)> = Default::default();
        for r in records {
            let e = stats.entry((r.workspace_id.as_str(), r.tool_id.as_str())).or_default();
            e.0 += 1;
            e.1 += r.latency_us;
        }
        let days = crate::stats::tool_days(records);
        transaction!(self, |tx| {
            tx.insert_batch(records).await?;
            for ((workspace_id, tool_id), (calls, latency)) in &stats {
                sqlx::query(
                    "INSERT INTO tool_stats (workspace_id, tool_id, total_calls, total_latency_us) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, tool_id) DO UPDATE SET \
                     total_calls = tool_stats.total_calls + excluded.total_calls, \
                     total_latency_us = tool_stats.total_latency_us + excluded.total_latency_us",
                )
                .bind(*workspace_id)
                .bind(*tool_id)
                .bind(*calls)
                .bind(*latency)
                .execute(&mut *tx)
                .await?;
            }
            for ((workspace_id, day, tool_id), d) in &days {
                let mut upsert = sqlx::query(crate::stats::TOOL_DAY_UPSERT)
                    .bind(*workspace_id)
                    .bind(*day)
                    .bind(*tool_id)
                    .bind(d.tool_name)
                    .bind(d.calls)
                    .bind(d.errors)
                    .bind(d.latency_us_sum);
                for count in d.buckets {
                    upsert = upsert.bind(count);
                }
                upsert.execute(&mut *tx).await?;
            }
            Ok(())
        })
    }

    async fn list_tool_executions(
        &self, workspace_id: &WorkspaceId, tool_id: &ToolId, filter: &ExecutionFilter,
        after: Option<(i64, String)>, limit: u32,
    ) -> StoreResult<Vec<ToolExecution>> {
        let mut q = Query::new(
            format!(
                "SELECT {COLUMNS} FROM tool_executions WHERE workspace_id = $1 AND tool_id = $2"
            ),
            vec![Bind::Text(workspace_id.to_string()), Bind::Text(tool_id.to_string())],
        );
        if filter.of_existing_tool {
            q.raw(" AND EXISTS (SELECT 1 FROM tools t WHERE t.workspace_id = $1 AND t.id = $2)");
        }
        if let Some(e) = filter.is_error {
            q.push(" AND is_error = ?", Bind::Bool(e));
        }
        if let Some(a) = &filter.agent_id {
            q.push(" AND agent_id = ?", Bind::Text(a.to_string()));
        }
        if let Some(b) = &filter.branch_id {
            q.push(" AND branch_id = ?", Bind::Text(b.clone()));
        }
        if let Some(s) = filter.start_ms {
            q.push(" AND timestamp_ms >= ?", Bind::Int(s));
        }
        if let Some(e) = filter.end_ms {
            q.push(" AND timestamp_ms <= ?", Bind::Int(e));
        }
        if let Some((ts, id)) = after {
            let t = q.param(Bind::Int(ts));
            let i = q.param(Bind::Text(id));
            q.raw(&format!(" AND (timestamp_ms < {t} OR (timestamp_ms = {t} AND id < {i}))"));
        }
        q.order_and_limit("timestamp_ms DESC, id DESC", limit);
        Ok(fetch_all!(self, q)?)
    }

    async fn conversation_executions(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId,
    ) -> StoreResult<Vec<ToolExecution>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tool_executions WHERE workspace_id = $1 AND conversation_id = $2 \
             ORDER BY timestamp_ms, id"
        );
        Ok(fetch_all!(self, Query::scoped(sql, workspace_id, conversation_id.as_str()))?)
    }

    async fn executions_by_id(
        &self, workspace_id: &WorkspaceId, ids: &[String],
    ) -> StoreResult<Vec<ToolExecution>> {
        let sql = format!("SELECT {COLUMNS} FROM tool_executions WHERE workspace_id = $1");
        let Some(q) = Query::among(sql, workspace_id, "id", ids) else {
            return Ok(Vec::new());
        };
        Ok(fetch_all!(self, q)?)
    }
}

type Pending = (ToolExecution, oneshot::Sender<Result<(), String>>);

/// Writes audit records in batches: records queued while a transaction commits go into the
/// next one, so one fsync covers many calls under load, and each caller's `record` returns
/// only once its own record is durable.
#[derive(Clone)]
pub struct AuditWriter {
    queue: mpsc::Sender<Pending>,
}

/// Most records one transaction takes.
const MAX_BATCH: usize = 512;

/// Batches written at once. SQLite has one writer: a second batch would only wait for the
/// connection, and be smaller for having started early. PostgreSQL commits from several
/// connections together, so there a batch's rows are sent while the one before commits.
fn batches_in_flight(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => 2,
    }
}

impl AuditWriter {
    /// Starts the writer task on `store`. The task ends when every clone of the writer is
    /// dropped, after writing what was queued.
    pub fn spawn(store: Arc<dyn Store>) -> (AuditWriter, tokio::task::JoinHandle<()>) {
        let (queue, mut rx) = mpsc::channel::<Pending>(4 * MAX_BATCH);
        let slots = Arc::new(Semaphore::new(batches_in_flight(store.backend())));
        let task = tokio::spawn(async move {
            let mut writes = tokio::task::JoinSet::new();
            while let Some(first) = rx.recv().await {
                // The batch is gathered once a slot is free, so what arrives meanwhile joins it.
                let Ok(slot) = slots.clone().acquire_owned().await else { break };
                let mut records: Vec<ToolExecution> = Vec::with_capacity(MAX_BATCH);
                let mut acks = Vec::with_capacity(MAX_BATCH);
                let mut next = Some(first);
                while let Some((record, ack)) = next {
                    records.push(record);
                    acks.push(ack);
                    if records.len() >= MAX_BATCH {
                        break;
                    }
                    next = rx.try_recv().ok();
                    if next.is_none() {
                        // The callers the last batch acknowledged may still be queuing their
                        // next records: taking only the first few made a small batch and then
                        // a large one, two commits where one would do. Yielding lets the woken
                        // callers run, for as long as each yield brings more; a lone caller
                        // costs one yield.
                        tokio::task::yield_now().await;
                        next = rx.try_recv().ok();
                    }
                }
                let store = store.clone();
                writes.spawn(async move {
                    let result = store.insert_executions(&records).await.map_err(|e| e.to_string());
                    drop(slot);
                    if let Err(e) = &result {
                        tracing::error!(error = %e, records = records.len(), "audit batch failed");
                    }
                    for ack in acks {
                        let _ = ack.send(result.clone());
                    }
                });
                // Reap the finished writes so the set holds only those in flight.
                while writes.try_join_next().is_some() {}
            }
            while writes.join_next().await.is_some() {}
        });
        (AuditWriter { queue }, task)
    }

    /// Appends `record` and waits until it is durable.
    pub async fn record(&self, record: ToolExecution) -> StoreResult<()> {
        let (ack, done) = oneshot::channel();
        self.queue
            .send((record, ack))
            .await
            .map_err(|_| StoreError::Config("the audit writer has stopped".into()))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Config(format!("audit write failed: {e}"))),
            Err(_) => Err(StoreError::Config("the audit writer has stopped".into())),
        }
    }
}
