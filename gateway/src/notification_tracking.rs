//! Delivery tracking on the gateway, without bearer tokens: the open pixel and the click redirect
//! of HTML e-mails (signed links the notifications delivery worker made), and Twilio's status
//! callbacks (signed by Twilio, to a signed per-message URL, or to the configured URL: then the
//! message is found by its sid). Each becomes a
//! `RecordDeliveryStatus` command for the notifications consumer, which decides what it means.
//! Only a verified link names a notification; the redirect only ever goes to a signed target.

use axum::{
    Extension, Form, Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};
use studyspot_bus::TraceContext;
use studyspot_notifications_projection::tracking;
use studyspot_schemas::notifications::RecordDeliveryStatus;
use studyspot_tracking_links::{Keys, Kind, Link};

use std::time::Duration;

use crate::{
    AppState, GatewayError,
    auth::{Caller, Role},
    commands::{Accept, accept, answer, metadata},
    error::projection_missing,
    ledger::Idempotency,
    limits::RateLimits,
};

/// A transparent 1×1 GIF.
const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
    0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// `[notifications.tracking]` as the gateway needs it.
#[derive(Clone, Default)]
pub struct TrackingSettings {
    keys: Keys,
    public_base_url: String,
    twilio_auth_token: Option<SecretString>,
    limits: TrackingLimits,
}

/// What the token-less routes may record: per link (opens and clicks) and per organization.
#[derive(Clone)]
struct TrackingLimits {
    per_link: RateLimits,
    per_organization: RateLimits,
}

impl TrackingLimits {
    fn new(per_link_per_hour: u32, per_organization_per_second: u32) -> Self {
        let per_link_per_hour = per_link_per_hour.max(1);
        let per_second = per_organization_per_second.max(1);
        Self {
            per_link: RateLimits::every(Duration::from_secs(3600) / per_link_per_hour, per_link_per_hour),
            per_organization: RateLimits::every(
                Duration::from_secs(1) / per_second,
                per_second.saturating_mul(10),
            ),
        }
    }

    /// Whether one more event of `link` (from `source`) may be recorded now. The per-link bucket
    /// is taken first, so a replayed link spends its own room, not its organization's.
    fn admit(&self, link: &Link, source: &str, per_link: bool) -> Result<(), GatewayError> {
        if per_link {
            self.per_link.check(&format!("{}/{}/{source}", link.organization_id, link.notification_id))?;
        }
        self.per_organization.check(&link.organization_id)
    }

    pub(crate) fn forget_idle(&self) {
        self.per_link.forget_idle();
        self.per_organization.forget_idle();
    }
}

impl Default for TrackingLimits {
    fn default() -> Self {
        Self::new(20, 50)
    }
}

impl TrackingSettings {
    pub fn from_settings(n: &studyspot_config::Notifications) -> Self {
        let t = &n.tracking;
        let channel_token = |channel: &str| {
            n.channels
                .get(channel)
                .and_then(|c| c.get("auth_token"))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let twilio = Some(t.twilio_auth_token.expose_secret().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| channel_token("sms"))
            .or_else(|| channel_token("whatsapp"))
            .filter(|s| !s.is_empty())
            .map(SecretString::from);
        Self {
            keys: if t.enabled { Keys::new(&t.signing_key_id, t.secrets.clone()) } else { Keys::default() },
            public_base_url: t.public_base_url.trim_end_matches('/').to_owned(),
            twilio_auth_token: twilio,
            limits: TrackingLimits::new(t.events_per_link_per_hour, t.events_per_organization_per_second),
        }
    }

    /// Drops the rate buckets that are full again.
    pub(crate) fn forget_idle(&self) {
        self.limits.forget_idle();
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The link a token names, if it verifies and is of `kind`.
fn verified(state: &AppState, token: &str, kind: Kind) -> Result<Link, GatewayError> {
    let link =
        state.tracking.keys.verify(token, now_secs()).map_err(|e| GatewayError::InvalidLink {
            message: format!("the link's token is not valid: {e}"),
        })?;
    if link.kind != kind {
        return Err(GatewayError::InvalidLink {
            message: format!("the token is for a {} link, not a {} link", link.kind.as_str(), kind.as_str()),
        });
    }
    Ok(link)
}

/// The organization's tracking service acting on a verified link.
fn caller(link: &Link, actor: &str) -> Result<Caller, GatewayError> {
    let organization_id = studyspot_ids::OrganizationId::parse(link.organization_id.as_str())
        .map_err(|e| GatewayError::InvalidLink { message: format!("the link's organization {e}") })?;
    Ok(Caller {
        organization_id,
        actor: actor.to_owned(),
        roles: vec![Role::Service],
        member_id: None,
        correlation_id: Some(link.notification_id.clone()),
        scopes: Vec::new(),
    })
}

struct Status<'a> {
    status: &'a str,
    url: Option<String>,
    provider_status: Option<String>,
    source: &'a str,
}

async fn record(
    state: &AppState,
    trace: &TraceContext,
    link: &Link,
    actor: &str,
    s: Status<'_>,
    idempotency: Option<Idempotency>,
    event_id: Option<String>,
) -> Result<(serde_json::Value, bool), GatewayError> {
    // Opens and clicks come from anyone holding the link; a provider's callbacks are signed by it.
    state.tracking.limits.admit(link, s.source, s.source != "twilio")?;
    let caller = caller(link, actor)?;
    let mut metadata = metadata(&caller);
    if let Some(id) = event_id {
        metadata.event_id = id;
    }
    let command = RecordDeliveryStatus {
        metadata,
        notification_id: link.notification_id.clone(),
        recipient_id: link.recipient_id.clone(),
        status: s.status.to_owned(),
        url: s.url,
        provider_status: s.provider_status,
        source: s.source.to_owned(),
    };
    let how = Accept {
        caller: &caller,
        trace,
        idempotency,
        aggregate: ("notification_id", link.notification_id.clone()),
        member_id: None,
    };
    accept(state, command, how).await
}

#[utoipa::path(get, path = "/api/notifications/tracking/open/{token}", tag = "notifications",
    params(("token" = String, Path, description = "The signed open link of one e-mail")),
    security(()),
    responses(
        (status = 200, description = "A transparent 1×1 GIF, whatever the token; a valid one records the message opened", content_type = "image/gif"),
    )
)]
pub async fn open_pixel(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    Path(token): Path<String>,
) -> Response {
    match verified(&state, &token, Kind::Open) {
        Ok(link) => {
            let opened = Status { status: "opened", url: None, provider_status: None, source: "open_pixel" };
            match record(&state, &trace, &link, "tracking:open_pixel", opened, None, None).await {
                Ok(_) => {}
                Err(GatewayError::RateLimited { .. }) => {
                    tracing::debug!(notification = %link.notification_id, "an open past the link's rate");
                }
                Err(e) => {
                    tracing::warn!(notification = %link.notification_id, error = %e, "an open was not recorded")
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "open pixel with an invalid token"),
    }
    let mut response = (StatusCode::OK, PIXEL.to_vec()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate, private"),
    );
    response
}

#[utoipa::path(get, path = "/api/notifications/tracking/click/{token}", tag = "notifications",
    params(("token" = String, Path, description = "The signed click link of one link in one e-mail")),
    security(()),
    responses(
        (status = 302, description = "To the link's signed target; the click is recorded"),
        (status = 400, description = "The token is not a valid click link (code invalid_link, field token): nothing is recorded and nobody is redirected", body = crate::openapi::ErrorBody),
    )
)]
pub async fn click_redirect(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    Path(token): Path<String>,
) -> Result<Response, GatewayError> {
    let link = verified(&state, &token, Kind::Click)?;
    let target = link
        .url
        .clone()
        .filter(|u| {
            let lower = u.to_ascii_lowercase();
            lower.starts_with("http://") || lower.starts_with("https://")
        })
        .ok_or_else(|| GatewayError::InvalidLink { message: "the link has no http(s) target".into() })?;
    let location = HeaderValue::from_str(&target)
        .map_err(|_| GatewayError::InvalidLink { message: "the link's target is not a valid URL".into() })?;
    let clicked = Status {
        status: "clicked",
        url: Some(target.clone()),
        provider_status: None,
        source: "click_redirect",
    };
    // The recipient gets where they were going even when the click cannot be recorded now.
    match record(&state, &trace, &link, "tracking:click_redirect", clicked, None, None).await {
        Ok(_) => {}
        Err(GatewayError::RateLimited { .. }) => {
            tracing::debug!(notification = %link.notification_id, "a click past the link's rate");
        }
        Err(e) => {
            tracing::warn!(notification = %link.notification_id, error = %e, "a click was not recorded")
        }
    }
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Twilio's `MessageStatus` as a delivery status; `None` for the steps before the end.
fn twilio_status(message_status: &str) -> Option<&'static str> {
    match message_status {
        "delivered" => Some("delivered"),
        "undelivered" | "failed" => Some("undelivered"),
        "read" => Some("opened"),
        _ => None,
    }
}

#[utoipa::path(post, path = "/api/notifications/tracking/twilio/{token}", tag = "notifications",
    params(
        ("token" = String, Path, description = "The signed status-callback link of one SMS or WhatsApp message"),
        ("X-Twilio-Signature" = String, Header, description = "Twilio's HMAC-SHA1 of the URL and the form parameters"),
    ),
    request_body(content = String, description = "Twilio's status callback: MessageSid, MessageStatus, ErrorCode, …", content_type = "application/x-www-form-urlencoded"),
    security(()),
    responses(
        (status = 202, description = "Verified; the status is recorded", body = crate::openapi::Accepted),
        (status = 200, description = "Verified, but not a final status (queued, sending, sent, …)"),
        (status = 400, description = "The token is not a valid status link (code invalid_link, field token)", body = crate::openapi::ErrorBody),
        (status = 401, description = "X-Twilio-Signature missing or wrong", body = crate::openapi::ErrorBody),
        (status = 404, description = "No Twilio auth token is configured", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker or database unavailable: Twilio retries", body = crate::openapi::ErrorBody),
    )
)]
pub async fn twilio_status_callback(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    Path(token): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Result<Response, GatewayError> {
    twilio_verified(&state, &uri, &headers, &params)?;
    let link = verified(&state, &token, Kind::Status)?;
    twilio_record(&state, &trace, &link, &params).await
}

#[utoipa::path(post, path = "/api/notifications/tracking/twilio", tag = "notifications",
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's HMAC-SHA1 of the URL and the form parameters")),
    request_body(content = String, description = "Twilio's status callback to the configured StatusCallback URL: the message is found by MessageSid", content_type = "application/x-www-form-urlencoded"),
    security(()),
    responses(
        (status = 202, description = "Verified; the status is recorded", body = crate::openapi::Accepted),
        (status = 200, description = "Verified, but not a final status (queued, sending, sent, …)"),
        (status = 401, description = "X-Twilio-Signature missing or wrong", body = crate::openapi::ErrorBody),
        (status = 404, description = "No notification was sent under this MessageSid (yet), or no Twilio auth token is configured", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker or database unavailable: Twilio retries", body = crate::openapi::ErrorBody),
    )
)]
pub async fn twilio_status_by_sid(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    uri: Uri,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Result<Response, GatewayError> {
    twilio_verified(&state, &uri, &headers, &params)?;
    let sid = params.iter().find(|(k, _)| k == "MessageSid").map(|(_, v)| v.as_str()).unwrap_or_default();
    let found = match tracking::find_by_provider_message_id(&state.readonly, sid).await {
        Err(e) if projection_missing(&e) => None,
        other => other?,
    };
    let message = found.ok_or_else(|| GatewayError::NotFound(format!("message {sid}")))?;
    let link = Link {
        notification_id: message.notification_id,
        recipient_id: message.recipient_id,
        organization_id: message.organization_id,
        kind: Kind::Status,
        url: None,
        expires_at: None,
    };
    twilio_record(&state, &trace, &link, &params).await
}

/// Checks `X-Twilio-Signature` over the URL Twilio called (the public base URL, this path and
/// query) and the form parameters.
fn twilio_verified(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<(), GatewayError> {
    let auth_token =
        state.tracking.twilio_auth_token.as_ref().ok_or_else(|| {
            GatewayError::NotFound("Twilio status callbacks (no auth token configured)".into())
        })?;
    let signature = headers
        .get("x-twilio-signature")
        .ok_or(GatewayError::MissingHeader { header: "X-Twilio-Signature" })?
        .to_str()
        .unwrap_or_default();
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let url = format!("{}{path}", state.tracking.public_base_url);
    if !studyspot_notification_channels::verify_twilio_signature(
        auth_token.expose_secret(),
        &url,
        params,
        signature,
    ) {
        return Err(GatewayError::Unauthenticated {
            code: "invalid_signature",
            message: "X-Twilio-Signature does not match this request".into(),
        });
    }
    Ok(())
}

/// What names the command of one Twilio status of one message, and so its event id and idempotency
/// key: a repeated callback is the same command. The organization is part of it, with the
/// notification id as the delivery worker keys the message at Twilio (`message_key`): notification
/// ids are unique only within an organization, and two organizations' callbacks must not be taken
/// for one (the second would be dropped as a duplicate of the first).
fn twilio_command_name(link: &Link, message_sid: &str, message_status: &str) -> String {
    let message = studyspot_notification_channels::message_key(&link.organization_id, &link.notification_id);
    format!("twilio/{message}/{message_sid}/{message_status}")
}

/// A verified callback's final status as a command; earlier steps are acknowledged only.
async fn twilio_record(
    state: &AppState,
    trace: &TraceContext,
    link: &Link,
    params: &[(String, String)],
) -> Result<Response, GatewayError> {
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let message_status = param("MessageStatus").or(param("SmsStatus")).unwrap_or_default();
    let Some(status) = twilio_status(message_status) else {
        return Ok((StatusCode::OK, Json(json!({ "ignored": true, "message_status": message_status })))
            .into_response());
    };
    let provider_status = match param("ErrorCode").filter(|c| !c.is_empty()) {
        Some(code) => format!("{message_status}/{code}"),
        None => message_status.to_owned(),
    };
    let name = twilio_command_name(link, param("MessageSid").unwrap_or_default(), message_status);
    let event_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string();
    let idempotency =
        Idempotency { key: name.clone(), request_hash: Sha256::digest(name.as_bytes()).to_vec() };
    let s = Status { status, url: None, provider_status: Some(provider_status), source: "twilio" };
    Ok(answer(record(state, trace, link, "provider:twilio", s, Some(idempotency), Some(event_id)).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_statuses_map_to_delivery_statuses_and_the_rest_waits() {
        assert_eq!(twilio_status("delivered"), Some("delivered"));
        assert_eq!(twilio_status("undelivered"), Some("undelivered"));
        assert_eq!(twilio_status("failed"), Some("undelivered"));
        assert_eq!(twilio_status("read"), Some("opened"));
        for waiting in ["queued", "accepted", "sending", "sent", "scheduled", ""] {
            assert_eq!(twilio_status(waiting), None, "{waiting}");
        }
    }

    #[test]
    fn a_twilio_status_names_its_command_by_organization_message_and_status() {
        let link = |organization: &str| Link {
            notification_id: "ntf_1".into(),
            recipient_id: "mem_1".into(),
            organization_id: organization.into(),
            kind: Kind::Status,
            url: None,
            expires_at: None,
        };
        let name = |organization: &str, status: &str| twilio_command_name(&link(organization), "SM1", status);
        assert_eq!(name("org_a", "delivered"), name("org_a", "delivered"), "a repeat is the same command");
        assert_ne!(name("org_a", "delivered"), name("org_b", "delivered"), "two organizations, two commands");
        assert_ne!(name("org_a", "delivered"), name("org_a", "read"));
    }

    #[test]
    fn the_pixel_is_a_gif() {
        assert_eq!(&PIXEL[..6], b"GIF89a");
        assert_eq!(PIXEL[PIXEL.len() - 1], 0x3b);
    }
}
