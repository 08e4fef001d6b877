//! Logging and traces through `tracing`: human-readable or JSON lines on stderr, level from
//! `RUST_LOG`; and, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set, every
//! span exported as OpenTelemetry traces over OTLP HTTP/protobuf, configured by the standard
//! `OTEL_*` variables (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`, ...).

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// The exporting provider, kept to flush it at shutdown.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber. Later calls (tests start many servers) are no-ops.
pub fn init(format: LogFormat) {
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"))
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.with_filter(filter()).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter()).boxed(),
    };
    let (otel, failure) = match exporter() {
        Ok(Some(provider)) => {
            let tracer = provider.tracer("colloquy");
            let _ = PROVIDER.set(provider);
            let layer = tracing_opentelemetry::layer().with_tracer(tracer);
            // Spans only at `info` and above, whatever the log level: the spans that matter.
            (Some(layer.with_filter(tracing_subscriber::filter::LevelFilter::INFO)), None)
        }
        Ok(None) => (None, None),
        Err(e) => (None, Some(e)),
    };
    if tracing_subscriber::registry().with(fmt).with(otel).try_init().is_ok()
        && let Some(e) = failure
    {
        tracing::error!(error = %e, "OpenTelemetry export is off: the exporter could not be built");
    }
}

/// The OTLP exporter the environment asks for, if any.
fn exporter() -> Result<Option<SdkTracerProvider>, opentelemetry_otlp::ExporterBuildError> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    if disabled
        || !(set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    {
        return Ok(None);
    }
    // The exporter's client speaks TLS to https collectors.
    colloquy_engine::install_crypto_provider();
    let exporter =
        SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary).build()?;
    let resource = Resource::builder().with_service_name(service_name()).build();
    Ok(Some(
        SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build(),
    ))
}

fn service_name() -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "colloquy".into())
}

/// Sends the spans still buffered: at shutdown, so the last conversations' traces are not lost.
pub fn flush() {
    if let Some(provider) = PROVIDER.get()
        && let Err(e) = provider.force_flush()
    {
        tracing::warn!(error = %e, "could not export the last spans");
    }
}
