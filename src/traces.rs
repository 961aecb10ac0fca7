//! Logs and traces (issue 22.7). Logs go to stderr as text or JSON lines. With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also exported over OTLP/HTTP (protobuf) to that
//! collector, in batches from a thread of their own; the standard `OTEL_*` variables apply
//! (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`, …). Unset, no span
//! leaves the process and nothing is paid for them beyond the log's.
//!
//! Spans: one per HTTP request (`api::envelope`: method, route, status, tenant, actor kind, and the
//! trace id the log lines of the request carry), the reconcile pass and apply, password hashing,
//! and the database calls of sign-in.

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The target of the span of each HTTP request (`api::envelope`).
pub const REQUEST: &str = "gatehouse::request";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keeps the span exporter while the process runs; dropping it sends what is still buffered.
pub struct Guard(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("warning: the last spans were not exported: {error}");
        }
    }
}

/// Installs the log (and, when configured, the span exporter) for the whole process.
pub fn init(format: LogFormat) -> Guard {
    // reqwest's TLS (the OTLP exporter's client among them) uses the process's rustls provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,gatehouse=info".into());
    let exporting = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|endpoint| !endpoint.trim().is_empty());
    if exporting && let Ok(directive) = format!("{REQUEST}=debug").parse() {
        // The log lines of a request then carry its span's fields, the trace id among them.
        filter = filter.add_directive(directive);
    }
    let (provider, problem) = match exporting.then(provider) {
        Some(Ok(provider)) => (Some(provider), None),
        Some(Err(problem)) => (None, Some(problem)),
        None => (None, None),
    };
    let Some(provider) = provider else {
        // No exporter: the log alone, its filter global, exactly as before traces existed (a
        // per-layer filter makes every event's callsite ask at run time).
        let log = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
        match format {
            LogFormat::Text => log.init(),
            LogFormat::Json => log.json().with_current_span(true).init(),
        }
        if let Some(problem) = problem {
            tracing::warn!(%problem, "OTEL_EXPORTER_OTLP_ENDPOINT is set but spans cannot be exported");
        }
        return Guard(None);
    };
    let spans = {
        // This crate's spans at every level (they are `debug`, so that without an exporter they
        // cost nothing), and its events from `info` up; the log's filter applies to the log.
        let ours = tracing_subscriber::filter::filter_fn(|meta| {
            meta.target().starts_with("gatehouse") && (meta.is_span() || *meta.level() <= tracing::Level::INFO)
        });
        tracing_opentelemetry::layer().with_tracer(provider.tracer("gatehouse")).with_filter(ours)
    };
    let registry = tracing_subscriber::registry().with(spans);
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => registry.with(log.with_filter(filter)).init(),
        LogFormat::Json => registry.with(log.json().with_current_span(true).with_filter(filter)).init(),
    }
    Guard(Some(provider))
}

use tracing_subscriber::Layer as _;

fn provider() -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| e.to_string())?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "gatehouse".to_owned());
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service).build())
        .build())
}

/// Records `value` as `field` of the request being served (`tenant`, `actor.kind`), when its span
/// exists: without an exporter this is one cached check.
pub fn on_request(field: &str, value: &str) {
    if tracing::enabled!(target: "gatehouse::request", tracing::Level::DEBUG) {
        tracing::Span::current().record(field, value);
    }
}

/// The trace id of the current span (32 hex digits), when spans are exported.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    let span = context.span();
    let id = span.span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}
