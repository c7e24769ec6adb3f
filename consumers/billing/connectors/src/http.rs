//! What the reqwest-based connectors (PayPal, Razorpay) share: the client, URL joining and the
//! classification of transport failures and statuses.

use reqwest::StatusCode;

use crate::config::RetryPolicy;
use crate::error::ConnectorError;
use crate::types::ConnectorName;

pub(crate) const USER_AGENT: &str = concat!("studyspot-payment-connectors/", env!("CARGO_PKG_VERSION"));

/// A client whose every request times out after the policy's per-attempt timeout.
pub(crate) fn client(
    connector: ConnectorName,
    policy: &RetryPolicy,
) -> Result<reqwest::Client, ConnectorError> {
    reqwest::Client::builder().timeout(policy.timeout()).user_agent(USER_AGENT).build().map_err(|err| {
        ConnectorError::Config { connector, message: format!("cannot build the HTTP client: {err}") }
    })
}

/// `base` (with or without a trailing slash) joined with `path` (with or without a leading one).
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// A provider's answer that is not a transport failure nor a transient status.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        connector: ConnectorName,
    ) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            ConnectorError::invalid_response(
                connector,
                format!("HTTP {}: {err}: {}", self.status.as_u16(), snippet(&self.body)),
            )
        })
    }
}

/// The first 300 characters of a body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// Statuses worth retrying with the same idempotency key: 5xx, 429 (rate limited) and 409 (a
/// request with the same idempotency key is still being processed).
pub(crate) fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::CONFLICT
}

/// Sends `request` once and reads the whole body. Transport failures (timeout, connection,
/// body cut short) and transient statuses become [`ConnectorError::Transient`].
pub(crate) async fn send(
    connector: ConnectorName,
    request: reqwest::RequestBuilder,
) -> Result<Reply, ConnectorError> {
    let response = request.send().await.map_err(|err| transport_error(connector, &err))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|err| transport_error(connector, &err))?.to_vec();
    if is_transient_status(status) {
        return Err(ConnectorError::transient(
            connector,
            format!("HTTP {}: {}", status.as_u16(), snippet(&body)),
        ));
    }
    Ok(Reply { status, body })
}

fn transport_error(connector: ConnectorName, err: &reqwest::Error) -> ConnectorError {
    if err.is_builder() {
        return ConnectorError::invalid_request(connector, format!("cannot build the request: {err}"));
    }
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    ConnectorError::transient(connector, format!("{what}: {err}"))
}
