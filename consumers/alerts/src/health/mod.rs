//! Health checks: targets (StudySpot's own processes by default, and whatever operators define)
//! probed on an interval by [`prober`]; each result is a time-carrying `RecordProbeResult` whose
//! [`status`] feeds the check's `studyspot_health_check_up` samples and its `HealthCheckDown`
//! rule ([`definition`]), so a failure becomes an alert through the usual lifecycle and routes.

pub mod definition;
mod handle;
pub mod probe;
pub mod prober;

pub use crate::decide::health as status;
pub use handle::{define_health_check, record_probe_result};
