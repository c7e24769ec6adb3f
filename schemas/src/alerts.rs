//! Alerts: metric samples, alert rules and their lifecycle.

use std::collections::HashMap;

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

pub use crate::catalogue::{ALERTS_COMMANDS as COMMANDS, ALERTS_EVENTS as EVENTS};
use crate::{
    EventMetadata,
    record::{record, rejection},
};

/// One sample of a metric, posted by a service or derived from domain events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct RecordMetricSample {
    pub metadata: EventMetadata,
    /// Prometheus-style metric name, e.g. `payment_failure_ratio`.
    pub metric: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
    /// When the sample was taken, milliseconds since the Unix epoch (UTC).
    pub sampled_at: i64,
}
record!(
    RecordMetricSample,
    "studyspot.alerts.RecordMetricSample",
    "alerts/RecordMetricSample.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// A sample was stored and is part of rule evaluation from now on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct MetricSampleRecorded {
    pub metadata: EventMetadata,
    pub metric: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
    pub sampled_at: i64,
}
record!(
    MetricSampleRecorded,
    "studyspot.alerts.MetricSampleRecorded",
    "alerts/MetricSampleRecorded.avsc",
    EVENTS,
    key = |r| &r.metadata.organization_id
);

/// Alerts refused a well-formed command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct CommandRejected {
    pub metadata: EventMetadata,
    pub command_id: String,
    pub command_type: String,
    pub code: String,
    pub reason: String,
}
record!(
    CommandRejected,
    "studyspot.alerts.CommandRejected",
    "alerts/CommandRejected.avsc",
    EVENTS,
    key = |r| &r.metadata.organization_id
);

rejection!(CommandRejected);
