//! What the reqwest-based channels (Twilio, FCM, webhooks) share: the client, URL joining and
//! the classification of transport failures and statuses.

use reqwest::StatusCode;

use crate::config::RetryPolicy;
use crate::error::ChannelError;
use crate::types::ChannelName;

pub(crate) const USER_AGENT: &str = concat!("studyspot-notification-channels/", env!("CARGO_PKG_VERSION"));

/// A client whose every request times out after the policy's per-attempt timeout.
pub(crate) fn client(channel: ChannelName, policy: &RetryPolicy) -> Result<reqwest::Client, ChannelError> {
    builder(policy).build().map_err(|err| build_error(channel, &err))
}

/// The builder [`client`] uses, for channels that change more (redirects).
pub(crate) fn builder(policy: &RetryPolicy) -> reqwest::ClientBuilder {
    with_defaults(reqwest::Client::builder(), policy)
}

/// `builder` with the per-attempt timeout and the user agent.
pub(crate) fn with_defaults(builder: reqwest::ClientBuilder, policy: &RetryPolicy) -> reqwest::ClientBuilder {
    builder.timeout(policy.timeout()).user_agent(USER_AGENT)
}

/// Whether errors may quote what the other side answered. Providers' answers (Twilio, FCM) say
/// what went wrong; a webhook endpoint is a tenant's URL, and what it answers is never echoed
/// back to tenants (a status code is all they learn).
fn quotes_body(channel: ChannelName) -> bool {
    channel != ChannelName::Webhook
}

pub(crate) fn build_error(channel: ChannelName, err: &reqwest::Error) -> ChannelError {
    ChannelError::config(channel, format!("cannot build the HTTP client: {err}"))
}

/// `base` (with or without a trailing slash) joined with `path` (with or without a leading one).
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim().trim_end_matches('/'), path.trim_start_matches('/'))
}

/// A provider's answer that is not a transport failure nor a transient status.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The body as JSON. A 2xx the crate cannot read is transient: the provider may have taken
    /// the message, and a retry with the same idempotency key is the safe way to find out.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        channel: ChannelName,
    ) -> Result<T, ChannelError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            ChannelError::transient(
                channel,
                format!("unreadable HTTP {} response: {err}: {}", self.status.as_u16(), snippet(&self.body)),
            )
        })
    }
}

/// The first 300 characters of a body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// Statuses worth retrying: 5xx, 429 (rate limited) and 408 (request timeout).
pub(crate) fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// Sends `request` once and reads the whole body. Transport failures (timeout, connection,
/// body cut short) and transient statuses become [`ChannelError::Transient`].
pub(crate) async fn send(
    channel: ChannelName,
    request: reqwest::RequestBuilder,
) -> Result<Reply, ChannelError> {
    let response = request.send().await.map_err(|err| transport_error(channel, &err))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|err| transport_error(channel, &err))?.to_vec();
    if is_transient_status(status) {
        let quoted = if quotes_body(channel) { format!(": {}", snippet(&body)) } else { String::new() };
        return Err(ChannelError::transient(channel, format!("HTTP {}{quoted}", status.as_u16())));
    }
    Ok(Reply { status, body })
}

fn transport_error(channel: ChannelName, err: &reqwest::Error) -> ChannelError {
    // The outbound policy refused every address the host resolved to: nothing was sent, and
    // sending again will not change that.
    if let Some(refused) = studyspot_outbound::refusal(err) {
        return ChannelError::permanent(channel, studyspot_outbound::TARGET_NOT_ALLOWED, refused);
    }
    if err.is_builder() {
        return ChannelError::config(channel, format!("cannot build the request: {err}"));
    }
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    ChannelError::transient(channel, format!("{what}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_with_exactly_one_slash() {
        assert_eq!(join("https://api.twilio.com/", "/2010-04-01"), "https://api.twilio.com/2010-04-01");
        assert_eq!(join("https://api.twilio.com", "2010-04-01"), "https://api.twilio.com/2010-04-01");
    }

    #[test]
    fn transient_statuses() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [200, 201, 301, 400, 401, 404, 409, 410, 422] {
            assert!(!is_transient_status(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }
}
