//! Alerts' insights: venue capacities (for occupancy ratios), alert groups, dashboards, reports
//! and their runs, and the figures dashboards and reports show, computed from alerts' own
//! samples and alert history (other domains' figures reach alerts as derived samples). What the
//! consumer writes and reads for itself names its tables unqualified: its connections resolve them
//! through `search_path`, so a rebuild (`alerts_rebuild_<n>`) writes its own projection, never the
//! live one. What the gateway's read-only role reads is schema-qualified.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};

/// The metric billing's payment outcomes become, with their amount: one sample per payment of
/// `amount_minor`, labelled `outcome` (`succeeded` / `failed`), `currency`, `connector`, `method`.
pub const PAYMENT_AMOUNT_METRIC: &str = "studyspot_payment_amount_minor";
/// Refunds issued: one sample of `amount_minor` per refund, labelled `currency`.
pub const REFUND_VOLUME_METRIC: &str = "studyspot_refund_volume_minor";
/// Refunds the provider refused: one sample of 1, labelled `code`.
pub const REFUNDS_FAILED_METRIC: &str = "studyspot_refunds_failed";
/// A venue's occupancy (people checked in) after each change, labelled `venue_id`.
pub const OCCUPANCY_METRIC: &str = "studyspot_venue_occupancy";
/// Occupancy over the venue's capacity after each change, labelled `venue_id`.
pub const OCCUPANCY_RATIO_METRIC: &str = "studyspot_venue_occupancy_ratio";
/// Notifications' outcomes: one sample of 1 per message sent or failed and per first delivery
/// status (delivered, undelivered, bounced, opened, clicked), labelled `outcome` and `channel`.
pub const NOTIFICATION_OUTCOMES_METRIC: &str = "studyspot_notification_outcomes";
/// Records on a dead-letter topic, as the broker counts them (high watermark summed over
/// partitions), sampled by the alerts scheduler, labelled `topic`.
pub const DEAD_LETTERS_METRIC: &str = "studyspot_dead_letter_records";
/// Records a consumer group has yet to read (high watermark minus its committed offset, summed
/// over partitions), sampled by the alerts scheduler, labelled `consumer` and `topic`.
pub const CONSUMER_LAG_METRIC: &str = "studyspot_consumer_lag_records";

// ---------------------------------------------------------------------------------------------
// Written by the consumer

pub async fn upsert_venue_capacity(
    tx: &mut PgConnection,
    organization_id: &str,
    venue_id: &str,
    capacity: i32,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO venue_capacities (organization_id, venue_id, capacity, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (organization_id, venue_id) \
         DO UPDATE SET capacity = EXCLUDED.capacity, updated_at = EXCLUDED.updated_at",
    )
    .bind(organization_id)
    .bind(venue_id)
    .bind(capacity)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

pub async fn venue_capacity(
    tx: &mut PgConnection,
    organization_id: &str,
    venue_id: &str,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar("SELECT capacity FROM venue_capacities WHERE organization_id = $1 AND venue_id = $2")
        .bind(organization_id)
        .bind(venue_id)
        .fetch_optional(tx)
        .await
}

/// Drops the organization's samples taken before `older_than`; how many went.
pub async fn prune_samples(
    tx: &mut PgConnection,
    organization_id: &str,
    older_than: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM metric_samples WHERE organization_id = $1 AND sampled_at < $2")
        .bind(organization_id)
        .bind(older_than)
        .execute(tx)
        .await
        .map(|r| r.rows_affected())
}

/// The bodies of the organization's alert groups, locked.
pub async fn load_groups(tx: &mut PgConnection, organization_id: &str) -> Result<Vec<Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT body FROM alert_groups WHERE organization_id = $1 ORDER BY group_key FOR UPDATE",
    )
    .bind(organization_id)
    .fetch_all(tx)
    .await
}

pub async fn upsert_group(
    tx: &mut PgConnection,
    organization_id: &str,
    group_key: &str,
    route_id: &str,
    body: &Value,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alert_groups (organization_id, group_key, route_id, body, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organization_id, group_key) \
         DO UPDATE SET body = EXCLUDED.body, updated_at = EXCLUDED.updated_at",
    )
    .bind(organization_id)
    .bind(group_key)
    .bind(route_id)
    .bind(body)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

pub async fn delete_group(
    tx: &mut PgConnection,
    organization_id: &str,
    group_key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM alert_groups WHERE organization_id = $1 AND group_key = $2")
        .bind(organization_id)
        .bind(group_key)
        .execute(tx)
        .await
        .map(drop)
}

pub struct GroupNotificationRow<'a> {
    pub organization_id: &'a str,
    pub group_key: &'a str,
    pub route_id: &'a str,
    pub status: &'a str,
    pub receivers: Value,
    pub alerts: Value,
    pub repeat: bool,
    pub at: DateTime<Utc>,
    pub event_id: &'a str,
}

pub async fn insert_group_notification(
    tx: &mut PgConnection,
    n: &GroupNotificationRow<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alert_group_notifications \
         (organization_id, group_key, route_id, status, receivers, alerts, repeat, at, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(n.organization_id)
    .bind(n.group_key)
    .bind(n.route_id)
    .bind(n.status)
    .bind(&n.receivers)
    .bind(&n.alerts)
    .bind(n.repeat)
    .bind(n.at)
    .bind(n.event_id)
    .execute(tx)
    .await
    .map(drop)
}

pub async fn upsert_dashboard(
    tx: &mut PgConnection,
    organization_id: &str,
    dashboard_id: &str,
    name: &str,
    definition: &Value,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dashboards (organization_id, dashboard_id, name, definition, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organization_id, dashboard_id) \
         DO UPDATE SET name = EXCLUDED.name, definition = EXCLUDED.definition, updated_at = EXCLUDED.updated_at",
    )
    .bind(organization_id)
    .bind(dashboard_id)
    .bind(name)
    .bind(definition)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

pub struct ReportRow<'a> {
    pub organization_id: &'a str,
    pub report_id: &'a str,
    pub name: &'a str,
    pub schedule: &'a str,
    pub time_zone: &'a str,
    pub definition: Value,
    pub at: DateTime<Utc>,
}

/// Defines or replaces a report; a replaced report keeps the periods it already rendered.
pub async fn upsert_report(tx: &mut PgConnection, r: &ReportRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reports \
         (organization_id, report_id, name, schedule, time_zone, definition, defined_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (organization_id, report_id) \
         DO UPDATE SET name = EXCLUDED.name, schedule = EXCLUDED.schedule, time_zone = EXCLUDED.time_zone, \
                       definition = EXCLUDED.definition, updated_at = EXCLUDED.updated_at",
    )
    .bind(r.organization_id)
    .bind(r.report_id)
    .bind(r.name)
    .bind(r.schedule)
    .bind(r.time_zone)
    .bind(&r.definition)
    .bind(r.at)
    .execute(tx)
    .await
    .map(drop)
}

/// A report as the consumer schedules it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScheduledReport {
    pub report_id: String,
    pub definition: Value,
    pub defined_at: DateTime<Utc>,
    pub last_period_end: Option<DateTime<Utc>>,
}

pub async fn reports_to_schedule(
    tx: &mut PgConnection,
    organization_id: &str,
) -> Result<Vec<ScheduledReport>, sqlx::Error> {
    sqlx::query_as(
        "SELECT report_id, definition, defined_at, last_period_end FROM reports \
         WHERE organization_id = $1 ORDER BY report_id FOR UPDATE",
    )
    .bind(organization_id)
    .fetch_all(tx)
    .await
}

pub struct RunRow<'a> {
    pub organization_id: &'a str,
    pub report_id: &'a str,
    pub run_id: &'a str,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub figures: Value,
    pub csv: &'a str,
    pub html: &'a str,
    pub generated_at: DateTime<Utc>,
}

/// Stores a run and moves the report past its period.
pub async fn insert_run(tx: &mut PgConnection, r: &RunRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO report_runs \
         (organization_id, report_id, run_id, period_start, period_end, figures, csv, html, generated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(r.organization_id)
    .bind(r.report_id)
    .bind(r.run_id)
    .bind(r.period_start)
    .bind(r.period_end)
    .bind(&r.figures)
    .bind(r.csv)
    .bind(r.html)
    .bind(r.generated_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE reports SET last_period_end = $3 WHERE organization_id = $1 AND report_id = $2")
        .bind(r.organization_id)
        .bind(r.report_id)
        .bind(r.period_end)
        .execute(tx)
        .await
        .map(drop)
}

/// Organizations with at least one report (the scheduler's report ticks go to them).
pub async fn organizations_with_reports(db: impl PgExecutor<'_>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT organization_id FROM reports ORDER BY organization_id")
        .fetch_all(db)
        .await
}

/// Organizations with samples (the scheduler's retention ticks go to them).
pub async fn organizations_with_samples(db: impl PgExecutor<'_>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT organization_id FROM metric_samples ORDER BY organization_id")
        .fetch_all(db)
        .await
}

// ---------------------------------------------------------------------------------------------
// Read by the gateway

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DashboardView {
    pub dashboard_id: String,
    pub name: String,
    /// The dashboard as alerts holds it: its widgets.
    pub definition: Value,
    pub updated_at: DateTime<Utc>,
}

pub async fn list_dashboards(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    limit: i64,
) -> Result<Vec<DashboardView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT dashboard_id, name, definition, updated_at FROM alerts.dashboards \
         WHERE organization_id = $1 ORDER BY dashboard_id LIMIT $2",
    )
    .bind(organization_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn dashboard(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    dashboard_id: &str,
) -> Result<Option<DashboardView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT dashboard_id, name, definition, updated_at FROM alerts.dashboards \
         WHERE organization_id = $1 AND dashboard_id = $2",
    )
    .bind(organization_id)
    .bind(dashboard_id)
    .fetch_optional(db)
    .await
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportView {
    pub report_id: String,
    pub name: String,
    pub schedule: String,
    pub time_zone: String,
    /// Sections and recipients as alerts holds them.
    pub definition: Value,
    /// The end of the last period rendered.
    pub last_period_end: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

pub async fn list_reports(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    limit: i64,
) -> Result<Vec<ReportView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT report_id, name, schedule, time_zone, definition, last_period_end, updated_at \
         FROM alerts.reports WHERE organization_id = $1 ORDER BY report_id LIMIT $2",
    )
    .bind(organization_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn report(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    report_id: &str,
) -> Result<Option<ReportView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT report_id, name, schedule, time_zone, definition, last_period_end, updated_at \
         FROM alerts.reports WHERE organization_id = $1 AND report_id = $2",
    )
    .bind(organization_id)
    .bind(report_id)
    .fetch_optional(db)
    .await
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunView {
    pub run_id: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// The figures the run shows, by section.
    pub figures: Value,
    pub generated_at: DateTime<Utc>,
}

/// Latest period first.
pub async fn list_runs(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    report_id: &str,
    limit: i64,
) -> Result<Vec<RunView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT run_id, period_start, period_end, figures, generated_at FROM alerts.report_runs \
         WHERE organization_id = $1 AND report_id = $2 ORDER BY period_start DESC LIMIT $3",
    )
    .bind(organization_id)
    .bind(report_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A run's rendering: `csv` or `html`.
pub async fn run_file(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    report_id: &str,
    run_id: &str,
    html: bool,
) -> Result<Option<String>, sqlx::Error> {
    let column = if html { "html" } else { "csv" };
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {column} FROM alerts.report_runs WHERE organization_id = $1 AND report_id = $2 AND run_id = $3"
    )))
    .bind(organization_id)
    .bind(report_id)
    .bind(run_id)
    .fetch_optional(db)
    .await
}

// ---------------------------------------------------------------------------------------------
// Figures

/// A label matcher as dashboards hold it: `=`, `!=`, `=~`, `!~` (regexes anchored at both ends;
/// a missing label is `""`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LabelMatcher {
    pub name: String,
    pub op: String,
    pub value: String,
}

struct Compiled {
    name: String,
    negated: bool,
    pattern: Option<regex::Regex>,
    value: String,
}

fn compile(matchers: &[LabelMatcher]) -> Result<Vec<Compiled>, String> {
    matchers
        .iter()
        .map(|m| {
            let (negated, regex) = match m.op.as_str() {
                "=" => (false, false),
                "!=" => (true, false),
                "=~" => (false, true),
                "!~" => (true, true),
                other => return Err(format!("matcher op {other:?} is not =, !=, =~ or !~")),
            };
            let pattern = regex
                .then(|| regex::Regex::new(&format!("^(?:{})$", m.value)))
                .transpose()
                .map_err(|e| format!("matcher {} regex: {e}", m.name))?;
            Ok(Compiled { name: m.name.clone(), negated, pattern, value: m.value.clone() })
        })
        .collect()
}

fn matches(compiled: &[Compiled], labels: &Value) -> bool {
    compiled.iter().all(|m| {
        let v = labels.get(&m.name).and_then(Value::as_str).unwrap_or("");
        let hit = match &m.pattern {
            Some(r) => r.is_match(v),
            None => v == m.value,
        };
        hit != m.negated
    })
}

/// Whose tables a figure reads. The gateway's read-only role resolves no names of its own, so it
/// reads the live projection by name; the consumer reads its connection's own (its `search_path`
/// names the schema it writes): a rebuild's report figures then come from the rebuild's samples
/// as they stood at that point of history, as the live process's did, not from the live
/// projection as it stands while the rebuild runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    Live,
    Own,
}

impl Tables {
    /// `sql`, written with the live projection's names (`alerts.<table>`), for these tables.
    fn sql(self, sql: &'static str) -> String {
        match self {
            Tables::Live => sql.to_owned(),
            Tables::Own => sql.replace(concat!("alerts", "."), ""),
        }
    }
}

/// Why a figure could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// At most this many samples feed one series query.
pub const MAX_SERIES_SAMPLES: i64 = 200_000;
/// At most this many buckets in one series query.
pub const MAX_BUCKETS: i64 = 2_000;

/// One series of a series widget: its `group_by` label values and one point per bucket that has
/// samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Point {
    /// The bucket's start.
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// What a series query asks.
pub struct SeriesQuery<'a> {
    pub organization_id: &'a str,
    pub metric: &'a str,
    pub matchers: &'a [LabelMatcher],
    pub group_by: &'a [String],
    /// `avg`, `sum`, `min`, `max`, `count` or `last`.
    pub aggregation: &'a str,
    pub step_seconds: i64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// `metric{matchers}` in `[from, to)`, split by `group_by`, reduced per `step_seconds` bucket
/// (buckets start at `from`).
pub async fn series(db: impl PgExecutor<'_>, q: &SeriesQuery<'_>) -> Result<Vec<Series>, FigureError> {
    if q.step_seconds <= 0 {
        return Err(FigureError::Invalid("step_seconds must be positive".into()));
    }
    let step_ms = q.step_seconds * 1000;
    let span = (q.to - q.from).num_milliseconds();
    if span <= 0 || span / step_ms > MAX_BUCKETS {
        return Err(FigureError::Invalid(format!(
            "from must be before to, with at most {MAX_BUCKETS} buckets of step_seconds"
        )));
    }
    let compiled = compile(q.matchers).map_err(FigureError::Invalid)?;
    let rows: Vec<(Value, f64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT labels, value, sampled_at FROM alerts.metric_samples \
         WHERE organization_id = $1 AND metric = $2 AND sampled_at >= $3 AND sampled_at < $4 \
         ORDER BY sampled_at, id LIMIT $5",
    )
    .bind(q.organization_id)
    .bind(q.metric)
    .bind(q.from)
    .bind(q.to)
    .bind(MAX_SERIES_SAMPLES + 1)
    .fetch_all(db)
    .await?;
    if rows.len() as i64 > MAX_SERIES_SAMPLES {
        return Err(FigureError::Invalid(format!(
            "more than {MAX_SERIES_SAMPLES} samples in the range; narrow it or add matchers"
        )));
    }
    let mut buckets: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    for (labels, value, at) in rows.into_iter().filter(|(l, _, _)| matches(&compiled, l)) {
        let group = q
            .group_by
            .iter()
            .map(|g| (g.clone(), labels.get(g).and_then(Value::as_str).unwrap_or("").to_owned()))
            .collect();
        let bucket = (at - q.from).num_milliseconds() / step_ms;
        buckets.entry(group).or_default().entry(bucket).or_default().push(value);
    }
    let start = q.from.timestamp_millis();
    buckets
        .into_iter()
        .map(|(labels, points)| {
            let points = points
                .into_iter()
                .map(|(bucket, values)| {
                    Ok(Point {
                        at: DateTime::from_timestamp_millis(start + bucket * step_ms).unwrap_or(q.from),
                        value: aggregate(q.aggregation, &values)?,
                    })
                })
                .collect::<Result<_, FigureError>>()?;
            Ok(Series { labels, points })
        })
        .collect()
}

/// `values` in time order.
pub fn aggregate(aggregation: &str, values: &[f64]) -> Result<f64, FigureError> {
    let sum: f64 = values.iter().sum();
    Ok(match aggregation {
        "sum" => sum,
        "avg" => sum / values.len().max(1) as f64,
        "min" => values.iter().copied().fold(f64::INFINITY, f64::min),
        "max" => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "count" => values.len() as f64,
        "last" => values.last().copied().unwrap_or(f64::NAN),
        other => {
            return Err(FigureError::Invalid(format!(
                "aggregation {other:?} is not avg, sum, min, max, count or last"
            )));
        }
    })
}

/// Revenue per currency in a period, from the derived payment and refund samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Revenue {
    pub currency: String,
    pub payments_succeeded: i64,
    pub payments_failed: i64,
    pub revenue_minor: i64,
    pub refunds: i64,
    pub refunded_minor: i64,
    /// Revenue less refunds.
    pub net_minor: i64,
}

/// [`revenue_in`] of the live projection: what the gateway reads.
pub async fn revenue(
    db: &mut PgConnection,
    organization_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Revenue>, sqlx::Error> {
    revenue_in(Tables::Live, db, organization_id, from, to).await
}

pub async fn revenue_in(
    tables: Tables,
    db: &mut PgConnection,
    organization_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Revenue>, sqlx::Error> {
    let rows: Vec<(String, String, String, i64, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(tables.sql(
        "SELECT metric, COALESCE(labels->>'currency', ''), COALESCE(labels->>'outcome', ''), \
                count(*), COALESCE(sum(value), 0) \
         FROM alerts.metric_samples \
         WHERE organization_id = $1 AND metric = ANY($2) AND sampled_at >= $3 AND sampled_at < $4 \
         GROUP BY 1, 2, 3",
    )))
    .bind(organization_id)
    .bind([PAYMENT_AMOUNT_METRIC, REFUND_VOLUME_METRIC])
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    let mut by_currency: BTreeMap<String, Revenue> = BTreeMap::new();
    for (metric, currency, outcome, count, sum) in rows {
        let r =
            by_currency.entry(currency.clone()).or_insert_with(|| Revenue { currency, ..Revenue::default() });
        let amount = sum.round() as i64;
        match (metric.as_str(), outcome.as_str()) {
            (PAYMENT_AMOUNT_METRIC, "succeeded") => {
                r.payments_succeeded += count;
                r.revenue_minor += amount;
            }
            (PAYMENT_AMOUNT_METRIC, _) => r.payments_failed += count,
            _ => {
                r.refunds += count;
                r.refunded_minor += amount;
            }
        }
    }
    Ok(by_currency
        .into_values()
        .map(|r| Revenue { net_minor: r.revenue_minor - r.refunded_minor, ..r })
        .collect())
}

/// A venue's occupancy in a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Occupancy {
    pub venue_id: String,
    /// The last occupancy sampled before the period's end.
    pub latest: Option<f64>,
    /// The highest occupancy sampled in the period.
    pub peak: Option<f64>,
    /// Check-ins and check-outs in the period (occupancy samples).
    pub changes: i64,
    pub capacity: Option<i32>,
    /// The highest occupancy ratio in the period.
    pub peak_ratio: Option<f64>,
}

/// [`occupancy_in`] of the live projection: what the gateway reads.
pub async fn occupancy(
    db: &mut PgConnection,
    organization_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Occupancy>, sqlx::Error> {
    occupancy_in(Tables::Live, db, organization_id, from, to).await
}

pub async fn occupancy_in(
    tables: Tables,
    db: &mut PgConnection,
    organization_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Occupancy>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(tables.sql(
        "WITH venues AS ( \
             SELECT DISTINCT labels->>'venue_id' AS venue_id FROM alerts.metric_samples \
             WHERE organization_id = $1 AND metric = $2 AND sampled_at < $5 AND labels ? 'venue_id' \
         ) \
         SELECT v.venue_id, \
             (SELECT s.value FROM alerts.metric_samples s WHERE s.organization_id = $1 AND s.metric = $2 \
                AND s.labels->>'venue_id' = v.venue_id AND s.sampled_at < $5 ORDER BY s.sampled_at DESC, s.id DESC LIMIT 1) AS latest, \
             (SELECT max(s.value) FROM alerts.metric_samples s WHERE s.organization_id = $1 AND s.metric = $2 \
                AND s.labels->>'venue_id' = v.venue_id AND s.sampled_at >= $4 AND s.sampled_at < $5) AS peak, \
             (SELECT count(*) FROM alerts.metric_samples s WHERE s.organization_id = $1 AND s.metric = $2 \
                AND s.labels->>'venue_id' = v.venue_id AND s.sampled_at >= $4 AND s.sampled_at < $5) AS changes, \
             (SELECT c.capacity FROM alerts.venue_capacities c WHERE c.organization_id = $1 AND c.venue_id = v.venue_id) AS capacity, \
             (SELECT max(s.value) FROM alerts.metric_samples s WHERE s.organization_id = $1 AND s.metric = $3 \
                AND s.labels->>'venue_id' = v.venue_id AND s.sampled_at >= $4 AND s.sampled_at < $5) AS peak_ratio \
         FROM venues v ORDER BY v.venue_id",
    )))
    .bind(organization_id)
    .bind(OCCUPANCY_METRIC)
    .bind(OCCUPANCY_RATIO_METRIC)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
}

/// Notification outcomes of one channel in a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deliveries {
    pub channel: String,
    pub sent: i64,
    pub failed: i64,
    pub delivered: i64,
    pub undelivered: i64,
    pub bounced: i64,
    pub opened: i64,
    pub clicked: i64,
    /// Bounced over sent (absent when nothing was sent).
    pub bounce_rate: Option<f64>,
}

/// [`deliveries_in`] of the live projection: what the gateway reads.
pub async fn deliveries(
    db: &mut PgConnection,
    organization_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Deliveries>, sqlx::Error> {
    deliveries_in(Tables::Live, db, organization_id, from, to).await
}

pub async fn deliveries_in(
    tables: Tables,
    db: &mut PgConnection,
    organization_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Deliveries>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(tables.sql(
        "SELECT COALESCE(labels->>'channel', ''), COALESCE(labels->>'outcome', ''), count(*) \
         FROM alerts.metric_samples \
         WHERE organization_id = $1 AND metric = $2 AND sampled_at >= $3 AND sampled_at < $4 \
         GROUP BY 1, 2",
    )))
    .bind(organization_id)
    .bind(NOTIFICATION_OUTCOMES_METRIC)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    let mut by_channel: BTreeMap<String, Deliveries> = BTreeMap::new();
    for (channel, outcome, count) in rows {
        let d = by_channel
            .entry(channel.clone())
            .or_insert_with(|| Deliveries { channel, ..Deliveries::default() });
        match outcome.as_str() {
            "sent" => d.sent += count,
            "failed" => d.failed += count,
            "delivered" => d.delivered += count,
            "undelivered" => d.undelivered += count,
            "bounced" => d.bounced += count,
            "opened" => d.opened += count,
            "clicked" => d.clicked += count,
            _ => {}
        }
    }
    Ok(by_channel
        .into_values()
        .map(|d| Deliveries { bounce_rate: (d.sent > 0).then(|| d.bounced as f64 / d.sent as f64), ..d })
        .collect())
}

/// One rule's alerts in a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertActivity {
    pub rule_id: String,
    /// Alerts that started firing in the period.
    pub fired: i64,
    pub resolved: i64,
    /// Firing at the period's end.
    pub firing_at_end: i64,
}

/// [`alert_activity_in`] of the live projection: what the gateway reads.
pub async fn alert_activity(
    db: &mut PgConnection,
    organization_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<AlertActivity>, sqlx::Error> {
    alert_activity_in(Tables::Live, db, organization_id, from, to).await
}

pub async fn alert_activity_in(
    tables: Tables,
    db: &mut PgConnection,
    organization_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<AlertActivity>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(tables.sql(
        "WITH h AS (SELECT * FROM alerts.alert_history WHERE organization_id = $1 AND at < $3), \
              last AS (SELECT DISTINCT ON (fingerprint) rule_id, to_state FROM h ORDER BY fingerprint, at DESC, id DESC) \
         SELECT r.rule_id, \
             (SELECT count(*) FROM h WHERE h.rule_id = r.rule_id AND h.to_state = 'firing' AND h.at >= $2) AS fired, \
             (SELECT count(*) FROM h WHERE h.rule_id = r.rule_id AND h.to_state = 'resolved' AND h.at >= $2) AS resolved, \
             (SELECT count(*) FROM last WHERE last.rule_id = r.rule_id AND last.to_state = 'firing') AS firing_at_end \
         FROM (SELECT DISTINCT rule_id FROM h) r ORDER BY r.rule_id",
    )))
    .bind(organization_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
    .map(|rows: Vec<AlertActivity>| {
        rows.into_iter().filter(|a| a.fired > 0 || a.resolved > 0 || a.firing_at_end > 0).collect()
    })
}

#[cfg(test)]
mod tests {
    /// A schema-qualified name in what the consumer writes would reach the live projection from a
    /// rebuild running beside it (the rebuild's connections name `alerts_rebuild_<n>` in their
    /// `search_path`), and leave the rebuilt projection without it.
    #[test]
    fn what_the_consumer_writes_names_no_schema() {
        let source = include_str!("insights.rs");
        let start = source.find("// Written by the consumer").expect("the consumer's section");
        let end = source.find("// Read by the gateway").expect("the gateway's section");
        let qualified: Vec<&str> =
            source[start..end].lines().filter(|l| l.contains(concat!("alerts", "."))).collect();
        assert!(qualified.is_empty(), "schema-qualified in the consumer's queries: {qualified:#?}");
    }

    #[test]
    fn the_consumers_figures_read_its_own_tables_and_the_gateways_the_live_ones() {
        let sql = "SELECT * FROM alerts.metric_samples s JOIN alerts.venue_capacities c USING (venue_id)";
        assert_eq!(super::Tables::Live.sql(sql), sql);
        assert_eq!(
            super::Tables::Own.sql(sql),
            "SELECT * FROM metric_samples s JOIN venue_capacities c USING (venue_id)"
        );
    }
}
