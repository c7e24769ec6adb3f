use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Logs go to stdout; `RUST_LOG` filters them (default `info`). `format` is `"json"` or `"text"`.
///
/// Safe to call more than once (tests start several services in one process): later calls are no-ops.
pub fn init_logs(service: &'static str, format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if format == "json" {
        registry.with(fmt::layer().json().with_current_span(true)).try_init()
    } else {
        registry.with(fmt::layer().with_target(true)).try_init()
    };
    if result.is_ok() {
        tracing::info!(service, "logging started");
    }
}
