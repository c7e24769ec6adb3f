//! Health checks and logs over gRPC: typed messages mapped to and from the HTTP operations of
//! [`crate::monitoring_ops_routes`], validated the same way.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use studyspot_alerts_projection::ops::{HealthCheckView, LogView, ProbeView};
use studyspot_bus::TraceContext;
use studyspot_grpc_api as pb;

use crate::{
    AppState, GatewayError,
    auth::Caller,
    commands::parse_opt,
    ledger::Idempotency,
    monitoring_ops_routes::{self as routes, HealthCheckRequest, LogRecordBody, LogsRequest},
};

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A JSON object of strings (labels, fields) as a map; other values as their JSON text.
fn string_map(v: Value) -> BTreeMap<String, String> {
    match v {
        Value::Object(o) => o
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

pub(crate) async fn define_health_check(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    m: pb::DefineHealthCheckRequest,
) -> Result<(Value, bool), GatewayError> {
    let defaults: HealthCheckRequest =
        serde_json::from_value(serde_json::json!({ "name": m.name, "target": m.target }))
            .map_err(|e| GatewayError::Internal(e.to_string()))?;
    let body = HealthCheckRequest {
        health_check_id: parse_opt("health_check_id", m.health_check_id.as_deref())?,
        kind: m.kind.unwrap_or(defaults.kind.clone()),
        expected_status: m.expected_status.unwrap_or(defaults.expected_status),
        interval_seconds: m.interval_seconds.unwrap_or(defaults.interval_seconds),
        timeout_ms: m.timeout_ms.unwrap_or(defaults.timeout_ms),
        failure_threshold: m.failure_threshold.unwrap_or(defaults.failure_threshold),
        labels: m.labels.into_iter().collect(),
        severity: m.severity.unwrap_or(defaults.severity.clone()),
        enabled: m.enabled.unwrap_or(defaults.enabled),
        ..defaults
    };
    routes::define_health_check_with(state, caller, trace, idempotency, body).await
}

pub(crate) fn health_check(v: HealthCheckView) -> pb::HealthCheck {
    pb::HealthCheck {
        health_check_id: v.health_check_id,
        name: v.name,
        kind: v.kind,
        target: v.target,
        expected_status: v.expected_status,
        interval_seconds: v.interval_seconds,
        timeout_ms: v.timeout_ms,
        failure_threshold: v.failure_threshold,
        labels: string_map(v.labels),
        severity: v.severity,
        enabled: v.enabled,
        status: v.status,
        consecutive_failures: v.consecutive_failures,
        last_probed_at: v.last_probed_at.map(rfc3339),
        last_success: v.last_success,
        last_latency_ms: v.last_latency_ms,
        last_status_code: v.last_status_code,
        last_error: v.last_error,
        status_since: v.status_since.map(rfc3339),
        updated_at: rfc3339(v.updated_at),
    }
}

fn probe(p: ProbeView) -> pb::HealthCheckProbe {
    pb::HealthCheckProbe {
        event_id: p.event_id,
        success: p.success,
        latency_ms: p.latency_ms,
        status_code: p.status_code,
        error: p.error,
        status: p.status,
        probed_at: rfc3339(p.probed_at),
    }
}

pub(crate) async fn health_checks(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<pb::HealthCheckPage, GatewayError> {
    let items = routes::health_checks_with(state, caller, values).await?;
    Ok(pb::HealthCheckPage { items: items.into_iter().map(health_check).collect() })
}

pub(crate) async fn health_check_detail(
    state: &AppState,
    caller: &Caller,
    m: pb::HealthCheckRequest,
) -> Result<pb::HealthCheckDetail, GatewayError> {
    let mut values = HashMap::new();
    if let Some(limit) = m.limit {
        values.insert("limit".to_owned(), limit.to_string());
    }
    if let Some(cursor) = m.cursor {
        values.insert("cursor".to_owned(), cursor);
    }
    let (check, history) = routes::health_check_with(state, caller, &m.health_check_id, values).await?;
    Ok(pb::HealthCheckDetail {
        check: Some(health_check(check)),
        history: history.items.into_iter().map(probe).collect(),
        next_cursor: history.next_cursor,
    })
}

pub(crate) async fn record_logs(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    m: pb::RecordLogsRequest,
) -> Result<(Value, bool), GatewayError> {
    let records = m
        .records
        .into_iter()
        .map(|r| LogRecordBody {
            time: r.time.map(Value::String),
            level: r.level,
            service: r.service,
            message: r.message,
            fields: r.fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect(),
        })
        .collect();
    routes::record_logs_with(state, caller, trace, idempotency, LogsRequest { records }).await
}

fn log_entry(l: LogView) -> pb::LogEntry {
    pb::LogEntry {
        log_id: l.log_id,
        logged_at: rfc3339(l.logged_at),
        level: l.level,
        service: l.service,
        message: l.message,
        fields: string_map(l.fields),
    }
}

pub(crate) async fn search_logs(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<pb::LogPage, GatewayError> {
    let page = routes::search_logs_with(state, caller, values).await?;
    Ok(pb::LogPage { items: page.items.into_iter().map(log_entry).collect(), next_cursor: page.next_cursor })
}
