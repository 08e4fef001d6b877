//! Crawl jobs and their pages. A job is leased like an embedding index; its frontier is the
//! `kb_crawl_pages` rows still `queued`, so a node that takes a job over goes on from there.
//! Each page's outcome is recorded with its document and the new links it found, in one
//! transaction that also renews the lease and fails once the lease is lost, so a page is
//! stored once however often its job changes hands.

use async_trait::async_trait;

use colloquy_core::ids::WorkspaceId;

use crate::db::{run, transaction};
use crate::jobs::{CRAWL_JOBS, take_job};
use crate::{SqlStore, StoreError, StoreResult};

/// A crawl job with its page counts.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CrawlJobRow {
    /// Its id.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// Who asked for it (the pages' documents are theirs).
    pub created_by: String,
    /// Where it started.
    pub seed_url: String,
    /// Only URLs matching this regular expression are followed.
    pub pattern: Option<String>,
    /// URLs matching any of these (a JSON array) are not followed.
    pub exclude_patterns: String,
    /// Sitemaps read for the pages they list (a JSON array).
    pub sitemap_urls: String,
    /// Link depth followed from the seed (the seed is depth 1).
    pub max_depth: i64,
    /// Most pages found.
    pub max_pages: i64,
    /// The folder its documents go in.
    pub root_folder_id: String,
    /// `queued`, `processing`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The node holding it.
    pub worker: Option<String>,
    /// Leases taken so far.
    pub attempt: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Pages found.
    pub pages_identified: i64,
    /// Pages read into documents.
    pub pages_scraped: i64,
    /// Pages robots.txt kept it from.
    pub pages_skipped: i64,
    /// Pages that could not be read.
    pub pages_failed: i64,
}

/// A new crawl job.
#[derive(Debug, Clone)]
pub struct NewCrawlJob {
    /// Its id.
    pub id: String,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// Who asks.
    pub created_by: String,
    /// Where to start.
    pub seed_url: String,
    /// Only URLs matching this are followed.
    pub pattern: Option<String>,
    /// URLs matching any of these are not (JSON array).
    pub exclude_patterns: String,
    /// Sitemaps to read (JSON array).
    pub sitemap_urls: String,
    /// Link depth.
    pub max_depth: i64,
    /// Most pages.
    pub max_pages: i64,
    /// Folder for its documents.
    pub root_folder_id: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// One page a crawl found, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CrawlPageRow {
    /// The page.
    pub url: String,
    /// Link depth from the seed (the seed is 1).
    pub depth: i64,
    /// Order found.
    pub seq: i64,
    /// `queued`, `scraped`, `skipped` or `failed`.
    pub status: String,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// The document made of it.
    pub document_id: Option<String>,
}

/// What became of one page.
#[derive(Debug, Clone)]
pub struct PageOutcome {
    /// The page.
    pub url: String,
    /// `scraped`, `skipped` or `failed`; `sitemap` for a sitemap read.
    pub status: &'static str,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// The document made of it, stored with the outcome.
    pub document: Option<crate::NewDocument>,
    /// Same-site links it has (or pages and sitemaps a sitemap lists), to follow at `depth`.
    pub links: Vec<String>,
    /// The depth of those links.
    pub depth: i64,
}

/// Crawl jobs.
#[async_trait]
pub trait CrawlStore {
    /// Stores a queued job with its seed page.
    async fn insert_crawl_job(&self, job: &NewCrawlJob) -> StoreResult<()>;
    /// One job of the workspace.
    async fn get_crawl_job(&self, workspace_id: &WorkspaceId, id: &str)
    -> StoreResult<CrawlJobRow>;
    /// The workspace's jobs, newest first, after `(created_at, id)`, plus `include` wherever
    /// they fall.
    async fn list_crawl_jobs(
        &self, workspace_id: &WorkspaceId, after: Option<(i64, String)>, limit: u32,
    ) -> StoreResult<Vec<CrawlJobRow>>;
    /// Cancels a job that has not ended; the job as it is after.
    async fn cancel_crawl_job(
        &self, workspace_id: &WorkspaceId, id: &str, now: i64,
    ) -> StoreResult<CrawlJobRow>;
    /// Leases the oldest queued job, or one whose lease ran out.
    async fn lease_crawl_job(
        &self, worker: &str, now: i64, lease_secs: i64,
    ) -> StoreResult<Option<CrawlJobRow>>;
    /// The next page to read: the shallowest queued one, in the order found.
    async fn next_crawl_page(&self, job: &CrawlJobRow) -> StoreResult<Option<(String, i64)>>;
    /// Records a page's outcome and queues its links (up to the job's `max_pages` found),
    /// renewing the lease until `lease_until`; `false` when the lease was lost.
    async fn record_crawl_page(
        &self, job: &CrawlJobRow, outcome: &PageOutcome, lease_until: i64,
    ) -> StoreResult<bool>;
    /// A page of a job's pages in the order found, after `(seq, url)`.
    async fn crawl_pages(
        &self, workspace_id: &WorkspaceId, job_id: &str, after: Option<(i64, String)>, limit: u32,
    ) -> StoreResult<Vec<CrawlPageRow>>;
    /// Ends a leased job; `false` when the lease was lost (or it was cancelled).
    async fn finish_crawl_job(
        &self, job: &CrawlJobRow, status: &str, now: i64,
    ) -> StoreResult<bool>;
}

const SELECT: &str = "SELECT j.id, j.workspace_id, j.created_by, j.seed_url, j.pattern, \
     j.exclude_patterns, j.sitemap_urls, j.max_depth, j.max_pages, j.root_folder_id, j.status, j.worker, \
     j.attempt, j.created_at, j.updated_at, \
     (SELECT COUNT(*) FROM kb_crawl_pages p WHERE p.job_id = j.id AND p.depth > 0) AS pages_identified, \
     (SELECT COUNT(*) FROM kb_crawl_pages p WHERE p.job_id = j.id AND p.status = 'scraped') AS pages_scraped, \
     (SELECT COUNT(*) FROM kb_crawl_pages p WHERE p.job_id = j.id AND p.status = 'skipped') AS pages_skipped, \
     (SELECT COUNT(*) FROM kb_crawl_pages p WHERE p.job_id = j.id AND p.status = 'failed') AS pages_failed \
     FROM kb_crawl_jobs j";

#[async_trait]
impl CrawlStore for SqlStore {
    async fn insert_crawl_job(&self, job: &NewCrawlJob) -> StoreResult<()> {
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO kb_crawl_jobs (id, workspace_id, created_by, seed_url, pattern, \
                 exclude_patterns, sitemap_urls, max_depth, max_pages, root_folder_id, status, \
                 attempt, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', 0, $11, $11)",
            )
            .bind(&job.id)
            .bind(job.workspace_id.as_str())
            .bind(&job.created_by)
            .bind(&job.seed_url)
            .bind(&job.pattern)
            .bind(&job.exclude_patterns)
            .bind(&job.sitemap_urls)
            .bind(job.max_depth)
            .bind(job.max_pages)
            .bind(&job.root_folder_id)
            .bind(job.created_at)
            .execute(&mut *tx)
            .await?;
            let sitemaps: Vec<String> = serde_json::from_str(&job.sitemap_urls).unwrap_or_default();
            for sitemap in sitemaps.iter().filter(|s| **s != job.seed_url) {
                sqlx::query(
                    "INSERT INTO kb_crawl_pages (job_id, url, depth, seq, status) VALUES ($1, $2, 0, 0, 'queued') \
                     ON CONFLICT (job_id, url) DO NOTHING",
                )
                .bind(&job.id)
                .bind(sitemap)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO kb_crawl_pages (job_id, url, depth, seq, status) VALUES ($1, $2, 1, 0, 'queued')",
            )
            .bind(&job.id)
            .bind(&job.seed_url)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    async fn get_crawl_job(
        &self, workspace_id: &WorkspaceId, id: &str,
    ) -> StoreResult<CrawlJobRow> {
        let sql = format!("{SELECT} WHERE j.workspace_id = $1 AND j.id = $2");
        let row: Option<CrawlJobRow> = run!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(workspace_id.as_str())
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        row.ok_or(StoreError::NotFound)
    }

    async fn list_crawl_jobs(
        &self, workspace_id: &WorkspaceId, after: Option<(i64, String)>, limit: u32,
    ) -> StoreResult<Vec<CrawlJobRow>> {
        let (at, id) = after.unwrap_or((i64::MAX, String::new()));
        let sql = format!(
            "{SELECT} WHERE j.workspace_id = $1 AND (j.created_at < $2 OR (j.created_at = $2 AND j.id < $3) OR $3 = '') \
             ORDER BY j.created_at DESC, j.id DESC LIMIT {limit}"
        );
        Ok(run!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(workspace_id.as_str())
                .bind(at)
                .bind(&id)
                .fetch_all(pool)
                .await
        })?)
    }

    async fn cancel_crawl_job(
        &self, workspace_id: &WorkspaceId, id: &str, now: i64,
    ) -> StoreResult<CrawlJobRow> {
        run!(self, write, |pool| {
            sqlx::query(
                "UPDATE kb_crawl_jobs SET status = 'cancelled', lease_until = NULL, updated_at = $3 \
                 WHERE workspace_id = $1 AND id = $2 AND status IN ('queued', 'processing')",
            )
            .bind(workspace_id.as_str())
            .bind(id)
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        self.get_crawl_job(workspace_id, id).await
    }

    async fn lease_crawl_job(
        &self, worker: &str, now: i64, lease_secs: i64,
    ) -> StoreResult<Option<CrawlJobRow>> {
        let taken: Option<String> = transaction!(self, |tx| {
            Ok(take_job!(self, tx, CRAWL_JOBS, "", worker, now, lease_secs))
        })?;
        let Some(id) = taken else { return Ok(None) };
        let sql = format!("{SELECT} WHERE j.id = $1");
        Ok(run!(self, write, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(&id).fetch_optional(pool).await
        })?)
    }

    async fn next_crawl_page(&self, job: &CrawlJobRow) -> StoreResult<Option<(String, i64)>> {
        Ok(run!(self, write, |pool| {
            sqlx::query_as(
                "SELECT url, depth FROM kb_crawl_pages WHERE job_id = $1 AND status = 'queued' \
                 ORDER BY depth, seq LIMIT 1",
            )
            .bind(&job.id)
            .fetch_optional(pool)
            .await
        })?)
    }

    async fn record_crawl_page(
        &self, job: &CrawlJobRow, outcome: &PageOutcome, lease_until: i64,
    ) -> StoreResult<bool> {
        transaction!(self, |tx| {
            let held = sqlx::query(sqlx::AssertSqlSafe(CRAWL_JOBS.held("lease_until = $4")))
                .bind(&job.id)
                .bind(&job.worker)
                .bind(job.attempt)
                .bind(lease_until)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if held == 0 {
                return Ok(false);
            }
            if let Some(doc) = &outcome.document {
                crate::knowledge_base::insert_document!(tx, doc);
            }
            sqlx::query(
                "UPDATE kb_crawl_pages SET status = $3, error = $4, document_id = $5 \
                 WHERE job_id = $1 AND url = $2",
            )
            .bind(&job.id)
            .bind(&outcome.url)
            .bind(outcome.status)
            .bind(&outcome.error)
            .bind(outcome.document.as_ref().map(|d| d.id.as_str()))
            .execute(&mut *tx)
            .await?;
            let found: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM kb_crawl_pages WHERE job_id = $1 AND depth > 0",
            )
            .bind(&job.id)
            .fetch_one(&mut *tx)
            .await?;
            let room = usize::try_from(job.max_pages - found).unwrap_or(0);
            for (i, link) in outcome.links.iter().take(room).enumerate() {
                sqlx::query(
                    "INSERT INTO kb_crawl_pages (job_id, url, depth, seq, status) \
                     VALUES ($1, $2, $3, $4, 'queued') ON CONFLICT (job_id, url) DO NOTHING",
                )
                .bind(&job.id)
                .bind(link)
                .bind(outcome.depth)
                .bind(found + i64::try_from(i).unwrap_or(0))
                .execute(&mut *tx)
                .await?;
            }
            Ok(true)
        })
    }

    async fn crawl_pages(
        &self, workspace_id: &WorkspaceId, job_id: &str, after: Option<(i64, String)>, limit: u32,
    ) -> StoreResult<Vec<CrawlPageRow>> {
        // Seqs can repeat (a page found twice keeps its first); the URL breaks the tie.
        let sql = format!(
            "SELECT p.url, p.depth, p.seq, p.status, p.error, p.document_id FROM kb_crawl_pages p \
             JOIN kb_crawl_jobs j ON j.id = p.job_id WHERE j.workspace_id = $1 AND p.job_id = $2 \
             AND (p.seq > $3 OR (p.seq = $3 AND p.url > $4)) ORDER BY p.seq, p.url LIMIT {limit}"
        );
        let (seq, url) = after.unwrap_or((-1, String::new()));
        Ok(run!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(workspace_id.as_str())
                .bind(job_id)
                .bind(seq)
                .bind(&url)
                .fetch_all(pool)
                .await
        })?)
    }

    async fn finish_crawl_job(
        &self, job: &CrawlJobRow, status: &str, now: i64,
    ) -> StoreResult<bool> {
        let done = run!(self, write, |pool| {
            let done = sqlx::query(sqlx::AssertSqlSafe(
                CRAWL_JOBS.held("status = $4, lease_until = NULL, updated_at = $5"),
            ))
            .bind(&job.id)
            .bind(&job.worker)
            .bind(job.attempt)
            .bind(status)
            .bind(now)
            .execute(pool)
            .await?;
            Ok::<_, sqlx::Error>(done.rows_affected())
        })?;
        Ok(done == 1)
    }
}
