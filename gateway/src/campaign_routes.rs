//! Campaigns (define, launch, cancel, read), a member's "mark read" of in-app messages, and
//! "send now" of a waiting notification. The gateway checks shapes and who may ask; the
//! notifications consumer decides.

use std::collections::HashMap;

use axum::{Extension, Json, extract::State, response::Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use studyspot_bus::TraceContext;
use studyspot_ids::{CampaignId, NotificationId, PlanId, RecipientId, TemplateId, VenueId};
use studyspot_notifications_projection::campaign_reads::{self, Campaign};
use studyspot_schemas::notifications;

use crate::{
    AppState, GatewayError,
    auth::Caller,
    billing::optional_id,
    commands::{Accept, CommandRequest, PathId, accept, answer, metadata, one_of, required},
    ledger::Idempotency,
    notification_routes::notification_with,
    queries::{ListParams, Page, Params, query_values, rows, visible},
};

pub(crate) const KINDS: [&str; 5] = ["broadcast", "targeted", "automated", "transactional", "marketing"];
pub(crate) const CAMPAIGN_STATUSES: [&str; 3] = ["draft", "launched", "cancelled"];

/// Who a campaign is for; empty lists do not narrow, so a broadcast names nothing.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentRequest {
    /// Members whose subscription is on one of these plans.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub(crate) plan_ids: Vec<PlanId>,
    /// Members whose subscription is in one of these statuses (active, trialing, past_due, …).
    #[serde(default)]
    pub(crate) subscription_statuses: Vec<String>,
    /// Members who checked in at one of these venues.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub(crate) venue_ids: Vec<VenueId>,
    /// Members who checked in (at `venue_ids`, or anywhere) in the last N days, 1 to 3650.
    pub(crate) attended_within_days: Option<i32>,
    /// Exactly these members (up to 10,000).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub(crate) recipient_ids: Vec<RecipientId>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaignRequest {
    /// Chosen by the caller (`cmp_…`) or by the gateway.
    #[schema(value_type = Option<String>)]
    pub(crate) campaign_id: Option<CampaignId>,
    pub(crate) name: String,
    /// broadcast, targeted, automated, transactional or marketing.
    pub(crate) kind: String,
    /// transactional, billing, attendance, operational or marketing.
    pub(crate) category: String,
    /// A channel; absent: each recipient's email when known, else in-app.
    pub(crate) channel: Option<String>,
    /// A template of the organization; else `body` (and `subject`) is the text.
    #[schema(value_type = Option<String>)]
    pub(crate) template_id: Option<TemplateId>,
    pub(crate) subject: Option<String>,
    #[serde(default)]
    pub(crate) body: String,
    #[serde(default)]
    pub(crate) variables: HashMap<String, String>,
    /// BCP 47.
    pub(crate) locale: Option<String>,
    #[serde(default)]
    pub(crate) segment: SegmentRequest,
    /// A local wall-clock time (`2026-12-01T09:00`): each recipient gets it then in their own zone.
    pub(crate) send_at_local: Option<String>,
    /// Or one instant for everyone (RFC 3339). Neither: at launch.
    pub(crate) send_at: Option<DateTime<Utc>>,
    /// At most this many messages per minute.
    pub(crate) throttle_per_minute: Option<i32>,
    /// Automated campaigns: the event type that sends it (e.g. `studyspot.billing.PaymentSucceeded`).
    pub(crate) trigger: Option<String>,
}

/// A list of at most `max` entries (ids were parsed with the body: none is blank).
fn at_most<T>(field: &str, values: &[T], max: usize) -> Result<(), GatewayError> {
    if values.len() > max {
        return Err(GatewayError::invalid(
            field,
            format!("{field} has {} entries; at most {max}", values.len()),
        ));
    }
    Ok(())
}

/// A list of strings that are not ids (statuses): at most `max`, none blank.
fn filled(field: &str, values: &[String], max: usize) -> Result<(), GatewayError> {
    at_most(field, values, max)?;
    values.iter().try_for_each(|v| required(&format!("{field}[]"), v))
}

fn strings<T: Into<String>>(ids: Vec<T>) -> Vec<String> {
    ids.into_iter().map(Into::into).collect()
}

/// The zone furthest behind UTC (UTC−12): the last place a local wall-clock time comes.
const LATEST_UTC_OFFSET_HOURS: i64 = 12;

/// A local time like `2026-12-01T09:00` that is still to come in some time zone at `now`.
fn local_time(value: &str, now: DateTime<Utc>) -> Result<(), GatewayError> {
    let local = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
        .ok_or_else(|| {
            GatewayError::invalid(
                "send_at_local",
                format!("send_at_local {value:?} is not a local time like 2026-12-01T09:00"),
            )
        })?;
    // Past for every recipient, the campaign would go out at launch to everyone, not at the time
    // it names; a time still to come somewhere is kept (it has passed only for some recipients).
    if local.and_utc() + chrono::Duration::hours(LATEST_UTC_OFFSET_HOURS) <= now {
        return Err(GatewayError::invalid(
            "send_at_local",
            format!("send_at_local {value} has passed in every time zone"),
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/notifications/campaigns", tag = "notifications", request_body = CreateCampaignRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted: notifications stores the campaign as a draft", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services define campaigns", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn create_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<CreateCampaignRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(create_campaign_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn create_campaign_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: CreateCampaignRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("defining a campaign")?;
    required("name", &body.name)?;
    one_of("kind", &body.kind, &KINDS)?;
    one_of("category", &body.category, &notifications::CATEGORIES)?;
    if let Some(channel) = &body.channel {
        one_of("channel", channel, &notifications::CHANNELS)?;
    }
    if body.template_id.is_none() {
        required("body", &body.body)?;
    }
    if let Some(locale) = &body.locale {
        crate::notification_routes::locale("locale", locale)?;
    }
    let s = &body.segment;
    at_most("segment.plan_ids", &s.plan_ids, 100)?;
    filled("segment.subscription_statuses", &s.subscription_statuses, 10)?;
    at_most("segment.venue_ids", &s.venue_ids, 1000)?;
    at_most("segment.recipient_ids", &s.recipient_ids, 10_000)?;
    if let Some(days) = s.attended_within_days
        && !(1..=3650).contains(&days)
    {
        return Err(GatewayError::invalid(
            "segment.attended_within_days",
            format!("segment.attended_within_days {days} is not between 1 and 3650"),
        ));
    }
    if let Some(local) = &body.send_at_local {
        local_time(local, Utc::now())?;
        if body.send_at.is_some() {
            return Err(GatewayError::invalid("send_at", "send_at and send_at_local exclude each other"));
        }
    }
    if let Some(throttle) = body.throttle_per_minute
        && throttle < 1
    {
        return Err(GatewayError::invalid("throttle_per_minute", "throttle_per_minute must be at least 1"));
    }
    match (body.kind.as_str(), &body.trigger) {
        ("automated", None) => {
            return Err(GatewayError::invalid("trigger", "an automated campaign needs a trigger"));
        }
        ("automated", Some(t)) => required("trigger", t)?,
        (_, Some(_)) => {
            return Err(GatewayError::invalid("trigger", "only an automated campaign has a trigger"));
        }
        _ => {}
    }
    let campaign_id = optional_id(body.campaign_id, "cmp");
    let command = notifications::CreateCampaign {
        metadata: metadata(caller),
        campaign_id: campaign_id.clone(),
        name: body.name,
        kind: body.kind,
        category: body.category,
        channel: body.channel.unwrap_or_default(),
        template_id: body.template_id.map(String::from),
        subject: body.subject,
        body: body.body,
        variables: body.variables,
        locale: body.locale,
        segment: notifications::Segment {
            plan_ids: strings(body.segment.plan_ids),
            subscription_statuses: body.segment.subscription_statuses,
            venue_ids: strings(body.segment.venue_ids),
            attended_within_days: body.segment.attended_within_days,
            recipient_ids: strings(body.segment.recipient_ids),
        },
        send_at_local: body.send_at_local,
        send_at: body.send_at.map(|t| t.timestamp_millis()),
        throttle_per_minute: body.throttle_per_minute,
        trigger: body.trigger,
    };
    let how = Accept { caller, trace, idempotency, aggregate: ("campaign_id", campaign_id), member_id: None };
    accept(state, command, how).await
}

/// A command with nothing to add to its path: `{}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

#[utoipa::path(post, path = "/api/notifications/campaigns/{id}/launch", tag = "notifications", request_body = EmptyRequest,
    params(
        ("id" = String, Path, description = "The campaign id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer"),
    ),
    responses(
        (status = 202, description = "Accepted: one message per member of the segment as it is now, each due at its time (automated: reacting from now on)", body = crate::openapi::Accepted),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services launch campaigns", body = crate::openapi::ErrorBody),
    )
)]
pub async fn launch_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(campaign_id): PathId<CampaignId>,
    request: CommandRequest<EmptyRequest>,
) -> Result<Response, GatewayError> {
    let _: EmptyRequest = request.body;
    Ok(answer(campaign_command_with(&state, &caller, &trace, request.idempotency, campaign_id, true).await?))
}

#[utoipa::path(post, path = "/api/notifications/campaigns/{id}/cancel", tag = "notifications", request_body = EmptyRequest,
    params(
        ("id" = String, Path, description = "The campaign id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer"),
    ),
    responses(
        (status = 202, description = "Accepted: what of the campaign has not gone out is stopped", body = crate::openapi::Accepted),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services cancel campaigns", body = crate::openapi::ErrorBody),
    )
)]
pub async fn cancel_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(campaign_id): PathId<CampaignId>,
    request: CommandRequest<EmptyRequest>,
) -> Result<Response, GatewayError> {
    let _: EmptyRequest = request.body;
    Ok(answer(campaign_command_with(&state, &caller, &trace, request.idempotency, campaign_id, false).await?))
}

/// Launch (`launch`) or cancel a campaign.
pub(crate) async fn campaign_command_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    campaign_id: CampaignId,
    launch: bool,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator(if launch { "launching a campaign" } else { "cancelling a campaign" })?;
    let campaign_id = String::from(campaign_id);
    let aggregate = ("campaign_id", campaign_id.clone());
    let how = Accept { caller, trace, idempotency, aggregate, member_id: None };
    if launch {
        accept(state, notifications::LaunchCampaign { metadata: metadata(caller), campaign_id }, how).await
    } else {
        accept(state, notifications::CancelCampaign { metadata: metadata(caller), campaign_id }, how).await
    }
}

#[utoipa::path(get, path = "/api/notifications/campaigns", tag = "notifications",
    params(
        ("status" = Option<String>, Query, description = "draft, launched or cancelled"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first, with their messages' counts by status", body = crate::openapi::Page<Campaign>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services list campaigns", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn campaigns(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(campaigns_with(&state, &caller, query_values(params)?).await?.json())
}

pub(crate) async fn campaigns_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<Campaign>, GatewayError> {
    caller.require_operator("listing campaigns")?;
    let params = ListParams::parse(values, &["status"])?;
    if let Some(status) = params.get("status") {
        one_of("status", status, &CAMPAIGN_STATUSES)?;
    }
    let found = campaign_reads::list_campaigns(
        &state.readonly,
        caller.organization_id.as_str(),
        params.get("status"),
        params.after(),
        params.fetch_limit(),
    )
    .await;
    Ok(params.page(rows(found)?, |c| (c.created_at, c.campaign_id.as_str())))
}

#[utoipa::path(get, path = "/api/notifications/campaigns/{id}", tag = "notifications",
    params(("id" = String, Path, description = "The campaign id")),
    responses(
        (status = 200, description = "The campaign and its messages' counts by status", body = Campaign),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services read campaigns", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such campaign in this organization", body = crate::openapi::ErrorBody),
    )
)]
pub async fn campaign(
    State(state): State<AppState>,
    caller: Caller,
    PathId(campaign_id): PathId<CampaignId>,
) -> Result<Json<Value>, GatewayError> {
    Ok(Json(json!(campaign_with(&state, &caller, campaign_id.as_str()).await?)))
}

pub(crate) async fn campaign_with(
    state: &AppState,
    caller: &Caller,
    campaign_id: &str,
) -> Result<Campaign, GatewayError> {
    caller.require_operator("reading a campaign")?;
    let found =
        campaign_reads::find_campaign(&state.readonly, caller.organization_id.as_str(), campaign_id).await;
    // Campaigns belong to no member: an operator sees the organization's.
    visible(
        caller,
        found.map(|c| c.map(|c| (String::new(), c))),
        |_| "",
        || format!("campaign {campaign_id}"),
    )
    .map(|(_, c)| c)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    /// The caller's in-app notifications to mark read (1 to 500).
    #[schema(value_type = Vec<String>)]
    pub(crate) notification_ids: Vec<NotificationId>,
}

#[utoipa::path(post, path = "/api/notifications/inbox/read", tag = "notifications", request_body = MarkReadRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted: the caller's own in-app messages among them are marked read", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<MarkReadRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(mark_read_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

/// A member marks their own messages; anyone else the messages of their token's subject (as the
/// inbox reads them).
pub(crate) async fn mark_read_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: MarkReadRequest,
) -> Result<(Value, bool), GatewayError> {
    if body.notification_ids.is_empty() {
        return Err(GatewayError::invalid("notification_ids", "notification_ids is empty"));
    }
    at_most("notification_ids", &body.notification_ids, 500)?;
    let recipient_id = caller.member_id.clone().map_or_else(|| caller.actor.clone(), String::from);
    let command = notifications::MarkNotificationsRead {
        metadata: metadata(caller),
        recipient_id: recipient_id.clone(),
        notification_ids: strings(body.notification_ids),
    };
    let how = Accept {
        caller,
        trace,
        idempotency,
        aggregate: ("recipient_id", recipient_id.clone()),
        member_id: Some(recipient_id.as_str()),
    };
    accept(state, command, how).await
}

#[utoipa::path(post, path = "/api/notifications/{id}/send", tag = "notifications", request_body = EmptyRequest,
    params(
        ("id" = String, Path, description = "The notification id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer"),
    ),
    responses(
        (status = 202, description = "Accepted: a notification waiting (scheduled, quiet hours, in a digest) is sent now", body = crate::openapi::Accepted),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services send notifications", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such notification in this organization", body = crate::openapi::ErrorBody),
    )
)]
pub async fn send_now(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(notification_id): PathId<NotificationId>,
    request: CommandRequest<EmptyRequest>,
) -> Result<Response, GatewayError> {
    let _: EmptyRequest = request.body;
    Ok(answer(send_now_with(&state, &caller, &trace, request.idempotency, notification_id).await?))
}

pub(crate) async fn send_now_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    notification_id: NotificationId,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("sending a notification now")?;
    // The command is keyed by the recipient, which the notification names.
    let found = notification_with(state, caller, notification_id.as_str()).await?;
    let notification_id = String::from(notification_id);
    let command = notifications::ReleaseNotification {
        metadata: metadata(caller),
        notification_id: notification_id.clone(),
        recipient_id: found.recipient_id.clone(),
    };
    let how = Accept {
        caller,
        trace,
        idempotency,
        aggregate: ("notification_id", notification_id),
        member_id: Some(&found.recipient_id),
    };
    accept(state, command, how).await
}
