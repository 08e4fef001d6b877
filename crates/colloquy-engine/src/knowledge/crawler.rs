//! A crawl: from the seed page, breadth first, the same site's links up to the job's depth
//! and page count, each page fetched through the egress guard (robots.txt asked first) and
//! stored as a URL document in the job's folder. The frontier lives in the store, page by
//! page, so a node that takes a job over goes on where the last one stopped.

use std::collections::HashMap;

use colloquy_core::chunking;
use colloquy_core::ids::{DocumentId, WorkspaceId};
use colloquy_core::knowledge::DocType;
use colloquy_core::time;
use colloquy_store::{CrawlJobRow, DocumentBody, NewDocument, PageOutcome};
use texting_robots::Robot;

use super::{extract, fetch};
use crate::EngineDeps;

/// The name robots.txt rules are matched against.
const USER_AGENT: &str = "ColloquyBot";
/// Largest page or robots.txt read.
const MAX_PAGE_BYTES: usize = 10 * 1024 * 1024;

/// Works a leased job until its frontier is empty (it succeeds, or fails when no page could be
/// read), it is cancelled, or its lease is lost.
#[tracing::instrument(name = "kb.crawl", skip_all, fields(job = %job.id))]
pub async fn crawl(deps: &EngineDeps, job: &CrawlJobRow) {
    let mut rules = Rules::of(job);
    let folder = DocumentId::from(job.root_folder_id.as_str());
    let workspace = WorkspaceId::from(job.workspace_id.as_str());
    rules.sync =
        deps.store.get_document(&workspace, &folder).await.ok().and_then(|f| f.auto_sync());
    let mut robots: HashMap<String, Option<Robot>> = HashMap::new();
    loop {
        let next = match deps.store.next_crawl_page(job).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the crawl's frontier; its lease will run out");
                return;
            }
        };
        let Some((url, depth)) = next else { break };
        let outcome = page(deps, job, &rules, &mut robots, &url, depth).await;
        let lease_until = time::now_secs() + deps.limits.job_lease_secs;
        match deps.store.record_crawl_page(job, &outcome, lease_until).await {
            Ok(true) => {}
            // Cancelled or taken over: nothing of this page was stored.
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, url, "could not record a crawled page; its lease will run out");
                return;
            }
        }
    }
    let status = match deps
        .store
        .get_crawl_job(&WorkspaceId::from(job.workspace_id.as_str()), &job.id)
        .await
    {
        Ok(now) if now.pages_scraped == 0 => "failed",
        _ => "succeeded",
    };
    if let Err(e) = deps.store.finish_crawl_job(job, status, time::now_secs()).await {
        tracing::warn!(error = %e, "could not finish a crawl; its lease will run out");
    }
}

/// Which links a job follows.
struct Rules {
    host: String,
    pattern: Option<regex::Regex>,
    exclude: Vec<regex::Regex>,
    max_depth: i64,
    /// The crawl folder's auto-sync, which its pages' documents take.
    sync: Option<colloquy_store::AutoSync>,
}

impl Rules {
    fn of(job: &CrawlJobRow) -> Rules {
        let host = reqwest::Url::parse(&job.seed_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let exclude: Vec<String> = serde_json::from_str(&job.exclude_patterns).unwrap_or_default();
        Rules {
            host,
            pattern: job.pattern.as_deref().and_then(|p| regex::Regex::new(p).ok()),
            exclude: exclude.iter().filter_map(|p| regex::Regex::new(p).ok()).collect(),
            max_depth: job.max_depth,
            sync: None,
        }
    }

    /// Whether a link found at `depth` is followed.
    fn follows(&self, url: &str) -> bool {
        let same_site = reqwest::Url::parse(url).is_ok_and(|u| u.host_str() == Some(&self.host));
        same_site
            && self.pattern.as_ref().is_none_or(|p| p.is_match(url))
            && !self.exclude.iter().any(|p| p.is_match(url))
    }
}

/// Reads one page into a document of the job's folder.
async fn page(
    deps: &EngineDeps, job: &CrawlJobRow, rules: &Rules,
    robots: &mut HashMap<String, Option<Robot>>, url: &str, depth: i64,
) -> PageOutcome {
    let mut outcome = PageOutcome {
        url: url.to_owned(),
        status: "failed",
        error: None,
        document: None,
        links: Vec::new(),
        depth: depth + 1,
    };
    let Ok(parsed) = reqwest::Url::parse(url) else {
        outcome.error = Some("not a URL".into());
        return outcome;
    };
    if !allowed(deps, robots, &parsed).await {
        outcome.status = "skipped";
        outcome.error = Some("disallowed by robots.txt".into());
        return outcome;
    }
    if depth == 0 {
        return read_sitemap(deps, rules, outcome).await;
    }
    let html = match fetch::page(deps, url, MAX_PAGE_BYTES).await {
        Ok(html) => html,
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let text = extract::html(&html);
    if text.trim().is_empty() {
        outcome.error = Some("the page holds no text".into());
        return outcome;
    }
    if depth < rules.max_depth {
        outcome.links =
            extract::links(&html, &parsed).into_iter().filter(|l| rules.follows(l)).collect();
    }
    outcome.status = "scraped";
    outcome.document = Some(NewDocument {
        id: DocumentId::generate(),
        workspace_id: WorkspaceId::from(job.workspace_id.as_str()),
        doc_type: DocType::Url,
        name: url.to_owned(),
        parent_id: Some(DocumentId::from(job.root_folder_id.as_str())),
        created_by: job.created_by.clone(),
        created_at: time::now_secs(),
        body: DocumentBody {
            chunks: chunking::chunk(&text).into_iter().map(|c| c.text).collect(),
            content: text,
            url: Some(url.to_owned()),
            ..DocumentBody::default()
        },
        sync: rules.sync,
    });
    outcome
}

/// A sitemap (a page of depth 0): the pages it lists are queued as the seed's peers (depth 1),
/// the sitemaps a sitemap index lists as sitemaps.
async fn read_sitemap(deps: &EngineDeps, rules: &Rules, mut outcome: PageOutcome) -> PageOutcome {
    let listed = match fetch::page(deps, &outcome.url, MAX_PAGE_BYTES).await {
        Ok(bytes) => extract::sitemap(&bytes),
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let Some((index, locs)) = listed else {
        outcome.error = Some("not a sitemap (no <urlset> or <sitemapindex>)".into());
        return outcome;
    };
    outcome.status = "sitemap";
    outcome.depth = if index { 0 } else { 1 };
    outcome.links = locs.into_iter().filter(|l| rules.follows(l)).collect();
    outcome
}

/// Whether the site's robots.txt lets us read `url`; a site without one (or whose robots.txt
/// cannot be read) allows everything.
async fn allowed(
    deps: &EngineDeps, robots: &mut HashMap<String, Option<Robot>>, url: &reqwest::Url,
) -> bool {
    let origin = url.origin().ascii_serialization();
    if !robots.contains_key(&origin) {
        let txt = fetch::page(deps, &format!("{origin}/robots.txt"), MAX_PAGE_BYTES).await;
        let robot = txt.ok().and_then(|txt| Robot::new(USER_AGENT, &txt).ok());
        robots.insert(origin.clone(), robot);
    }
    robots.get(&origin).and_then(Option::as_ref).is_none_or(|r| r.allowed(url.as_str()))
}
