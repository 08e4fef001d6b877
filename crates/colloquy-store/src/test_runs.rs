//! Test invocations and their runs, and the durable queue the runs form (DESIGN.md §3.4).

use async_trait::async_trait;

use colloquy_core::ids::{AgentId, InvocationId, TestId, WorkspaceId};
use colloquy_core::test_runs::RunStatus;

use crate::db::{change_one, execute, run, transaction};
use crate::inline::sqlite_row;
use crate::jobs::TEST_RUNS;
use crate::query::{Bind, Query, escape_like, fetch_all, find};
use crate::{SqlStore, StoreResult};

/// An invocation as read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InvocationRow {
    /// `suite_...`
    #[sqlx(try_from = "String")]
    pub id: InvocationId,
    /// Workspace.
    #[sqlx(try_from = "String")]
    pub workspace_id: WorkspaceId,
    /// The agent tested.
    #[sqlx(try_from = "String")]
    pub agent_id: AgentId,
    /// Its branch.
    pub branch_id: Option<String>,
    /// The version of the branch it judges.
    pub version_id: Option<String>,
    /// Optional name.
    pub name: Option<String>,
    /// Runs per test.
    pub repeat_count: i64,
    /// Who started it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Request details (agent config override) as JSON text.
    pub document: String,
}
sqlite_row!(InvocationRow {
    id,
    workspace_id,
    agent_id,
    branch_id,
    version_id,
    name,
    repeat_count,
    created_by,
    created_at,
    document,
});

/// A run as read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunRow {
    /// `run_...`
    pub id: String,
    /// Its invocation.
    #[sqlx(try_from = "String")]
    pub invocation_id: InvocationId,
    /// Workspace.
    #[sqlx(try_from = "String")]
    pub workspace_id: WorkspaceId,
    /// The test.
    #[sqlx(try_from = "String")]
    pub test_id: TestId,
    /// The test's name when the run was created.
    pub test_name: String,
    /// Where the run is.
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    /// Leases taken so far.
    pub attempt: i64,
    /// Worker holding the lease.
    pub worker: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Outcome (JSON text).
    pub result: String,
}
sqlite_row!(RunRow {
    id,
    invocation_id,
    workspace_id,
    test_id,
    test_name,
    status,
    attempt,
    worker,
    created_at,
    updated_at,
    result,
});

/// Filters of the invocations list.
#[derive(Debug, Clone, Default)]
pub struct InvocationFilter {
    /// Only this agent's.
    pub agent_id: Option<AgentId>,
    /// Only on this branch.
    pub branch_id: Option<String>,
    /// Only judging this version.
    pub version_id: Option<String>,
    /// Only those running this test.
    pub test_id: Option<TestId>,
    /// Only started by this user.
    pub created_by: Option<String>,
    /// Lower-cased substring of the name or of a run's test name.
    pub search: Option<String>,
    /// Created at or after (unix seconds).
    pub start: Option<i64>,
    /// Created at or before (unix seconds).
    pub end: Option<i64>,
}

/// Invocations and the run queue.
#[async_trait]
pub trait TestRunStore {
    /// Creates an invocation with its runs, all pending, in one transaction.
    async fn insert_invocation(
        &self, invocation: &InvocationRow, runs: &[RunRow],
    ) -> StoreResult<()>;
    /// One invocation of the workspace.
    async fn get_invocation(
        &self, workspace_id: &WorkspaceId, id: &InvocationId,
    ) -> StoreResult<InvocationRow>;
    /// An invocation's runs, in creation order.
    async fn invocation_runs(&self, invocation_id: &InvocationId) -> StoreResult<Vec<RunRow>>;
    /// Invocations newest first after `(created_at, id)`.
    async fn list_invocations(
        &self, workspace_id: &WorkspaceId, filter: &InvocationFilter, after: Option<(i64, String)>,
        limit: u32,
    ) -> StoreResult<Vec<InvocationRow>>;
    /// How many invocations match `filter`; with `up_to`, only those listed before and at that
    /// `(created_at, id)` position (to number pages).
    async fn count_invocations(
        &self, workspace_id: &WorkspaceId, filter: &InvocationFilter, up_to: Option<(i64, String)>,
    ) -> StoreResult<i64>;
    /// Leases up to `limit` runs for `worker` until `now + lease_secs`: pending runs, and
    /// running ones whose lease expired (their worker died).
    async fn lease_runs(
        &self, worker: &str, now: i64, lease_secs: i64, limit: u32,
    ) -> StoreResult<Vec<RunRow>>;
    /// Renames an invocation (`None` restores the generated title).
    async fn rename_invocation(
        &self, workspace_id: &WorkspaceId, id: &InvocationId, name: Option<&str>,
    ) -> StoreResult<()>;
    /// Ends every unfinished run of an invocation as cancelled with `result`; a worker still
    /// running one finds its lease gone and drops its result.
    async fn cancel_runs(
        &self, invocation_id: &InvocationId, result: &str, now: i64,
    ) -> StoreResult<u64>;
    /// Puts runs of an invocation back in the queue, optionally with a new request document.
    async fn resubmit_runs(
        &self, invocation_id: &InvocationId, run_ids: &[String], document: Option<&str>, now: i64,
    ) -> StoreResult<()>;
    /// Completes a run from the lease that holds it; `false` if the lease was lost meanwhile
    /// (another worker took the run over), in which case nothing changes.
    async fn complete_run(
        &self, run_id: &str, worker: &str, attempt: i64, status: RunStatus, result: &str, now: i64,
    ) -> StoreResult<bool>;
}

const INVOCATION_COLUMNS: &str = "id, workspace_id, agent_id, branch_id, version_id, name, repeat_count, created_by, created_at, document";
const RUN_COLUMNS: &str = "id, invocation_id, workspace_id, test_id, test_name, status, attempt, worker, created_at, updated_at, result";

#[async_trait]
impl TestRunStore for SqlStore {
    async fn insert_invocation(&self, inv: &InvocationRow, runs: &[RunRow]) -> StoreResult<()> {
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO test_invocations (id, workspace_id, agent_id, branch_id, name, repeat_count, created_by, \
                 created_at, document, version_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(inv.id.as_str())
            .bind(inv.workspace_id.as_str())
            .bind(inv.agent_id.as_str())
            .bind(&inv.branch_id)
            .bind(&inv.name)
            .bind(inv.repeat_count)
            .bind(&inv.created_by)
            .bind(inv.created_at)
            .bind(&inv.document)
            .bind(&inv.version_id)
            .execute(&mut *tx)
            .await?;
            for r in runs {
                sqlx::query(
                    "INSERT INTO test_runs (id, invocation_id, workspace_id, test_id, test_name, status, attempt, \
                     created_at, updated_at, result) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, '{}')",
                )
                .bind(&r.id)
                .bind(inv.id.as_str())
                .bind(inv.workspace_id.as_str())
                .bind(r.test_id.as_str())
                .bind(&r.test_name)
                .bind(r.created_at)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        })
    }

    async fn get_invocation(
        &self, workspace_id: &WorkspaceId, id: &InvocationId,
    ) -> StoreResult<InvocationRow> {
        find!(
            self,
            format!(
                "SELECT {INVOCATION_COLUMNS} FROM test_invocations WHERE workspace_id = $1 AND id = $2"
            ),
            workspace_id,
            id.as_str()
        )
    }

    async fn invocation_runs(&self, invocation_id: &InvocationId) -> StoreResult<Vec<RunRow>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM test_runs WHERE invocation_id = $1 ORDER BY created_at, id"
        );
        Ok(fetch_all!(self, Query::new(sql, vec![Bind::Text(invocation_id.to_string())]))?)
    }

    async fn list_invocations(
        &self, workspace_id: &WorkspaceId, filter: &InvocationFilter, after: Option<(i64, String)>,
        limit: u32,
    ) -> StoreResult<Vec<InvocationRow>> {
        let columns =
            INVOCATION_COLUMNS.split(", ").map(|c| format!("i.{c}")).collect::<Vec<_>>().join(", ");
        let mut q = filtered_invocations(&columns, workspace_id, filter);
        if let Some((at, id)) = after {
            let a = q.param(Bind::Int(at));
            let i = q.param(Bind::Text(id));
            q.raw(&format!(" AND (i.created_at < {a} OR (i.created_at = {a} AND i.id < {i}))"));
        }
        q.order_and_limit("i.created_at DESC, i.id DESC", limit);
        Ok(fetch_all!(self, q)?)
    }

    async fn count_invocations(
        &self, workspace_id: &WorkspaceId, filter: &InvocationFilter, up_to: Option<(i64, String)>,
    ) -> StoreResult<i64> {
        let mut q = filtered_invocations("COUNT(*)", workspace_id, filter);
        if let Some((at, id)) = up_to {
            let a = q.param(Bind::Int(at));
            let i = q.param(Bind::Text(id));
            q.raw(&format!(" AND (i.created_at > {a} OR (i.created_at = {a} AND i.id >= {i}))"));
        }
        let rows: Vec<(i64,)> = fetch_all!(self, q)?;
        Ok(rows.first().map_or(0, |r| r.0))
    }

    async fn lease_runs(
        &self, worker: &str, now: i64, lease_secs: i64, limit: u32,
    ) -> StoreResult<Vec<RunRow>> {
        // PostgreSQL skips rows other nodes are leasing right now (`skip_locked`). The limit is
        // part of the text, not bound (see `Query::order_and_limit`).
        let lock = self.db.skip_locked();
        let pick = format!(
            "SELECT id FROM test_runs WHERE {} ORDER BY created_at, id LIMIT {limit}{lock}",
            TEST_RUNS.takeable("$2")
        );
        let sql = format!(
            "UPDATE test_runs SET status = 'running', worker = $1, attempt = attempt + 1, lease_until = $3, updated_at = $2 \
             WHERE id IN ({pick}) RETURNING {RUN_COLUMNS}"
        );
        Ok(run!(self, write, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(worker)
                .bind(now)
                .bind(now + lease_secs)
                .fetch_all(pool)
                .await
        })?)
    }

    async fn rename_invocation(
        &self, workspace_id: &WorkspaceId, id: &InvocationId, name: Option<&str>,
    ) -> StoreResult<()> {
        change_one!(
            self,
            "UPDATE test_invocations SET name = $3 WHERE workspace_id = $1 AND id = $2",
            workspace_id,
            id.as_str(),
            name,
        )
    }

    async fn cancel_runs(
        &self, invocation_id: &InvocationId, result: &str, now: i64,
    ) -> StoreResult<u64> {
        Ok(execute!(
            self,
            "UPDATE test_runs SET status = 'cancelled', result = $2, updated_at = $3, lease_until = NULL, worker = NULL \
             WHERE invocation_id = $1 AND status IN ('pending', 'running')",
            invocation_id.as_str(),
            result,
            now,
        )?)
    }

    async fn resubmit_runs(
        &self, invocation_id: &InvocationId, run_ids: &[String], document: Option<&str>, now: i64,
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            if let Some(doc) = document {
                sqlx::query("UPDATE test_invocations SET document = $2 WHERE id = $1")
                    .bind(invocation_id.as_str())
                    .bind(doc)
                    .execute(&mut *tx)
                    .await?;
            }
            for id in run_ids {
                sqlx::query(
                    "UPDATE test_runs SET status = 'pending', result = '{}', worker = NULL, lease_until = NULL, updated_at = $3 \
                     WHERE invocation_id = $1 AND id = $2",
                )
                .bind(invocation_id.as_str())
                .bind(id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        })
    }

    async fn complete_run(
        &self, run_id: &str, worker: &str, attempt: i64, status: RunStatus, result: &str, now: i64,
    ) -> StoreResult<bool> {
        let done = execute!(
            self,
            sqlx::AssertSqlSafe(
                TEST_RUNS.held("status = $4, result = $5, updated_at = $6, lease_until = NULL")
            ),
            run_id,
            worker,
            attempt,
            status.as_str(),
            result,
            now,
        )?;
        Ok(done == 1)
    }
}

/// `SELECT <select>` over a workspace's invocations matching `filter` (aliased `i`).
fn filtered_invocations(
    select: &str, workspace_id: &WorkspaceId, filter: &InvocationFilter,
) -> Query {
    let mut q = Query::in_workspace(
        format!("SELECT {select} FROM test_invocations i WHERE i.workspace_id = $1"),
        workspace_id,
    );
    if let Some(a) = &filter.agent_id {
        q.push(" AND i.agent_id = ?", Bind::Text(a.to_string()));
    }
    if let Some(b) = &filter.branch_id {
        q.push(" AND i.branch_id = ?", Bind::Text(b.clone()));
    }
    if let Some(v) = &filter.version_id {
        q.push(" AND i.version_id = ?", Bind::Text(v.clone()));
    }
    if let Some(u) = &filter.created_by {
        q.push(" AND i.created_by = ?", Bind::Text(u.clone()));
    }
    if let Some(s) = filter.start {
        q.push(" AND i.created_at >= ?", Bind::Int(s));
    }
    if let Some(e) = filter.end {
        q.push(" AND i.created_at <= ?", Bind::Int(e));
    }
    if let Some(t) = &filter.test_id {
        q.push(" AND EXISTS (SELECT 1 FROM test_runs r WHERE r.invocation_id = i.id AND r.test_id = ?)", Bind::Text(t.to_string()));
    }
    if let Some(s) = &filter.search {
        let p = q.param(Bind::Text(format!("%{}%", escape_like(s))));
        q.raw(&format!(
            " AND (lower(COALESCE(i.name, '')) LIKE {p} ESCAPE '\\' OR EXISTS (SELECT 1 FROM test_runs r \
             WHERE r.invocation_id = i.id AND lower(r.test_name) LIKE {p} ESCAPE '\\'))"
        ));
    }
    q
}
