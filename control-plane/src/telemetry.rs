//! Logs and spans: the log on stderr (`RUST_LOG`, `info` by default) and, when an OTLP endpoint is
//! set (`otlpEndpoint`, else the standard `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), every span exported over OTLP/gRPC. Each HTTP request's
//! span carries the client's `x-request-id` and continues the client's W3C trace (`traceparent`,
//! which the filter passes on), so a control-plane span joins the trace of the request that caused
//! it.

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

const SERVICE_NAME: &str = "miroir-control-plane";

/// Flushes the exported spans when dropped (the end of `main`).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("{SERVICE_NAME}: spans not all exported: {e}");
            }
        }
    }
}

/// Whether spans are exported: the configured endpoint, else the OTLP SDK's own variables.
pub fn otlp_wanted(configured: Option<&str>, env: impl Fn(&str) -> Option<String>) -> bool {
    configured.is_some_and(|e| !e.is_empty())
        || [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|v| env(v).is_some_and(|e| !e.is_empty()))
}

/// Installs the global subscriber; must run inside the Tokio runtime (the exporter's gRPC client
/// runs on it).
pub fn init(otlp_endpoint: Option<&str>) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if !otlp_wanted(otlp_endpoint, |v| std::env::var(v).ok()) {
        tracing_subscriber::registry().with(filter).with(fmt).init();
        return Ok(Telemetry { provider: None });
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if let Some(endpoint) = otlp_endpoint.filter(|e| !e.is_empty()) {
        exporter = exporter.with_endpoint(endpoint);
    }
    let exporter = exporter
        .build()
        .map_err(|e| format!("OTLP exporter: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(SERVICE_NAME)
                .build(),
        )
        .build();
    let tracer = provider.tracer(SERVICE_NAME);
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .init();
    Ok(Telemetry {
        provider: Some(provider),
    })
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The span every HTTP request runs in: method, path, the client's request id, and the client's
/// trace as its parent.
pub async fn request_span(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let span = tracing::info_span!(
        "http_request",
        method = %request.method(),
        path = request.uri().path(),
        request_id,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // Without a trace (or without an exporter) this changes nothing.
    let _ = span.set_parent(parent);
    next.run(request).instrument(span).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_exported_only_when_an_endpoint_is_set() {
        let none = |_: &str| None;
        assert!(!otlp_wanted(None, none));
        assert!(!otlp_wanted(Some(""), none));
        assert!(otlp_wanted(Some("http://collector:4317"), none));
        let sdk = |v: &str| (v == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://c:4317".into());
        assert!(otlp_wanted(None, sdk));
    }
}
