//! What the leased job queues (test runs, embedding indexes, crawls, analyses) share: taking the oldest
//! job that is queued or whose holder's lease ran out, renewing a lease from the holder only
//! (the heartbeat that keeps a long job's lease short), and ending a job from the lease that
//! holds it. Their tables have `id`, `status`, `worker`, `attempt`, `lease_until`,
//! `created_at`, `updated_at`.

use async_trait::async_trait;

use crate::db::execute;
use crate::{SqlStore, StoreResult};

/// A job table, the status of its queued jobs and of its held ones.
pub(crate) struct JobTable {
    pub(crate) name: &'static str,
    pub(crate) queued: &'static str,
    pub(crate) held: &'static str,
}

pub(crate) const TEST_RUNS: JobTable =
    JobTable { name: "test_runs", queued: "pending", held: "running" };
pub(crate) const RAG_INDEXES: JobTable =
    JobTable { name: "kb_rag_indexes", queued: "created", held: "processing" };
pub(crate) const CRAWL_JOBS: JobTable =
    JobTable { name: "kb_crawl_jobs", queued: "queued", held: "processing" };
pub(crate) const ANALYSES: JobTable =
    JobTable { name: "conversation_analyses", queued: "queued", held: "running" };

/// The kinds of leased jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A test run.
    TestRun,
    /// A knowledge-base document's embedding index.
    RagIndex,
    /// A knowledge-base crawl.
    Crawl,
    /// A conversation's post-call analysis.
    Analysis,
}

impl JobKind {
    fn table(self) -> &'static JobTable {
        match self {
            JobKind::TestRun => &TEST_RUNS,
            JobKind::RagIndex => &RAG_INDEXES,
            JobKind::Crawl => &CRAWL_JOBS,
            JobKind::Analysis => &ANALYSES,
        }
    }
}

/// A lease as its holder knows it: which job, and the worker and attempt that took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What kind of job.
    pub kind: JobKind,
    /// The job's id.
    pub id: String,
    /// The worker holding it.
    pub worker: String,
    /// The attempt it was taken in.
    pub attempt: i64,
}

/// Leases kept alive by their holders.
#[async_trait]
pub trait LeaseStore {
    /// Extends a lease to `until`; `false` once the holder has lost it (the job was cancelled,
    /// ended, or taken over after the lease ran out), in which case nothing changes.
    async fn renew_lease(&self, lease: &Lease, until: i64) -> StoreResult<bool>;
}

#[async_trait]
impl LeaseStore for SqlStore {
    async fn renew_lease(&self, lease: &Lease, until: i64) -> StoreResult<bool> {
        let sql = lease.kind.table().held("lease_until = $4");
        let renewed = execute!(
            self,
            sqlx::AssertSqlSafe(sql),
            &lease.id,
            &lease.worker,
            lease.attempt,
            until
        )?;
        Ok(renewed == 1)
    }
}

impl JobTable {
    /// The condition of a job another worker may take, `now` being the placeholder of the time.
    pub(crate) fn takeable(&self, now: &str) -> String {
        format!(
            "(status = '{}' OR (status = '{}' AND lease_until < {now}))",
            self.queued, self.held
        )
    }

    /// `SELECT` of the oldest takeable job's id (`$1`: now), `lock` after it (see
    /// [`crate::db::Db::skip_locked`]).
    pub(crate) fn oldest_takeable(&self, lock: &str) -> String {
        format!(
            "SELECT id FROM {} WHERE {} ORDER BY created_at, id LIMIT 1{lock}",
            self.name,
            self.takeable("$1")
        )
    }

    /// `UPDATE` taking job `$4` for worker `$1` at `$2` until `$3`, if it is still takeable,
    /// also setting `also` (assignments without parameters, or empty).
    pub(crate) fn take(&self, also: &str) -> String {
        format!(
            "UPDATE {} SET status = '{}', worker = $1, attempt = attempt + 1, \
             lease_until = $3, updated_at = $2{also} WHERE id = $4 AND {}",
            self.name,
            self.held,
            self.takeable("$2")
        )
    }

    /// `UPDATE` of job `$1` held by worker `$2` in attempt `$3` (its lease not lost, nor the
    /// job cancelled), setting `set`, whose own parameters start at `$4`.
    pub(crate) fn held(&self, set: &str) -> String {
        format!(
            "UPDATE {} SET {set} WHERE id = $1 AND worker = $2 AND attempt = $3 AND status = '{}'",
            self.name, self.held
        )
    }
}

/// Takes the oldest takeable job of `$table` (a [`JobTable`]) of `$store` for `$worker` inside
/// the transaction `$tx`, also setting `$also`; its id, or `None` when there is none (or
/// another worker took it first). On PostgreSQL a job another node is taking is skipped, so
/// nodes taking at once each get one instead of all but one getting none.
macro_rules! take_job {
    ($store:expr, $tx:ident, $table:expr, $also:expr, $worker:expr, $now:expr, $lease_secs:expr) => {{
        let table: &$crate::jobs::JobTable = &$table;
        let pick = table.oldest_takeable($store.db.skip_locked());
        let id: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(pick))
            .bind($now)
            .fetch_optional(&mut *$tx)
            .await?;
        match id {
            None => None,
            Some(id) => {
                let taken = sqlx::query(sqlx::AssertSqlSafe(table.take($also)))
                    .bind($worker)
                    .bind($now)
                    .bind($now + $lease_secs)
                    .bind(&id)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected();
                (taken == 1).then_some(id)
            }
        }
    }};
}
pub(crate) use take_job;
