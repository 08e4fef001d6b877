//! What the knowledge base's leased job queues (embedding indexes, crawls) share: taking the
//! oldest job that is queued or whose holder's lease ran out, renewing a lease from the holder
//! only, and ending a job from the lease that holds it. Their tables have `id`, `status`
//! (`processing` while held), `worker`, `attempt`, `lease_until`, `created_at`, `updated_at`.

/// A job table and the status of its queued jobs.
pub(crate) struct JobTable {
    pub(crate) name: &'static str,
    pub(crate) queued: &'static str,
}

pub(crate) const RAG_INDEXES: JobTable = JobTable { name: "kb_rag_indexes", queued: "created" };
pub(crate) const CRAWL_JOBS: JobTable = JobTable { name: "kb_crawl_jobs", queued: "queued" };

impl JobTable {
    /// The condition of a job another worker may take, `now` being the placeholder of the time.
    fn takeable(&self, now: &str) -> String {
        format!("(status = '{}' OR (status = 'processing' AND lease_until < {now}))", self.queued)
    }

    /// `SELECT` of the oldest takeable job's id (`$1`: now).
    pub(crate) fn oldest_takeable(&self) -> String {
        format!(
            "SELECT id FROM {} WHERE {} ORDER BY created_at, id LIMIT 1",
            self.name,
            self.takeable("$1")
        )
    }

    /// `UPDATE` taking job `$4` for worker `$1` at `$2` until `$3`, if it is still takeable,
    /// also setting `also` (assignments without parameters, or empty).
    pub(crate) fn take(&self, also: &str) -> String {
        format!(
            "UPDATE {} SET status = 'processing', worker = $1, attempt = attempt + 1, \
             lease_until = $3, updated_at = $2{also} WHERE id = $4 AND {}",
            self.name,
            self.takeable("$2")
        )
    }

    /// `UPDATE` of job `$1` held by worker `$2` in attempt `$3` (its lease not lost, nor the
    /// job cancelled), setting `set`, whose own parameters start at `$4`.
    pub(crate) fn held(&self, set: &str) -> String {
        format!(
            "UPDATE {} SET {set} WHERE id = $1 AND worker = $2 AND attempt = $3 AND status = 'processing'",
            self.name
        )
    }
}

/// Takes the oldest takeable job of `$table` (a [`JobTable`]) for `$worker` inside the
/// transaction `$tx`, also setting `$also`; its id, or `None` when there is none (or another
/// worker took it first).
macro_rules! take_job {
    ($tx:ident, $table:expr, $also:expr, $worker:expr, $now:expr, $lease_secs:expr) => {{
        let table: &$crate::jobs::JobTable = &$table;
        let id: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(table.oldest_takeable()))
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
