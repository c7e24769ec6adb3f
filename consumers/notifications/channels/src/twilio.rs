//! SMS and WhatsApp through Twilio's Messages API, REST over reqwest (no Twilio crate: one call).
//!
//! `POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`, Basic auth
//! `AccountSid:AuthToken`, a form body: `To`, `From` (or `MessagingServiceSid` when configured,
//! instead of `From`), `Body`, and `StatusCallback`: the message's own
//! (`data["status_callback"]`, a signed tracking URL) or the configured one. WhatsApp addresses are
//! `whatsapp:+E.164` on both `To` and `From` (added when missing).
//!
//! Idempotency: every attempt carries `I-Twilio-Idempotency-Token: {idempotency_key}`; Twilio
//! answers a repeated token with the first request's message instead of sending another.
//!
//! Answers: `201 {"sid","status",…}` → [`Delivery`] with the sid; `queued`, `accepted`,
//! `scheduled`, `sending` → [`DeliveryStatus::Queued`] (the status callback tells the end),
//! `sent`, `delivered`, `read` → [`DeliveryStatus::Sent`], `failed` / `undelivered` →
//! [`ChannelError::Permanent`] with its `error_code`. Errors `{"code","message","more_info",
//! "status"}`: 429 and 5xx → [`ChannelError::Transient`] (retried); 401, 404 and the codes that
//! blame our sender or account (20003, 20404, 21212, 21408, 21606, 21659, 63007) →
//! [`ChannelError::Config`]; any other 4xx (21211 invalid `To`, 21614 not a mobile number,
//! 21610 unsubscribed, …) → [`ChannelError::Permanent`] with Twilio's code.
//!
//! Status callbacks are signed: [`verify_twilio_signature`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha1::Sha1;

use crate::config::{RetryPolicy, TwilioConfig};
use crate::error::ChannelError;
use crate::http::{self, Reply, with_retry};
use crate::types::{ChannelName, Delivery, DeliveryStatus, Message};
use crate::{Channel, async_trait};

/// The `data` entry of a [`Message`] that names its own `StatusCallback` URL (SMS and
/// WhatsApp), instead of the configured one.
pub const STATUS_CALLBACK_DATA: &str = "status_callback";

/// The header Twilio de-duplicates requests by.
pub const IDEMPOTENCY_HEADER: &str = "I-Twilio-Idempotency-Token";

/// Twilio error codes that blame our account or sender, not the recipient.
const CONFIG_CODES: [i64; 7] = [
    20003, // authentication failed
    20404, // account (or resource) not found
    21212, // invalid From number
    21408, // the account may not send to this region (geo permissions)
    21606, // From is not a message-capable number of this account
    21659, // From is not a Twilio number
    63007, // no WhatsApp sender with this From address
];

enum Sender {
    From(String),
    Service(String),
}

/// SMS or WhatsApp through Twilio. Cheap to share (`Arc`), safe to call concurrently.
pub struct TwilioChannel {
    channel: ChannelName,
    http: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: SecretString,
    sender: Sender,
    status_callback: Option<String>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for TwilioChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioChannel")
            .field("channel", &self.channel)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct TwilioMessage {
    sid: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    error_message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct TwilioError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    more_info: Option<String>,
}

impl TwilioChannel {
    /// The SMS channel for `config`.
    pub fn sms(config: &TwilioConfig, retry: RetryPolicy) -> Result<Self, ChannelError> {
        Self::new(ChannelName::Sms, config, retry)
    }

    /// The WhatsApp channel for `config`.
    pub fn whatsapp(config: &TwilioConfig, retry: RetryPolicy) -> Result<Self, ChannelError> {
        Self::new(ChannelName::WhatsApp, config, retry)
    }

    fn new(channel: ChannelName, config: &TwilioConfig, retry: RetryPolicy) -> Result<Self, ChannelError> {
        let account_sid = config.account_sid.trim();
        if account_sid.is_empty() || !account_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ChannelError::config(channel, format!("invalid account SID {account_sid:?}")));
        }
        let nonempty =
            |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let sender = match (nonempty(&config.messaging_service_sid), nonempty(&config.from)) {
            (Some(service), _) => Sender::Service(service),
            (None, Some(from)) => Sender::From(address(channel, &from)),
            (None, None) => {
                return Err(ChannelError::config(channel, "set `from` or `messaging_service_sid`"));
            }
        };
        Ok(TwilioChannel {
            channel,
            http: http::client(channel, &retry)?,
            url: http::join(&config.base_url, &format!("/2010-04-01/Accounts/{account_sid}/Messages.json")),
            account_sid: account_sid.to_owned(),
            auth_token: config.auth_token.clone(),
            sender,
            status_callback: nonempty(&config.status_callback),
            retry,
        })
    }

    fn form(&self, m: &Message) -> Vec<(&'static str, String)> {
        let mut form = vec![("To", address(self.channel, &m.to))];
        match &self.sender {
            Sender::From(from) => form.push(("From", from.clone())),
            Sender::Service(sid) => form.push(("MessagingServiceSid", sid.clone())),
        }
        form.push(("Body", m.body.clone()));
        // The message's own callback (a signed tracking URL) over the configured one.
        let own = m.data.get(STATUS_CALLBACK_DATA).filter(|u| !u.trim().is_empty());
        if let Some(callback) = own.or(self.status_callback.as_ref()) {
            form.push(("StatusCallback", callback.clone()));
        }
        form
    }

    fn rejected(&self, reply: &Reply) -> ChannelError {
        let body: TwilioError = serde_json::from_slice(&reply.body).unwrap_or_default();
        let message = body.message.unwrap_or_else(|| http::snippet(&reply.body));
        let message = match body.more_info {
            Some(more) => format!("HTTP {}: {message} ({more})", reply.status.as_u16()),
            None => format!("HTTP {}: {message}", reply.status.as_u16()),
        };
        let blames_us = matches!(reply.status, StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND)
            || body.code.is_some_and(|code| CONFIG_CODES.contains(&code));
        if blames_us {
            let code = body.code.map(|c| format!(" {c}")).unwrap_or_default();
            return ChannelError::config(
                self.channel,
                format!("Twilio refused our request{code}: {message}"),
            );
        }
        let code = body.code.map_or_else(|| reply.status.as_u16().to_string(), |c| c.to_string());
        ChannelError::permanent(self.channel, code, message)
    }

    fn delivery(&self, created: TwilioMessage) -> Result<Delivery, ChannelError> {
        let status = created.status.unwrap_or_default();
        let status = match status.as_str() {
            "sent" | "delivered" | "read" => DeliveryStatus::Sent,
            "failed" | "undelivered" => {
                let code = created.error_code.map_or_else(|| status.clone(), |c| c.to_string());
                let message = created.error_message.unwrap_or_else(|| format!("message {status}"));
                return Err(ChannelError::permanent(
                    self.channel,
                    code,
                    format!("{}: {message}", created.sid),
                ));
            }
            // queued, accepted, scheduled, sending, and anything newer: Twilio still has it.
            _ => DeliveryStatus::Queued,
        };
        Ok(Delivery { provider_message_id: Some(created.sid), status })
    }
}

/// `whatsapp:{number}` for WhatsApp (unless already so), the number itself for SMS.
fn address(channel: ChannelName, number: &str) -> String {
    let number = number.trim();
    if channel == ChannelName::WhatsApp && !number.starts_with("whatsapp:") {
        format!("whatsapp:{number}")
    } else {
        number.to_owned()
    }
}

#[async_trait]
impl Channel for TwilioChannel {
    fn name(&self) -> ChannelName {
        self.channel
    }

    async fn send(&self, m: &Message) -> Result<Delivery, ChannelError> {
        if m.to.trim().is_empty() {
            return Err(ChannelError::permanent(self.channel, "invalid_address", "no recipient number"));
        }
        let form = self.form(m);
        let reply = with_retry(&self.retry, self.channel, "create_message", || {
            let request = self
                .http
                .post(&self.url)
                .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
                .header(IDEMPOTENCY_HEADER, &m.idempotency_key)
                .form(&form);
            http::send(self.channel, request)
        })
        .await?;
        if !reply.status.is_success() {
            return Err(self.rejected(&reply));
        }
        self.delivery(reply.json(self.channel)?)
    }
}

/// Twilio's request signature (`X-Twilio-Signature`): base64 of HMAC-SHA1, keyed with the auth
/// token, over the full URL Twilio requested followed by every POST parameter's name and value,
/// sorted by name (then value), concatenated without separators.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Checks a Twilio request (a status callback) against its `X-Twilio-Signature` header, the
/// way Twilio's own libraries do: over `url` exactly as Twilio requested it (scheme, host,
/// path and query string), and, because proxies add or drop ports, also over `url` without
/// its port and with the scheme's default port. `params` are the form-encoded POST
/// parameters, decoded. JSON-bodied requests (`bodySHA256`) are not covered. Constant-time.
pub fn verify_twilio_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature_header: &str,
) -> bool {
    let Ok(signature) = BASE64.decode(signature_header.trim()) else {
        return false;
    };
    let mut candidates = vec![url.to_owned()];
    for variant in [without_port(url), with_default_port(url)].into_iter().flatten() {
        if !candidates.contains(&variant) {
            candidates.push(variant);
        }
    }
    candidates.iter().any(|candidate| mac(auth_token, candidate, params).verify_slice(&signature).is_ok())
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut mac =
        <Hmac<Sha1> as Mac>::new_from_slice(auth_token.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(url.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// A URL's parts around its port: `(before the port, the port, after the authority)`.
struct Authority<'a> {
    scheme: &'a str,
    prefix: &'a str,
    port: Option<&'a str>,
    rest: &'a str,
}

fn authority(url: &str) -> Option<Authority<'_>> {
    let (scheme, after) = url.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (auth, rest) = after.split_at(end);
    let host_start = auth.rfind('@').map_or(0, |at| at + 1);
    let host_port = &auth[host_start..];
    // An IPv6 host is bracketed; the port, if any, follows the closing bracket.
    let search_from = host_port.rfind(']').unwrap_or(0);
    let (prefix_len, port) = match host_port[search_from..].rfind(':') {
        Some(colon) => {
            let colon = search_from + colon;
            let port = &host_port[colon + 1..];
            (host_start + colon, port.bytes().all(|b| b.is_ascii_digit()).then_some(port))
        }
        None => (auth.len(), None),
    };
    if port.is_none() && prefix_len != auth.len() {
        return None;
    }
    let prefix_end = scheme.len() + 3 + prefix_len;
    Some(Authority { scheme, prefix: &url[..prefix_end], port, rest })
}

fn without_port(url: &str) -> Option<String> {
    let parts = authority(url)?;
    parts.port?;
    Some(format!("{}{}", parts.prefix, parts.rest))
}

fn with_default_port(url: &str) -> Option<String> {
    let parts = authority(url)?;
    if parts.port.is_some() {
        return None;
    }
    let port = match parts.scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    Some(format!("{}:{port}{}", parts.prefix, parts.rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_removed_and_added() {
        let url = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert_eq!(without_port(url).as_deref(), Some("https://mycompany.com/myapp.php?foo=1&bar=2"));
        assert_eq!(with_default_port(url), None);
        let url = "http://user:pw@mycompany.com?x=1";
        assert_eq!(with_default_port(url).as_deref(), Some("http://user:pw@mycompany.com:80?x=1"));
        assert_eq!(without_port(url), None);
        let url = "https://[::1]:8443/cb";
        assert_eq!(without_port(url).as_deref(), Some("https://[::1]/cb"));
        assert_eq!(with_default_port("https://[::1]/cb").as_deref(), Some("https://[::1]:443/cb"));
        assert_eq!(with_default_port("not a url"), None);
    }

    #[test]
    fn whatsapp_addresses_get_their_prefix_once() {
        assert_eq!(address(ChannelName::WhatsApp, "+14155238886"), "whatsapp:+14155238886");
        assert_eq!(address(ChannelName::WhatsApp, "whatsapp:+14155238886"), "whatsapp:+14155238886");
        assert_eq!(address(ChannelName::Sms, " +14155238886 "), "+14155238886");
    }
}
