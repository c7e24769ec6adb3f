use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::traces::{self, OtlpTarget, TraceExport};

/// Logs go to stdout; `RUST_LOG` filters them (default `info`). `format` is `"json"` or `"text"`.
/// Spans are exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; keep the returned guard
/// for the life of the process, so the last spans are flushed when it ends.
///
/// Safe to call more than once (tests start several services in one process): later calls are no-ops.
pub fn init_logs(service: &'static str, format: &str) -> TraceExport {
    match OtlpTarget::from_env() {
        Ok(target) => init_logs_exporting(service, format, target.as_ref()),
        Err(e) => {
            let export = init_logs_exporting(service, format, None);
            tracing::error!(error = %e, "trace export is off");
            export
        }
    }
}

/// [`init_logs`] with the OTLP target given rather than read from the environment.
pub fn init_logs_exporting(service: &'static str, format: &str, otlp: Option<&OtlpTarget>) -> TraceExport {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (provider, export_error) = match otlp.map(|target| traces::otlp_provider(service, target)) {
        Some(Ok(provider)) => (Some(provider), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let otel = provider.as_ref().map(|p| traces::layer(p, service));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = if format == "json" {
        registry.with(fmt::layer().json().with_current_span(true)).try_init()
    } else {
        registry.with(fmt::layer().with_target(true)).try_init()
    };
    if result.is_err() {
        return TraceExport::default();
    }
    tracing::info!(service, otlp = ?otlp.map(|t| &t.traces_endpoint), "logging started");
    if let Some(e) = export_error {
        tracing::error!(error = %e, "trace export is off");
    }
    provider.map(traces::export).unwrap_or_default()
}
