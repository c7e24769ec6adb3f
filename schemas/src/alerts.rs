//! Alerts: metric samples, alert rules and their lifecycle.

use std::collections::HashMap;

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

pub use crate::catalogue::{ALERTS_COMMANDS as COMMANDS, ALERTS_EVENTS as EVENTS};
use crate::{
    EventMetadata,
    record::{record, rejection},
};

mod insights;
mod ops;
pub use insights::*;
pub use ops::*;

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

/// A label matcher, as Prometheus and Alertmanager write them: `name op value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct Matcher {
    pub name: String,
    /// `=` (equal), `!=` (not equal), `=~` (matches the regex, anchored at both ends) or `!~`.
    /// A label the alert or sample lacks has the value `""`.
    pub op: String,
    pub value: String,
}

/// Someone to tell about an alert, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct Receiver {
    /// Notifications' recipient id: a member id (`mem_…`) or an operator's user id (`usr_…`).
    pub recipient_id: String,
    /// One of `email`, `sms`, `whatsapp`, `push`, `in_app`, `webhook`; the address is the
    /// recipient's own for that channel, as notifications knows it.
    pub channel: String,
}

/// A recurring time range (Alertmanager's `time_intervals`): weekdays and a time of day in a zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct TimeInterval {
    /// Lower-case English weekday names (`monday` … `sunday`); empty means every day.
    #[avro(default = "[]")]
    pub weekdays: Vec<String>,
    /// Start of the range in minutes after local midnight, inclusive (0..=1440).
    pub start_minute: i32,
    /// End of the range in minutes after local midnight, exclusive (0..=1440).
    pub end_minute: i32,
    /// IANA zone the weekdays and minutes are in, e.g. `Europe/Berlin`.
    pub time_zone: String,
}

/// One sample in a batch (see [`RecordMetricSamples`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct MetricSample {
    pub metric: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
    /// Milliseconds since the Unix epoch (UTC).
    pub sampled_at: i64,
}

/// Several samples at once; all are stored or (if one is malformed) none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct RecordMetricSamples {
    pub metadata: EventMetadata,
    pub samples: Vec<MetricSample>,
}
record!(
    RecordMetricSamples,
    "studyspot.alerts.RecordMetricSamples",
    "alerts/RecordMetricSamples.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// Define an alert rule, or replace its definition (its alerts keep their state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct DefineAlertRule {
    pub metadata: EventMetadata,
    /// `rul_…`, chosen by the caller.
    pub rule_id: String,
    /// The `alertname` label of its alerts, e.g. `PaymentFailureRate`.
    pub name: String,
    /// `threshold`: the `aggregation` of the samples in the window; `rate`: their sum per second
    /// of the window; `ratio`: the sum of `metric{matchers}` over the sum of
    /// `denominator_metric{denominator_matchers}` in the window.
    pub kind: String,
    pub metric: String,
    #[avro(default = "[]")]
    pub matchers: Vec<Matcher>,
    /// For `threshold`: `avg`, `sum`, `min`, `max`, `count`, `last` or `increase` (last less first).
    pub aggregation: String,
    /// For `ratio`; absent means `metric`.
    #[avro(default = "null")]
    pub denominator_metric: Option<String>,
    #[avro(default = "[]")]
    pub denominator_matchers: Vec<Matcher>,
    pub window_seconds: i64,
    /// How long the condition must hold before the alert fires (pending until then).
    pub for_seconds: i64,
    /// `>`, `>=`, `<`, `<=`, `==` or `!=`, between the value and `threshold`.
    pub op: String,
    pub threshold: f64,
    /// `critical`, `warning` or `info`; also the alert's `severity` label.
    pub severity: String,
    /// Added to every alert of the rule.
    pub labels: HashMap<String, String>,
    /// Text for people (`summary`, `description`, `runbook_url`).
    pub annotations: HashMap<String, String>,
    /// The samples' labels that split the rule into one alert per value combination.
    #[avro(default = "[]")]
    pub group_by: Vec<String>,
    /// A firing alert is notified again after this long (0: never again).
    pub repeat_interval_seconds: i64,
    #[avro(default = "true")]
    pub enabled: bool,
}
record!(
    DefineAlertRule,
    "studyspot.alerts.DefineAlertRule",
    "alerts/DefineAlertRule.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// Define a notification route, or replace it: alerts matching every matcher go to its receivers
/// (every matching route adds its receivers), except while one of its mute intervals is active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct DefineRoute {
    pub metadata: EventMetadata,
    /// `rte_…`, chosen by the caller.
    pub route_id: String,
    #[avro(default = "[]")]
    pub matchers: Vec<Matcher>,
    pub receivers: Vec<Receiver>,
    #[avro(default = "[]")]
    pub mute_time_intervals: Vec<TimeInterval>,
    /// Alertmanager's grouping: alerts with the same values of these labels are told in one
    /// notification ([`AlertGroupNotified`]). `["..."]` (the default) groups by every label:
    /// each alert is told on its own ([`AlertFired`] / [`AlertResolved`]).
    #[avro(default = r#"["..."]"#)]
    pub group_by: Vec<String>,
    /// How long a new group collects alerts before its first notification.
    #[avro(default = "0")]
    pub group_wait_seconds: i64,
    /// How long after a group's notification alerts added or resolved are told.
    #[avro(default = "0")]
    pub group_interval_seconds: i64,
}
record!(
    DefineRoute,
    "studyspot.alerts.DefineRoute",
    "alerts/DefineRoute.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// Define an inhibition (Alertmanager's `inhibit_rules`): while an alert matching
/// `source_matchers` fires, alerts matching `target_matchers` with the same values of every
/// `equal` label are not notified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct DefineInhibitRule {
    pub metadata: EventMetadata,
    /// `inh_…`, chosen by the caller.
    pub inhibit_rule_id: String,
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    #[avro(default = "[]")]
    pub equal: Vec<String>,
}
record!(
    DefineInhibitRule,
    "studyspot.alerts.DefineInhibitRule",
    "alerts/DefineInhibitRule.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// Silence alerts matching every matcher from `starts_at` until `ends_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct CreateSilence {
    pub metadata: EventMetadata,
    /// `sil_…`, chosen by the caller.
    pub silence_id: String,
    pub matchers: Vec<Matcher>,
    /// Milliseconds since the Unix epoch (UTC).
    pub starts_at: i64,
    /// Milliseconds since the Unix epoch (UTC); after `starts_at`.
    pub ends_at: i64,
    pub comment: String,
}
record!(
    CreateSilence,
    "studyspot.alerts.CreateSilence",
    "alerts/CreateSilence.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// End a silence now (at the command's `occurred_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct ExpireSilence {
    pub metadata: EventMetadata,
    pub silence_id: String,
}
record!(
    ExpireSilence,
    "studyspot.alerts.ExpireSilence",
    "alerts/ExpireSilence.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// An evaluation tick: evaluate every rule of the organization at `up_to`. Sent by the alerts
/// scheduler; the instant travels in the command, so a replay rebuilds the same alert history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct EvaluateRules {
    pub metadata: EventMetadata,
    /// Milliseconds since the Unix epoch (UTC); a tick before the last applied one is refused.
    pub up_to: i64,
}
record!(
    EvaluateRules,
    "studyspot.alerts.EvaluateRules",
    "alerts/EvaluateRules.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// A rule, route, inhibition or silence was defined, replaced or expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct AlertConfigChanged {
    pub metadata: EventMetadata,
    /// `rule`, `route`, `inhibit_rule` or `silence`.
    pub kind: String,
    /// The rule, route, inhibition or silence id.
    pub id: String,
    /// `defined` or `expired`.
    pub change: String,
}
record!(
    AlertConfigChanged,
    "studyspot.alerts.AlertConfigChanged",
    "alerts/AlertConfigChanged.avsc",
    EVENTS,
    key = |r| &r.metadata.organization_id
);

/// An alert moved in its lifecycle (`inactive` → `pending` → `firing` → `resolved`, or
/// `pending` → `inactive`), at an evaluation tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct AlertStateChanged {
    pub metadata: EventMetadata,
    /// Stable id of the alert: a hash of its rule id and labels.
    pub fingerprint: String,
    pub rule_id: String,
    pub labels: HashMap<String, String>,
    pub from_state: String,
    pub to_state: String,
    /// The rule's value at this tick (absent when there was none).
    #[avro(default = "null")]
    pub value: Option<f64>,
    /// The tick's `up_to`, milliseconds since the Unix epoch.
    pub at: i64,
}
record!(
    AlertStateChanged,
    "studyspot.alerts.AlertStateChanged",
    "alerts/AlertStateChanged.avsc",
    EVENTS,
    key = |r| &r.metadata.organization_id
);

/// An alert fires and these receivers are to be told (not silenced, inhibited or muted).
/// Notifications turns each receiver into one message.
///
/// - `fingerprint`: the alert's stable id (a hash of `rule_id` and `labels`); the same alert
///   fires again under the same fingerprint.
/// - `rule_id`, `alert_name`: the rule and its name (also the `alertname` label).
/// - `severity`: `critical`, `warning` or `info` (also the `severity` label); notifications may
///   treat `critical` as urgent.
/// - `labels`: the alert's labels (the rule's labels, the `group_by` labels of its samples,
///   `alertname`, `severity`).
/// - `annotations`: text for people from the rule (`summary`, `description`, `runbook_url`).
/// - `value`: the rule's value at the tick that fired (or repeated) the alert.
/// - `started_at`: when the condition began to hold (the alert became pending), ms since epoch.
/// - `fired_at`: the tick of this notification, ms since epoch.
/// - `group_key`: `rule_id` and the `group_by` label values: alerts of one group share it.
/// - `receivers`: who to tell, as (recipient_id, channel) pairs, each exactly once.
/// - `repeat`: false for the first notification, true for a repeat after `repeat_interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct AlertFired {
    pub metadata: EventMetadata,
    pub fingerprint: String,
    pub rule_id: String,
    pub alert_name: String,
    pub severity: String,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
    pub value: f64,
    pub started_at: i64,
    pub fired_at: i64,
    pub group_key: String,
    pub receivers: Vec<Receiver>,
    pub repeat: bool,
}
record!(
    AlertFired,
    "studyspot.alerts.AlertFired",
    "alerts/AlertFired.avsc",
    EVENTS,
    key = |r| &r.metadata.organization_id
);

/// A notified alert resolved. Notifications tells each receiver once.
///
/// - `fingerprint`, `rule_id`, `alert_name`, `severity`, `labels`, `annotations`, `group_key`:
///   as in [`AlertFired`] for the same alert.
/// - `started_at`: when the condition began to hold, ms since epoch.
/// - `resolved_at`: the tick at which it no longer held, ms since epoch.
/// - `receivers`: the (recipient_id, channel) pairs its last `AlertFired` named: whoever was
///   told it fired is told it resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct AlertResolved {
    pub metadata: EventMetadata,
    pub fingerprint: String,
    pub rule_id: String,
    pub alert_name: String,
    pub severity: String,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
    pub started_at: i64,
    pub resolved_at: i64,
    pub group_key: String,
    pub receivers: Vec<Receiver>,
}
record!(
    AlertResolved,
    "studyspot.alerts.AlertResolved",
    "alerts/AlertResolved.avsc",
    EVENTS,
    key = |r| &r.metadata.organization_id
);
