//! Notifications beyond sending one: the organization's templates (publish, preview, list),
//! recipients' addresses and preferences, cancelling what a transaction still has waiting, and the
//! reads (one notification, a member's in-app inbox, the delivery dashboard). The gateway checks
//! shapes and who may ask; the notifications consumer decides. Sending is `POST /api/notifications`
//! (commands.rs).

use std::collections::HashMap;

use axum::{Extension, Json, extract::State, response::Response};
use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use chrono::NaiveTime;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use studyspot_bus::TraceContext;
use studyspot_ids::{MemberId, NotificationId, RecipientId, TemplateId, TransactionId};
use studyspot_notification_templates::{self as templates, Parts, RenderError};
use studyspot_notifications_projection::{
    Notification,
    reads::{self, InboxMessage, NotificationsDashboard, Preferences, Template, TemplateFilter},
};
use studyspot_schemas::notifications;

use crate::{
    AppState, GatewayError,
    auth::Caller,
    billing::optional_id,
    commands::{Accept, CommandRequest, PathId, accept, answer, metadata, one_of, required},
    error::projection_missing,
    ledger::Idempotency,
    queries::{ListParams, Page, Params, analytics_range, query_values, rows, visible},
};

/// The statuses a notification is in (the projection's check constraint).
pub(crate) const STATUSES: [&str; 6] = ["queued", "deferred", "sent", "failed", "suppressed", "cancelled"];

/// Path segments under /api/notifications/ that are not notification ids.
pub(crate) const RESERVED_IDS: [&str; 6] =
    ["templates", "subscriptions", "cancel", "inbox", "analytics", "campaigns"];

/// Standard Webhooks secrets: `whsec_` + standard base64, padded or not.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn optional_required(field: &str, value: Option<&str>) -> Result<(), GatewayError> {
    value.map_or(Ok(()), |v| required(field, v))
}

/// A BCP 47 language tag's shape: a 2 to 8 letter language, then subtags of 1 to 8 letters or
/// digits, joined by `-` (de, de-DE, zh-Hant-TW, es-419).
pub(crate) fn locale(field: &str, value: &str) -> Result<(), GatewayError> {
    let invalid = |why: &str| GatewayError::invalid(field, format!("{field} {value:?} {why}"));
    if value.contains('_') {
        return Err(invalid("is not a BCP 47 tag: subtags are joined by -, e.g. de-DE"));
    }
    let mut subtags = value.split('-');
    let language = subtags.next().unwrap_or_default();
    if value.len() > 35
        || !(2..=8).contains(&language.len())
        || !language.bytes().all(|b| b.is_ascii_alphabetic())
        || !subtags.all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(invalid("is not a BCP 47 language tag such as en or de-DE"));
    }
    Ok(())
}

/// E.164: `+`, a country code and the number, 7 to 15 digits in all.
fn e164(field: &str, value: &str) -> Result<(), GatewayError> {
    let digits = value.strip_prefix('+').unwrap_or_default();
    if (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
    {
        Ok(())
    } else {
        Err(GatewayError::invalid(field, format!("{field} must be an E.164 number such as +4915112345678")))
    }
}

fn email(value: &str) -> Result<(), GatewayError> {
    let shaped = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        }
        None => false,
    };
    if shaped && value.len() <= 254 && !value.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(GatewayError::invalid("email", "email must be an address such as ada@example.org"))
    }
}

fn webhook_url(value: &str) -> Result<(), GatewayError> {
    let invalid = || GatewayError::invalid("webhook_url", "webhook_url must be an http or https URL");
    let url = reqwest::Url::parse(value).map_err(|_| invalid())?;
    if matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty()) {
        Ok(())
    } else {
        Err(invalid())
    }
}

fn webhook_secret(value: &str) -> Result<(), GatewayError> {
    let invalid = || {
        GatewayError::invalid(
            "webhook_secret",
            "webhook_secret must be whsec_ followed by the base64 of the key (Standard Webhooks)",
        )
    };
    let encoded = value.strip_prefix("whsec_").ok_or_else(invalid)?;
    match LENIENT_BASE64.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(()),
        _ => Err(invalid()),
    }
}

fn local_time(field: &str, value: &str) -> Result<NaiveTime, GatewayError> {
    if value.len() != 5 {
        return Err(GatewayError::invalid(field, format!("{field} must be a local time HH:MM, e.g. 22:00")));
    }
    NaiveTime::parse_from_str(value, "%H:%M")
        .map_err(|_| GatewayError::invalid(field, format!("{field} must be a local time HH:MM, e.g. 22:00")))
}

/// A part that does not render is a 422 naming the part: a missing variable names the variable
/// and the field (`given`) that should give it; a limit hit has the limit's own code.
fn render_error(e: RenderError, given: &str) -> GatewayError {
    let field = e.part().name().to_owned();
    match (&e, e.limit_code()) {
        (_, Some(code)) => GatewayError::TemplateLimit { field, code, message: e.to_string() },
        (RenderError::Undefined { .. }, None) => {
            GatewayError::Validation { field, message: format!("{e}: give it in {given}") }
        }
        (_, None) => GatewayError::Validation { field, message: e.to_string() },
    }
}

/// A template's parts, rendered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RenderedTemplate {
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
}

/// Renders a template as the notifications consumer will (the same crate, the same limits), on a
/// blocking thread: even within its limits a template is CPU work that must not hold one of the
/// threads every request runs on.
async fn render(
    subject: Option<String>,
    body: String,
    html: Option<String>,
    variables: HashMap<String, String>,
    given: &'static str,
) -> Result<RenderedTemplate, GatewayError> {
    tokio::task::spawn_blocking(move || {
        let parts = Parts { subject: subject.as_deref(), body: &body, html: html.as_deref() };
        templates::render(&parts, &variables)
            .map(|r| RenderedTemplate { subject: r.subject, body: r.body, html: r.html })
            .map_err(|e| render_error(e, given))
    })
    .await
    .map_err(|e| GatewayError::Internal(format!("rendering a template: {e}")))?
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplateRequest {
    /// Chosen by the caller (`tpl_…`) or by the gateway; an existing template's id publishes its
    /// next version for the channel and locale.
    #[schema(value_type = Option<String>)]
    pub(crate) template_id: Option<TemplateId>,
    /// email, sms, whatsapp, push, in_app or webhook.
    pub(crate) channel: String,
    /// BCP 47, e.g. de-DE; default en.
    pub(crate) locale: Option<String>,
    /// minijinja, e.g. `Receipt {{ number }}`.
    pub(crate) subject: Option<String>,
    pub(crate) body: String,
    /// HTML; what it interpolates is escaped.
    pub(crate) html: Option<String>,
    /// Every variable the template uses, with an example value: the template must render with them.
    #[serde(default)]
    pub(crate) sample_variables: HashMap<String, String>,
}

#[utoipa::path(post, path = "/api/notifications/templates", tag = "notifications", request_body = CreateTemplateRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted: notifications publishes the template (or its next version)", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services publish templates", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid, or a part (the field) does not render with sample_variables: validation_failed, or a rendering limit's code (template_too_costly, template_output_too_large, template_too_large)", body = crate::openapi::ErrorBody),
    )
)]
pub async fn create_template(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<CreateTemplateRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(create_template_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn create_template_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: CreateTemplateRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("publishing a template")?;
    one_of("channel", &body.channel, &notifications::CHANNELS)?;
    let locale_tag = body.locale.unwrap_or_else(|| "en".to_owned());
    locale("locale", &locale_tag)?;
    optional_required("subject", body.subject.as_deref())?;
    required("body", &body.body)?;
    optional_required("html", body.html.as_deref())?;
    render(
        body.subject.clone(),
        body.body.clone(),
        body.html.clone(),
        body.sample_variables.clone(),
        "sample_variables",
    )
    .await?;
    let template_id = optional_id(body.template_id, "tpl");
    let command = notifications::CreateTemplate {
        metadata: metadata(caller),
        template_id: template_id.clone(),
        channel: body.channel,
        locale: locale_tag,
        subject: body.subject,
        body: body.body,
        html: body.html,
        sample_variables: body.sample_variables,
    };
    let how = Accept { caller, trace, idempotency, aggregate: ("template_id", template_id), member_id: None };
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewTemplateRequest {
    pub(crate) subject: Option<String>,
    pub(crate) body: String,
    pub(crate) html: Option<String>,
    #[serde(default)]
    pub(crate) variables: HashMap<String, String>,
}

#[utoipa::path(post, path = "/api/notifications/templates/preview", tag = "notifications", request_body = PreviewTemplateRequest,
    responses(
        (status = 200, description = "The parts rendered as notifications would render them", body = RenderedTemplate),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services preview templates", body = crate::openapi::ErrorBody),
        (status = 422, description = "A part (the field) is not a template or uses a variable not given (named in the message): validation_failed; or it is past a rendering limit: template_too_costly (loops too long, nests too deep), template_output_too_large, template_too_large", body = crate::openapi::ErrorBody),
    )
)]
pub async fn preview_template(
    caller: Caller,
    request: CommandRequest<PreviewTemplateRequest>,
) -> Result<Json<RenderedTemplate>, GatewayError> {
    Ok(Json(preview_template_with(&caller, request.body).await?))
}

/// Renders a template without publishing anything.
pub(crate) async fn preview_template_with(
    caller: &Caller,
    body: PreviewTemplateRequest,
) -> Result<RenderedTemplate, GatewayError> {
    caller.require_operator("previewing a template")?;
    required("body", &body.body)?;
    render(body.subject, body.body, body.html, body.variables, "variables").await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPreferencesRequest {
    /// The member (`mem_…`) or operator the preferences are for; a member sets only their own.
    #[schema(value_type = String)]
    pub(crate) recipient_id: RecipientId,
    pub(crate) email: Option<String>,
    /// E.164, e.g. +4915112345678, for SMS.
    pub(crate) phone: Option<String>,
    /// E.164, for WhatsApp.
    pub(crate) whatsapp: Option<String>,
    /// An FCM registration token.
    pub(crate) push_token: Option<String>,
    /// http or https.
    pub(crate) webhook_url: Option<String>,
    /// `whsec_` + base64 of the signing key (Standard Webhooks); goes with webhook_url.
    pub(crate) webhook_secret: Option<String>,
    /// IANA, e.g. Europe/Berlin; default UTC. Quiet hours and daily caps are counted in it.
    pub(crate) time_zone: Option<String>,
    /// Quiet hours, local HH:MM (start inclusive, end exclusive, may wrap midnight); both or neither.
    pub(crate) quiet_start: Option<String>,
    pub(crate) quiet_end: Option<String>,
    /// Channels never to use (email, sms, whatsapp, push, in_app, webhook).
    #[serde(default)]
    pub(crate) opted_out_channels: Vec<String>,
    /// Categories not wanted (transactional, billing, attendance, operational, marketing).
    #[serde(default)]
    pub(crate) opted_out_categories: Vec<String>,
    /// At most this many per local day, by category, e.g. {"marketing": 3}.
    #[serde(default)]
    pub(crate) category_caps: HashMap<String, i32>,
    /// At most this many per local day across categories and channels.
    pub(crate) daily_cap: Option<i32>,
}

#[utoipa::path(post, path = "/api/notifications/subscriptions", tag = "notifications", request_body = SetPreferencesRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted: the recipient's preferences are replaced as a whole", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "A member sets only their own preferences", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn set_preferences(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<SetPreferencesRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(set_preferences_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn set_preferences_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: SetPreferencesRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_member_or_operator(body.recipient_id.as_str(), "setting notification preferences")?;
    if let Some(address) = &body.email {
        email(address)?;
    }
    if let Some(phone) = &body.phone {
        e164("phone", phone)?;
    }
    if let Some(whatsapp) = &body.whatsapp {
        e164("whatsapp", whatsapp)?;
    }
    optional_required("push_token", body.push_token.as_deref())?;
    if let Some(url) = &body.webhook_url {
        webhook_url(url)?;
    }
    if let Some(secret) = &body.webhook_secret {
        webhook_secret(secret)?;
        if body.webhook_url.is_none() {
            return Err(GatewayError::invalid("webhook_secret", "webhook_secret goes with webhook_url"));
        }
    }
    let time_zone = body.time_zone.unwrap_or_else(|| "UTC".to_owned());
    if time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(GatewayError::invalid(
            "time_zone",
            format!("time_zone {time_zone:?} is not an IANA time zone such as Europe/Berlin"),
        ));
    }
    match (&body.quiet_start, &body.quiet_end) {
        (Some(start), Some(end)) => {
            let start = local_time("quiet_start", start)?;
            if local_time("quiet_end", end)? == start {
                return Err(GatewayError::invalid("quiet_end", "quiet_end must differ from quiet_start"));
            }
        }
        (Some(_), None) => {
            return Err(GatewayError::invalid(
                "quiet_end",
                "quiet_start needs quiet_end: give both or neither",
            ));
        }
        (None, Some(_)) => {
            return Err(GatewayError::invalid(
                "quiet_start",
                "quiet_end needs quiet_start: give both or neither",
            ));
        }
        (None, None) => {}
    }
    for (n, channel) in body.opted_out_channels.iter().enumerate() {
        one_of(&format!("opted_out_channels[{n}]"), channel, &notifications::CHANNELS)?;
    }
    for (n, category) in body.opted_out_categories.iter().enumerate() {
        one_of(&format!("opted_out_categories[{n}]"), category, &notifications::CATEGORIES)?;
    }
    let mut caps: Vec<(&String, &i32)> = body.category_caps.iter().collect();
    caps.sort();
    for (category, cap) in caps {
        let field = format!("category_caps.{category}");
        one_of(&field, category, &notifications::CATEGORIES)?;
        if *cap < 0 {
            return Err(GatewayError::invalid(&field, format!("{field} cannot be negative")));
        }
    }
    if body.daily_cap.is_some_and(|cap| cap < 0) {
        return Err(GatewayError::invalid("daily_cap", "daily_cap cannot be negative"));
    }
    let recipient_id = String::from(body.recipient_id);
    let command = notifications::SetPreferences {
        metadata: metadata(caller),
        recipient_id: recipient_id.clone(),
        email: body.email,
        phone: body.phone,
        whatsapp: body.whatsapp,
        push_token: body.push_token,
        webhook_url: body.webhook_url,
        webhook_secret: body.webhook_secret,
        time_zone,
        quiet_start: body.quiet_start,
        quiet_end: body.quiet_end,
        opted_out_channels: body.opted_out_channels,
        opted_out_categories: body.opted_out_categories,
        category_caps: body.category_caps,
        daily_cap: body.daily_cap,
    };
    let how = Accept {
        caller,
        trace,
        idempotency,
        aggregate: ("recipient_id", recipient_id.clone()),
        member_id: Some(&recipient_id),
    };
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelNotificationsRequest {
    #[schema(value_type = String)]
    pub(crate) recipient_id: RecipientId,
    /// The `transaction_id` the notifications were sent with.
    #[schema(value_type = String)]
    pub(crate) transaction_id: TransactionId,
}

#[utoipa::path(post, path = "/api/notifications/cancel", tag = "notifications", request_body = CancelNotificationsRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted: what the transaction still has waiting for the recipient (deferred, scheduled) is cancelled", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services cancel notifications", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn cancel_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<CancelNotificationsRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(cancel_notifications_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn cancel_notifications_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: CancelNotificationsRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("cancelling notifications")?;
    let recipient_id = String::from(body.recipient_id);
    let transaction_id = String::from(body.transaction_id);
    let command = notifications::CancelNotifications {
        metadata: metadata(caller),
        recipient_id: recipient_id.clone(),
        transaction_id: transaction_id.clone(),
    };
    let how = Accept {
        caller,
        trace,
        idempotency,
        aggregate: ("transaction_id", transaction_id),
        member_id: Some(&recipient_id),
    };
    accept(state, command, how).await
}

#[utoipa::path(get, path = "/api/notifications/{id}", tag = "notifications",
    params(("id" = String, Path, description = "The notification id")),
    responses(
        (status = 200, description = "The notification and what became of it", body = Notification),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such notification visible to this token", body = crate::openapi::ErrorBody),
    )
)]
pub async fn notification(
    State(state): State<AppState>,
    caller: Caller,
    PathId(notification_id): PathId<NotificationId>,
) -> Result<Json<Value>, GatewayError> {
    Ok(Json(json!(notification_with(&state, &caller, notification_id.as_str()).await?)))
}

/// One notification: an operator's of the organization, a member's own.
pub(crate) async fn notification_with(
    state: &AppState,
    caller: &Caller,
    notification_id: &str,
) -> Result<Notification, GatewayError> {
    let found =
        reads::find_notification(&state.readonly, caller.organization_id.as_str(), notification_id).await;
    visible(caller, found, |n| &n.recipient_id, || format!("notification {notification_id}"))
}

#[utoipa::path(get, path = "/api/notifications/templates", tag = "notifications",
    params(
        ("all_versions" = Option<bool>, Query, description = "true: every version; default the latest per template, channel and locale"),
        ("template_id" = Option<String>, Query, description = "Only this template"),
        ("channel" = Option<String>, Query, description = "Only this channel"),
        ("locale" = Option<String>, Query, description = "Only this locale"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<Template>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services list templates", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn templates(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(templates_with(&state, &caller, query_values(params)?).await?.json())
}

pub(crate) async fn templates_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<Template>, GatewayError> {
    caller.require_operator("listing templates")?;
    let params = ListParams::parse(values, &["all_versions", "template_id", "channel", "locale"])?;
    let all_versions = match params.get("all_versions") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(GatewayError::invalid("all_versions", "all_versions must be true or false")),
    };
    if let Some(channel) = params.get("channel") {
        one_of("channel", channel, &notifications::CHANNELS)?;
    }
    let filter = TemplateFilter {
        organization_id: caller.organization_id.as_str(),
        template_id: params.get("template_id"),
        channel: params.get("channel"),
        locale: params.get("locale"),
        all_versions,
    };
    let rows =
        rows(reads::list_templates(&state.readonly, &filter, params.after(), params.fetch_limit()).await)?;
    Ok(params.page(rows, |t| (t.created_at, t.cursor_key.as_str())))
}

#[utoipa::path(get, path = "/api/notifications/subscriptions/{recipient_id}", tag = "notifications",
    params(("recipient_id" = String, Path, description = "The member or operator")),
    responses(
        (status = 200, description = "The recipient's addresses and preferences; of the webhook secret only whether one is set", body = Preferences),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No preferences of this recipient visible to this token", body = crate::openapi::ErrorBody),
    )
)]
pub async fn preferences(
    State(state): State<AppState>,
    caller: Caller,
    PathId(recipient_id): PathId<RecipientId>,
) -> Result<Json<Value>, GatewayError> {
    Ok(Json(json!(preferences_with(&state, &caller, recipient_id.as_str()).await?)))
}

/// A recipient's preferences: an operator's of the organization, a member's own.
pub(crate) async fn preferences_with(
    state: &AppState,
    caller: &Caller,
    recipient_id: &str,
) -> Result<Preferences, GatewayError> {
    let found = reads::find_preferences(&state.readonly, caller.organization_id.as_str(), recipient_id).await;
    visible(caller, found, |p| &p.recipient_id, || format!("preferences of {recipient_id}"))
}

#[utoipa::path(get, path = "/api/notifications/inbox", tag = "notifications",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "The caller's in-app notifications, sent or on their way, newest first", body = crate::openapi::Page<InboxMessage>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn inbox(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(inbox_with(&state, &caller, query_values(params)?).await?.json())
}

/// The caller's own in-app notifications: a member's by their member id, anyone else's by their
/// token's subject.
pub(crate) async fn inbox_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<InboxMessage>, GatewayError> {
    let params = ListParams::parse(values, &[])?;
    let recipient_id = caller.member_id.as_ref().map_or(caller.actor.as_str(), MemberId::as_str);
    let rows = rows(
        reads::list_inbox(
            &state.readonly,
            caller.organization_id.as_str(),
            recipient_id,
            params.after(),
            params.fetch_limit(),
        )
        .await,
    )?;
    Ok(params.page(rows, |m| (m.created_at, m.notification_id.as_str())))
}

#[utoipa::path(get, path = "/api/notifications/analytics/dashboard", tag = "notifications",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339; default 30 days before `to`"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now"),
    ),
    responses(
        (status = 200, description = "Of the notifications created in [from, to): counts by status in all, by channel, by category, by template, and by the three together", body = NotificationsDashboard),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services see analytics", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn dashboard(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(Json(json!(dashboard_with(&state, &caller, query_values(params)?).await?)))
}

pub(crate) async fn dashboard_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<NotificationsDashboard, GatewayError> {
    caller.require_operator("notification analytics")?;
    let (from, to) = analytics_range(&values)?;
    match reads::notifications_dashboard(&state.readonly, caller.organization_id.as_str(), from, to).await {
        Err(e) if projection_missing(&e) => Ok(NotificationsDashboard::empty(from, to)),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn field(e: GatewayError) -> (String, String) {
        match e {
            GatewayError::Validation { field, message } => (field, message),
            other => panic!("not a validation error: {other}"),
        }
    }

    fn s(text: &str) -> String {
        text.to_owned()
    }

    #[tokio::test]
    async fn templates_render_strictly_and_name_the_part_and_the_missing_variable() {
        let rendered = render(
            Some(s("Receipt {{ number }}")),
            s("Thanks {{ name }}{% for i in range(2) %}!{% endfor %}"),
            Some(s("<p>{{ name }}</p>")),
            vars(&[("number", "7"), ("name", "Ada <3")]),
            "variables",
        )
        .await
        .expect("renders");
        assert_eq!(rendered.subject.as_deref(), Some("Receipt 7"));
        assert_eq!(rendered.body, "Thanks Ada <3!!");
        assert_eq!(rendered.html.as_deref(), Some("<p>Ada &lt;3</p>"));

        let (part, message) = field(
            render(None, s("Hi {{ name }}"), Some(s("{{ nope }}")), vars(&[]), "variables")
                .await
                .unwrap_err(),
        );
        assert_eq!(part, "body");
        assert!(message.contains("`name`") && message.contains("variables"), "{message}");
        let (part, message) = field(
            render(None, s("Hi"), Some(s("<b>{{ nope }}</b>")), vars(&[]), "sample_variables")
                .await
                .unwrap_err(),
        );
        assert_eq!(part, "html");
        assert!(message.contains("`nope`") && message.contains("sample_variables"), "{message}");
        let (part, _) =
            field(render(Some(s("{% if %}")), s("x"), None, vars(&[]), "variables").await.unwrap_err());
        assert_eq!(part, "subject");
    }

    #[test]
    fn shapes_of_locales_numbers_secrets_and_urls() {
        for good in ["en", "de-DE", "zh-Hant-TW", "es-419"] {
            assert!(locale("locale", good).is_ok(), "{good}");
        }
        for bad in ["", "e", "de_DE", "de--DE", "english-language-tag-way-too-long-for-us", "d3"] {
            assert!(locale("locale", bad).is_err(), "{bad}");
        }
        assert!(e164("phone", "+4915112345678").is_ok());
        for bad in ["4915112345678", "+0123456789", "+49 151 1234", "+123", "+1234567890123456"] {
            assert!(e164("phone", bad).is_err(), "{bad}");
        }
        assert!(webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(webhook_secret("whsec_dGVzdA").is_ok(), "unpadded");
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_!!!"] {
            assert!(webhook_secret(bad).is_err(), "{bad}");
        }
        assert!(webhook_url("https://example.org/hooks").is_ok());
        for bad in ["ftp://example.org", "example.org/hooks", "https://"] {
            assert!(webhook_url(bad).is_err(), "{bad}");
        }
        assert!(email("ada@example.org").is_ok());
        for bad in ["ada", "ada@example", "@example.org", "ada @example.org"] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert!(local_time("quiet_start", "22:00").is_ok());
        for bad in ["24:00", "7:00", "07:60", "0700"] {
            assert!(local_time("quiet_start", bad).is_err(), "{bad}");
        }
    }
}
