//! Queries: the projections, read through the read-only role, always within the caller's
//! organization; a member sees only their own records. Lists are newest first and paginated by an
//! opaque cursor (`?limit=50&cursor=…` → `{"items": […], "next_cursor": …}`).

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use studyspot_alerts_projection::reads::{SampleFilter, list_samples};
use studyspot_attendance_projection::reads::{SessionFilter, list_sessions};
use studyspot_billing_projection::reads::{PaymentFilter, find_payment, list_payments};
use studyspot_notifications_projection::reads::{NotificationFilter, list_notifications};

use crate::{AppState, GatewayError, auth::Caller, error::projection_missing};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

pub(crate) type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// One page of a list, and the cursor of the next when there is one.
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next_cursor: Option<String>,
}

impl<T: Serialize> Page<T> {
    pub(crate) fn json(self) -> Json<Value> {
        Json(json!({ "items": self.items, "next_cursor": self.next_cursor }))
    }
}

pub(crate) fn query_values(params: Params) -> Result<HashMap<String, String>, GatewayError> {
    params.map(|Query(values)| values).map_err(|e| GatewayError::invalid("query", e.body_text()))
}

/// A list request's parameters, checked: unknown names are refused, so a typo is not silently
/// ignored.
pub(crate) struct ListParams {
    values: HashMap<String, String>,
    limit: i64,
    after: Option<(DateTime<Utc>, String)>,
}

impl ListParams {
    pub(crate) fn parse(mut values: HashMap<String, String>, filters: &[&str]) -> Result<Self, GatewayError> {
        if let Some(unknown) =
            values.keys().find(|k| !filters.contains(&k.as_str()) && *k != "limit" && *k != "cursor")
        {
            return Err(GatewayError::invalid(
                unknown,
                format!("unknown parameter {unknown}; filters here: {}", filters.join(", ")),
            ));
        }
        let limit = match values.remove("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => {
                text.parse::<i64>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                    GatewayError::invalid("limit", format!("limit must be 1 to {MAX_LIMIT}"))
                })?
            }
        };
        let after = values.remove("cursor").map(|c| decode_cursor(&c)).transpose()?;
        Ok(Self { values, limit, after })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub(crate) fn after(&self) -> Option<(DateTime<Utc>, &str)> {
        self.after.as_ref().map(|(at, id)| (*at, id.as_str()))
    }

    /// One more row than the page is fetched, to know whether another page follows.
    pub(crate) fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }

    pub(crate) fn page<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> (DateTime<Utc>, &str)) -> Page<T> {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = more.then(|| rows.last().map(|r| encode_cursor(key(r)))).flatten();
        Page { items: rows, next_cursor }
    }
}

fn encode_cursor((at, id): (DateTime<Utc>, &str)) -> String {
    format!("{}.{id}", at.timestamp_micros())
}

/// The instants a cursor may name: the years RFC 3339 writes (0000 to 9999). Every row's time
/// lies within them, and PostgreSQL holds none before 4713 BC: a cursor further out would fail
/// the query (a 503) instead of being refused.
const CURSOR_MICROS: std::ops::RangeInclusive<i64> = -62_167_219_200_000_000..=253_402_300_799_999_999;

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, String), GatewayError> {
    let invalid = || GatewayError::invalid("cursor", "cursor must be a next_cursor this API returned");
    let (micros, id) = cursor.split_once('.').ok_or_else(invalid)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .filter(|m| CURSOR_MICROS.contains(m))
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    if id.is_empty() {
        return Err(invalid());
    }
    Ok((at, id.to_owned()))
}

/// Rows, or none when the projection does not exist yet.
pub(crate) fn rows<T>(result: Result<Vec<T>, sqlx::Error>) -> Result<Vec<T>, GatewayError> {
    match result {
        Err(e) if projection_missing(&e) => Ok(Vec::new()),
        other => Ok(other?),
    }
}

/// A row the caller may see: in their organization (the query's filter) and, for a member, their
/// own. Anything else — missing, another member's, or a projection not created yet — is a 404.
pub(crate) fn visible<T>(
    caller: &Caller,
    found: Result<Option<T>, sqlx::Error>,
    member_of: impl Fn(&T) -> &str,
    what: impl FnOnce() -> String,
) -> Result<T, GatewayError> {
    let found = match found {
        Err(e) if projection_missing(&e) => None,
        other => other?,
    };
    found
        .filter(|row| caller.may_see_member(Some(member_of(row))))
        .ok_or_else(|| GatewayError::NotFound(what()))
}

/// The member a request may filter by: a member's own id, whatever they asked; an operator's choice.
pub(crate) fn member_scope<'a>(
    caller: &'a Caller,
    asked: Option<&'a str>,
) -> Result<Option<&'a str>, GatewayError> {
    if caller.require_operator("").is_ok() {
        return Ok(asked);
    }
    let own = caller.member_id.as_ref().map(studyspot_ids::MemberId::as_str);
    match asked {
        Some(asked) if Some(asked) != own => {
            Err(GatewayError::Forbidden(format!("records of member {asked} are not visible with this token")))
        }
        _ => Ok(own.or(Some(""))),
    }
}

#[utoipa::path(get, path = "/api/payments", tag = "billing",
    params(
        ("member_id" = Option<String>, Query, description = "Only this member's payments"),
        ("status" = Option<String>, Query, description = "e.g. created"),
        ("method" = Option<String>, Query, description = "card, bank_transfer, upi, wallet or cash"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<studyspot_billing_projection::Payment>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub async fn payments(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(payments_with(&state, &caller, query_values(params)?).await?.json())
}

/// The list behind `payments`, whichever protocol asks.
pub(crate) async fn payments_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<studyspot_billing_projection::Payment>, GatewayError> {
    let params = ListParams::parse(values, &["member_id", "status", "method"])?;
    let filter = PaymentFilter {
        organization_id: caller.organization_id.as_str(),
        member_id: member_scope(caller, params.get("member_id"))?,
        status: params.get("status"),
        method: params.get("method"),
    };
    let rows = rows(list_payments(&state.readonly, &filter, params.after(), params.fetch_limit()).await)?;
    Ok(params.page(rows, |p| (p.created_at, p.payment_id.as_str())))
}

#[utoipa::path(get, path = "/api/payments/{id}", tag = "billing",
    params(("id" = String, Path, description = "The payment id")),
    responses(
        (status = 200, description = "The payment", body = studyspot_billing_projection::Payment),
        (status = 404, description = "No such payment visible to this token", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub async fn payment(
    State(state): State<AppState>,
    caller: Caller,
    crate::commands::PathId(payment_id): crate::commands::PathId<studyspot_ids::PaymentId>,
) -> Result<Json<Value>, GatewayError> {
    Ok(Json(json!(payment_with(&state, &caller, payment_id.as_str()).await?)))
}

/// One payment, whichever protocol asks.
pub(crate) async fn payment_with(
    state: &AppState,
    caller: &Caller,
    payment_id: &str,
) -> Result<studyspot_billing_projection::Payment, GatewayError> {
    let found = find_payment(&state.readonly, caller.organization_id.as_str(), payment_id).await;
    visible(caller, found, |p| &p.member_id, || format!("payment {payment_id}"))
}

#[utoipa::path(get, path = "/api/notifications", tag = "notifications",
    params(
        ("recipient_id" = Option<String>, Query, description = "Only this recipient's notifications"),
        ("channel" = Option<String>, Query, description = "email, sms, whatsapp, push, in_app or webhook"),
        ("category" = Option<String>, Query, description = "transactional, billing, attendance, operational or marketing"),
        ("status" = Option<String>, Query, description = "queued, deferred, sent, failed, suppressed or cancelled"),
        ("transaction_id" = Option<String>, Query, description = "Only notifications sent with this transaction_id"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<studyspot_notifications_projection::Notification>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub async fn notifications(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(notifications_with(&state, &caller, query_values(params)?).await?.json())
}

/// The list behind `notifications`, whichever protocol asks.
pub(crate) async fn notifications_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<studyspot_notifications_projection::Notification>, GatewayError> {
    let params =
        ListParams::parse(values, &["recipient_id", "channel", "category", "status", "transaction_id"])?;
    for (name, allowed) in [
        ("channel", &studyspot_schemas::notifications::CHANNELS[..]),
        ("category", &studyspot_schemas::notifications::CATEGORIES[..]),
        ("status", &crate::notification_routes::STATUSES[..]),
    ] {
        if let Some(value) = params.get(name) {
            crate::commands::one_of(name, value, allowed)?;
        }
    }
    let filter = NotificationFilter {
        organization_id: caller.organization_id.as_str(),
        recipient_id: member_scope(caller, params.get("recipient_id"))?,
        channel: params.get("channel"),
        category: params.get("category"),
        status: params.get("status"),
        transaction_id: params.get("transaction_id"),
    };
    let rows =
        rows(list_notifications(&state.readonly, &filter, params.after(), params.fetch_limit()).await)?;
    Ok(params.page(rows, |n| (n.created_at, n.notification_id.as_str())))
}

#[utoipa::path(get, path = "/api/attendance/sessions", tag = "attendance",
    params(
        ("member_id" = Option<String>, Query, description = "Only this member's sessions"),
        ("venue_id" = Option<String>, Query, description = "Only this venue's sessions"),
        ("open" = Option<String>, Query, description = "true: only sessions not checked out yet"),
        ("from" = Option<String>, Query, description = "RFC 3339: only sessions checked in at or after"),
        ("to" = Option<String>, Query, description = "RFC 3339: only sessions checked in before"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<studyspot_attendance_projection::Session>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub async fn sessions(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(sessions_with(&state, &caller, query_values(params)?).await?.json())
}

/// The list behind `sessions`, whichever protocol asks.
pub(crate) async fn sessions_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<studyspot_attendance_projection::Session>, GatewayError> {
    let (from, to) = (time_param(&values, "from")?, time_param(&values, "to")?);
    let params = ListParams::parse(values, &["member_id", "venue_id", "open", "from", "to"])?;
    let open = match params.get("open") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(GatewayError::invalid("open", "open must be true or false")),
    };
    let filter = SessionFilter {
        organization_id: caller.organization_id.as_str(),
        member_id: member_scope(caller, params.get("member_id"))?,
        venue_id: params.get("venue_id"),
        open,
        from,
        to,
    };
    let rows = rows(list_sessions(&state.readonly, &filter, params.after(), params.fetch_limit()).await)?;
    Ok(params.page(rows, |s| (s.checked_in_at, s.session_id.as_str())))
}

#[utoipa::path(get, path = "/api/monitoring/metrics", tag = "monitoring",
    params(
        ("metric" = Option<String>, Query, description = "Only this metric's samples"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<studyspot_alerts_projection::Sample>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub async fn metric_samples(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(metric_samples_with(&state, &caller, query_values(params)?).await?.json())
}

/// The list behind `metric_samples`, whichever protocol asks.
pub(crate) async fn metric_samples_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<studyspot_alerts_projection::Sample>, GatewayError> {
    caller.require_operator("reading metric samples")?;
    let params = ListParams::parse(values, &["metric"])?;
    let filter =
        SampleFilter { organization_id: caller.organization_id.as_str(), metric: params.get("metric") };
    let rows = rows(list_samples(&state.readonly, &filter, params.after(), params.fetch_limit()).await)?;
    Ok(params.page(rows, |s| (s.sampled_at, s.event_id.as_str())))
}

/// An RFC 3339 query parameter, absent when not given (or empty).
pub(crate) fn time_param(
    values: &HashMap<String, String>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, GatewayError> {
    values
        .get(field)
        .filter(|v| !v.is_empty())
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| GatewayError::invalid(field, format!("{field} must be an RFC 3339 time")))
        })
        .transpose()
}

pub(crate) fn only_params(values: &HashMap<String, String>, allowed: &[&str]) -> Result<(), GatewayError> {
    match values.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(GatewayError::invalid(
            unknown,
            format!("unknown parameter {unknown}; use {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// A dashboard's `from` and `to` (RFC 3339; default the 30 days before now), the only
/// parameters it takes.
pub(crate) fn analytics_range(
    values: &HashMap<String, String>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), GatewayError> {
    only_params(values, &["from", "to"])?;
    let to = time_param(values, "to")?.unwrap_or_else(Utc::now);
    let from = time_param(values, "from")?.unwrap_or(to - chrono::Duration::days(30));
    if from >= to {
        return Err(GatewayError::invalid("from", "from must be before to"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_767_225_600_123_456).expect("time");
        let cursor = encode_cursor((at, "pay_01.x"));
        assert_eq!(decode_cursor(&cursor).expect("valid"), (at, "pay_01.x".to_owned()));
        for edge in ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"] {
            let at = DateTime::parse_from_rfc3339(edge).expect("time").with_timezone(&Utc);
            assert_eq!(decode_cursor(&encode_cursor((at, "p"))).expect(edge).0, at);
        }
        for bad in ["", "abc", "12.", "x.pay_1", "99999999999999999999.pay_1", "-62167219200000001.pay_1"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
