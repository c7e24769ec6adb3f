//! Telemetry every StudySpot process shares: structured logs, a Prometheus recorder and the
//! operational endpoints (`/metrics`, `/health`, `/ready`).

mod lifecycle;
mod logs;
mod ops;

pub use lifecycle::{PostgresCheck, shutdown_token};
pub use logs::init_logs;
pub use ops::{CheckFuture, Readiness, ReadinessCheck, install_metrics, ops_router, serve_ops};
