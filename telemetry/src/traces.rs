//! Distributed traces: spans continue the W3C trace context that arrives in HTTP or record headers,
//! and are exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Without an endpoint nothing is recorded for export
//! and the helpers here answer `None`, so callers fall back to handing the incoming context on.

use std::collections::HashMap;

use opentelemetry::{propagation::TextMapPropagator, trace::TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Keeps the exporter alive; dropping it flushes the spans still buffered.
#[must_use = "dropping the guard stops trace export"]
#[derive(Default)]
pub struct TraceExport {
    provider: Option<SdkTracerProvider>,
}

impl TraceExport {
    pub fn is_enabled(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TraceExport {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("trace export did not flush: {e}");
        }
    }
}

/// Where spans go: an OTLP/HTTP traces URL and its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpTarget {
    /// The full traces URL, e.g. `http://collector:4318/v1/traces`.
    pub traces_endpoint: String,
    pub json: bool,
}

impl OtlpTarget {
    /// The target the standard variables describe: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` verbatim, or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces` appended; `OTEL_EXPORTER_OTLP_PROTOCOL`
    /// `http/protobuf` (the default) or `http/json`. `None` when no endpoint is set.
    pub fn from_env() -> Result<Option<Self>, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let traces_endpoint =
            match (var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), var("OTEL_EXPORTER_OTLP_ENDPOINT")) {
                (Some(url), _) => url,
                (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
                (None, None) => return Ok(None),
            };
        let json = match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
        {
            None | Some("http/protobuf") => false,
            Some("http/json") => true,
            Some(other) => {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL {other:?} is not supported; use http/protobuf or http/json"
                ));
            }
        };
        Ok(Some(Self { traces_endpoint, json }))
    }
}

pub(crate) fn otlp_provider(service: &'static str, target: &OtlpTarget) -> Result<SdkTracerProvider, String> {
    let protocol = if target.json { Protocol::HttpJson } else { Protocol::HttpBinary };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(target.traces_endpoint.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let resource = Resource::builder().with_service_name(format!("studyspot-{service}")).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

pub(crate) fn layer<S>(
    provider: &SdkTracerProvider,
    service: &'static str,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer(service))
}

pub(crate) fn export(provider: SdkTracerProvider) -> TraceExport {
    TraceExport { provider: Some(provider) }
}

/// Makes `span` a child of the remote span a `traceparent` (and `tracestate`) header names.
/// Call before the span is first entered. Malformed headers are ignored, as W3C asks.
pub fn continue_trace(span: &tracing::Span, traceparent: &str, tracestate: Option<&str>) {
    let mut carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_owned(), state.to_owned());
    }
    let parent = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(parent);
}

/// The `traceparent` and `tracestate` that make a receiver's span a child of `span`, when `span` is
/// recorded (OTLP export on); `None` otherwise.
pub fn trace_headers_of(span: &tracing::Span) -> Option<(String, Option<String>)> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    let traceparent = carrier.remove("traceparent")?;
    Some((traceparent, carrier.remove("tracestate").filter(|s| !s.is_empty())))
}
