//! Configuration of the channels. Every struct deserializes with serde (the notifications
//! consumer reads it from `studyspot.toml` / `STUDYSPOT_*`); secrets are [`SecretString`]s,
//! whose `Debug` prints `[REDACTED]`.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// Retries of transient failures inside one [`Channel::send`](crate::Channel::send) call:
/// exponential backoff with jitter, bounded. What is left after the last attempt is
/// [`ChannelError::Transient`](crate::ChannelError::Transient), for the caller's own schedule.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per send, the first included. Default 3.
    pub max_attempts: u32,
    /// Time allowed for one attempt: an HTTP request (connect + response + body), or an SMTP
    /// dialogue unless [`EmailConfig::timeout_ms`] says otherwise. Default 10000 ms.
    pub timeout_ms: u64,
    /// Delay before the first retry; doubles each retry (then jittered). Default 200 ms.
    pub base_backoff_ms: u64,
    /// Upper bound of one backoff delay. Default 5000 ms.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, timeout_ms: 10_000, base_backoff_ms: 200, max_backoff_ms: 5_000 }
    }
}

impl RetryPolicy {
    /// The per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text. Only for a relay on localhost or a test sink.
    None,
    /// Plain connection upgraded with `STARTTLS`, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte, "implicit TLS" / SMTPS (port 465).
    Tls,
}

fn default_smtp_port() -> u16 {
    587
}

/// E-mail over SMTP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The relay's host name (also the name its TLS certificate must carry).
    pub host: String,
    /// Default 587 (STARTTLS); 465 is usual for [`TlsMode::Tls`], 25 for a local relay.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Default `starttls`.
    #[serde(default)]
    pub tls: TlsMode,
    /// SMTP AUTH user; set together with `password`, or neither.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP AUTH password.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// The sender, `noreply@studyspot.app` or `StudySpot <noreply@studyspot.app>`.
    pub from: String,
    /// Time allowed for one attempt, from connecting to the reply to the message. Default: the
    /// retry policy's `timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The domain of the `Message-ID`s this channel derives from idempotency keys. Default:
    /// the domain of `from`.
    #[serde(default)]
    pub message_id_domain: Option<String>,
    /// The name sent with `EHLO`. Default: this machine's host name.
    #[serde(default)]
    pub hello_name: Option<String>,
}

impl EmailConfig {
    /// A configuration with the defaults: port 587, STARTTLS, no authentication.
    pub fn new(host: impl Into<String>, from: impl Into<String>) -> Self {
        EmailConfig {
            host: host.into(),
            port: default_smtp_port(),
            tls: TlsMode::default(),
            username: None,
            password: None,
            from: from.into(),
            timeout_ms: None,
            message_id_domain: None,
            hello_name: None,
        }
    }
}

fn default_twilio_url() -> String {
    TwilioConfig::DEFAULT_BASE_URL.to_owned()
}

/// A Twilio account sending SMS or WhatsApp messages (one section per channel, so each can
/// use its own sender or sub-account).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// Default `https://api.twilio.com`.
    #[serde(default = "default_twilio_url")]
    pub base_url: String,
    /// The account SID, `AC…`.
    pub account_sid: String,
    /// The account's auth token (also the key of its request signatures).
    pub auth_token: SecretString,
    /// The sender: an E.164 number (`+14155238886`; WhatsApp senders may be written with or
    /// without `whatsapp:`). Needed unless `messaging_service_sid` is set.
    #[serde(default)]
    pub from: Option<String>,
    /// A Messaging Service (`MG…`) that picks the sender; sent instead of `from` when set.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Where Twilio posts the message's status changes (`StatusCallback`).
    #[serde(default)]
    pub status_callback: Option<String>,
}

impl TwilioConfig {
    /// Twilio's production API.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.twilio.com";

    /// A configuration sending from `from`, with the default base URL.
    pub fn new(
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
        from: impl Into<String>,
    ) -> Self {
        TwilioConfig {
            base_url: default_twilio_url(),
            account_sid: account_sid.into(),
            auth_token: SecretString::from(auth_token.into()),
            from: Some(from.into()),
            messaging_service_sid: None,
            status_callback: None,
        }
    }
}

fn default_fcm_url() -> String {
    FcmConfig::DEFAULT_BASE_URL.to_owned()
}
fn default_token_uri() -> String {
    FcmConfig::DEFAULT_TOKEN_URI.to_owned()
}

/// Firebase Cloud Messaging (HTTP v1) with a Google service account. The fields are those of
/// the service account's JSON key file; [`FcmConfig::from_service_account_json`] reads one.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmConfig {
    /// The Firebase project id.
    pub project_id: String,
    /// The service account, `name@project.iam.gserviceaccount.com`.
    pub client_email: String,
    /// The service account's RSA private key, PEM (`-----BEGIN PRIVATE KEY-----…`).
    pub private_key: SecretString,
    /// The key's id, sent as the JWT's `kid` when set.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// Where access tokens come from. Default `https://oauth2.googleapis.com/token`.
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
    /// Default `https://fcm.googleapis.com`.
    #[serde(default = "default_fcm_url")]
    pub base_url: String,
}

impl FcmConfig {
    /// FCM's production API.
    pub const DEFAULT_BASE_URL: &'static str = "https://fcm.googleapis.com";
    /// Google's OAuth 2.0 token endpoint.
    pub const DEFAULT_TOKEN_URI: &'static str = "https://oauth2.googleapis.com/token";

    /// A configuration with Google's default endpoints.
    pub fn new(
        project_id: impl Into<String>,
        client_email: impl Into<String>,
        private_key_pem: impl Into<String>,
    ) -> Self {
        FcmConfig {
            project_id: project_id.into(),
            client_email: client_email.into(),
            private_key: SecretString::from(private_key_pem.into()),
            private_key_id: None,
            token_uri: default_token_uri(),
            base_url: default_fcm_url(),
        }
    }

    /// Reads a service account's JSON key file as Google hands it out (its other fields are
    /// ignored; `base_url` is the default).
    pub fn from_service_account_json(json: &str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct ServiceAccount {
            project_id: String,
            client_email: String,
            private_key: SecretString,
            #[serde(default)]
            private_key_id: Option<String>,
            #[serde(default = "default_token_uri")]
            token_uri: String,
        }
        let key: ServiceAccount = serde_json::from_str(json)?;
        Ok(FcmConfig {
            project_id: key.project_id,
            client_email: key.client_email,
            private_key: key.private_key,
            private_key_id: key.private_key_id,
            token_uri: key.token_uri,
            base_url: default_fcm_url(),
        })
    }
}

fn default_true() -> bool {
    true
}

/// All channels. A channel without a section is not built; `webhook` needs no credentials
/// (each message carries its endpoint's secret) and is on unless turned off.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsConfig {
    /// E-mail, when configured.
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// SMS, when configured.
    #[serde(default)]
    pub sms: Option<TwilioConfig>,
    /// WhatsApp, when configured.
    #[serde(default)]
    pub whatsapp: Option<TwilioConfig>,
    /// Push, when configured.
    #[serde(default)]
    pub push: Option<FcmConfig>,
    /// Signed webhooks. Default true.
    #[serde(default = "default_true")]
    pub webhook: bool,
    /// Retries of every send.
    #[serde(default)]
    pub retry: RetryPolicy,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        ChannelsConfig {
            email: None,
            sms: None,
            whatsapp: None,
            push: None,
            webhook: true,
            retry: RetryPolicy::default(),
        }
    }
}
