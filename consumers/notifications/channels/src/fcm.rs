//! Push through Firebase Cloud Messaging's HTTP v1 API, REST over reqwest.
//!
//! Authentication: OAuth 2.0 for a Google service account by the JWT-bearer grant. The channel
//! signs an RS256 JWT with the account's private key (`iss` = `client_email`, `scope` =
//! `https://www.googleapis.com/auth/firebase.messaging`, `aud` = `token_uri`, `iat`, `exp` one
//! hour later, `kid` = `private_key_id` when known) and posts
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion={jwt}` to `token_uri`.
//! The access token is cached and shared by every send until a minute before its
//! `expires_in` runs out; a send refused with 401 drops it and the retry fetches a new one.
//!
//! Send: `POST {base_url}/v1/projects/{project_id}/messages:send`, `Authorization: Bearer …`,
//! `{"message": {"token": to, "notification": {"title": subject, "body": body}, "data": {…}}}`
//! (`title` only with a subject; `notification` only with a subject or body, else a data-only
//! message; `data` only when not empty). `200 {"name": "projects/…/messages/…"}` →
//! [`DeliveryStatus::Sent`](crate::DeliveryStatus::Sent) with that name.
//!
//! FCM has no idempotency key: the send is retried only on failures where FCM did not take the
//! message or cannot say (timeouts, 429, 5xx).
//!
//! Errors, by the `FcmError` `errorCode` of the error's `details`, else its `status`:
//! `UNREGISTERED`, `INVALID_ARGUMENT`, `SENDER_ID_MISMATCH`, `NOT_FOUND` (any 404) →
//! [`ChannelError::Permanent`]; `UNAVAILABLE`, `INTERNAL`, `QUOTA_EXCEEDED` (429 / 5xx) →
//! [`ChannelError::Transient`]; `THIRD_PARTY_AUTH_ERROR` (APNs / web push credentials),
//! `PERMISSION_DENIED`, `UNAUTHENTICATED` with a fresh token, and a token endpoint that refuses
//! the grant → [`ChannelError::Config`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::config::{FcmConfig, RetryPolicy};
use crate::error::ChannelError;
use crate::http::{self, Reply, with_retry};
use crate::types::{ChannelName, Delivery, Message};
use crate::{Channel, async_trait};

const NAME: ChannelName = ChannelName::Push;
/// The OAuth scope of FCM's HTTP v1 API.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The OAuth 2.0 grant type of a signed JWT assertion (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long the JWT assertion is valid (Google accepts at most one hour).
const ASSERTION_LIFETIME_SECS: u64 = 3_600;
/// A cached access token is replaced this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The push channel. Cheap to share (`Arc`), safe to call concurrently; the access token is
/// shared by all sends.
pub struct FcmChannel {
    http: reqwest::Client,
    send_url: String,
    token_uri: String,
    client_email: String,
    key: EncodingKey,
    key_id: Option<String>,
    token: Mutex<Option<CachedToken>>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for FcmChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmChannel")
            .field("send_url", &self.send_url)
            .field("token_uri", &self.token_uri)
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

struct CachedToken {
    access_token: SecretString,
    refresh_at: Instant,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: GoogleError,
}

#[derive(Debug, Default, Deserialize)]
struct GoogleError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

#[derive(Deserialize)]
struct Sent {
    name: String,
}

impl FcmChannel {
    /// A channel for `config`, retrying transient failures per `retry`. Fails when the private
    /// key is not an RSA key in PEM.
    pub fn new(config: &FcmConfig, retry: RetryPolicy) -> Result<Self, ChannelError> {
        let project_id = config.project_id.trim();
        if project_id.is_empty() || project_id.contains(['/', '?', '#']) {
            return Err(ChannelError::config(NAME, format!("invalid project id {project_id:?}")));
        }
        let key = EncodingKey::from_rsa_pem(config.private_key.expose_secret().as_bytes())
            .map_err(|err| ChannelError::config(NAME, format!("the service account's private key: {err}")))?;
        Ok(FcmChannel {
            http: http::client(NAME, &retry)?,
            send_url: http::join(&config.base_url, &format!("/v1/projects/{project_id}/messages:send")),
            token_uri: config.token_uri.trim().to_owned(),
            client_email: config.client_email.trim().to_owned(),
            key,
            key_id: config.private_key_id.clone().filter(|id| !id.trim().is_empty()),
            token: Mutex::new(None),
            retry,
        })
    }

    /// The signed JWT assertion for the token endpoint.
    fn assertion(&self) -> Result<String, ChannelError> {
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat,
            exp: iat + ASSERTION_LIFETIME_SECS,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.key_id);
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|err| ChannelError::config(NAME, format!("cannot sign the JWT assertion: {err}")))
    }

    /// The cached access token, or a new one. `true` with a token fetched just now.
    async fn access_token(&self) -> Result<(SecretString, bool), ChannelError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok((token.access_token.clone(), false));
        }
        let assertion = self.assertion()?;
        let form = [("grant_type", JWT_BEARER_GRANT), ("assertion", assertion.as_str())];
        let reply = http::send(NAME, self.http.post(&self.token_uri).form(&form)).await?;
        if !reply.status.is_success() {
            let body: OAuthError = serde_json::from_slice(&reply.body).unwrap_or_default();
            return Err(ChannelError::config(
                NAME,
                format!(
                    "the token endpoint refused the service account (HTTP {} {}): {}",
                    reply.status.as_u16(),
                    body.error.unwrap_or_default(),
                    body.error_description.unwrap_or_else(|| http::snippet(&reply.body)),
                ),
            ));
        }
        let token: TokenResponse = reply.json(NAME)?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(ASSERTION_LIFETIME_SECS));
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        *cached = Some(CachedToken {
            access_token: token.access_token.clone(),
            refresh_at: Instant::now() + lifetime - margin,
        });
        tracing::debug!(
            channel = NAME.as_str(),
            expires_in_secs = lifetime.as_secs(),
            "new FCM access token"
        );
        Ok((token.access_token, true))
    }

    /// Drops the cached token if it is still `refused` (a concurrent send may have replaced it).
    async fn forget_token(&self, refused: &SecretString) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.access_token.expose_secret() == refused.expose_secret()) {
            *cached = None;
        }
    }

    async fn attempt(&self, body: &Value) -> Result<Reply, ChannelError> {
        let (token, fresh) = self.access_token().await?;
        let request = self.http.post(&self.send_url).bearer_auth(token.expose_secret()).json(body);
        let reply = http::send(NAME, request).await?;
        if reply.status == StatusCode::UNAUTHORIZED {
            if fresh {
                return Err(ChannelError::config(
                    NAME,
                    format!("FCM refused a new access token: {}", http::snippet(&reply.body)),
                ));
            }
            self.forget_token(&token).await;
            return Err(ChannelError::transient(NAME, "FCM refused the cached access token"));
        }
        Ok(reply)
    }
}

/// The FCM message for `m`.
pub(crate) fn payload(m: &Message) -> Value {
    let mut message = json!({ "token": m.to.trim() });
    let mut notification = serde_json::Map::new();
    if let Some(title) = &m.subject {
        notification.insert("title".to_owned(), json!(title));
    }
    if !m.body.is_empty() {
        notification.insert("body".to_owned(), json!(m.body));
    }
    if !notification.is_empty() {
        message["notification"] = Value::Object(notification);
    }
    if !m.data.is_empty() {
        message["data"] = json!(m.data);
    }
    json!({ "message": message })
}

fn rejected(reply: &Reply) -> ChannelError {
    let body: ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_default();
    let error = body.error;
    let fcm_code = error.details.iter().find_map(|detail| {
        let is_fcm = detail.get("@type").and_then(Value::as_str).is_some_and(|t| t.ends_with("FcmError"));
        if is_fcm { detail.get("errorCode").and_then(Value::as_str).map(str::to_owned) } else { None }
    });
    let code = fcm_code.or(error.status).unwrap_or_else(|| match reply.status {
        StatusCode::NOT_FOUND => "NOT_FOUND".to_owned(),
        status => status.as_u16().to_string(),
    });
    let message = format!(
        "HTTP {}: {}",
        reply.status.as_u16(),
        error.message.unwrap_or_else(|| http::snippet(&reply.body))
    );
    match code.as_str() {
        "UNAVAILABLE" | "INTERNAL" | "QUOTA_EXCEEDED" | "RESOURCE_EXHAUSTED" => {
            ChannelError::transient(NAME, format!("{code}: {message}"))
        }
        "THIRD_PARTY_AUTH_ERROR" | "PERMISSION_DENIED" | "UNAUTHENTICATED" => {
            ChannelError::config(NAME, format!("{code}: {message}"))
        }
        _ => ChannelError::permanent(NAME, code, message),
    }
}

#[async_trait]
impl Channel for FcmChannel {
    fn name(&self) -> ChannelName {
        NAME
    }

    async fn send(&self, m: &Message) -> Result<Delivery, ChannelError> {
        if m.to.trim().is_empty() {
            return Err(ChannelError::permanent(NAME, "invalid_address", "no registration token"));
        }
        let body = payload(m);
        let reply = with_retry(&self.retry, NAME, "send", || self.attempt(&body)).await?;
        if !reply.status.is_success() {
            return Err(rejected(&reply));
        }
        let sent: Sent = reply.json(NAME)?;
        Ok(Delivery::sent(Some(sent.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_only_messages_have_no_notification() {
        let m = Message {
            to: "tok".to_owned(),
            data: [("booking_id".to_owned(), "bk_1".to_owned())].into(),
            ..Message::default()
        };
        assert_eq!(payload(&m), json!({ "message": { "token": "tok", "data": { "booking_id": "bk_1" } } }));
    }

    #[test]
    fn error_codes_come_from_the_fcm_details_first() {
        let reply = Reply {
            status: StatusCode::FORBIDDEN,
            body: serde_json::to_vec(&json!({ "error": {
                "code": 403, "message": "SenderId mismatch", "status": "PERMISSION_DENIED",
                "details": [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "SENDER_ID_MISMATCH" }]
            } }))
            .unwrap(),
        };
        assert_eq!(rejected(&reply).code(), Some("SENDER_ID_MISMATCH"));
        let reply = Reply {
            status: StatusCode::FORBIDDEN,
            body: br#"{"error":{"status":"PERMISSION_DENIED"}}"#.to_vec(),
        };
        assert!(matches!(rejected(&reply), ChannelError::Config(_)));
        let reply = Reply { status: StatusCode::NOT_FOUND, body: b"not json".to_vec() };
        assert_eq!(rejected(&reply).code(), Some("NOT_FOUND"));
    }
}
