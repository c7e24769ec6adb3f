//! E-mail over SMTP with lettre (tokio, rustls; no OpenSSL).
//!
//! One connection per send (no pool): `EHLO`, `STARTTLS` or implicit TLS per [`TlsMode`],
//! `AUTH` when credentials are configured, `MAIL FROM`, `RCPT TO`, `DATA`, `QUIT`.
//!
//! The message: `From` the configured sender, `To` the recipient, `Subject` when given, the
//! text `body` alone (`text/plain`) or with the `html` alternative (`multipart/alternative`),
//! and two headers derived from the idempotency key so a resend is recognisable:
//! - `Message-ID: <{first 32 hex digits of SHA-256(key)}@{domain}>` ([`EmailChannel::message_id`]),
//!   the same for every attempt and every replay; it is the [`Delivery::provider_message_id`]
//!   (without angle brackets), which bounces (DSNs) quote;
//! - `X-StudySpot-Idempotency-Key: {key}`.
//!
//! SMTP gives no idempotency: a connection lost after the final `.` but before the `250` is
//! retried and the recipient may get the message twice, with the same `Message-ID` (mail
//! clients collapse such duplicates).
//!
//! Each attempt, from connecting to the last reply, is bounded by
//! [`EmailConfig::timeout_ms`](crate::EmailConfig) (default: the retry policy's `timeout_ms`).
//!
//! Replies: 4xx (greylisting, mailbox busy, rate limits) → [`ChannelError::Transient`], retried;
//! 5xx → [`ChannelError::Permanent`] with the reply code (`"550"`), except the authentication
//! replies 530, 534, 535 and 538, which are [`ChannelError::Config`]. Timeouts, connection,
//! TLS and unreadable replies are transient.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::{EmailConfig, RetryPolicy, TlsMode};
use crate::error::ChannelError;
use crate::http::with_retry;
use crate::types::{ChannelName, Delivery, Message};
use crate::{Channel, async_trait};

const NAME: ChannelName = ChannelName::Email;
/// The header carrying [`Message::idempotency_key`].
pub const IDEMPOTENCY_HEADER: &str = "X-StudySpot-Idempotency-Key";

/// The e-mail channel. Cheap to share (`Arc`), safe to call concurrently.
pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    message_id_domain: String,
    timeout: Duration,
    retry: RetryPolicy,
    describe: String,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel")
            .field("relay", &self.describe)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// A channel for `config`, retrying transient failures per `retry`.
    pub fn new(config: &EmailConfig, retry: RetryPolicy) -> Result<Self, ChannelError> {
        let host = config.host.trim();
        if host.is_empty() {
            return Err(ChannelError::config(NAME, "no SMTP host"));
        }
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|err| ChannelError::config(NAME, format!("sender {:?}: {err}", config.from)))?;
        let message_id_domain = match &config.message_id_domain {
            Some(domain) if !domain.trim().is_empty() => domain.trim().to_owned(),
            _ => from.email.domain().to_owned(),
        };
        let timeout = Duration::from_millis(config.timeout_ms.unwrap_or(retry.timeout_ms));
        let tls = match config.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls => Tls::Required(tls_parameters(host)?),
            TlsMode::Tls => Tls::Wrapper(tls_parameters(host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(timeout));
        match (&config.username, &config.password) {
            (Some(user), Some(password)) => {
                builder =
                    builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
            }
            (None, None) => {}
            _ => return Err(ChannelError::config(NAME, "set both username and password, or neither")),
        }
        if let Some(name) = config.hello_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            builder = builder.hello_name(ClientId::Domain(name.to_owned()));
        }
        Ok(EmailChannel {
            transport: builder.build(),
            from,
            message_id_domain,
            timeout,
            retry,
            describe: format!("{host}:{} ({:?})", config.port, config.tls),
        })
    }

    /// The `Message-ID` (with angle brackets) this channel gives the message with
    /// `idempotency_key`: `<{first 32 hex digits of SHA-256(key)}@{domain}>`.
    pub fn message_id(&self, idempotency_key: &str) -> String {
        message_id(idempotency_key, &self.message_id_domain)
    }

    fn build(&self, m: &Message) -> Result<lettre::Message, ChannelError> {
        let to: Mailbox = m.to.trim().parse().map_err(|err| {
            ChannelError::permanent(NAME, "invalid_address", format!("recipient {:?}: {err}", m.to))
        })?;
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .message_id(Some(self.message_id(&m.idempotency_key)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(IDEMPOTENCY_HEADER),
                one_line(&m.idempotency_key),
            ));
        if let Some(subject) = &m.subject {
            builder = builder.subject(one_line(subject));
        }
        let built = match &m.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(m.body.clone(), html.clone())),
            None => builder.header(ContentType::TEXT_PLAIN).body(m.body.clone()),
        };
        built.map_err(|err| ChannelError::permanent(NAME, "invalid_message", format!("cannot build: {err}")))
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters, ChannelError> {
    TlsParameters::new(host.to_owned())
        .map_err(|err| ChannelError::config(NAME, format!("TLS parameters for {host}: {err}")))
}

pub(crate) fn message_id(idempotency_key: &str, domain: &str) -> String {
    let digest = hex::encode(Sha256::digest(idempotency_key.as_bytes()));
    format!("<{}@{domain}>", &digest[..32])
}

/// Header values are single lines: control characters (CR, LF, …) become spaces, so nothing
/// a message carries can start a header of its own.
fn one_line(value: &str) -> String {
    value.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// SMTP replies that say our credentials (not the recipient) are the problem.
const AUTH_REPLIES: [&str; 4] = ["530", "534", "535", "538"];

fn classify(err: &lettre::transport::smtp::Error) -> ChannelError {
    if let Some(code) = err.status() {
        let code = code.to_string();
        if err.is_permanent() {
            if AUTH_REPLIES.contains(&code.as_str()) {
                return ChannelError::config(NAME, format!("the relay refused our credentials: {err}"));
            }
            return ChannelError::permanent(NAME, code, err);
        }
        return ChannelError::transient(NAME, err);
    }
    if err.is_client() {
        // lettre refuses before sending: no authentication mechanism in common, a message the
        // relay's extensions cannot carry.
        return ChannelError::config(NAME, err);
    }
    let what = if err.is_timeout() { "timed out" } else { "SMTP exchange failed" };
    ChannelError::transient(NAME, format!("{what}: {err}"))
}

#[async_trait]
impl Channel for EmailChannel {
    fn name(&self) -> ChannelName {
        NAME
    }

    async fn send(&self, m: &Message) -> Result<Delivery, ChannelError> {
        let email = self.build(m)?;
        let message_id = self.message_id(&m.idempotency_key);
        with_retry(&self.retry, NAME, "send", || {
            let email = email.clone();
            let message_id = &message_id;
            async move {
                // lettre bounds the connect only; the whole dialogue is bounded here.
                let reply = tokio::time::timeout(self.timeout, self.transport.send(email))
                    .await
                    .map_err(|_| {
                        ChannelError::transient(
                            NAME,
                            format!("timed out: no answer within {} ms", self.timeout.as_millis()),
                        )
                    })?
                    .map_err(|err| classify(&err))?;
                tracing::debug!(
                    channel = NAME.as_str(),
                    %message_id,
                    reply = reply.message().collect::<Vec<_>>().join(" "),
                    "relay accepted the message"
                );
                Ok(())
            }
        })
        .await?;
        let bare = message_id.trim_start_matches('<').trim_end_matches('>').to_owned();
        Ok(Delivery::sent(Some(bare)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_and_well_formed() {
        let id = message_id("ntf_1:asha@example.com:email", "studyspot.app");
        assert_eq!(id, message_id("ntf_1:asha@example.com:email", "studyspot.app"));
        assert_ne!(id, message_id("ntf_2:asha@example.com:email", "studyspot.app"));
        assert!(id.starts_with('<') && id.ends_with("@studyspot.app>"), "{id}");
        assert_eq!(id.len(), 1 + 32 + 1 + "studyspot.app".len() + 1);
    }

    #[test]
    fn a_key_cannot_inject_headers() {
        let mut config = EmailConfig::new("localhost", "StudySpot <noreply@studyspot.app>");
        config.tls = TlsMode::None;
        let channel = EmailChannel::new(&config, RetryPolicy::default()).unwrap();
        let m = Message {
            idempotency_key: "k\r\nBcc: mallory@example.com".to_owned(),
            to: "asha@example.com".to_owned(),
            subject: Some("Hi\r\nBcc: mallory@example.com".to_owned()),
            body: "Body".to_owned(),
            ..Message::default()
        };
        let formatted = String::from_utf8(channel.build(&m).unwrap().formatted()).unwrap();
        assert!(!formatted.contains("\r\nBcc:"), "{formatted}");
        assert!(
            formatted.contains("X-StudySpot-Idempotency-Key: k  Bcc: mallory@example.com\r\n"),
            "{formatted}"
        );
    }

    #[test]
    fn half_credentials_are_a_configuration_error() {
        let mut config = EmailConfig::new("smtp.example.com", "noreply@studyspot.app");
        config.username = Some("user".to_owned());
        assert!(matches!(EmailChannel::new(&config, RetryPolicy::default()), Err(ChannelError::Config(_))));
    }

    #[test]
    fn a_bad_sender_is_a_configuration_error() {
        let config = EmailConfig::new("smtp.example.com", "not an address");
        assert!(matches!(EmailChannel::new(&config, RetryPolicy::default()), Err(ChannelError::Config(_))));
    }
}
