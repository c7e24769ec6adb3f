//! Monitoring insights: dashboards (saved layouts of widgets) and their data, scheduled reports
//! and their rendered runs. Definitions are commands alerts decides; data and runs are read from
//! alerts' own projection (other domains' figures reach it as derived samples).

use std::collections::HashMap;

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use studyspot_alerts_projection::{
    insights::{self, DashboardView, FigureError, LabelMatcher, ReportView, RunView, SeriesQuery},
    reads,
};
use studyspot_bus::TraceContext;
use studyspot_ids::{DashboardId, ReportId, WidgetId};
use studyspot_schemas::alerts::{self as schema, Receiver};

use crate::{
    AppState, GatewayError,
    auth::Caller,
    commands::{Accept, CommandRequest, PathId, accept, answer, metadata, new_id, one_of, parse, required},
    ledger::Idempotency,
    monitoring_routes::{
        AGGREGATIONS, CHANNELS, MatcherBody, ReceiverBody, label_name, limit, matchers, metric_name, rfc3339,
    },
    queries::{Params, only_params, query_values, rows},
};

const WIDGET_KINDS: [&str; 5] = ["series", "revenue", "occupancy", "deliveries", "active_alerts"];
const SCHEDULES: [&str; 2] = ["daily", "weekly"];
const SECTIONS: [&str; 4] = ["revenue", "occupancy", "deliveries", "alerts"];
const MAX_WIDGETS: usize = 50;
/// The longest range one data request may cover.
const MAX_RANGE_DAYS: i64 = 366;

// ---------------------------------------------------------------------------------------------
// Dashboards

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetBody {
    /// Unique in the dashboard; default `w<position>`.
    #[schema(value_type = Option<String>)]
    pub(crate) widget_id: Option<WidgetId>,
    pub(crate) title: String,
    /// `series` (a metric over time), or a figure: `revenue`, `occupancy`, `deliveries`,
    /// `active_alerts`.
    pub(crate) kind: String,
    /// For `series`: the metric.
    pub(crate) metric: Option<String>,
    #[serde(default)]
    pub(crate) matchers: Vec<MatcherBody>,
    /// For `series`: avg, sum, min, max, count, last or increase per bucket (default sum).
    #[serde(default = "sum")]
    pub(crate) aggregation: String,
    /// For `series`: the bucket width in seconds (default 3600).
    #[serde(default = "hour")]
    pub(crate) step_seconds: i64,
    /// For `series`: one series per combination of these labels.
    #[serde(default)]
    pub(crate) group_by: Vec<String>,
}

fn sum() -> String {
    "sum".into()
}

fn hour() -> i64 {
    3600
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardRequest {
    /// `dsh_…`; the same id again replaces the dashboard.
    #[schema(value_type = Option<String>)]
    pub(crate) dashboard_id: Option<DashboardId>,
    pub(crate) name: String,
    pub(crate) widgets: Vec<WidgetBody>,
}

fn dashboard_command(
    caller: &Caller,
    body: DashboardRequest,
) -> Result<schema::DefineDashboard, GatewayError> {
    required("name", &body.name)?;
    if body.widgets.is_empty() || body.widgets.len() > MAX_WIDGETS {
        return Err(GatewayError::invalid("widgets", format!("a dashboard has 1 to {MAX_WIDGETS} widgets")));
    }
    let mut widgets = Vec::with_capacity(body.widgets.len());
    for (i, w) in body.widgets.into_iter().enumerate() {
        let field = |f: &str| format!("widgets[{i}].{f}");
        one_of(&field("kind"), &w.kind, &WIDGET_KINDS)?;
        let widget_id = w.widget_id.map_or_else(|| format!("w{i}"), String::from);
        if widgets.iter().any(|x: &schema::DashboardWidget| x.widget_id == widget_id) {
            return Err(GatewayError::invalid(&field("widget_id"), "widget ids must be unique"));
        }
        if w.kind == "series" {
            let metric = w.metric.as_deref().unwrap_or("");
            required(&field("metric"), metric)?;
            metric_name(&field("metric"), metric)?;
            one_of(&field("aggregation"), &w.aggregation, &AGGREGATIONS)?;
            if w.step_seconds <= 0 {
                return Err(GatewayError::invalid(&field("step_seconds"), "step_seconds must be positive"));
            }
            for (j, l) in w.group_by.iter().enumerate() {
                label_name(&format!("widgets[{i}].group_by[{j}]"), l)?;
            }
        }
        widgets.push(schema::DashboardWidget {
            widget_id,
            title: w.title,
            kind: w.kind,
            metric: w.metric,
            matchers: matchers(&field("matchers"), w.matchers)?,
            aggregation: w.aggregation,
            step_seconds: w.step_seconds,
            group_by: w.group_by,
        });
    }
    Ok(schema::DefineDashboard {
        metadata: metadata(caller),
        dashboard_id: body.dashboard_id.map_or_else(|| new_id("dsh"), String::from),
        name: body.name,
        widgets,
    })
}

#[utoipa::path(post, path = "/api/monitoring/dashboards", tag = "monitoring", request_body = DashboardRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted; decided asynchronously (`dashboard_id` in the answer)", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services define dashboards", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn define_dashboard(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<DashboardRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(define_dashboard_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn define_dashboard_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: DashboardRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("defining dashboards")?;
    let command = dashboard_command(caller, body)?;
    let aggregate = ("dashboard_id", command.dashboard_id.clone());
    accept(state, command, Accept { caller, trace, idempotency, aggregate, member_id: None }).await
}

#[utoipa::path(get, path = "/api/monitoring/dashboards", tag = "monitoring",
    params(("limit" = Option<i64>, Query, description = "1 to 500, default 100")),
    responses(
        (status = 200, description = "The organization's dashboards, by id", body = crate::openapi::Items<DashboardView>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn dashboards(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    let items = dashboards_with(&state, &caller, query_values(params)?).await?;
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn dashboards_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Vec<DashboardView>, GatewayError> {
    caller.require_operator("reading dashboards")?;
    only_params(&values, &["limit"])?;
    rows(insights::list_dashboards(&state.readonly, caller.organization_id.as_str(), limit(&values)?).await)
}

fn found<T>(
    result: Result<Option<T>, sqlx::Error>,
    what: impl FnOnce() -> String,
) -> Result<T, GatewayError> {
    match rows(result.map(|r| r.into_iter().collect::<Vec<T>>()))?.into_iter().next() {
        Some(row) => Ok(row),
        None => Err(GatewayError::NotFound(what())),
    }
}

#[utoipa::path(get, path = "/api/monitoring/dashboards/{dashboard_id}", tag = "monitoring",
    params(("dashboard_id" = String, Path, description = "The dashboard")),
    responses(
        (status = 200, description = "The dashboard", body = DashboardView),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such dashboard", body = crate::openapi::ErrorBody),
    )
)]
pub async fn dashboard(
    State(state): State<AppState>,
    caller: Caller,
    PathId(dashboard_id): PathId<DashboardId>,
) -> Result<Json<DashboardView>, GatewayError> {
    Ok(Json(dashboard_with(&state, &caller, dashboard_id.as_str()).await?))
}

pub(crate) async fn dashboard_with(
    state: &AppState,
    caller: &Caller,
    dashboard_id: &str,
) -> Result<DashboardView, GatewayError> {
    caller.require_operator("reading dashboards")?;
    found(insights::dashboard(&state.readonly, caller.organization_id.as_str(), dashboard_id).await, || {
        format!("dashboard {dashboard_id}")
    })
}

/// A widget as alerts stored it.
#[derive(Deserialize)]
pub(crate) struct StoredWidget {
    pub(crate) widget_id: String,
    pub(crate) title: String,
    pub(crate) kind: String,
    pub(crate) metric: Option<String>,
    #[serde(default)]
    pub(crate) matchers: Vec<LabelMatcher>,
    pub(crate) aggregation: String,
    pub(crate) step_seconds: i64,
    #[serde(default)]
    pub(crate) group_by: Vec<String>,
}

#[derive(Deserialize)]
struct StoredDashboard {
    widgets: Vec<StoredWidget>,
}

fn range(values: &HashMap<String, String>) -> Result<(DateTime<Utc>, DateTime<Utc>), GatewayError> {
    let from = rfc3339("from", values.get("from").map_or("", String::as_str))?;
    let to = rfc3339("to", values.get("to").map_or("", String::as_str))?;
    if to <= from {
        return Err(GatewayError::invalid("to", "to must be after from"));
    }
    if (to - from).num_days() > MAX_RANGE_DAYS {
        return Err(GatewayError::invalid("to", format!("a range covers at most {MAX_RANGE_DAYS} days")));
    }
    Ok((from, to))
}

fn figure_error(e: FigureError, widget: &str) -> GatewayError {
    match e {
        FigureError::Invalid(m) => GatewayError::invalid("from", format!("widget {widget}: {m}")),
        FigureError::Database(e) => e.into(),
    }
}

#[utoipa::path(get, path = "/api/monitoring/dashboards/{dashboard_id}/data", tag = "monitoring",
    params(
        ("dashboard_id" = String, Path, description = "The dashboard"),
        ("from" = String, Query, description = "RFC 3339, inclusive"),
        ("to" = String, Query, description = "RFC 3339, exclusive; at most 366 days after from"),
    ),
    responses(
        (status = 200, description = "Each widget's data over the range: `series` widgets a list of {labels, points: [{at, value}]}; `revenue`, `occupancy`, `deliveries` their figures; `active_alerts` the pending and firing alerts"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such dashboard", body = crate::openapi::ErrorBody),
        (status = 422, description = "A missing or invalid range", body = crate::openapi::ErrorBody),
    )
)]
pub async fn dashboard_data(
    State(state): State<AppState>,
    caller: Caller,
    PathId(dashboard_id): PathId<DashboardId>,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    let data = dashboard_data_with(&state, &caller, dashboard_id.as_str(), query_values(params)?).await?;
    let widgets: Vec<Value> = data
        .widgets
        .into_iter()
        .map(|w| {
            let figures = match w.data {
                Figures::Series(s) => json!(s),
                Figures::Revenue(r) => json!(r),
                Figures::Occupancy(o) => json!(o),
                Figures::Deliveries(d) => json!(d),
                Figures::ActiveAlerts(a) => json!(a),
            };
            json!({ "widget_id": w.widget_id, "title": w.title, "kind": w.kind, "data": figures })
        })
        .collect();
    Ok(Json(
        json!({ "dashboard_id": data.dashboard_id, "from": data.from, "to": data.to, "widgets": widgets }),
    ))
}

/// One widget's figures, by kind.
pub(crate) enum Figures {
    Series(Vec<insights::Series>),
    Revenue(Vec<insights::Revenue>),
    Occupancy(Vec<insights::Occupancy>),
    Deliveries(Vec<insights::Deliveries>),
    ActiveAlerts(Vec<reads::AlertView>),
}

pub(crate) struct WidgetData {
    pub(crate) widget_id: String,
    pub(crate) title: String,
    pub(crate) kind: String,
    pub(crate) data: Figures,
}

pub(crate) struct DashboardData {
    pub(crate) dashboard_id: String,
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: DateTime<Utc>,
    pub(crate) widgets: Vec<WidgetData>,
}

pub(crate) async fn dashboard_data_with(
    state: &AppState,
    caller: &Caller,
    dashboard_id: &str,
    values: HashMap<String, String>,
) -> Result<DashboardData, GatewayError> {
    only_params(&values, &["from", "to"])?;
    let (from, to) = range(&values)?;
    let view = dashboard_with(state, caller, dashboard_id).await?;
    let stored = stored_widgets(view.definition)?;
    let org = caller.organization_id.as_str();
    let mut conn = state.readonly.acquire().await?;
    let mut widgets = Vec::with_capacity(stored.len());
    for w in stored {
        let data = match w.kind.as_str() {
            "series" => {
                let q = SeriesQuery {
                    organization_id: org,
                    metric: w.metric.as_deref().unwrap_or(""),
                    matchers: &w.matchers,
                    group_by: &w.group_by,
                    aggregation: &w.aggregation,
                    step_seconds: w.step_seconds,
                    from,
                    to,
                };
                Figures::Series(
                    insights::series(&mut *conn, &q).await.map_err(|e| figure_error(e, &w.widget_id))?,
                )
            }
            "revenue" => Figures::Revenue(rows(insights::revenue(&mut conn, org, from, to).await)?),
            "occupancy" => Figures::Occupancy(rows(insights::occupancy(&mut conn, org, from, to).await)?),
            "deliveries" => Figures::Deliveries(rows(insights::deliveries(&mut conn, org, from, to).await)?),
            _ => Figures::ActiveAlerts(rows(reads::list_alerts(&mut *conn, org, true, 500).await)?),
        };
        widgets.push(WidgetData { widget_id: w.widget_id, title: w.title, kind: w.kind, data });
    }
    Ok(DashboardData { dashboard_id: dashboard_id.to_owned(), from, to, widgets })
}

/// The widgets of a stored dashboard definition.
pub(crate) fn stored_widgets(definition: Value) -> Result<Vec<StoredWidget>, GatewayError> {
    serde_json::from_value::<StoredDashboard>(definition)
        .map(|d| d.widgets)
        .map_err(|e| GatewayError::Unavailable(format!("alerts projection: dashboard definition: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Reports

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// `rpt_…`; the same id again replaces the report (runs already rendered stay).
    #[schema(value_type = Option<String>)]
    pub(crate) report_id: Option<ReportId>,
    pub(crate) name: String,
    /// `daily` (one local day) or `weekly` (Monday to Sunday), rendered once the period ends.
    pub(crate) schedule: String,
    /// IANA zone the periods are in (default UTC).
    #[serde(default = "utc")]
    pub(crate) time_zone: String,
    /// Any of revenue, occupancy, deliveries, alerts, in order.
    pub(crate) sections: Vec<String>,
    /// Told when a run is ready.
    #[serde(default)]
    pub(crate) recipients: Vec<ReceiverBody>,
}

fn utc() -> String {
    "UTC".into()
}

fn report_command(caller: &Caller, body: ReportRequest) -> Result<schema::DefineReport, GatewayError> {
    required("name", &body.name)?;
    one_of("schedule", &body.schedule, &SCHEDULES)?;
    if body.time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(GatewayError::invalid("time_zone", "time_zone must be an IANA zone"));
    }
    if body.sections.is_empty() {
        return Err(GatewayError::invalid("sections", "a report needs at least one section"));
    }
    for (i, s) in body.sections.iter().enumerate() {
        one_of(&format!("sections[{i}]"), s, &SECTIONS)?;
    }
    let mut recipients = Vec::with_capacity(body.recipients.len());
    for (i, r) in body.recipients.into_iter().enumerate() {
        one_of(&format!("recipients[{i}].channel"), &r.channel, &CHANNELS)?;
        recipients.push(Receiver { recipient_id: r.recipient_id.into(), channel: r.channel });
    }
    Ok(schema::DefineReport {
        metadata: metadata(caller),
        report_id: body.report_id.map_or_else(|| new_id("rpt"), String::from),
        name: body.name,
        schedule: body.schedule,
        time_zone: body.time_zone,
        sections: body.sections,
        recipients,
    })
}

#[utoipa::path(post, path = "/api/monitoring/reports", tag = "monitoring", request_body = ReportRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted; decided asynchronously (`report_id` in the answer)", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services define reports", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn define_report(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<ReportRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(define_report_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn define_report_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: ReportRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("defining reports")?;
    let command = report_command(caller, body)?;
    let aggregate = ("report_id", command.report_id.clone());
    accept(state, command, Accept { caller, trace, idempotency, aggregate, member_id: None }).await
}

#[utoipa::path(get, path = "/api/monitoring/reports", tag = "monitoring",
    params(("limit" = Option<i64>, Query, description = "1 to 500, default 100")),
    responses(
        (status = 200, description = "The organization's reports, by id", body = crate::openapi::Items<ReportView>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn reports(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    let items = reports_with(&state, &caller, query_values(params)?).await?;
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn reports_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Vec<ReportView>, GatewayError> {
    caller.require_operator("reading reports")?;
    only_params(&values, &["limit"])?;
    rows(insights::list_reports(&state.readonly, caller.organization_id.as_str(), limit(&values)?).await)
}

#[utoipa::path(get, path = "/api/monitoring/reports/{report_id}", tag = "monitoring",
    params(("report_id" = String, Path, description = "The report")),
    responses(
        (status = 200, description = "The report and its runs, latest period first (`report`, `runs`)"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such report", body = crate::openapi::ErrorBody),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    PathId(report_id): PathId<ReportId>,
) -> Result<Json<Value>, GatewayError> {
    let (report, runs) = report_with(&state, &caller, report_id.as_str()).await?;
    Ok(Json(json!({ "report": report, "runs": runs })))
}

pub(crate) async fn report_with(
    state: &AppState,
    caller: &Caller,
    report_id: &str,
) -> Result<(ReportView, Vec<RunView>), GatewayError> {
    caller.require_operator("reading reports")?;
    let org = caller.organization_id.as_str();
    // One snapshot for both reads: a run committed between them would show up beside a report
    // whose `last_period_end` does not cover it yet.
    let mut tx = state.readonly.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let report = found(insights::report(&mut *tx, org, report_id).await, || format!("report {report_id}"))?;
    let runs = rows(insights::list_runs(&mut *tx, org, report_id, 500).await)?;
    tx.commit().await?;
    Ok((report, runs))
}

#[utoipa::path(get, path = "/api/monitoring/reports/{report_id}/runs/{file}", tag = "monitoring",
    params(
        ("report_id" = String, Path, description = "The report"),
        ("file" = String, Path, description = "`<run_id>.csv` or `<run_id>.html`"),
    ),
    responses(
        (status = 200, description = "The run rendered as CSV (text/csv) or printable HTML (text/html)"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such report run or format", body = crate::openapi::ErrorBody),
    )
)]
pub async fn report_run_file(
    State(state): State<AppState>,
    caller: Caller,
    Path((report_id, file)): Path<(String, String)>,
) -> Result<Response, GatewayError> {
    let report_id: ReportId = parse("report_id", &report_id)?;
    let (content_type, body) = report_run_file_with(&state, &caller, report_id.as_str(), &file).await?;
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(disposition) = HeaderValue::from_str(&format!("inline; filename=\"{report_id}-{file}\"")) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// The content type and text of `<run_id>.csv` or `<run_id>.html`.
pub(crate) async fn report_run_file_with(
    state: &AppState,
    caller: &Caller,
    report_id: &str,
    file: &str,
) -> Result<(&'static str, String), GatewayError> {
    caller.require_operator("reading reports")?;
    let not_found = || GatewayError::NotFound(format!("report run {report_id}/{file}"));
    let (run_id, html, content_type) = if let Some(run) = file.strip_suffix(".csv") {
        (run, false, "text/csv; charset=utf-8")
    } else if let Some(run) = file.strip_suffix(".html") {
        (run, true, "text/html; charset=utf-8")
    } else {
        return Err(not_found());
    };
    let text =
        insights::run_file(&state.readonly, caller.organization_id.as_str(), report_id, run_id, html).await;
    found(text, || format!("report run {report_id}/{file}")).map(|t| (content_type, t)).map_err(|e| match e {
        GatewayError::NotFound(_) => not_found(),
        other => other,
    })
}
