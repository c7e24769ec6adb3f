//! Alerts' operational records: health checks and their probe results, structured logs and their
//! retention. Probe results and retention ticks carry their instant, so a replay rebuilds the same
//! health history and the same surviving logs.

use std::collections::HashMap;

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::{COMMANDS, EVENTS};
use crate::{EventMetadata, record::record};

/// Define a health check, or replace its definition (its status and history stay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct DefineHealthCheck {
    pub metadata: EventMetadata,
    /// `hck_…`, chosen by the caller (`hck_process_<name>` for StudySpot's own processes).
    pub health_check_id: String,
    /// For people, e.g. `Stripe API`; also the `health_check` label of its alerts.
    pub name: String,
    /// `http`: GET `target` (an http(s) URL) answers `expected_status`; `tcp`: a connection to
    /// `target` (`host:port`) is accepted.
    pub kind: String,
    pub target: String,
    /// For `http`; ignored for `tcp`.
    #[avro(default = "200")]
    pub expected_status: i32,
    /// How often the target is probed.
    pub interval_seconds: i64,
    /// A probe not answered within this long failed.
    pub timeout_ms: i64,
    /// The check is `down` (and its alert fires) after this many failed probes in a row.
    pub failure_threshold: i32,
    /// Added to its alerts.
    pub labels: HashMap<String, String>,
    /// `critical`, `warning` or `info`: its alert's severity.
    pub severity: String,
    #[avro(default = "true")]
    pub enabled: bool,
}
record!(
    DefineHealthCheck,
    "studyspot.alerts.DefineHealthCheck",
    "alerts/DefineHealthCheck.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// One probe of a health check, as the alerts prober saw it at `probed_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct RecordProbeResult {
    pub metadata: EventMetadata,
    pub health_check_id: String,
    /// The target answered as expected within the timeout.
    pub success: bool,
    /// How long the probe took (up to the timeout).
    pub latency_ms: i64,
    /// The HTTP status the target answered, if it answered.
    #[avro(default = "null")]
    pub status_code: Option<i32>,
    /// Why the probe failed, for people.
    #[avro(default = "null")]
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch (UTC); a probe older than the check's last is refused.
    pub probed_at: i64,
}
record!(
    RecordProbeResult,
    "studyspot.alerts.RecordProbeResult",
    "alerts/RecordProbeResult.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// A health check's status changed: `unknown` (never probed), `up`, or `down` (its last
/// `failure_threshold` probes failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct HealthCheckStatusChanged {
    pub metadata: EventMetadata,
    pub health_check_id: String,
    pub name: String,
    pub target: String,
    pub from_status: String,
    pub to_status: String,
    pub consecutive_failures: i32,
    /// The last probe's error, when it failed.
    #[avro(default = "null")]
    pub error: Option<String>,
    /// The probe's `probed_at`, milliseconds since the Unix epoch.
    pub at: i64,
}
record!(
    HealthCheckStatusChanged,
    "studyspot.alerts.HealthCheckStatusChanged",
    "alerts/HealthCheckStatusChanged.avsc",
    EVENTS,
    key = |r| &r.metadata.organization_id
);

/// One structured log record (see [`RecordLogs`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct LogRecord {
    /// When it was logged, milliseconds since the Unix epoch (UTC).
    pub time: i64,
    /// `trace`, `debug`, `info`, `warn`, `error` or `fatal`.
    pub level: String,
    /// The service that logged it, e.g. `billing`.
    pub service: String,
    pub message: String,
    /// Structured fields (`payment_id`, `trace_id`, …), searchable as text too.
    pub fields: HashMap<String, String>,
}

/// Store structured log records; all of them or (if one is malformed) none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct RecordLogs {
    pub metadata: EventMetadata,
    pub records: Vec<LogRecord>,
}
record!(
    RecordLogs,
    "studyspot.alerts.RecordLogs",
    "alerts/RecordLogs.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// A retention tick: drop the organization's log records older than `retention_days` before
/// `up_to`. Sent by the alerts process; the instant travels in the command, so a replay keeps the
/// same records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct EnforceLogRetention {
    pub metadata: EventMetadata,
    /// Milliseconds since the Unix epoch (UTC).
    pub up_to: i64,
    pub retention_days: i32,
}
record!(
    EnforceLogRetention,
    "studyspot.alerts.EnforceLogRetention",
    "alerts/EnforceLogRetention.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);
