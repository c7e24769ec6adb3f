//! Dashboards and reports over gRPC: typed messages mapped to and from the HTTP operations of
//! [`crate::monitoring_insight_routes`], validated the same way.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use studyspot_alerts_projection::insights::{DashboardView, ReportView, RunView};
use studyspot_bus::TraceContext;
use studyspot_grpc_api as pb;

use crate::{
    AppState, GatewayError,
    auth::Caller,
    commands::{parse, parse_opt},
    ledger::Idempotency,
    monitoring_insight_routes::{
        self as routes, DashboardRequest, Figures, ReportRequest, StoredWidget, WidgetBody, stored_widgets,
    },
    monitoring_routes::{MatcherBody, ReceiverBody},
};

pub(crate) async fn define_dashboard(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    m: pb::DefineDashboardRequest,
) -> Result<(Value, bool), GatewayError> {
    let widgets = m
        .widgets
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            Ok(WidgetBody {
                widget_id: parse_opt(&format!("widgets[{i}].widget_id"), w.widget_id.as_deref())?,
                title: w.title,
                kind: w.kind,
                metric: w.metric,
                matchers: w
                    .matchers
                    .into_iter()
                    .map(|m| MatcherBody { name: m.name, op: m.op, value: m.value })
                    .collect(),
                aggregation: w.aggregation.unwrap_or_else(|| "sum".into()),
                step_seconds: w.step_seconds.unwrap_or(3600),
                group_by: w.group_by,
            })
        })
        .collect::<Result<_, GatewayError>>()?;
    let body = DashboardRequest {
        dashboard_id: parse_opt("dashboard_id", m.dashboard_id.as_deref())?,
        name: m.name,
        widgets,
    };
    routes::define_dashboard_with(state, caller, trace, idempotency, body).await
}

fn widget(w: StoredWidget) -> pb::DashboardWidget {
    pb::DashboardWidget {
        widget_id: Some(w.widget_id),
        title: w.title,
        kind: w.kind,
        metric: w.metric,
        matchers: w
            .matchers
            .into_iter()
            .map(|m| pb::LabelMatcher { name: m.name, op: m.op, value: m.value })
            .collect(),
        aggregation: Some(w.aggregation),
        step_seconds: Some(w.step_seconds),
        group_by: w.group_by,
    }
}

pub(crate) fn dashboard(view: DashboardView) -> Result<pb::Dashboard, GatewayError> {
    Ok(pb::Dashboard {
        dashboard_id: view.dashboard_id,
        name: view.name,
        widgets: stored_widgets(view.definition)?.into_iter().map(widget).collect(),
        updated_at: view.updated_at.to_rfc3339(),
    })
}

pub(crate) async fn dashboard_data(
    state: &AppState,
    caller: &Caller,
    m: pb::DashboardDataRequest,
) -> Result<pb::DashboardData, GatewayError> {
    let values = HashMap::from([("from".to_owned(), m.from), ("to".to_owned(), m.to)]);
    let data = routes::dashboard_data_with(state, caller, &m.dashboard_id, values).await?;
    let widgets = data
        .widgets
        .into_iter()
        .map(|w| {
            let mut out =
                pb::WidgetData { widget_id: w.widget_id, title: w.title, kind: w.kind, ..Default::default() };
            match w.data {
                Figures::Series(s) => {
                    out.series = s
                        .into_iter()
                        .map(|s| pb::Series {
                            labels: s.labels.into_iter().collect(),
                            points: s
                                .points
                                .into_iter()
                                .map(|p| pb::SeriesPoint { at: p.at.to_rfc3339(), value: p.value })
                                .collect(),
                        })
                        .collect();
                }
                Figures::Revenue(r) => {
                    out.revenue = r
                        .into_iter()
                        .map(|r| pb::RevenueFigure {
                            currency: r.currency,
                            payments_succeeded: r.payments_succeeded,
                            payments_failed: r.payments_failed,
                            revenue_minor: r.revenue_minor,
                            refunds: r.refunds,
                            refunded_minor: r.refunded_minor,
                            net_minor: r.net_minor,
                        })
                        .collect();
                }
                Figures::Occupancy(o) => {
                    out.occupancy = o
                        .into_iter()
                        .map(|o| pb::OccupancyFigure {
                            venue_id: o.venue_id,
                            latest: o.latest,
                            peak: o.peak,
                            changes: o.changes,
                            capacity: o.capacity,
                            peak_ratio: o.peak_ratio,
                        })
                        .collect();
                }
                Figures::Deliveries(d) => {
                    out.deliveries = d
                        .into_iter()
                        .map(|d| pb::DeliveriesFigure {
                            channel: d.channel,
                            sent: d.sent,
                            failed: d.failed,
                            delivered: d.delivered,
                            undelivered: d.undelivered,
                            bounced: d.bounced,
                            opened: d.opened,
                            clicked: d.clicked,
                            bounce_rate: d.bounce_rate,
                        })
                        .collect();
                }
                Figures::ActiveAlerts(a) => {
                    out.active_alerts = a
                        .into_iter()
                        .map(|a| pb::ActiveAlert {
                            fingerprint: a.fingerprint,
                            rule_id: a.rule_id,
                            state: a.state,
                            severity: a.severity,
                            labels: serde_json::from_value(a.labels).unwrap_or_default(),
                            active_at: a.active_at.to_rfc3339(),
                            fired_at: a.fired_at.map(|t| t.to_rfc3339()),
                            value: a.value,
                            suppressed: a.suppressed,
                        })
                        .collect();
                }
            }
            out
        })
        .collect();
    Ok(pb::DashboardData {
        dashboard_id: data.dashboard_id,
        from: data.from.to_rfc3339(),
        to: data.to.to_rfc3339(),
        widgets,
    })
}

pub(crate) async fn define_report(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    m: pb::DefineReportRequest,
) -> Result<(Value, bool), GatewayError> {
    let body = ReportRequest {
        report_id: parse_opt("report_id", m.report_id.as_deref())?,
        name: m.name,
        schedule: m.schedule,
        time_zone: m.time_zone.unwrap_or_else(|| "UTC".into()),
        sections: m.sections,
        recipients: m
            .recipients
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let recipient_id = parse(&format!("recipients[{i}].recipient_id"), &r.recipient_id)?;
                Ok(ReceiverBody { recipient_id, channel: r.channel })
            })
            .collect::<Result<_, GatewayError>>()?,
    };
    routes::define_report_with(state, caller, trace, idempotency, body).await
}

/// A report's definition as alerts stored it.
#[derive(Deserialize)]
struct StoredReport {
    sections: Vec<String>,
    #[serde(default)]
    recipients: Vec<StoredReceiver>,
}

#[derive(Deserialize)]
struct StoredReceiver {
    recipient_id: String,
    channel: String,
}

pub(crate) fn report(view: ReportView, runs: Vec<RunView>) -> Result<pb::Report, GatewayError> {
    let stored: StoredReport = serde_json::from_value(view.definition)
        .map_err(|e| GatewayError::Unavailable(format!("alerts projection: report definition: {e}")))?;
    Ok(pb::Report {
        report_id: view.report_id,
        name: view.name,
        schedule: view.schedule,
        time_zone: view.time_zone,
        sections: stored.sections,
        recipients: stored
            .recipients
            .into_iter()
            .map(|r| pb::AlertReceiver { recipient_id: r.recipient_id, channel: r.channel })
            .collect(),
        last_period_end: view.last_period_end.map(|t| t.to_rfc3339()),
        updated_at: view.updated_at.to_rfc3339(),
        runs: runs
            .into_iter()
            .map(|r| pb::ReportRun {
                run_id: r.run_id,
                period_start: r.period_start.to_rfc3339(),
                period_end: r.period_end.to_rfc3339(),
                generated_at: r.generated_at.to_rfc3339(),
            })
            .collect(),
    })
}

pub(crate) async fn report_run_file(
    state: &AppState,
    caller: &Caller,
    m: pb::ReportRunFileRequest,
) -> Result<pb::ReportRunFile, GatewayError> {
    let file = format!("{}.{}", m.run_id, m.format);
    let (content_type, content) = routes::report_run_file_with(state, caller, &m.report_id, &file).await?;
    Ok(pb::ReportRunFile { content_type: content_type.to_owned(), content })
}
