//! Alerts' insight records: sample retention, grouped alert notifications, dashboards and
//! scheduled reports. Retention and report ticks carry their instant, so a replay prunes the same
//! samples and renders the same report runs.

use std::collections::HashMap;

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::{COMMANDS, EVENTS, Matcher, Receiver};
use crate::{EventMetadata, record::record};

/// Drop the organization's metric samples taken before `older_than`. Sent by the alerts
/// scheduler (`alerts.sample_retention_days` before its clock); the cut-off travels in the
/// command, so a replay keeps the same samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct PruneMetricSamples {
    pub metadata: EventMetadata,
    /// Milliseconds since the Unix epoch (UTC); samples with `sampled_at` before it go.
    pub older_than: i64,
}
record!(
    PruneMetricSamples,
    "studyspot.alerts.PruneMetricSamples",
    "alerts/PruneMetricSamples.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// Samples older than `older_than` were dropped (`removed` of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct MetricSamplesPruned {
    pub metadata: EventMetadata,
    pub older_than: i64,
    pub removed: i64,
}
record!(
    MetricSamplesPruned,
    "studyspot.alerts.MetricSamplesPruned",
    "alerts/MetricSamplesPruned.avsc",
    EVENTS,
    key = |r| &r.metadata.organization_id
);

/// One alert of a notified group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct GroupedAlert {
    pub fingerprint: String,
    pub rule_id: String,
    pub alert_name: String,
    pub severity: String,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
    /// `firing` or `resolved`.
    pub status: String,
    /// The rule's value when the alert last fired (absent once resolved).
    #[avro(default = "null")]
    pub value: Option<f64>,
    /// When the condition began to hold, ms since epoch.
    pub started_at: i64,
    /// When it resolved, ms since epoch.
    #[avro(default = "null")]
    pub resolved_at: Option<i64>,
}

/// One notification for a group of alerts (Alertmanager's grouping): the alerts a route with
/// `group_by` collected for `group_wait` (first notification) or `group_interval` (changes since
/// the last one). Notifications turns each receiver into one message about the whole group.
///
/// - `route_id`, `group_key`: the route and its `group_by` label values; one group per key.
/// - `group_labels`: those label values.
/// - `status`: `firing` while any alert of the group fires, else `resolved`.
/// - `alerts`: every firing alert of the group and those resolved since the last notification.
/// - `repeat`: nothing changed since the last notification; sent after the rules'
///   `repeat_interval`.
/// - `notified_at`: the evaluation tick, ms since epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct AlertGroupNotified {
    pub metadata: EventMetadata,
    pub route_id: String,
    pub group_key: String,
    pub group_labels: HashMap<String, String>,
    pub status: String,
    pub severity: String,
    pub receivers: Vec<Receiver>,
    pub alerts: Vec<GroupedAlert>,
    pub repeat: bool,
    pub notified_at: i64,
}
record!(
    AlertGroupNotified,
    "studyspot.alerts.AlertGroupNotified",
    "alerts/AlertGroupNotified.avsc",
    EVENTS,
    key = |r| &r.metadata.organization_id
);

/// One widget of a dashboard.
///
/// - `kind`: `series` (a metric over time: the `aggregation` of `metric{matchers}` per
///   `step_seconds` bucket, one series per `group_by` combination), or a figure from alerts' own
///   projection: `revenue` (payments' amounts by currency, refunds, success and failure counts),
///   `occupancy` (per venue: latest, peak and average occupancy and occupancy ratio),
///   `deliveries` (notification outcomes by channel) or `active_alerts` (pending and firing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct DashboardWidget {
    pub widget_id: String,
    pub title: String,
    pub kind: String,
    /// For `series`.
    #[avro(default = "null")]
    pub metric: Option<String>,
    #[avro(default = "[]")]
    pub matchers: Vec<Matcher>,
    /// For `series`: `avg`, `sum`, `min`, `max`, `count` or `last`.
    pub aggregation: String,
    /// For `series`: the bucket width.
    pub step_seconds: i64,
    #[avro(default = "[]")]
    pub group_by: Vec<String>,
}

/// Define a dashboard (a saved layout of widgets), or replace it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct DefineDashboard {
    pub metadata: EventMetadata,
    /// `dsh_…`, chosen by the caller.
    pub dashboard_id: String,
    pub name: String,
    pub widgets: Vec<DashboardWidget>,
}
record!(
    DefineDashboard,
    "studyspot.alerts.DefineDashboard",
    "alerts/DefineDashboard.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// Define a scheduled report, or replace it: a summary of one local day (`daily`) or one local
/// week, Monday to Sunday (`weekly`) in `time_zone`, rendered once the period has ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct DefineReport {
    pub metadata: EventMetadata,
    /// `rpt_…`, chosen by the caller.
    pub report_id: String,
    pub name: String,
    /// `daily` or `weekly`.
    pub schedule: String,
    /// IANA zone the periods are in, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// Any of `revenue`, `occupancy`, `deliveries`, `alerts`, in the order they are rendered.
    pub sections: Vec<String>,
    /// Told (by notifications) when a run is ready.
    #[avro(default = "[]")]
    pub recipients: Vec<Receiver>,
}
record!(
    DefineReport,
    "studyspot.alerts.DefineReport",
    "alerts/DefineReport.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// A report tick: render every report period of the organization that ended at or before
/// `up_to`. Sent by the alerts scheduler; the instant travels in the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct GenerateReports {
    pub metadata: EventMetadata,
    /// Milliseconds since the Unix epoch (UTC).
    pub up_to: i64,
}
record!(
    GenerateReports,
    "studyspot.alerts.GenerateReports",
    "alerts/GenerateReports.avsc",
    COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// A report run was rendered (CSV and HTML, stored in alerts' projection, downloadable through
/// the gateway at `/api/monitoring/reports/{report_id}/runs/{run_id}.csv|.html`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.alerts")]
pub struct ReportGenerated {
    pub metadata: EventMetadata,
    pub report_id: String,
    pub name: String,
    /// `run_<YYYY-MM-DD>`: the local date the period starts on.
    pub run_id: String,
    /// The period, ms since epoch: `[period_start, period_end)`.
    pub period_start: i64,
    pub period_end: i64,
    pub recipients: Vec<Receiver>,
}
record!(
    ReportGenerated,
    "studyspot.alerts.ReportGenerated",
    "alerts/ReportGenerated.avsc",
    EVENTS,
    key = |r| &r.metadata.organization_id
);
