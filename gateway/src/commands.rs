//! Command endpoints: shape checks, then a command event on its topic, then `202 Accepted`.

use std::{
    collections::HashMap,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{FromRequest, Request, State, rejection::JsonRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;
use sha2::{Digest, Sha256};
use studyspot_bus::{OutboundMessage, TraceContext};
use studyspot_ids::{
    Currency, InvoiceId, MemberId, NotificationId, ParseError, PaymentId, PaymentMethodId, PaymentMethodKind,
    RecipientId, SeatId, SessionId, TemplateId, TransactionId, VenueId, ZoneId,
};
use studyspot_schemas::{EventMetadata, Record, alerts, attendance, billing, notifications};

use crate::{
    AppState, BODY_LIMIT, GatewayError,
    auth::Caller,
    ledger::{Begun, Entry, Idempotency},
};

/// A command's JSON body, and its `Idempotency-Key` when it has one. Every failure is a
/// [`GatewayError`] naming the field when it can.
pub struct CommandRequest<T> {
    pub body: T,
    pub idempotency: Option<Idempotency>,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for CommandRequest<T> {
    type Rejection = GatewayError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let key = match req.headers().get("idempotency-key") {
            None => None,
            Some(value) => Some(idempotency_key(value)?),
        };
        let content_type =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(GatewayError::UnsupportedMediaType);
        }
        let target = format!("{} {}", req.method(), req.uri().path());
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                GatewayError::TooLarge { limit: BODY_LIMIT }
            } else {
                GatewayError::InvalidJson { message: rejection.body_text(), field: None }
            }
        })?;
        crate::nul::check_json(&bytes)?;
        let Json(body) = Json::<T>::from_bytes(&bytes).map_err(json_error)?;
        let idempotency = key.map(|key| {
            let mut hash = Sha256::new();
            hash.update(target.as_bytes());
            hash.update([0]);
            hash.update(&bytes);
            Idempotency { key, request_hash: hash.finalize().to_vec() }
        });
        Ok(Self { body, idempotency })
    }
}

/// Keys are what Stripe accepts: up to 255 visible ASCII characters.
pub(crate) fn idempotency_key(value: &HeaderValue) -> Result<String, GatewayError> {
    let invalid = |message: &str| GatewayError::InvalidHeader {
        header: "Idempotency-Key".into(),
        message: message.into(),
    };
    let key = value.to_str().map_err(|_| invalid("it must be visible ASCII"))?.trim();
    if key.is_empty() || key.len() > 255 {
        return Err(invalid("it must be 1 to 255 characters"));
    }
    Ok(key.to_owned())
}

fn json_error(rejection: JsonRejection) -> GatewayError {
    let text = rejection.body_text();
    // axum reports data errors as "...target type: <path>: <serde message>".
    let detail = text.split_once("target type: ").map(|(_, d)| d).unwrap_or(&text);
    let field = match detail.split_once(": ") {
        Some((path, rest)) if is_path(path) => {
            if let Some(invalid) = typed_field_error(path, rest) {
                return invalid;
            }
            Some(path.to_owned())
        }
        _ => detail.split('`').nth(1).map(str::to_owned),
    };
    GatewayError::InvalidJson { message: text, field }
}

fn is_path(path: &str) -> bool {
    path.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '[' || c == ']')
}

/// A serde error at `path` that is a typed id or value refusing its string (studyspot-ids: its
/// message starts with `must `): the field's validation failure (422 naming it), as when the
/// handlers checked the strings themselves; `None` for any other serde error.
pub(crate) fn typed_field_error(path: &str, message: &str) -> Option<GatewayError> {
    if !message.starts_with("must ") || path.is_empty() || !is_path(path) {
        return None;
    }
    let message = message.rsplit_once(" at line ").map_or(message, |(message, _)| message);
    Some(GatewayError::invalid(path, format!("{path} {message}")))
}

/// A typed id or value from a string that came in without a JSON body (a gRPC field, a path
/// segment): the same 422 naming the field as a JSON body's.
pub(crate) fn parse<T: std::str::FromStr<Err = ParseError>>(
    field: &str,
    value: &str,
) -> Result<T, GatewayError> {
    value.parse().map_err(|e: ParseError| GatewayError::invalid(field, e.for_field(field)))
}

/// [`parse`] of an optional field.
pub(crate) fn parse_opt<T: std::str::FromStr<Err = ParseError>>(
    field: &str,
    value: Option<&str>,
) -> Result<Option<T>, GatewayError> {
    value.map(|v| parse(field, v)).transpose()
}

/// [`parse`] of every entry of a list, each named `field[i]` as a JSON body's would be.
pub(crate) fn parse_all<T: std::str::FromStr<Err = ParseError>>(
    field: &str,
    values: &[String],
) -> Result<Vec<T>, GatewayError> {
    values.iter().enumerate().map(|(i, v)| parse(&format!("{field}[{i}]"), v)).collect()
}

/// A path segment that is an id (`/api/payments/{id}/…`), parsed like a body's: a blank one is
/// a 422 naming the segment (`id`, `booking_id`, …); what axum's `Path` refuses it still answers
/// itself. For routes with one parameter.
pub struct PathId<T>(pub T);

impl<T: std::str::FromStr<Err = ParseError>, S: Send + Sync> axum::extract::FromRequestParts<S>
    for PathId<T>
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Response> {
        let axum::extract::Path(id) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let named = axum::extract::RawPathParams::from_request_parts(parts, state).await.ok();
        let field = named.as_ref().and_then(|p| p.iter().next().map(|(name, _)| name)).unwrap_or("id");
        parse(field, &id).map(Self).map_err(IntoResponse::into_response)
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

pub(crate) fn metadata(caller: &Caller) -> EventMetadata {
    let event_id = uuid::Uuid::now_v7().to_string();
    EventMetadata {
        correlation_id: caller.correlation_id.clone().unwrap_or_else(|| event_id.clone()),
        event_id,
        occurred_at: now_ms(),
        causation_id: None,
        organization_id: caller.organization_id.to_string(),
        actor: caller.actor.clone(),
    }
}

pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

pub(crate) fn required(field: &str, value: &str) -> Result<(), GatewayError> {
    if value.trim().is_empty() {
        Err(GatewayError::invalid(field, format!("{field} must not be empty")))
    } else {
        Ok(())
    }
}

pub(crate) fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), GatewayError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(GatewayError::invalid(field, format!("{field} must be one of {}", allowed.join(", "))))
    }
}

/// What a handler hands to [`accept`] besides the command.
pub(crate) struct Accept<'a> {
    pub(crate) caller: &'a Caller,
    pub(crate) trace: &'a TraceContext,
    pub(crate) idempotency: Option<Idempotency>,
    /// The aggregate's id field and value, echoed in the answer.
    pub(crate) aggregate: (&'static str, String),
    /// The member the command concerns, if any (members may read their own commands' status).
    pub(crate) member_id: Option<&'a str>,
}

/// Records the command in the ledger, produces it to its topic and answers 202 with its id; a
/// retried `Idempotency-Key` gets the first answer instead.
pub(crate) async fn accept<R: Record>(
    state: &AppState,
    command: R,
    how: Accept<'_>,
) -> Result<(serde_json::Value, bool), GatewayError> {
    let command_id = uuid::Uuid::parse_str(&command.metadata().event_id)
        .map_err(|e| GatewayError::Internal(format!("command id: {e}")))?;
    let encoded = state.codec.encode(&command).await.map_err(|e| {
        if e.is_transient() {
            GatewayError::Unavailable(e.to_string())
        } else {
            GatewayError::Internal(e.to_string())
        }
    })?;
    let mut message = OutboundMessage::from_encoded(encoded, how.trace);
    message.topic = format!("{}{}", state.topic_prefix, message.topic);
    let response = json!({
        "command_id": command_id,
        "status_url": format!("/api/commands/{command_id}"),
        how.aggregate.0: how.aggregate.1,
    });
    let entry = Entry {
        command_id,
        organization_id: how.caller.organization_id.as_str(),
        actor: &how.caller.actor,
        member_id: how.member_id,
        domain: R::topic().owner,
        command_type: R::FULL_NAME,
        response: &response,
        idempotency: how.idempotency.as_ref(),
        message: &message,
    };
    let keyed = how.idempotency.is_some();
    let (command_id, response, message, replayed) = match state.ledger.begin(&entry).await? {
        Begun::New => (command_id, response, message, false),
        Begun::Replay(first) => return Ok((first, true)),
        Begun::Resend { command_id, response, message } => (command_id, response, message, true),
        Begun::Reused => return Err(GatewayError::IdempotencyKeyReused),
        Begun::InFlight => return Err(GatewayError::IdempotencyKeyInUse),
    };
    if let Err(e) = state.producer.send(&message).await {
        state.ledger.produce_failed(command_id, keyed).await?;
        return Err(GatewayError::Unavailable(e.to_string()));
    }
    // Only a key's retry asks whether its first request reached the broker. The broker has the
    // command whatever the mark does: a mark that fails only makes a retry re-send the same
    // record later, so the caller is told 202, not 503.
    if keyed && let Err(e) = state.ledger.produced(command_id).await {
        tracing::warn!(%command_id, error = %e, "could not mark a keyed command produced; a retry will re-send it");
    }
    Ok((response, replayed))
}

pub(crate) fn answer((body, replayed): (serde_json::Value, bool)) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentRequest {
    #[schema(value_type = Option<String>)]
    pub(crate) payment_id: Option<PaymentId>,
    #[schema(value_type = String)]
    pub(crate) member_id: MemberId,
    pub(crate) amount_minor: i64,
    #[schema(value_type = String)]
    pub(crate) currency: Currency,
    #[schema(value_type = String)]
    pub(crate) method: PaymentMethodKind,
    pub(crate) description: Option<String>,
    /// The invoice this payment pays (in part or in full).
    #[schema(value_type = Option<String>)]
    pub(crate) invoice_id: Option<InvoiceId>,
    /// A stored payment method of the member to charge.
    #[schema(value_type = Option<String>)]
    pub(crate) payment_method_id: Option<PaymentMethodId>,
}

#[utoipa::path(post, path = "/api/payments", tag = "billing", request_body = CreatePaymentRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer and produces nothing new"),
        ("X-Correlation-Id" = Option<String>, Header, description = "Carried on every event the command causes"),
    ),
    responses(
        (status = 202, description = "Accepted; decided asynchronously", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 409, description = "The Idempotency-Key's first request is still in flight", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid, or the Idempotency-Key was used with another request", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn create_payment(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<CreatePaymentRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(create_payment_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

/// The command behind `create_payment`, whichever protocol it came by.
pub(crate) async fn create_payment_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: CreatePaymentRequest,
) -> Result<(serde_json::Value, bool), GatewayError> {
    if body.amount_minor <= 0 {
        return Err(GatewayError::invalid(
            "amount_minor",
            "amount_minor must be a positive number of minor units",
        ));
    }
    caller.require_member_or_operator(body.member_id.as_str(), "creating a payment")?;
    let member_id = body.member_id.clone();
    let payment_id = body.payment_id.map_or_else(|| new_id("pay"), String::from);
    let command = billing::CreatePayment {
        metadata: metadata(caller),
        payment_id: payment_id.clone(),
        member_id: body.member_id.into(),
        amount_minor: body.amount_minor,
        currency: body.currency.into(),
        method: body.method.into(),
        description: body.description,
        invoice_id: body.invoice_id.map(String::from),
        payment_method_id: body.payment_method_id.map(String::from),
    };
    let aggregate = ("payment_id", payment_id);
    let how = Accept { caller, trace, idempotency, aggregate, member_id: Some(member_id.as_str()) };
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendNotificationRequest {
    #[schema(value_type = Option<String>)]
    pub(crate) notification_id: Option<NotificationId>,
    #[schema(value_type = String)]
    pub(crate) recipient_id: RecipientId,
    pub(crate) channel: String,
    pub(crate) category: String,
    pub(crate) subject: Option<String>,
    /// The text; may be empty when `template_id` renders it.
    #[serde(default)]
    pub(crate) body: String,
    /// A template of the organization, rendered with `variables`.
    #[schema(value_type = Option<String>)]
    pub(crate) template_id: Option<TemplateId>,
    #[serde(default)]
    pub(crate) variables: std::collections::HashMap<String, String>,
    /// BCP 47, e.g. de-DE.
    pub(crate) locale: Option<String>,
    /// Bypasses opt-outs, caps and quiet hours.
    #[serde(default)]
    pub(crate) critical: bool,
    /// Groups notifications that can be cancelled together while they wait.
    #[schema(value_type = Option<String>)]
    pub(crate) transaction_id: Option<TransactionId>,
    /// Not before then (RFC 3339).
    pub(crate) send_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Collect with the recipient's other messages of this key (same channel and category) into
    /// one digest, sent when its window closes. Critical messages are never digested.
    pub(crate) digest_key: Option<String>,
    /// The digest's window from its first message, 60 s to 31 days; 3600 when absent.
    pub(crate) digest_window_secs: Option<i64>,
    /// Or a schedule: the digest goes out at this local time (`HH:MM`, the recipient's zone).
    pub(crate) digest_at_local: Option<String>,
}

#[utoipa::path(post, path = "/api/notifications", tag = "notifications", request_body = SendNotificationRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer and produces nothing new"),
        ("X-Correlation-Id" = Option<String>, Header, description = "Carried on every event the command causes"),
    ),
    responses(
        (status = 202, description = "Accepted; decided asynchronously", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 409, description = "The Idempotency-Key's first request is still in flight", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid, or the Idempotency-Key was used with another request", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn send_notification(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<SendNotificationRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(send_notification_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

/// The command behind `send_notification`, whichever protocol it came by.
pub(crate) async fn send_notification_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: SendNotificationRequest,
) -> Result<(serde_json::Value, bool), GatewayError> {
    required("category", &body.category)?;
    if body.template_id.is_none() {
        required("body", &body.body)?;
    }
    one_of("channel", &body.channel, &notifications::CHANNELS)?;
    one_of("category", &body.category, &notifications::CATEGORIES)?;
    if let Some(key) = &body.digest_key {
        required("digest_key", key)?;
    }
    if let Some(local) = &body.digest_at_local {
        if body.digest_key.is_none() || body.digest_window_secs.is_some() {
            return Err(GatewayError::invalid(
                "digest_at_local",
                "digest_at_local needs a digest_key and excludes digest_window_secs",
            ));
        }
        if chrono::NaiveTime::parse_from_str(local, "%H:%M").is_err() {
            return Err(GatewayError::invalid(
                "digest_at_local",
                format!("digest_at_local {local:?} is not HH:MM"),
            ));
        }
    }
    if let Some(window) = body.digest_window_secs {
        if body.digest_key.is_none() {
            return Err(GatewayError::invalid("digest_window_secs", "digest_window_secs needs a digest_key"));
        }
        if !(60..=31 * 86_400).contains(&window) {
            return Err(GatewayError::invalid(
                "digest_window_secs",
                format!("digest_window_secs {window} is not between 60 and 2678400 (31 days)"),
            ));
        }
    }
    caller.require_operator("sending a notification")?;
    let notification_id = body.notification_id.map_or_else(|| new_id("ntf"), String::from);
    if crate::notification_routes::RESERVED_IDS.contains(&notification_id.as_str()) {
        return Err(GatewayError::invalid(
            "notification_id",
            format!("{notification_id} names a route of the API; choose another notification_id"),
        ));
    }
    let command = notifications::SendNotification {
        metadata: metadata(caller),
        notification_id: notification_id.clone(),
        recipient_id: body.recipient_id.into(),
        channel: body.channel,
        category: body.category,
        subject: body.subject,
        body: body.body,
        template_id: body.template_id.map(String::from),
        variables: body.variables,
        locale: body.locale,
        critical: body.critical,
        transaction_id: body.transaction_id.map(String::from),
        send_at: body.send_at.map(|t| t.timestamp_millis()),
        campaign_id: None,
        digest_key: body.digest_key,
        digest_window_secs: body.digest_window_secs,
        digest_at_local: body.digest_at_local,
    };
    let aggregate = ("notification_id", notification_id);
    let how = Accept { caller, trace, idempotency, aggregate, member_id: None };
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInRequest {
    #[schema(value_type = Option<String>)]
    pub(crate) session_id: Option<SessionId>,
    #[schema(value_type = String)]
    pub(crate) member_id: MemberId,
    #[schema(value_type = String)]
    pub(crate) venue_id: VenueId,
    #[schema(value_type = Option<String>)]
    pub(crate) seat_id: Option<SeatId>,
    /// A zone without a seat.
    #[schema(value_type = Option<String>)]
    pub(crate) zone_id: Option<ZoneId>,
    /// The signed QR token scanned (a seat's) or shown (the member's); members must present one
    /// where the venue requires it.
    pub(crate) qr_token: Option<String>,
}

#[utoipa::path(post, path = "/api/attendance/check-ins", tag = "attendance", request_body = CheckInRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer and produces nothing new"),
        ("X-Correlation-Id" = Option<String>, Header, description = "Carried on every event the command causes"),
    ),
    responses(
        (status = 202, description = "Accepted; decided asynchronously", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 409, description = "The Idempotency-Key's first request is still in flight", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid, or the Idempotency-Key was used with another request", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn check_in(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<CheckInRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(check_in_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

/// The command behind `check_in`, whichever protocol it came by.
pub(crate) async fn check_in_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: CheckInRequest,
) -> Result<(serde_json::Value, bool), GatewayError> {
    if let Some(token) = &body.qr_token {
        required("qr_token", token)?;
    }
    caller.require_member_or_operator(body.member_id.as_str(), "checking in")?;
    let member_id = body.member_id.clone();
    let session_id = body.session_id.map_or_else(|| new_id("ses"), String::from);
    let command = attendance::CheckIn {
        metadata: metadata(caller),
        session_id: session_id.clone(),
        member_id: body.member_id.into(),
        venue_id: body.venue_id.into(),
        seat_id: body.seat_id.map(String::from),
        zone_id: body.zone_id.map(String::from),
        qr_token: body.qr_token,
        // Staff check members in at the desk; a member proves presence with a QR token.
        staff_assisted: caller.require_operator("").is_ok(),
    };
    let aggregate = ("session_id", session_id);
    let how = Accept { caller, trace, idempotency, aggregate, member_id: Some(member_id.as_str()) };
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSampleRequest {
    pub(crate) metric: String,
    #[serde(default)]
    pub(crate) labels: HashMap<String, String>,
    pub(crate) value: f64,
    pub(crate) sampled_at: Option<i64>,
}

#[utoipa::path(post, path = "/api/monitoring/metrics", tag = "monitoring", request_body = MetricSampleRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer and produces nothing new"),
        ("X-Correlation-Id" = Option<String>, Header, description = "Carried on every event the command causes"),
    ),
    responses(
        (status = 202, description = "Accepted; decided asynchronously", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 409, description = "The Idempotency-Key's first request is still in flight", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid, or the Idempotency-Key was used with another request", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn record_metric_sample(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<MetricSampleRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(record_metric_sample_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

/// The command behind `record_metric_sample`, whichever protocol it came by.
pub(crate) async fn record_metric_sample_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: MetricSampleRequest,
) -> Result<(serde_json::Value, bool), GatewayError> {
    required("metric", &body.metric)?;
    if !body.value.is_finite() {
        return Err(GatewayError::invalid("value", "value must be a finite number"));
    }
    caller.require_operator("recording a metric sample")?;
    let command = alerts::RecordMetricSample {
        metadata: metadata(caller),
        metric: body.metric.clone(),
        labels: body.labels,
        value: body.value,
        sampled_at: body.sampled_at.unwrap_or_else(now_ms),
    };
    let aggregate = ("metric", body.metric);
    let how = Accept { caller, trace, idempotency, aggregate, member_id: None };
    accept(state, command, how).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn refused(body: &str) -> (String, String, String) {
        let rejection = Json::<CreatePaymentRequest>::from_bytes(body.as_bytes()).err().unwrap();
        let e = json_error(rejection);
        let body = e.to_string();
        match e {
            GatewayError::Validation { field, message } => ("validation_failed".into(), field, message),
            GatewayError::InvalidJson { field, .. } => {
                ("invalid_json".into(), field.unwrap_or_default(), body)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_typed_field_that_does_not_parse_is_its_validation_failure() {
        let payment = |field: &str, value: serde_json::Value| {
            let mut body =
                json!({ "member_id": "mem_1", "amount_minor": 100, "currency": "EUR", "method": "card" });
            body[field] = value;
            refused(&body.to_string())
        };
        let expect = |field: &str, message: &str| {
            ("validation_failed".to_owned(), field.to_owned(), message.to_owned())
        };
        assert_eq!(payment("member_id", json!(" ")), expect("member_id", "member_id must not be empty"));
        assert_eq!(payment("invoice_id", json!("")), expect("invoice_id", "invoice_id must not be empty"));
        assert_eq!(
            payment("currency", json!("eur")),
            expect("currency", "currency must be an ISO 4217 code such as EUR")
        );
        assert_eq!(
            payment("method", json!("cheque")),
            expect("method", "method must be one of card, bank_transfer, upi, wallet, cash")
        );
        // Not a string at all stays malformed JSON, naming the field.
        let (code, field, _) = payment("member_id", json!(5));
        assert_eq!((code.as_str(), field.as_str()), ("invalid_json", "member_id"));
    }

    #[test]
    fn the_closed_values_are_the_schemas_lists() {
        assert_eq!(PaymentMethodKind::ALL, billing::PAYMENT_METHODS);
        assert_eq!(studyspot_ids::PlanTier::ALL, billing::PLAN_TIERS);
        assert_eq!(studyspot_ids::Cycle::ALL, billing::CYCLES);
    }
}
