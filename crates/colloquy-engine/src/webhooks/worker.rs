//! A node's webhook worker: takes the delivery due longest ago (any node may; a taken one is
//! held past the try's timeout, so a node killed mid-try leaves it to another), POSTs it signed
//! with the webhook's secret, and records the try.
//!
//! A 2xx answer is a success. A 5xx, a 429, a timeout or a refused connection is tried again
//! (unless the webhook's `retry_enabled` was set false) after the first retry delay, doubled at
//! each try, until the tries run out; anything else fails at once. Ten failures in a row with
//! no success for a week disable the webhook automatically, as the reference does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_core::ids::WorkspaceId;
use colloquy_core::secret_key::secret_context;
use colloquy_core::{signature, time};
use colloquy_store::{DueDelivery, StoreError, TryOutcome, WebhookRow};
use serde_json::Value;
use tokio::sync::watch;

use crate::EngineDeps;

/// How long the worker waits between looks at the queue when nothing woke it.
const POLL: Duration = Duration::from_millis(500);
/// How long one try may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Failures in a row that, with no success for [`QUIET_SECS`], disable a webhook.
const DISABLE_AFTER: i64 = 10;
const QUIET_SECS: i64 = 7 * 24 * 3600;
/// The most of a receiver's answer the log keeps.
const KEPT_BODY: usize = 1024;
/// The header carrying the delivery's id, the same on every try of it.
const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Sends due deliveries until `stop` turns true.
pub async fn worker(deps: Arc<EngineDeps>, mut stop: watch::Receiver<bool>) {
    // Held past the try's timeout, so a slow try is not taken over while it runs.
    let hold = TIMEOUT.as_secs() as i64 + deps.limits.job_lease_secs;
    loop {
        if *stop.borrow() {
            return;
        }
        match deps.store.take_due_delivery(time::now_secs(), hold).await {
            Ok(Some(due)) => {
                deliver(&deps, &due).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not take a due webhook delivery"),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = deps.webhooks_queued.notified() => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

/// Why a try did not succeed.
enum Failure {
    /// Worth trying again.
    Transient(TryOutcome),
    /// Not: trying again would end the same way.
    Final(TryOutcome),
}

#[tracing::instrument(name = "job.webhook_delivery", skip_all, fields(job.kind = "webhook_delivery", delivery = %due.id, webhook = %due.webhook_id, job.attempt = due.tries + 1))]
async fn deliver(deps: &EngineDeps, due: &DueDelivery) {
    let workspace_id = WorkspaceId::from(due.workspace_id.as_str());
    let webhook = match deps.store.get_webhook(&workspace_id, &due.webhook_id).await {
        Ok(webhook) => Some(webhook),
        Err(StoreError::NotFound) => None,
        Err(e) => {
            // Left held: it is taken again once the hold runs out.
            tracing::warn!(error = %e, delivery = %due.id, "could not read a delivery's webhook");
            return;
        }
    };
    let outcome = match &webhook {
        None => not_sent("the webhook was deleted"),
        Some(w) if w.is_disabled != 0 => not_sent("the webhook is disabled"),
        Some(w) if w.is_auto_disabled != 0 => {
            not_sent("the webhook was disabled automatically after failing repeatedly")
        }
        Some(w) => match send(deps, w, due).await {
            Ok(outcome) | Err(Failure::Final(outcome)) => outcome,
            Err(Failure::Transient(mut outcome)) => {
                let retry = w.retry_enabled != Some(0) && due.tries + 1 < deps.limits.webhook_tries;
                if retry {
                    let delay = deps.limits.webhook_first_retry_secs << due.tries.min(20);
                    outcome.retry_at = Some(time::now_secs() + delay);
                }
                outcome
            }
        },
    };
    let now = time::now_secs();
    match deps.store.finish_try(due, &outcome, now, DISABLE_AFTER, QUIET_SECS).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(delivery = %due.id, "a delivery was taken over while it was tried")
        }
        Err(e) => tracing::error!(error = %e, delivery = %due.id, "could not record a webhook try"),
    }
}

/// A try that was not made.
fn not_sent(why: &str) -> TryOutcome {
    TryOutcome { error: Some(why.to_owned()), ..TryOutcome::default() }
}

/// One POST of the delivery's payload, signed.
async fn send(
    deps: &EngineDeps, webhook: &WebhookRow, due: &DueDelivery,
) -> Result<TryOutcome, Failure> {
    let context = secret_context(&webhook.workspace_id, &webhook.id);
    let secret = deps.keyring.open(&webhook.sealed_secret, &context).map_err(|e| {
        Failure::Final(not_sent(&format!("the webhook's secret does not open: {e}")))
    })?;
    let url = reqwest::Url::parse(&webhook.url)
        .map_err(|e| Failure::Final(not_sent(&format!("the webhook URL is not valid: {e}"))))?;
    if let Err(refused) = deps.egress.check_url(&url) {
        return Err(Failure::Final(not_sent(&refused.to_string())));
    }
    let body = due.payload.as_bytes().to_vec();
    let mut request = deps
        .http
        .post(url)
        .timeout(TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(IDEMPOTENCY_HEADER, &due.id);
    let headers: serde_json::Map<String, Value> =
        serde_json::from_str(&webhook.request_headers).unwrap_or_default();
    for (name, value) in &headers {
        if let Some(value) = value.as_str() {
            request = request.header(name.as_str(), value);
        }
    }
    let signed = signature::sign(&secret, time::now_secs(), &body);
    let request = request.header("ElevenLabs-Signature", signed).body(body);
    let started = Instant::now();
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            let outcome = TryOutcome {
                latency_ms: started.elapsed().as_millis() as i64,
                error: Some(crate::egress::explain(&e)),
                attempted: true,
                ..TryOutcome::default()
            };
            let refused = crate::egress::refusal(&e).is_some();
            return Err(if refused {
                Failure::Final(outcome)
            } else {
                Failure::Transient(outcome)
            });
        }
    };
    let status = response.status();
    let mut kept = Vec::new();
    while kept.len() < KEPT_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    kept.truncate(KEPT_BODY);
    let outcome = TryOutcome {
        success: status.is_success(),
        response_code: Some(i64::from(status.as_u16())),
        latency_ms: started.elapsed().as_millis() as i64,
        error: (!status.is_success()).then(|| format!("the receiver answered {status}")),
        response_body: Some(String::from_utf8_lossy(&kept).into_owned()),
        retry_at: None,
        attempted: true,
    };
    if status.is_success() {
        Ok(outcome)
    } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(Failure::Transient(outcome))
    } else {
        Err(Failure::Final(outcome))
    }
}
