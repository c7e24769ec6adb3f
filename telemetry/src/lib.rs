//! Telemetry every StudySpot process shares: structured logs, a Prometheus recorder and the
//! operational endpoints (`/metrics`, `/health`, `/ready`), and distributed traces exported over OTLP.

mod lifecycle;
mod logs;
mod ops;
mod traces;

pub use lifecycle::{PostgresCheck, shutdown_token};
pub use logs::{init_logs, init_logs_exporting};
pub use ops::{CheckFuture, Readiness, ReadinessCheck, install_metrics, ops_router, serve_ops};
pub use traces::{OtlpTarget, TraceExport, continue_trace, trace_headers_of};
