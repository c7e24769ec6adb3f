//! Webhooks: a JSON POST to the recipient's URL, signed per Standard Webhooks
//! ([`webhook_signature`](crate::webhook_signature)).
//!
//! `POST {to}` with `Content-Type: application/json`, the body
//! `{"type": event_type, "timestamp": "2026-03-01T09:30:00Z", "text": "…", "data": {…}}` (`text`,
//! the message itself, also makes it a Slack-compatible incoming-webhook payload) and the headers
//! - `webhook-id`: the idempotency key (the same on every attempt; receivers de-duplicate by it),
//! - `webhook-timestamp`: the attempt's time in unix seconds (the body's `timestamp` is the same
//!   instant in RFC 3339), so a late retry still falls within the receiver's tolerance,
//! - `webhook-signature`: `v1,{base64 HMAC-SHA256}` with the message's `webhook_secret`.
//!
//! Redirects are not followed. 2xx → [`DeliveryStatus::Sent`](crate::DeliveryStatus::Sent);
//! 408, 429, 5xx, timeouts and connection failures → [`ChannelError::Transient`] (retried);
//! any other status → [`ChannelError::Permanent`] with the status as its code (`"410"`). Errors
//! name the status, never what the endpoint answered: the URL is a tenant's, and so is whoever
//! reads the error.
//! A message without a secret is a [`ChannelError::Config`] (nothing is sent unsigned).
//!
//! Only addresses the [outbound policy](studyspot_outbound::Policy) allows are connected to,
//! checked on the address the host resolves to when connecting (and on IP-literal hosts before):
//! by default no loopback, private, link-local (cloud metadata), CGNAT or other special address.
//! A refused URL is [`ChannelError::Permanent`] `target_not_allowed`, without connecting.
//! Per-endpoint rate limits are the caller's.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::CONTENT_TYPE;
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::config::RetryPolicy;
use crate::error::ChannelError;
use crate::http::{self, with_retry};
use crate::types::{ChannelName, Delivery, Message};
use crate::webhook_signature::{secret_key, sign_with_key};
use crate::{Channel, async_trait};

const NAME: ChannelName = ChannelName::Webhook;

/// The webhook channel. Cheap to share (`Arc`), safe to call concurrently.
#[derive(Debug)]
pub struct WebhookChannel {
    http: reqwest::Client,
    retry: RetryPolicy,
    outbound: studyspot_outbound::Policy,
}

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    /// The message as people read it (subject, a blank line, body): also what a Slack-compatible
    /// incoming webhook shows.
    #[serde(skip_serializing_if = "String::is_empty")]
    text: String,
    data: &'a BTreeMap<String, String>,
}

impl WebhookChannel {
    /// The payload's `type` when the message has no `event_type`.
    pub const DEFAULT_EVENT_TYPE: &'static str = "notification";

    /// A channel retrying transient failures per `retry`, under the default outbound policy
    /// (public addresses only).
    pub fn new(retry: RetryPolicy) -> Result<Self, ChannelError> {
        Self::with_outbound(retry, studyspot_outbound::Policy::default())
    }

    /// A channel connecting only where `outbound` allows.
    pub fn with_outbound(
        retry: RetryPolicy,
        outbound: studyspot_outbound::Policy,
    ) -> Result<Self, ChannelError> {
        let http = http::with_defaults(outbound.client_builder(), &retry)
            .build()
            .map_err(|err| http::build_error(NAME, &err))?;
        Ok(WebhookChannel { http, retry, outbound })
    }
}

/// The body sent at `at`.
pub(crate) fn body(m: &Message, at: DateTime<Utc>) -> Vec<u8> {
    let payload = Payload {
        event_type: m.event_type.as_deref().unwrap_or(WebhookChannel::DEFAULT_EVENT_TYPE),
        timestamp: at.to_rfc3339_opts(SecondsFormat::Secs, true),
        text: match m.subject.as_deref().filter(|s| !s.is_empty()) {
            Some(subject) if !m.body.is_empty() => format!("{subject}\n\n{}", m.body),
            Some(subject) => subject.to_owned(),
            None => m.body.clone(),
        },
        data: &m.data,
    };
    // Strings and a map of strings: serializing cannot fail.
    serde_json::to_vec(&payload).unwrap_or_default()
}

#[async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> ChannelName {
        NAME
    }

    async fn send(&self, m: &Message) -> Result<Delivery, ChannelError> {
        let url = reqwest::Url::parse(m.to.trim())
            .map_err(|err| ChannelError::permanent(NAME, "invalid_url", format!("{:?}: {err}", m.to)))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(ChannelError::permanent(NAME, "invalid_url", format!("{url} is not an http(s) URL")));
        }
        self.outbound.check_url(&url).map_err(|refused| {
            ChannelError::permanent(NAME, studyspot_outbound::TARGET_NOT_ALLOWED, refused)
        })?;
        let secret = m
            .webhook_secret
            .as_ref()
            .ok_or_else(|| ChannelError::config(NAME, "the message carries no webhook secret"))?;
        let key = secret_key(secret.expose_secret()).map_err(|err| ChannelError::config(NAME, err))?;
        let reply = with_retry(&self.retry, NAME, "post", || {
            let at = Utc::now();
            let timestamp = at.timestamp();
            let body = body(m, at);
            let signature = sign_with_key(&key, &m.idempotency_key, timestamp, &body);
            let request = self
                .http
                .post(url.clone())
                .header(CONTENT_TYPE, "application/json")
                .header("webhook-id", &m.idempotency_key)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body);
            http::send(NAME, request)
        })
        .await?;
        if reply.status.is_success() {
            return Ok(Delivery::sent(None));
        }
        Err(ChannelError::permanent(
            NAME,
            reply.status.as_u16().to_string(),
            format!("{url} answered HTTP {}", reply.status.as_u16()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_type_timestamp_and_data_in_order() {
        let m = Message {
            event_type: Some("booking.confirmed".to_owned()),
            data: [("seat".to_owned(), "A-12".to_owned()), ("booking_id".to_owned(), "bk_1".to_owned())]
                .into(),
            ..Message::default()
        };
        let at = DateTime::from_timestamp(1_772_357_400, 0).unwrap();
        assert_eq!(
            String::from_utf8(body(&m, at)).unwrap(),
            r#"{"type":"booking.confirmed","timestamp":"2026-03-01T09:30:00Z","data":{"booking_id":"bk_1","seat":"A-12"}}"#
        );
        let plain = Message::default();
        assert!(String::from_utf8(body(&plain, at)).unwrap().starts_with(r#"{"type":"notification","#));
        let alert = Message {
            subject: Some("FIRING: payment failure rate".to_owned()),
            body: "12% of payments failed".to_owned(),
            ..Message::default()
        };
        assert!(
            String::from_utf8(body(&alert, at))
                .unwrap()
                .contains(r#""text":"FIRING: payment failure rate\n\n12% of payments failed","#)
        );
    }
}
