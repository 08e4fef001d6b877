//! Prometheus metrics: per-route request counts and latency histograms, labelled by the route
//! template (never the raw path, so ids do not explode the label space).

use std::fmt::Write as _;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    route: RouteLabel,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: MethodLabel,
    route: RouteLabel,
}

/// The request method as a label. Cloning a standard method copies no bytes, so labelling a
/// request allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct MethodLabel(Method);

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.0.as_str())
    }
}

/// The matched route template as a label (`unmatched` for none). It shares the router's copy
/// of the template instead of making one per request.
#[derive(Clone, Debug)]
struct RouteLabel(Option<MatchedPath>);

impl RouteLabel {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", MatchedPath::as_str)
    }
}

impl PartialEq for RouteLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteLabel {}

impl std::hash::Hash for RouteLabel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s: the fast reads this server aims for and the slow LLM-bound calls.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16))
}

/// The server's metric registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    local_running: Gauge,
    local_waiting: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("colloquy");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_requests",
            "HTTP requests served, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to produce the response head, by route",
            latency.clone(),
        );
        let local_running = Gauge::default();
        let local_waiting = Gauge::default();
        registry.register(
            "local_llm_generations_running",
            "Generations the local model is running",
            local_running.clone(),
        );
        registry.register(
            "local_llm_generations_waiting",
            "Generations waiting for the local model (beyond its concurrency)",
            local_waiting.clone(),
        );
        Metrics { registry, requests, latency, local_running, local_waiting }
    }
}

impl Metrics {
    /// The registry in Prometheus text format, with the local model's queue as `engine`
    /// has it now.
    pub fn render(&self, engine: &colloquy_engine::EngineDeps) -> String {
        if let Some((_, model)) = engine.llm.local() {
            let stats = model.stats();
            self.local_running.set(stats.running.load(std::sync::atomic::Ordering::Relaxed));
            self.local_waiting.set(stats.waiting.load(std::sync::atomic::Ordering::Relaxed));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Middleware recording every request.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = MethodLabel(req.method().clone());
    let route = RouteLabel(req.extensions().get::<MatchedPath>().cloned());
    let response = next.run(req).await;
    let labels = RouteLabels { method, route };
    state.metrics.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method: labels.method,
            route: labels.route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
