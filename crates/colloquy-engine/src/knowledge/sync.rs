//! Auto-sync: a URL document whose settings ask for it (`enable_auto_sync`) is read again by
//! whichever node's worker takes it once it is due, at least every `minimum_frequency_days`.
//! New text replaces the old (its embedding indexes are queued again, as on `refresh`); a
//! failed read is tried again sooner, backing off from an hour up to the document's own
//! frequency; a page that is gone (404 or 410) removes a document with `auto_remove`, unless
//! an agent still names it (an agent's knowledge must not vanish under it: the failure is
//! counted instead).

use colloquy_core::{chunking, time};
use colloquy_store::{DAY_SECS, DocumentBody, DueSync, StoreError};

use super::{extract, fetch};
use crate::EngineDeps;

/// The largest page read.
const MAX_PAGE_BYTES: usize = 10 * 1024 * 1024;
/// The first retry after a failed read; each failure in a row doubles it.
const FIRST_RETRY_SECS: i64 = 3_600;

/// Why a document could not be read again.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the page is gone, and agents still name the document")]
    InUse,
}

/// Reads `due` again and records the outcome.
pub(super) async fn sync(deps: &EngineDeps, due: &DueSync) {
    let now = time::now_secs();
    let every = due.days * DAY_SECS;
    let (failures, next) = match attempt(deps, due, now).await {
        Ok(Read::Removed) => return,
        Ok(Read::Replaced) => (0, now + every),
        Err(e) => {
            let failures = due.failures + 1;
            tracing::warn!(document = %due.id, url = %due.url, error = %e, failures, "auto-sync could not read a page");
            let backoff = FIRST_RETRY_SECS.saturating_mul(1 << (failures - 1).clamp(0, 20));
            (failures, now + backoff.min(every))
        }
    };
    if let Err(e) = deps.store.finish_sync(&due.id, failures, next).await {
        tracing::error!(document = %due.id, error = %e, "could not record an auto-sync");
    }
}

/// What a successful sync did.
enum Read {
    Replaced,
    Removed,
}

async fn attempt(deps: &EngineDeps, due: &DueSync, now: i64) -> Result<Read, Failure> {
    match read(deps, &due.url).await {
        Ok(body) => {
            deps.store.replace_document_body(&due.workspace_id, &due.id, &body, now).await?;
            Ok(Read::Replaced)
        }
        Err(fetch::FetchError::Gone(_)) if due.auto_remove == 1 => {
            let ids = std::slice::from_ref(&due.id);
            if !deps.store.document_dependents(&due.workspace_id, ids, None, 1).await?.is_empty() {
                return Err(Failure::InUse);
            }
            deps.store.delete_documents(&due.workspace_id, ids).await?;
            tracing::info!(document = %due.id, url = %due.url, "auto-sync removed a document whose page is gone");
            Ok(Read::Removed)
        }
        Err(e) => Err(e.into()),
    }
}

/// The page's text, chunked as a new document's is.
async fn read(deps: &EngineDeps, url: &str) -> Result<DocumentBody, fetch::FetchError> {
    let html = fetch::page(deps, url, MAX_PAGE_BYTES).await?;
    let text = extract::html(&html);
    if text.trim().is_empty() {
        return Err(fetch::FetchError::Failed("the page holds no text".into()));
    }
    Ok(DocumentBody {
        chunks: chunking::chunk(&text).into_iter().map(|c| c.text).collect(),
        content: text,
        url: Some(url.to_owned()),
        ..DocumentBody::default()
    })
}
