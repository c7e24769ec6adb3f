//! Monitoring: metric samples (one or a batch), alert rules, notification routes, inhibitions,
//! silences, and the reads of rules, silences, active alerts and their history. The gateway checks
//! shapes (names, operators, enumerations) and who may ask; alerts decides (a regex that does not
//! compile is refused there as `invalid_matcher`). Times are epoch milliseconds or RFC 3339 as
//! noted per field.

use std::collections::HashMap;

use axum::{Extension, Json, extract::State, response::Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use studyspot_alerts_projection::reads::{self, AlertView, HistoryEntry, RuleView, SilenceView};
use studyspot_bus::TraceContext;
use studyspot_ids::{InhibitRuleId, RecipientId, RouteId, RuleId, SilenceId};
use studyspot_schemas::alerts::{self as schema, Matcher, Receiver, TimeInterval};

use crate::{
    AppState, GatewayError,
    auth::Caller,
    commands::{
        self, Accept, CommandRequest, MetricSampleRequest, accept, answer, metadata, new_id, one_of, required,
    },
    ledger::Idempotency,
    queries::{Params, only_params, query_values, rows},
};

/// At most this many samples in one request.
pub const MAX_BATCH: usize = 1000;
const KINDS: [&str; 3] = ["threshold", "rate", "ratio"];
pub(crate) const AGGREGATIONS: [&str; 7] = ["avg", "sum", "min", "max", "count", "last", "increase"];
const COMPARISONS: [&str; 6] = [">", ">=", "<", "<=", "==", "!="];
const MATCH_OPS: [&str; 4] = ["=", "!=", "=~", "!~"];
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];
pub(crate) const CHANNELS: [&str; 6] = ["email", "sms", "whatsapp", "push", "in_app", "webhook"];
const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

pub(crate) fn metric_name(field: &str, name: &str) -> Result<(), GatewayError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if ok {
        Ok(())
    } else {
        Err(GatewayError::invalid(field, format!("{field} must match [a-zA-Z_:][a-zA-Z0-9_:]*")))
    }
}

pub(crate) fn label_name(field: &str, name: &str) -> Result<(), GatewayError> {
    let mut chars = name.chars();
    let ok = !name.starts_with("__")
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(GatewayError::invalid(
            field,
            format!("{field} {name:?} must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __"),
        ))
    }
}

fn labels(field: &str, labels: &HashMap<String, String>) -> Result<(), GatewayError> {
    labels.keys().try_for_each(|k| label_name(&format!("{field}.{k}"), k))
}

pub(crate) fn rfc3339(field: &str, value: &str) -> Result<DateTime<Utc>, GatewayError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| GatewayError::invalid(field, format!("{field} must be an RFC 3339 time")))
}

// ---------------------------------------------------------------------------------------------
// Samples

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsRequest {
    /// One sample: `metric`, `labels`, `value`, `sampled_at` (ms since epoch, default now) …
    pub(crate) metric: Option<String>,
    pub(crate) labels: Option<HashMap<String, String>>,
    pub(crate) value: Option<f64>,
    pub(crate) sampled_at: Option<i64>,
    /// … or a batch of up to 1000 (stored all or none), without the single fields.
    pub(crate) samples: Option<Vec<MetricSampleRequest>>,
}

#[utoipa::path(post, path = "/api/monitoring/metrics", tag = "monitoring", request_body = MetricsRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer and produces nothing new"),
        ("X-Correlation-Id" = Option<String>, Header, description = "Carried on every event the command causes"),
    ),
    responses(
        (status = 202, description = "Accepted; decided asynchronously", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services record samples", body = crate::openapi::ErrorBody),
        (status = 409, description = "The Idempotency-Key's first request is still in flight", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`, e.g. `samples[3].metric`)", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn record_metrics(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<MetricsRequest>,
) -> Result<Response, GatewayError> {
    let body = request.body;
    let Some(samples) = body.samples else {
        // One sample: the single-sample command as before.
        let single = MetricSampleRequest {
            metric: body.metric.unwrap_or_default(),
            labels: body.labels.unwrap_or_default(),
            value: body.value.ok_or_else(|| GatewayError::invalid("value", "value is required"))?,
            sampled_at: body.sampled_at,
        };
        metric_name("metric", &single.metric)?;
        labels("labels", &single.labels)?;
        let request = CommandRequest { body: single, idempotency: request.idempotency };
        return commands::record_metric_sample(State(state), caller, Extension(trace), request).await;
    };
    if body.metric.is_some() || body.labels.is_some() || body.value.is_some() || body.sampled_at.is_some() {
        return Err(GatewayError::invalid("samples", "send either one sample or `samples`, not both"));
    }
    Ok(answer(record_samples_with(&state, &caller, &trace, request.idempotency, samples).await?))
}

/// The batch command behind `record_metrics`, whichever protocol it came by.
pub(crate) async fn record_samples_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    samples: Vec<MetricSampleRequest>,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("recording metric samples")?;
    if samples.is_empty() || samples.len() > MAX_BATCH {
        return Err(GatewayError::invalid("samples", format!("samples must hold 1 to {MAX_BATCH} samples")));
    }
    let now = metadata(caller).occurred_at;
    let mut batch = Vec::with_capacity(samples.len());
    for (i, s) in samples.into_iter().enumerate() {
        metric_name(&format!("samples[{i}].metric"), &s.metric)?;
        labels(&format!("samples[{i}].labels"), &s.labels)?;
        if !s.value.is_finite() {
            return Err(GatewayError::invalid(
                &format!("samples[{i}].value"),
                "value must be a finite number",
            ));
        }
        batch.push(schema::MetricSample {
            metric: s.metric,
            labels: s.labels,
            value: s.value,
            sampled_at: s.sampled_at.unwrap_or(now),
        });
    }
    let first = batch[0].metric.clone();
    let command = schema::RecordMetricSamples { metadata: metadata(caller), samples: batch };
    let how = Accept { caller, trace, idempotency, aggregate: ("metric", first), member_id: None };
    accept(state, command, how).await
}

// ---------------------------------------------------------------------------------------------
// Rules, routes, inhibitions, silences

#[derive(Deserialize, utoipa::ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct MatcherBody {
    /// A label name.
    pub(crate) name: String,
    /// `=`, `!=`, `=~` or `!~` (regexes match the whole value).
    pub(crate) op: String,
    pub(crate) value: String,
}

pub(crate) fn matchers(field: &str, body: Vec<MatcherBody>) -> Result<Vec<Matcher>, GatewayError> {
    body.into_iter()
        .enumerate()
        .map(|(i, m)| {
            label_name(&format!("{field}[{i}].name"), &m.name)?;
            one_of(&format!("{field}[{i}].op"), &m.op, &MATCH_OPS)?;
            Ok(Matcher { name: m.name, op: m.op, value: m.value })
        })
        .collect()
}

fn four_hours() -> i64 {
    4 * 3600
}

fn yes() -> bool {
    true
}

fn threshold_kind() -> String {
    "threshold".into()
}

fn avg() -> String {
    "avg".into()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleRequest {
    /// `rul_…`; the same id again replaces the rule (its alerts keep their state).
    #[schema(value_type = Option<String>)]
    pub(crate) rule_id: Option<RuleId>,
    /// The `alertname` label, e.g. `PaymentFailureRate`.
    pub(crate) name: String,
    /// `threshold` (default): the aggregation of the window's samples; `rate`: their sum per
    /// second; `ratio`: sum of `metric{matchers}` over sum of `denominator_metric{denominator_matchers}`.
    #[serde(default = "threshold_kind")]
    pub(crate) kind: String,
    pub(crate) metric: String,
    #[serde(default)]
    pub(crate) matchers: Vec<MatcherBody>,
    /// For `threshold`: avg (default), sum, min, max, count, last.
    #[serde(default = "avg")]
    pub(crate) aggregation: String,
    pub(crate) denominator_metric: Option<String>,
    #[serde(default)]
    pub(crate) denominator_matchers: Vec<MatcherBody>,
    pub(crate) window_seconds: i64,
    /// Pending this long before firing (default 0).
    #[serde(default)]
    pub(crate) for_seconds: i64,
    /// `>`, `>=`, `<`, `<=`, `==`, `!=`.
    pub(crate) op: String,
    pub(crate) threshold: f64,
    /// critical, warning, info.
    pub(crate) severity: String,
    #[serde(default)]
    pub(crate) labels: HashMap<String, String>,
    #[serde(default)]
    pub(crate) annotations: HashMap<String, String>,
    #[serde(default)]
    pub(crate) group_by: Vec<String>,
    /// Told again after this long while firing (default 4 h; 0: once).
    #[serde(default = "four_hours")]
    pub(crate) repeat_interval_seconds: i64,
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
}

fn rule_command(caller: &Caller, body: AlertRuleRequest) -> Result<schema::DefineAlertRule, GatewayError> {
    required("name", &body.name)?;
    one_of("kind", &body.kind, &KINDS)?;
    metric_name("metric", &body.metric)?;
    one_of("aggregation", &body.aggregation, &AGGREGATIONS)?;
    if let Some(m) = &body.denominator_metric {
        metric_name("denominator_metric", m)?;
    }
    if body.window_seconds <= 0 || body.window_seconds > 31 * 86_400 {
        return Err(GatewayError::invalid("window_seconds", "window_seconds must be 1 to 2678400 (31 days)"));
    }
    if body.for_seconds < 0 {
        return Err(GatewayError::invalid("for_seconds", "for_seconds must not be negative"));
    }
    if body.repeat_interval_seconds < 0 {
        return Err(GatewayError::invalid(
            "repeat_interval_seconds",
            "repeat_interval_seconds must not be negative",
        ));
    }
    one_of("op", &body.op, &COMPARISONS)?;
    if !body.threshold.is_finite() {
        return Err(GatewayError::invalid("threshold", "threshold must be a finite number"));
    }
    one_of("severity", &body.severity, &SEVERITIES)?;
    labels("labels", &body.labels)?;
    for (i, l) in body.group_by.iter().enumerate() {
        label_name(&format!("group_by[{i}]"), l)?;
    }
    Ok(schema::DefineAlertRule {
        metadata: metadata(caller),
        rule_id: body.rule_id.map_or_else(|| new_id("rul"), String::from),
        name: body.name,
        kind: body.kind,
        metric: body.metric,
        matchers: matchers("matchers", body.matchers)?,
        aggregation: body.aggregation,
        denominator_metric: body.denominator_metric,
        denominator_matchers: matchers("denominator_matchers", body.denominator_matchers)?,
        window_seconds: body.window_seconds,
        for_seconds: body.for_seconds,
        op: body.op,
        threshold: body.threshold,
        severity: body.severity,
        labels: body.labels,
        annotations: body.annotations,
        group_by: body.group_by,
        repeat_interval_seconds: body.repeat_interval_seconds,
        enabled: body.enabled,
    })
}

#[utoipa::path(post, path = "/api/monitoring/alerts", tag = "monitoring", request_body = AlertRuleRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted; decided asynchronously (`rule_id` in the answer)", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services define alert rules", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn define_rule(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<AlertRuleRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(define_rule_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn define_rule_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: AlertRuleRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("defining alert rules")?;
    let command = rule_command(caller, body)?;
    let aggregate = ("rule_id", command.rule_id.clone());
    accept(state, command, Accept { caller, trace, idempotency, aggregate, member_id: None }).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiverBody {
    /// Notifications' recipient: a member or operator id.
    #[schema(value_type = String)]
    pub(crate) recipient_id: RecipientId,
    /// email, sms, whatsapp, push, in_app, webhook.
    pub(crate) channel: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalBody {
    /// monday … sunday; empty: every day.
    #[serde(default)]
    pub(crate) weekdays: Vec<String>,
    /// `HH:MM` local time, inclusive.
    pub(crate) start: String,
    /// `HH:MM` local time, exclusive; `24:00` for midnight.
    pub(crate) end: String,
    /// IANA zone, e.g. Europe/Berlin.
    pub(crate) time_zone: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    /// `rte_…`; the same id again replaces the route.
    #[schema(value_type = Option<String>)]
    pub(crate) route_id: Option<RouteId>,
    /// Alerts matching all of these (none: every alert) go to the receivers.
    #[serde(default)]
    pub(crate) matchers: Vec<MatcherBody>,
    pub(crate) receivers: Vec<ReceiverBody>,
    /// While one of these holds, the route tells nobody (e.g. outside opening hours).
    #[serde(default)]
    pub(crate) mute_time_intervals: Vec<TimeIntervalBody>,
    /// Alertmanager's grouping: alerts with equal values of these labels are told in one
    /// notification. Absent or `["..."]`: each alert on its own.
    pub(crate) group_by: Option<Vec<String>>,
    /// Seconds a new group collects alerts before its first notification (default 0).
    #[serde(default)]
    pub(crate) group_wait_seconds: i64,
    /// Seconds after a group's notification before additions and resolutions are told (default 0).
    #[serde(default)]
    pub(crate) group_interval_seconds: i64,
}

fn minutes(field: &str, hhmm: &str) -> Result<i32, GatewayError> {
    let bad = || GatewayError::invalid(field, format!("{field} must be HH:MM from 00:00 to 24:00"));
    let (h, m) = hhmm.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let total = h * 60 + m;
    if (0..=24).contains(&h) && (0..60).contains(&m) && total <= 1440 { Ok(total) } else { Err(bad()) }
}

#[utoipa::path(post, path = "/api/monitoring/routes", tag = "monitoring", request_body = RouteRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted; decided asynchronously (`route_id` in the answer)", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services define routes", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn define_route(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<RouteRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(define_route_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn define_route_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: RouteRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("defining alert routes")?;
    if body.receivers.is_empty() {
        return Err(GatewayError::invalid("receivers", "a route needs at least one receiver"));
    }
    let mut receivers = Vec::with_capacity(body.receivers.len());
    for (i, r) in body.receivers.into_iter().enumerate() {
        one_of(&format!("receivers[{i}].channel"), &r.channel, &CHANNELS)?;
        receivers.push(Receiver { recipient_id: r.recipient_id.into(), channel: r.channel });
    }
    let mut mute = Vec::with_capacity(body.mute_time_intervals.len());
    for (i, t) in body.mute_time_intervals.into_iter().enumerate() {
        let field = format!("mute_time_intervals[{i}]");
        for (j, d) in t.weekdays.iter().enumerate() {
            one_of(&format!("{field}.weekdays[{j}]"), d, &WEEKDAYS)?;
        }
        let (start, end) =
            (minutes(&format!("{field}.start"), &t.start)?, minutes(&format!("{field}.end"), &t.end)?);
        if start >= end {
            return Err(GatewayError::invalid(&format!("{field}.end"), "end must be after start"));
        }
        if t.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(GatewayError::invalid(
                &format!("{field}.time_zone"),
                "time_zone must be an IANA zone",
            ));
        }
        mute.push(TimeInterval {
            weekdays: t.weekdays,
            start_minute: start,
            end_minute: end,
            time_zone: t.time_zone,
        });
    }
    let group_by = body.group_by.unwrap_or_else(|| vec!["...".to_owned()]);
    if group_by.iter().any(|l| l == "...") && group_by.len() > 1 {
        return Err(GatewayError::invalid("group_by", "\"...\" groups by every label and stands alone"));
    }
    for (i, l) in group_by.iter().enumerate().filter(|(_, l)| *l != "...") {
        label_name(&format!("group_by[{i}]"), l)?;
    }
    if body.group_wait_seconds < 0 || body.group_interval_seconds < 0 {
        return Err(GatewayError::invalid(
            "group_wait_seconds",
            "group_wait and group_interval may not be negative",
        ));
    }
    let route_id = body.route_id.map_or_else(|| new_id("rte"), String::from);
    let command = schema::DefineRoute {
        metadata: metadata(caller),
        route_id: route_id.clone(),
        matchers: matchers("matchers", body.matchers)?,
        receivers,
        mute_time_intervals: mute,
        group_by,
        group_wait_seconds: body.group_wait_seconds,
        group_interval_seconds: body.group_interval_seconds,
    };
    accept(
        state,
        command,
        Accept { caller, trace, idempotency, aggregate: ("route_id", route_id), member_id: None },
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleRequest {
    /// `inh_…`; the same id again replaces it.
    #[schema(value_type = Option<String>)]
    pub(crate) inhibit_rule_id: Option<InhibitRuleId>,
    /// While an alert matching these fires …
    pub(crate) source_matchers: Vec<MatcherBody>,
    /// … alerts matching these …
    pub(crate) target_matchers: Vec<MatcherBody>,
    /// … with the same values of these labels are not told.
    #[serde(default)]
    pub(crate) equal: Vec<String>,
}

#[utoipa::path(post, path = "/api/monitoring/inhibit-rules", tag = "monitoring", request_body = InhibitRuleRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted; decided asynchronously (`inhibit_rule_id` in the answer)", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services define inhibitions", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn define_inhibit_rule(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<InhibitRuleRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(define_inhibit_rule_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn define_inhibit_rule_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: InhibitRuleRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("defining inhibitions")?;
    if body.source_matchers.is_empty() {
        return Err(GatewayError::invalid("source_matchers", "source_matchers must not be empty"));
    }
    if body.target_matchers.is_empty() {
        return Err(GatewayError::invalid("target_matchers", "target_matchers must not be empty"));
    }
    for (i, l) in body.equal.iter().enumerate() {
        label_name(&format!("equal[{i}]"), l)?;
    }
    let id = body.inhibit_rule_id.map_or_else(|| new_id("inh"), String::from);
    let command = schema::DefineInhibitRule {
        metadata: metadata(caller),
        inhibit_rule_id: id.clone(),
        source_matchers: matchers("source_matchers", body.source_matchers)?,
        target_matchers: matchers("target_matchers", body.target_matchers)?,
        equal: body.equal,
    };
    accept(
        state,
        command,
        Accept { caller, trace, idempotency, aggregate: ("inhibit_rule_id", id), member_id: None },
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    /// `sil_…`; the same id again replaces the silence.
    #[schema(value_type = Option<String>)]
    pub(crate) silence_id: Option<SilenceId>,
    /// Alerts matching all of these are not told.
    pub(crate) matchers: Vec<MatcherBody>,
    /// RFC 3339; default now.
    pub(crate) starts_at: Option<String>,
    /// RFC 3339, after `starts_at`.
    pub(crate) ends_at: String,
    #[serde(default)]
    pub(crate) comment: String,
    /// Set to expire the silence named by `silence_id` now instead (other fields are ignored but
    /// must still be well-formed).
    #[serde(default)]
    pub(crate) expire: bool,
}

#[utoipa::path(post, path = "/api/monitoring/silences", tag = "monitoring", request_body = SilenceRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted; decided asynchronously (`silence_id` in the answer)", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services silence alerts", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn create_silence(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<SilenceRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(create_silence_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn create_silence_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: SilenceRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("silencing alerts")?;
    let meta = metadata(caller);
    if body.expire {
        let silence_id = body
            .silence_id
            .map(String::from)
            .ok_or_else(|| GatewayError::invalid("silence_id", "silence_id is required to expire"))?;
        let command = schema::ExpireSilence { metadata: meta, silence_id: silence_id.clone() };
        let aggregate = ("silence_id", silence_id);
        return accept(state, command, Accept { caller, trace, idempotency, aggregate, member_id: None })
            .await;
    }
    if body.matchers.is_empty() {
        return Err(GatewayError::invalid("matchers", "a silence needs at least one matcher"));
    }
    let starts_at = match &body.starts_at {
        Some(s) => rfc3339("starts_at", s)?.timestamp_millis(),
        None => meta.occurred_at,
    };
    let ends_at = rfc3339("ends_at", &body.ends_at)?.timestamp_millis();
    if ends_at <= starts_at {
        return Err(GatewayError::invalid("ends_at", "ends_at must be after starts_at"));
    }
    let silence_id = body.silence_id.map_or_else(|| new_id("sil"), String::from);
    let command = schema::CreateSilence {
        metadata: meta,
        silence_id: silence_id.clone(),
        matchers: matchers("matchers", body.matchers)?,
        starts_at,
        ends_at,
        comment: body.comment,
    };
    accept(
        state,
        command,
        Accept { caller, trace, idempotency, aggregate: ("silence_id", silence_id), member_id: None },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Reads

pub(crate) fn limit(values: &HashMap<String, String>) -> Result<i64, GatewayError> {
    match values.get("limit") {
        None => Ok(100),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| GatewayError::invalid("limit", "limit must be 1 to 500")),
    }
}

#[utoipa::path(get, path = "/api/monitoring/alerts", tag = "monitoring",
    params(("limit" = Option<i64>, Query, description = "1 to 500, default 100")),
    responses(
        (status = 200, description = "The organization's alert rules, by id", body = crate::openapi::Items<RuleView>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn rules(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    let items = rules_with(&state, &caller, query_values(params)?).await?;
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn rules_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Vec<RuleView>, GatewayError> {
    caller.require_operator("reading alert rules")?;
    only_params(&values, &["limit"])?;
    rows(reads::list_rules(&state.readonly, caller.organization_id.as_str(), limit(&values)?).await)
}

#[utoipa::path(get, path = "/api/monitoring/silences", tag = "monitoring",
    params(("limit" = Option<i64>, Query, description = "1 to 500, default 100")),
    responses(
        (status = 200, description = "Silences, latest start first, with their status now", body = crate::openapi::Items<SilenceView>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn silences(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    let items = silences_with(&state, &caller, query_values(params)?).await?;
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn silences_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Vec<SilenceView>, GatewayError> {
    caller.require_operator("reading silences")?;
    only_params(&values, &["limit"])?;
    rows(
        reads::list_silences(&state.readonly, caller.organization_id.as_str(), Utc::now(), limit(&values)?)
            .await,
    )
}

#[utoipa::path(get, path = "/api/monitoring/alerts/active", tag = "monitoring",
    params(("limit" = Option<i64>, Query, description = "1 to 500, default 100")),
    responses(
        (status = 200, description = "Pending and firing alerts, newest first, with why one is not told", body = crate::openapi::Items<AlertView>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn active_alerts(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    let items = active_alerts_with(&state, &caller, query_values(params)?).await?;
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn active_alerts_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Vec<AlertView>, GatewayError> {
    caller.require_operator("reading alerts")?;
    only_params(&values, &["limit"])?;
    rows(reads::list_alerts(&state.readonly, caller.organization_id.as_str(), true, limit(&values)?).await)
}

#[utoipa::path(get, path = "/api/monitoring/alerts/history", tag = "monitoring",
    params(
        ("rule_id" = Option<String>, Query, description = "Only this rule's alerts"),
        ("limit" = Option<i64>, Query, description = "1 to 500, default 100"),
    ),
    responses(
        (status = 200, description = "Every state change and notification decision, oldest first", body = crate::openapi::Items<HistoryEntry>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn alert_history(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    let items = alert_history_with(&state, &caller, query_values(params)?).await?;
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn alert_history_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Vec<HistoryEntry>, GatewayError> {
    caller.require_operator("reading alert history")?;
    only_params(&values, &["rule_id", "limit"])?;
    let rule_id = values.get("rule_id").map(String::as_str).filter(|v| !v.is_empty());
    rows(
        reads::list_history(&state.readonly, caller.organization_id.as_str(), rule_id, limit(&values)?).await,
    )
}

// ---------------------------------------------------------------------------------------------
// gRPC: the same operations (see `grpc.rs`).

/// The monitoring commands whose gRPC request carries the HTTP body as JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) enum JsonCommand {
    Rule,
    Route,
    InhibitRule,
    Silence,
}

fn json_body<T: serde::de::DeserializeOwned>(body_json: &str) -> Result<T, GatewayError> {
    crate::nul::check_json(body_json.as_bytes())?;
    let invalid_json = |e: serde_json::Error| {
        let field = e.to_string().split('`').nth(1).map(str::to_owned);
        GatewayError::InvalidJson { message: e.to_string(), field }
    };
    let mut json = serde_json::Deserializer::from_str(body_json);
    let body = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        // A typed id or value that did not parse: the field's validation failure, as over HTTP.
        let path = e.path().to_string();
        let e = e.into_inner();
        commands::typed_field_error(&path, &e.to_string()).unwrap_or_else(|| invalid_json(e))
    })?;
    json.end().map_err(invalid_json)?;
    Ok(body)
}

/// A monitoring command from its JSON body; the answer and its aggregate's field.
pub(crate) async fn json_command_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    command: JsonCommand,
    body_json: &str,
) -> Result<((Value, bool), &'static str), GatewayError> {
    Ok(match command {
        JsonCommand::Rule => {
            (define_rule_with(state, caller, trace, idempotency, json_body(body_json)?).await?, "rule_id")
        }
        JsonCommand::Route => {
            (define_route_with(state, caller, trace, idempotency, json_body(body_json)?).await?, "route_id")
        }
        JsonCommand::InhibitRule => (
            define_inhibit_rule_with(state, caller, trace, idempotency, json_body(body_json)?).await?,
            "inhibit_rule_id",
        ),
        JsonCommand::Silence => (
            create_silence_with(state, caller, trace, idempotency, json_body(body_json)?).await?,
            "silence_id",
        ),
    })
}

/// The monitoring lists, for gRPC.
#[derive(Debug, Clone, Copy)]
pub(crate) enum List {
    Rules,
    Silences,
    ActiveAlerts,
    History,
}

fn to_json_items<T: serde::Serialize>(items: Vec<T>) -> Result<Vec<String>, GatewayError> {
    items
        .iter()
        .map(|i| serde_json::to_string(i).map_err(|e| GatewayError::Internal(e.to_string())))
        .collect()
}

pub(crate) async fn list_json_with(
    state: &AppState,
    caller: &Caller,
    list: List,
    values: HashMap<String, String>,
) -> Result<Vec<String>, GatewayError> {
    match list {
        List::Rules => to_json_items(rules_with(state, caller, values).await?),
        List::Silences => to_json_items(silences_with(state, caller, values).await?),
        List::ActiveAlerts => to_json_items(active_alerts_with(state, caller, values).await?),
        List::History => to_json_items(alert_history_with(state, caller, values).await?),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_grpc_json_body_names_a_typed_field_that_does_not_parse() {
        let body = r#"{"receivers": [{"recipient_id": "mem_1", "channel": "email"}, {"recipient_id": " ", "channel": "email"}]}"#;
        match json_body::<RouteRequest>(body).err().unwrap() {
            GatewayError::Validation { field, message } => {
                assert_eq!(field, "receivers[1].recipient_id");
                assert_eq!(message, "receivers[1].recipient_id must not be empty");
            }
            other => panic!("{other:?}"),
        }
        match json_body::<RouteRequest>(r#"{"receivers": [], "nope": 1}"#).err().unwrap() {
            GatewayError::InvalidJson { field, .. } => assert_eq!(field.as_deref(), Some("nope")),
            other => panic!("{other:?}"),
        }
        match json_body::<RouteRequest>(r#"{"receivers": []} x"#).err().unwrap() {
            GatewayError::InvalidJson { .. } => {}
            other => panic!("{other:?}"),
        }
    }
}
