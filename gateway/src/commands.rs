//! Command endpoints: shape checks, then a command event on its topic, then `202 Accepted`.

use std::{
    collections::HashMap,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    Extension, Json,
    extract::{FromRequest, Request, State, rejection::JsonRejection},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;
use studyspot_bus::{OutboundMessage, TraceContext};
use studyspot_schemas::{EventMetadata, Record, alerts, attendance, billing, notifications};

use crate::{AppState, BODY_LIMIT, GatewayError, caller::Caller};

/// JSON bodies whose every failure is a [`GatewayError`] naming the field when it can.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = GatewayError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> GatewayError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return GatewayError::TooLarge { limit: BODY_LIMIT };
    }
    let text = rejection.body_text();
    // axum reports data errors as "...target type: <path>: <serde message>".
    let detail = text.split_once("target type: ").map(|(_, d)| d).unwrap_or(&text);
    let field = match detail.split_once(": ") {
        Some((path, _))
            if path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '[' || c == ']') =>
        {
            Some(path.to_owned())
        }
        _ => detail.split('`').nth(1).map(str::to_owned),
    };
    GatewayError::InvalidJson { message: text, field }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

fn metadata(caller: &Caller) -> EventMetadata {
    let event_id = uuid::Uuid::now_v7().to_string();
    EventMetadata {
        correlation_id: caller.correlation_id.clone().unwrap_or_else(|| event_id.clone()),
        event_id,
        occurred_at: now_ms(),
        causation_id: None,
        organization_id: caller.organization_id.clone(),
        actor: caller.actor.clone(),
    }
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

fn required(field: &str, value: &str) -> Result<(), GatewayError> {
    if value.trim().is_empty() {
        Err(GatewayError::invalid(field, format!("{field} must not be empty")))
    } else {
        Ok(())
    }
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), GatewayError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(GatewayError::invalid(field, format!("{field} must be one of {}", allowed.join(", "))))
    }
}

/// Produces `command` to its topic and answers 202 with its id and the aggregate's id.
async fn accept<R: Record>(
    state: &AppState,
    trace: &TraceContext,
    command: R,
    aggregate: (&str, String),
) -> Result<impl IntoResponse + use<R>, GatewayError> {
    let command_id = command.metadata().event_id.clone();
    let encoded = state.codec.encode(&command).await.map_err(|e| {
        if e.is_transient() {
            GatewayError::Unavailable(e.to_string())
        } else {
            GatewayError::Internal(e.to_string())
        }
    })?;
    let mut message = OutboundMessage::from_encoded(encoded, trace);
    message.topic = format!("{}{}", state.topic_prefix, message.topic);
    state.producer.send(&message).await.map_err(|e| GatewayError::Unavailable(e.to_string()))?;
    let body = json!({
        "command_id": command_id,
        "status_url": format!("/api/commands/{command_id}"),
        aggregate.0: aggregate.1,
    });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentRequest {
    payment_id: Option<String>,
    member_id: String,
    amount_minor: i64,
    currency: String,
    method: String,
    description: Option<String>,
}

pub async fn create_payment(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    Body(body): Body<CreatePaymentRequest>,
) -> Result<impl IntoResponse, GatewayError> {
    required("member_id", &body.member_id)?;
    if body.amount_minor <= 0 {
        return Err(GatewayError::invalid(
            "amount_minor",
            "amount_minor must be a positive number of minor units",
        ));
    }
    if body.currency.len() != 3 || !body.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(GatewayError::invalid("currency", "currency must be an ISO 4217 code such as EUR"));
    }
    one_of("method", &body.method, &billing::PAYMENT_METHODS)?;
    let payment_id = body.payment_id.unwrap_or_else(|| new_id("pay"));
    required("payment_id", &payment_id)?;
    let command = billing::CreatePayment {
        metadata: metadata(&caller),
        payment_id: payment_id.clone(),
        member_id: body.member_id,
        amount_minor: body.amount_minor,
        currency: body.currency,
        method: body.method,
        description: body.description,
    };
    accept(&state, &trace, command, ("payment_id", payment_id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendNotificationRequest {
    notification_id: Option<String>,
    recipient_id: String,
    channel: String,
    category: String,
    subject: Option<String>,
    body: String,
}

pub async fn send_notification(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    Body(body): Body<SendNotificationRequest>,
) -> Result<impl IntoResponse, GatewayError> {
    required("recipient_id", &body.recipient_id)?;
    required("category", &body.category)?;
    required("body", &body.body)?;
    one_of("channel", &body.channel, &notifications::CHANNELS)?;
    let notification_id = body.notification_id.unwrap_or_else(|| new_id("ntf"));
    required("notification_id", &notification_id)?;
    let command = notifications::SendNotification {
        metadata: metadata(&caller),
        notification_id: notification_id.clone(),
        recipient_id: body.recipient_id,
        channel: body.channel,
        category: body.category,
        subject: body.subject,
        body: body.body,
    };
    accept(&state, &trace, command, ("notification_id", notification_id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInRequest {
    session_id: Option<String>,
    member_id: String,
    venue_id: String,
    seat_id: Option<String>,
}

pub async fn check_in(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    Body(body): Body<CheckInRequest>,
) -> Result<impl IntoResponse, GatewayError> {
    required("member_id", &body.member_id)?;
    required("venue_id", &body.venue_id)?;
    if let Some(seat) = &body.seat_id {
        required("seat_id", seat)?;
    }
    let session_id = body.session_id.unwrap_or_else(|| new_id("ses"));
    required("session_id", &session_id)?;
    let command = attendance::CheckIn {
        metadata: metadata(&caller),
        session_id: session_id.clone(),
        member_id: body.member_id,
        venue_id: body.venue_id,
        seat_id: body.seat_id,
    };
    accept(&state, &trace, command, ("session_id", session_id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSampleRequest {
    metric: String,
    #[serde(default)]
    labels: HashMap<String, String>,
    value: f64,
    sampled_at: Option<i64>,
}

pub async fn record_metric_sample(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    Body(body): Body<MetricSampleRequest>,
) -> Result<impl IntoResponse, GatewayError> {
    required("metric", &body.metric)?;
    if !body.value.is_finite() {
        return Err(GatewayError::invalid("value", "value must be a finite number"));
    }
    let command = alerts::RecordMetricSample {
        metadata: metadata(&caller),
        metric: body.metric.clone(),
        labels: body.labels,
        value: body.value,
        sampled_at: body.sampled_at.unwrap_or_else(now_ms),
    };
    accept(&state, &trace, command, ("metric", body.metric)).await
}
