//! Post-call analyses: the leased job that analyses a finished conversation (any node takes a
//! queued one, or one whose holder died), and the analysis it writes onto the conversation.
//! A result is written together with the job's end, from the lease that holds the job only, so
//! an analysis is either whole or absent and a node that lost its lease writes nothing.

use async_trait::async_trait;
use colloquy_core::ids::{ConversationId, WorkspaceId};

use crate::db::{execute, transaction};
use crate::inline::sqlite_row;
use crate::jobs::{ANALYSES, JobKind, Lease, take_job};
use crate::query::{Bind, Query, fetch_all, fetch_optional, find};
use crate::{SqlStore, StoreResult};

/// An analysis job as its holder took it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AnalysisJob {
    /// The conversation's id.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// Whether the post-call webhook waits for it.
    pub deliver: bool,
    /// The worker holding it.
    pub worker: Option<String>,
    /// The take it is in (1 for the first).
    pub attempt: i64,
}
sqlite_row!(AnalysisJob { id, workspace_id, deliver, worker, attempt });

/// A conversation with its analysis, for grouping an agent's conversations into topics.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AnalysedConversation {
    /// The conversation.
    pub id: String,
    /// When it started (unix seconds).
    pub started_at: i64,
    /// Its analysis (`ConversationHistoryAnalysisCommonModel` as JSON).
    pub analysis: String,
}
sqlite_row!(AnalysedConversation { id, started_at, analysis });

impl AnalysisJob {
    /// The lease its holder renews.
    pub fn lease(&self) -> Lease {
        Lease {
            kind: JobKind::Analysis,
            id: self.id.clone(),
            worker: self.worker.clone().unwrap_or_default(),
            attempt: self.attempt,
        }
    }
}

/// A conversation's analysis job as read: where it stands and why it failed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AnalysisStatus {
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// Why the last try failed.
    pub error: Option<String>,
    /// Takes so far.
    pub attempt: i64,
    /// Who holds it; none while a failed try waits for its next.
    pub worker: Option<String>,
    /// Until when it is held, or when a failed try's next is due.
    pub lease_until: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}
sqlite_row!(AnalysisStatus { status, error, attempt, worker, lease_until, created_at, updated_at });

/// How a try ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnalysisOutcome {
    /// The analysis (JSON) and the `call_successful` it gives.
    Succeeded {
        /// `ConversationHistoryAnalysisCommonModel`, JSON.
        analysis: String,
        /// `success`, `failure` or `unknown`.
        call_successful: String,
    },
    /// Failed; tried again at `retry_at` when set, else failed for good.
    Failed {
        /// Why.
        error: String,
        /// Unix seconds of the next try.
        retry_at: Option<i64>,
    },
}

/// Post-call analyses.
#[async_trait]
pub trait AnalysisStore {
    /// Queues the analysis of a conversation (again, if it had one). `deliver`: the post-call
    /// webhook is queued once it ends.
    async fn queue_analysis(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, deliver: bool, now: i64,
    ) -> StoreResult<()>;
    /// Takes the oldest analysis to work, holding it for `lease_secs`.
    async fn take_analysis(
        &self, worker: &str, now: i64, lease_secs: i64,
    ) -> StoreResult<Option<AnalysisJob>>;
    /// Ends a try from the lease that holds it; `false` (nothing written) once it is lost.
    async fn finish_analysis(
        &self, job: &AnalysisJob, outcome: &AnalysisOutcome, now: i64,
    ) -> StoreResult<bool>;
    /// Writes an analysis run on demand (not as a job): the conversation's analysis on
    /// success, and its status on the job's row unless a job is queued or running (which
    /// writes its own when it ends, and may still have a webhook to queue).
    async fn record_analysis(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, outcome: &AnalysisOutcome, now: i64,
    ) -> StoreResult<()>;
    /// Where a conversation's analysis stands; `NotFound` when none was ever asked for.
    async fn analysis_status(
        &self, workspace_id: &WorkspaceId, id: &ConversationId,
    ) -> StoreResult<AnalysisStatus>;

    /// Up to `limit` of the agent's analysed conversations started in `[from, to)`, newest
    /// first.
    async fn analysed_conversations(
        &self, workspace_id: &WorkspaceId, agent_id: &str, from: i64, to: i64, limit: u32,
    ) -> StoreResult<Vec<AnalysedConversation>>;

    /// When the agent's newest analysed conversation started.
    async fn last_analysed_start(
        &self, workspace_id: &WorkspaceId, agent_id: &str,
    ) -> StoreResult<Option<i64>>;
}

#[async_trait]
impl AnalysisStore for SqlStore {
    async fn queue_analysis(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, deliver: bool, now: i64,
    ) -> StoreResult<()> {
        execute!(
            self,
            "INSERT INTO conversation_analyses (id, workspace_id, status, deliver, attempt, \
             created_at, updated_at) VALUES ($1, $2, 'queued', $3, 0, $4, $4) \
             ON CONFLICT (id) DO UPDATE SET status = 'queued', \
             deliver = conversation_analyses.deliver OR $3, error = NULL, \
             worker = NULL, lease_until = NULL, attempt = 0, updated_at = $4",
            id.as_str(),
            workspace_id.as_str(),
            deliver,
            now
        )?;
        Ok(())
    }

    async fn take_analysis(
        &self, worker: &str, now: i64, lease_secs: i64,
    ) -> StoreResult<Option<AnalysisJob>> {
        transaction!(self, |tx| {
            let taken = take_job!(self, tx, ANALYSES, "", worker, now, lease_secs);
            let Some(id) = taken else { return Ok(None) };
            let job: AnalysisJob = sqlx::query_as(
                "SELECT id, workspace_id, deliver, worker, attempt FROM conversation_analyses \
                 WHERE id = $1",
            )
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
            Ok(Some(job))
        })
    }

    async fn finish_analysis(
        &self, job: &AnalysisJob, outcome: &AnalysisOutcome, now: i64,
    ) -> StoreResult<bool> {
        let lease = job.lease();
        transaction!(self, |tx| {
            let (status, error, worker, lease_until) = match outcome {
                AnalysisOutcome::Succeeded { .. } => ("succeeded", None, None, None),
                AnalysisOutcome::Failed { error, retry_at: Some(at) } => {
                    // Held by nobody until its backoff ends: taken then like an expired lease.
                    ("running", Some(error.as_str()), None, Some(*at))
                }
                AnalysisOutcome::Failed { error, retry_at: None } => {
                    ("failed", Some(error.as_str()), None, None)
                }
            };
            let held =
                sqlx::query(sqlx::AssertSqlSafe(ANALYSES.held(
                    "status = $4, error = $5, worker = $6, lease_until = $7, updated_at = $8",
                )))
                .bind(&lease.id)
                .bind(&lease.worker)
                .bind(lease.attempt)
                .bind(status)
                .bind(error)
                .bind(worker as Option<&str>)
                .bind(lease_until as Option<i64>)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if held == 0 {
                return Ok(false);
            }
            if let AnalysisOutcome::Succeeded { analysis, call_successful } = outcome {
                write_analysis!(tx, &job.workspace_id, &job.id, analysis, call_successful);
            }
            Ok(true)
        })
    }

    async fn record_analysis(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, outcome: &AnalysisOutcome, now: i64,
    ) -> StoreResult<()> {
        let (status, error) = match outcome {
            AnalysisOutcome::Succeeded { .. } => ("succeeded", None),
            AnalysisOutcome::Failed { error, .. } => ("failed", Some(error.as_str())),
        };
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO conversation_analyses (id, workspace_id, status, deliver, error, \
                 attempt, created_at, updated_at) VALUES ($1, $2, $3, FALSE, $4, 1, $5, $5) \
                 ON CONFLICT (id) DO UPDATE SET status = $3, error = $4, worker = NULL, \
                 lease_until = NULL, attempt = conversation_analyses.attempt + 1, updated_at = $5 \
                 WHERE conversation_analyses.status IN ('succeeded', 'failed')",
            )
            .bind(id.as_str())
            .bind(workspace_id.as_str())
            .bind(status)
            .bind(error)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let AnalysisOutcome::Succeeded { analysis, call_successful } = outcome {
                write_analysis!(tx, workspace_id.as_str(), id.as_str(), analysis, call_successful);
            }
            Ok(())
        })
    }

    async fn analysis_status(
        &self, workspace_id: &WorkspaceId, id: &ConversationId,
    ) -> StoreResult<AnalysisStatus> {
        find!(
            self,
            "SELECT status, error, attempt, worker, lease_until, created_at, updated_at \
             FROM conversation_analyses \
             WHERE workspace_id = $1 AND id = $2",
            workspace_id,
            id.as_str()
        )
    }

    async fn analysed_conversations(
        &self, workspace_id: &WorkspaceId, agent_id: &str, from: i64, to: i64, limit: u32,
    ) -> StoreResult<Vec<AnalysedConversation>> {
        let mut q = Query::in_workspace(
            "SELECT id, started_at, analysis FROM conversations \
             WHERE workspace_id = $1 AND deleted = FALSE AND analysis IS NOT NULL",
            workspace_id,
        );
        q.push(" AND agent_id = ?", Bind::Text(agent_id.to_owned()));
        q.push(" AND started_at >= ?", Bind::Int(from));
        q.push(" AND started_at < ?", Bind::Int(to));
        q.order_and_limit("started_at DESC, id", limit);
        Ok(fetch_all!(self, q)?)
    }

    async fn last_analysed_start(
        &self, workspace_id: &WorkspaceId, agent_id: &str,
    ) -> StoreResult<Option<i64>> {
        let mut q = Query::in_workspace(
            "SELECT started_at FROM conversations \
             WHERE workspace_id = $1 AND deleted = FALSE AND analysis IS NOT NULL",
            workspace_id,
        );
        q.push(" AND agent_id = ?", Bind::Text(agent_id.to_owned()));
        q.order_and_limit("started_at DESC", 1);
        let found: Option<(i64,)> = fetch_optional!(self, q)?;
        Ok(found.map(|(at,)| at))
    }
}

/// Puts an analysis on its conversation inside the transaction `$tx` (a deleted conversation
/// keeps none).
macro_rules! write_analysis {
    ($tx:ident, $workspace_id:expr, $id:expr, $analysis:expr, $call_successful:expr) => {
        sqlx::query(
            "UPDATE conversations SET analysis = $3, call_successful = $4 \
             WHERE workspace_id = $1 AND id = $2 AND deleted = FALSE",
        )
        .bind($workspace_id)
        .bind($id)
        .bind($analysis)
        .bind($call_successful)
        .execute(&mut *$tx)
        .await?
    };
}
use write_analysis;
