//! Monitoring operations: health checks (targets the alerts process probes, with their status and
//! probe history) and structured logs (batched in, searched by time, level, service and text).
//! The gateway checks shapes and who may ask; alerts stores, probes and decides.

use std::collections::HashMap;

use axum::{Extension, Json, extract::State, response::Response};
use serde::Deserialize;
use serde_json::{Value, json};
use studyspot_alerts_projection::ops::{self as reads, HealthCheckView, LogFilter, LogView, ProbeView};
use studyspot_bus::TraceContext;
use studyspot_ids::HealthCheckId;
use studyspot_schemas::alerts as schema;

use crate::{
    AppState, GatewayError,
    auth::Caller,
    commands::{Accept, CommandRequest, PathId, accept, answer, metadata, new_id, one_of, required},
    error::projection_missing,
    ledger::Idempotency,
    queries::{ListParams, Page, Params, query_values, rows, time_param},
};

const KINDS: [&str; 2] = ["http", "tcp"];
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];
/// From least to most severe, as alerts ranks them.
pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];
/// At most this many log records in one request (the gateway's body limit, 64 KiB, bounds a
/// batch's size too: a larger body is 413).
pub const MAX_LOG_BATCH: usize = 1000;
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

fn label_name(field: &str, name: &str) -> Result<(), GatewayError> {
    let mut chars = name.chars();
    let ok = !name.starts_with("__")
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(GatewayError::invalid(field, format!("{field} must match [a-zA-Z_][a-zA-Z0-9_]*")))
    }
}

// ---------------------------------------------------------------------------------------------
// Health checks

fn http_kind() -> String {
    "http".into()
}
fn status_200() -> i32 {
    200
}
fn thirty() -> i64 {
    30
}
fn five_seconds() -> i64 {
    5000
}
fn three() -> i32 {
    3
}
fn critical() -> String {
    "critical".into()
}
fn yes() -> bool {
    true
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckRequest {
    /// `hck_…`; the same id again replaces the check (its status and history stay).
    #[schema(value_type = Option<String>)]
    pub(crate) health_check_id: Option<HealthCheckId>,
    /// For people, e.g. `Stripe API`; the `health_check` label of its alert.
    pub(crate) name: String,
    /// `http` (default): GET `target` must answer `expected_status`; `tcp`: `target` (`host:port`)
    /// must accept a connection.
    #[serde(default = "http_kind")]
    pub(crate) kind: String,
    /// An http(s) URL, or `host:port` for `tcp`.
    pub(crate) target: String,
    /// Default 200.
    #[serde(default = "status_200")]
    pub(crate) expected_status: i32,
    /// 1 to 86400, default 30.
    #[serde(default = "thirty")]
    pub(crate) interval_seconds: i64,
    /// 1 to 60000, default 5000.
    #[serde(default = "five_seconds")]
    pub(crate) timeout_ms: i64,
    /// Down (and alerting) after this many failed probes in a row: 1 to 100, default 3.
    #[serde(default = "three")]
    pub(crate) failure_threshold: i32,
    /// Added to its alert.
    #[serde(default)]
    pub(crate) labels: HashMap<String, String>,
    /// critical (default), warning, info.
    #[serde(default = "critical")]
    pub(crate) severity: String,
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
}

fn health_check_command(
    caller: &Caller,
    body: HealthCheckRequest,
) -> Result<schema::DefineHealthCheck, GatewayError> {
    required("name", &body.name)?;
    one_of("kind", &body.kind, &KINDS)?;
    if body.kind == "http" {
        let ok = reqwest::Url::parse(&body.target)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if !ok {
            return Err(GatewayError::invalid("target", "target must be an http(s) URL for kind http"));
        }
        if !(100..=599).contains(&body.expected_status) {
            return Err(GatewayError::invalid("expected_status", "expected_status must be 100 to 599"));
        }
    } else {
        let port = body.target.rsplit_once(':').and_then(|(host, port)| {
            (!host.is_empty() && !host.contains('/')).then(|| port.parse::<u16>().ok()).flatten()
        });
        if port.is_none_or(|p| p == 0) {
            return Err(GatewayError::invalid("target", "target must be host:port for kind tcp"));
        }
    }
    if !(1..=86_400).contains(&body.interval_seconds) {
        return Err(GatewayError::invalid("interval_seconds", "interval_seconds must be 1 to 86400"));
    }
    if !(1..=60_000).contains(&body.timeout_ms) {
        return Err(GatewayError::invalid("timeout_ms", "timeout_ms must be 1 to 60000"));
    }
    if !(1..=100).contains(&body.failure_threshold) {
        return Err(GatewayError::invalid("failure_threshold", "failure_threshold must be 1 to 100"));
    }
    one_of("severity", &body.severity, &SEVERITIES)?;
    for k in body.labels.keys() {
        label_name(&format!("labels.{k}"), k)?;
    }
    Ok(schema::DefineHealthCheck {
        metadata: metadata(caller),
        health_check_id: body.health_check_id.map_or_else(|| new_id("hck"), String::from),
        name: body.name,
        kind: body.kind,
        target: body.target,
        expected_status: body.expected_status,
        interval_seconds: body.interval_seconds,
        timeout_ms: body.timeout_ms,
        failure_threshold: body.failure_threshold,
        labels: body.labels,
        severity: body.severity,
        enabled: body.enabled,
    })
}

#[utoipa::path(post, path = "/api/monitoring/health-checks", tag = "monitoring", request_body = HealthCheckRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted; decided asynchronously (`health_check_id` in the answer)", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services define health checks", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn define_health_check(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<HealthCheckRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(define_health_check_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn define_health_check_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: HealthCheckRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("defining health checks")?;
    let command = health_check_command(caller, body)?;
    let aggregate = ("health_check_id", command.health_check_id.clone());
    accept(state, command, Accept { caller, trace, idempotency, aggregate, member_id: None }).await
}

#[utoipa::path(get, path = "/api/monitoring/health-checks", tag = "monitoring",
    params(("limit" = Option<i64>, Query, description = "1 to 200, default 50")),
    responses(
        (status = 200, description = "The organization's health checks by id, each with its status and last probe", body = crate::openapi::Items<HealthCheckView>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn health_checks(
    State(state): State<AppState>,
    caller: Caller,
    params: crate::queries::Params,
) -> Result<Json<Value>, GatewayError> {
    let items = health_checks_with(&state, &caller, query_values(params)?).await?;
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn health_checks_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Vec<HealthCheckView>, GatewayError> {
    caller.require_operator("reading health checks")?;
    let params = ListParams::parse(values, &[])?;
    rows(
        reads::list_health_checks(&state.readonly, caller.organization_id.as_str(), params.fetch_limit() - 1)
            .await,
    )
}

#[utoipa::path(get, path = "/api/monitoring/health-checks/{id}", tag = "monitoring",
    params(
        ("id" = String, Path, description = "The health check id"),
        ("limit" = Option<i64>, Query, description = "Probes in `history`: 1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page of history"),
    ),
    responses(
        (status = 200, description = "The check with its status (`check`) and its probes, newest first (`history`, `next_cursor`)", body = Value),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such health check in this organization", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn health_check(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<HealthCheckId>,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    let (check, history) = health_check_with(&state, &caller, id.as_str(), query_values(params)?).await?;
    Ok(Json(json!({ "check": check, "history": history.items, "next_cursor": history.next_cursor })))
}

pub(crate) async fn health_check_with(
    state: &AppState,
    caller: &Caller,
    id: &str,
    values: HashMap<String, String>,
) -> Result<(HealthCheckView, Page<ProbeView>), GatewayError> {
    caller.require_operator("reading health checks")?;
    let params = ListParams::parse(values, &[])?;
    let not_found = || GatewayError::NotFound(format!("health check {id}"));
    let check = match reads::health_check(&state.readonly, caller.organization_id.as_str(), id).await {
        Ok(Some(check)) => check,
        Ok(None) => return Err(not_found()),
        Err(e) if projection_missing(&e) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let history = rows(
        reads::probe_history(
            &state.readonly,
            caller.organization_id.as_str(),
            id,
            params.after(),
            params.fetch_limit(),
        )
        .await,
    )?;
    Ok((check, params.page(history, |p| (p.probed_at, p.event_id.as_str()))))
}

// ---------------------------------------------------------------------------------------------
// Logs

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogRecordBody {
    /// RFC 3339 or milliseconds since the epoch; default now.
    pub(crate) time: Option<Value>,
    /// trace, debug, info, warn, error, fatal.
    pub(crate) level: String,
    /// The service that logged it, e.g. `billing`.
    pub(crate) service: String,
    pub(crate) message: String,
    /// Structured fields; values that are not strings are kept as their JSON text.
    #[serde(default)]
    pub(crate) fields: HashMap<String, Value>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsRequest {
    /// 1 to 1000 records (within the 64 KiB body limit), stored all or none.
    pub(crate) records: Vec<LogRecordBody>,
}

fn log_time(field: &str, value: Option<Value>, now: i64) -> Result<i64, GatewayError> {
    let bad = || GatewayError::invalid(field, format!("{field} must be RFC 3339 or epoch milliseconds"));
    match value {
        None | Some(Value::Null) => Ok(now),
        Some(Value::Number(n)) => {
            n.as_i64().filter(|ms| chrono::DateTime::from_timestamp_millis(*ms).is_some()).ok_or_else(bad)
        }
        Some(Value::String(s)) => {
            chrono::DateTime::parse_from_rfc3339(&s).map(|t| t.timestamp_millis()).map_err(|_| bad())
        }
        Some(_) => Err(bad()),
    }
}

pub(crate) fn logs_command(caller: &Caller, body: LogsRequest) -> Result<schema::RecordLogs, GatewayError> {
    if body.records.is_empty() || body.records.len() > MAX_LOG_BATCH {
        return Err(GatewayError::invalid(
            "records",
            format!("records must hold 1 to {MAX_LOG_BATCH} records"),
        ));
    }
    let meta = metadata(caller);
    let mut records = Vec::with_capacity(body.records.len());
    for (i, r) in body.records.into_iter().enumerate() {
        one_of(&format!("records[{i}].level"), &r.level, &LEVELS)?;
        required(&format!("records[{i}].service"), &r.service)?;
        if r.message.len() > MAX_MESSAGE_BYTES {
            return Err(GatewayError::invalid(
                &format!("records[{i}].message"),
                format!("message must be at most {MAX_MESSAGE_BYTES} bytes"),
            ));
        }
        let time = log_time(&format!("records[{i}].time"), r.time, meta.occurred_at)?;
        let fields: HashMap<String, String> = r
            .fields
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect();
        records.push(schema::LogRecord {
            time,
            level: r.level,
            service: r.service,
            message: r.message,
            fields,
        });
    }
    Ok(schema::RecordLogs { metadata: meta, records })
}

#[utoipa::path(post, path = "/api/monitoring/logs", tag = "monitoring", request_body = LogsRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer and stores nothing twice")),
    responses(
        (status = 202, description = "Accepted; stored asynchronously", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services send logs", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`, e.g. `records[3].level`)", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn record_logs(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<LogsRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(record_logs_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn record_logs_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: LogsRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("sending logs")?;
    let command = logs_command(caller, body)?;
    let aggregate = ("service", command.records[0].service.clone());
    accept(state, command, Accept { caller, trace, idempotency, aggregate, member_id: None }).await
}

#[utoipa::path(get, path = "/api/monitoring/logs", tag = "monitoring",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339; records logged at or after"),
        ("to" = Option<String>, Query, description = "RFC 3339; records logged before"),
        ("level" = Option<String>, Query, description = "At least this level: trace, debug, info, warn, error, fatal"),
        ("service" = Option<String>, Query, description = "Only this service's records"),
        ("q" = Option<String>, Query, description = "Full-text search over the message and field values: words (all must occur), \"a phrase\", -excluded"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<LogView>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn search_logs(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(search_logs_with(&state, &caller, query_values(params)?).await?.json())
}

pub(crate) async fn search_logs_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<LogView>, GatewayError> {
    caller.require_operator("reading logs")?;
    let from = time_param(&values, "from")?;
    let to = time_param(&values, "to")?;
    let params = ListParams::parse(values, &["from", "to", "level", "service", "q"])?;
    let min_level_rank = match params.get("level") {
        None => None,
        Some(level) => {
            one_of("level", level, &LEVELS)?;
            LEVELS.iter().position(|l| *l == level).and_then(|i| i16::try_from(i).ok())
        }
    };
    let filter = LogFilter {
        organization_id: caller.organization_id.as_str(),
        from,
        to,
        min_level_rank,
        service: params.get("service"),
        text: params.get("q").filter(|q| !q.trim().is_empty()),
    };
    let found =
        rows(reads::search_logs(&state.readonly, &filter, params.after(), params.fetch_limit()).await)?;
    Ok(params.page(found, |l| (l.logged_at, l.log_id.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_times_are_rfc3339_or_epoch_milliseconds() {
        assert_eq!(log_time("t", None, 5).ok(), Some(5));
        assert_eq!(log_time("t", Some(json!(1_700_000_000_000_i64)), 5).ok(), Some(1_700_000_000_000));
        assert_eq!(log_time("t", Some(json!("2023-11-14T22:13:20Z")), 5).ok(), Some(1_700_000_000_000));
        assert!(log_time("t", Some(json!("yesterday")), 5).is_err());
        assert!(log_time("t", Some(json!(true)), 5).is_err());
    }
}
