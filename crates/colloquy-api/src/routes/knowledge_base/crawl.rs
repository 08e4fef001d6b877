//! Crawls (`/knowledge-base/crawl`): a site read into URL documents by the engine's
//! knowledge-base worker on any node, into a folder made for it; its progress, and cancelling
//! it.

use axum::extract::Path;
use colloquy_core::cursor::Direction;
use colloquy_core::ids::{self, DocumentId};
use colloquy_core::knowledge::DocType;
use colloquy_core::time;
use colloquy_store::{CrawlJobRow, DocumentBody, NewCrawlJob, NewDocument};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::create::{SyncSettings, parent_folder, violation};
use crate::auth::Ctx;
use crate::error::{ApiResult, OrNotFound};
use crate::extract::{Json, Query};
use crate::paging::{PageSizeRule, Pager};

/// `CrawlType`: `sitemap` when the crawl reads sitemaps, else `discovery` (links only).
fn crawl_type(sitemap_urls: &str) -> &'static str {
    let sitemaps: Vec<String> = serde_json::from_str(sitemap_urls).unwrap_or_default();
    if sitemaps.is_empty() { "discovery" } else { "sitemap" }
}

/// `GetCrawlJobResponseModel`.
fn view(job: &CrawlJobRow) -> Value {
    json!({
        "type": crawl_type(&job.sitemap_urls),
        "seed_url": job.seed_url,
        "pattern": job.pattern,
        "max_depth": job.max_depth,
        "max_pages": job.max_pages,
        "status": job.status,
        "pages_identified": job.pages_identified,
        "pages_scraped": job.pages_scraped,
        "pages_skipped": job.pages_skipped,
        "pages_failed": job.pages_failed,
        "root_folder_id": job.root_folder_id,
        "updated_at": job.updated_at,
        "id": job.id,
        "created_at": job.created_at,
    })
}

fn default_depth() -> i64 {
    3
}

fn default_pages() -> i64 {
    1000
}

#[derive(Debug, Deserialize)]
pub(super) struct CrawlBody {
    url: String,
    #[serde(default = "default_depth")]
    max_depth: i64,
    #[serde(default = "default_pages")]
    max_pages: i64,
    pattern: Option<String>,
    #[serde(default)]
    exclude_patterns: Option<Vec<String>>,
    #[serde(default)]
    sitemap_urls: Option<Vec<String>>,
    parent_folder_id: Option<String>,
    #[serde(flatten)]
    sync: SyncSettings,
}

impl CrawlBody {
    /// The reference's bounds, and patterns that are regular expressions.
    fn check(&self) -> ApiResult<()> {
        self.sync.check()?;
        if !(1..=5).contains(&self.max_depth) {
            return Err(violation(
                &["body", "max_depth"],
                "less_than_equal",
                "max_depth must be 1 to 5",
            ));
        }
        if !(1..=10_000).contains(&self.max_pages) {
            return Err(violation(
                &["body", "max_pages"],
                "less_than_equal",
                "max_pages must be 1 to 10000",
            ));
        }
        let patterns = self.pattern.iter().chain(self.exclude_patterns.iter().flatten());
        for p in patterns {
            if p.len() > 2048 || regex::Regex::new(p).is_err() {
                return Err(violation(
                    &["body", "pattern"],
                    "value_error",
                    format!("{p:?} is not a regular expression of at most 2048 characters"),
                ));
            }
        }
        Ok(())
    }
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/crawl", security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn create_crawl(cx: Ctx, Json(body): Json<CrawlBody>) -> ApiResult<Json<Value>> {
    body.check()?;
    let url = match reqwest::Url::parse(&body.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        _ => {
            return Err(violation(
                &["body", "url"],
                "value_error",
                "url must be an http or https URL",
            ));
        }
    };
    // Refused now, with nothing stored, rather than by the first fetch.
    if let Err(refused) = cx.app.engine.egress.precheck(&url).await {
        return Err(violation(&["body", "url"], "value_error", refused.to_string()));
    }
    let sitemaps = body.sitemap_urls.clone().unwrap_or_default();
    for sitemap in &sitemaps {
        let parsed =
            reqwest::Url::parse(sitemap).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
        let Some(parsed) = parsed else {
            return Err(violation(
                &["body", "sitemap_urls"],
                "value_error",
                format!("{sitemap:?} is not an http or https URL"),
            ));
        };
        if let Err(refused) = cx.app.engine.egress.precheck(&parsed).await {
            return Err(violation(&["body", "sitemap_urls"], "value_error", refused.to_string()));
        }
    }
    let parent = parent_folder(&cx, body.parent_folder_id.as_deref()).await?;
    let sync = body.sync.for_new(&cx, parent.as_ref()).await?;
    let now = time::now_secs();
    let folder = NewDocument {
        id: DocumentId::generate(),
        workspace_id: cx.workspace_id.clone(),
        doc_type: DocType::Folder,
        name: url.host_str().unwrap_or("crawl").to_owned(),
        parent_id: parent,
        created_by: cx.user_id.clone(),
        created_at: now,
        body: DocumentBody::default(),
        sync,
    };
    cx.app.store.insert_document(&folder).await?;
    let job = NewCrawlJob {
        id: ids::new_id(ids::prefix::CRAWL_JOB),
        workspace_id: cx.workspace_id.clone(),
        created_by: cx.user_id.clone(),
        seed_url: url.to_string(),
        pattern: body.pattern.filter(|p| !p.is_empty()),
        exclude_patterns: serde_json::to_string(&body.exclude_patterns.unwrap_or_default())?,
        sitemap_urls: serde_json::to_string(&sitemaps)?,
        max_depth: body.max_depth,
        max_pages: body.max_pages,
        root_folder_id: folder.id.to_string(),
        created_at: now,
    };
    cx.app.store.insert_crawl_job(&job).await?;
    cx.app.engine.knowledge_queued.notify_one();
    let path: Vec<Value> = cx
        .app
        .store
        .folder_path(&cx.workspace_id, &folder.id)
        .await?
        .into_iter()
        .map(|(id, _)| json!({ "id": id }))
        .collect();
    Ok(Json(json!({
        "id": job.id,
        "type": crawl_type(&job.sitemap_urls),
        "root_folder_id": job.root_folder_id,
        "status": "queued",
        "created_at": now,
        "folder_path": path,
    })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Jobs to include wherever they fall (repeat the parameter).
    #[serde(default)]
    include_job_ids: Vec<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// From the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/knowledge-base/crawl", params(ListParams), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn list_crawls(
    cx: Ctx, Query(params): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        "created_at",
        Direction::Desc,
        &[],
    )?;
    let rows =
        cx.app.store.list_crawl_jobs(&cx.workspace_id, pager.after()?, pager.fetch()).await?;
    let page = pager.page(rows, |j| (j.created_at, j.id.as_str()));
    let mut jobs: Vec<Value> = page.items.iter().map(view).collect();
    for id in params.include_job_ids {
        if !page.items.iter().any(|j| j.id == id)
            && let Ok(job) = cx.app.store.get_crawl_job(&cx.workspace_id, &id).await
        {
            jobs.push(view(&job));
        }
    }
    Ok(Json(json!({ "crawl_jobs": jobs, "next_cursor": page.next_cursor })))
}

#[utoipa::path(get, path = "/v1/convai/knowledge-base/crawl/{crawl_job_id}", params(("crawl_job_id" = String, Path)), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn get_crawl(cx: Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let job = cx.app.store.get_crawl_job(&cx.workspace_id, &id).await.or_not_found("crawl job")?;
    Ok(Json(view(&job)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PagesParams {
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// From the previous page.
    cursor: Option<String>,
}

/// Every page a crawl found, in the order found, with what became of it (`queued`, `scraped`
/// with its document, `skipped` by robots.txt, `failed` with why; the sitemaps it read, at
/// depth 0, `sitemap`). Colloquy's own: the
/// reference reports only the counts.
#[utoipa::path(get, path = "/v1/convai/knowledge-base/crawl/{crawl_job_id}/pages", params(("crawl_job_id" = String, Path), PagesParams), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn crawl_pages(
    cx: Ctx, Path(id): Path<String>, Query(params): Query<PagesParams>,
) -> ApiResult<Json<Value>> {
    cx.app.store.get_crawl_job(&cx.workspace_id, &id).await.or_not_found("crawl job")?;
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        "seq",
        Direction::Asc,
        &[&id],
    )?;
    let rows =
        cx.app.store.crawl_pages(&cx.workspace_id, &id, pager.after()?, pager.fetch()).await?;
    let page = pager.page(rows, |p| (p.seq, p.url.as_str()));
    let pages: Vec<Value> = page
        .items
        .iter()
        .map(|p| {
            json!({"url": p.url, "depth": p.depth, "status": p.status, "error": p.error, "document_id": p.document_id})
        })
        .collect();
    Ok(Json(json!({ "pages": pages, "next_cursor": page.next_cursor, "has_more": page.has_more })))
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/crawl/{crawl_job_id}/cancel", params(("crawl_job_id" = String, Path)), security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn cancel_crawl(cx: Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    cx.app
        .store
        .cancel_crawl_job(&cx.workspace_id, &id, time::now_secs())
        .await
        .or_not_found("crawl job")?;
    Ok(Json(json!({})))
}
