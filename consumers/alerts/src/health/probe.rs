//! One probe of one target: the only I/O of health checks besides the outbox.
//!
//! A target connects only where the [outbound policy](studyspot_outbound::Policy) allows, checked
//! on the address connected to (see `studyspot-outbound`): a refused target is not probed at all
//! and is recorded as failed with an error starting `target_not_allowed` and no latency or status,
//! so health checks cannot map the network behind StudySpot. Errors never quote a response body.

use std::time::{Duration, Instant};

use studyspot_outbound::{ConnectError, Policy, Refused};

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub success: bool,
    pub latency_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
}

/// What to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// GET answers this status (redirects are not followed: a check names its final URL).
    Http { url: String, expected_status: u16 },
    /// The address accepts a TCP connection.
    Tcp { address: String },
}

/// Where probes may connect: an HTTP client and the policy behind it.
#[derive(Debug, Clone)]
pub struct Reach {
    client: reqwest::Client,
    outbound: Policy,
}

impl Reach {
    /// Probes connecting only where `outbound` allows; redirects are not followed.
    pub fn new(outbound: Policy) -> Self {
        let client = outbound.client_builder().build().expect("a client without custom TLS builds");
        Reach { client, outbound }
    }

    /// Anywhere: for the operator's own targets (`alerts.health.processes`), not tenants'.
    pub fn anywhere() -> Self {
        Reach::new(Policy::from_config(&["0.0.0.0/0", "::/0"]).unwrap_or_default())
    }
}

pub async fn probe(reach: &Reach, target: &Target, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let elapsed = |started: Instant| i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    match target {
        Target::Http { url, expected_status } => {
            if let Ok(parsed) = reqwest::Url::parse(url)
                && let Err(refused) = reach.outbound.check_url(&parsed)
            {
                return not_allowed(&refused);
            }
            match tokio::time::timeout(timeout, reach.client.get(url).timeout(timeout).send()).await {
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let success = status == *expected_status;
                    Outcome {
                        success,
                        latency_ms: elapsed(started),
                        status_code: Some(i32::from(status)),
                        error: (!success).then(|| format!("answered {status}, expected {expected_status}")),
                    }
                }
                Ok(Err(e)) => match studyspot_outbound::refusal(&e) {
                    Some(refused) => not_allowed(refused),
                    None => failed(elapsed(started), describe(&e)),
                },
                Err(_) => failed(elapsed(started), format!("no answer within {} ms", timeout.as_millis())),
            }
        }
        Target::Tcp { address } => {
            match tokio::time::timeout(timeout, reach.outbound.connect_tcp(address)).await {
                Ok(Ok(_stream)) => {
                    Outcome { success: true, latency_ms: elapsed(started), status_code: None, error: None }
                }
                Ok(Err(ConnectError::Refused(refused))) => not_allowed(&refused),
                Ok(Err(e)) => failed(elapsed(started), e.to_string()),
                Err(_) => {
                    failed(elapsed(started), format!("no connection within {} ms", timeout.as_millis()))
                }
            }
        }
    }
}

/// A target the policy refuses: not probed, so neither a latency nor a status.
fn not_allowed(refused: &Refused) -> Outcome {
    failed(0, refused.to_string())
}

fn failed(latency_ms: i64, error: String) -> Outcome {
    Outcome { success: false, latency_ms, status_code: None, error: Some(error) }
}

/// reqwest's own message names only the outermost error ("error sending request"); the cause
/// (connection refused, DNS, TLS) is what an operator needs.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use studyspot_outbound::testing::{count_accepts, nothing_connected, quiet_listener};

    use super::*;

    #[tokio::test]
    async fn a_closed_port_fails_and_a_listening_one_succeeds() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let open = listener.local_addr().expect("addr").to_string();
        let client = Reach::new(Policy::loopback());
        let ok = probe(&client, &Target::Tcp { address: open.clone() }, Duration::from_secs(2)).await;
        assert!(ok.success, "{ok:?}");
        drop(listener);
        let down = probe(&client, &Target::Tcp { address: open.clone() }, Duration::from_secs(2)).await;
        assert!(!down.success && down.error.is_some(), "{down:?}");
        let http = Target::Http { url: format!("http://{open}/ready"), expected_status: 200 };
        let refused = probe(&client, &http, Duration::from_secs(2)).await;
        assert!(!refused.success, "{refused:?}");
        assert!(
            refused.error.as_deref().is_some_and(|e| e.to_lowercase().contains("refused")),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn by_default_loopback_targets_are_refused_without_connecting() {
        let listener = quiet_listener();
        let addr = listener.local_addr().expect("addr");
        let client = Reach::new(Policy::default());
        let targets = [
            Target::Http { url: format!("http://{addr}/ready"), expected_status: 200 },
            Target::Http { url: format!("http://localhost:{}/ready", addr.port()), expected_status: 200 },
            Target::Tcp { address: addr.to_string() },
            Target::Tcp { address: format!("localhost:{}", addr.port()) },
        ];
        for target in &targets {
            let refused = probe(&client, target, Duration::from_secs(2)).await;
            assert!(!refused.success, "{target:?}: {refused:?}");
            assert_eq!(refused.status_code, None, "{target:?}");
            assert_eq!(refused.latency_ms, 0, "no latency of a target not probed: {target:?}");
            assert!(
                refused.error.as_deref().is_some_and(|e| e.starts_with("target_not_allowed")),
                "{target:?}: {refused:?}"
            );
        }
        assert!(nothing_connected(&listener), "the listener saw a connection");
        let seen = count_accepts(listener);

        // With loopback allowed (`outbound.allow`), the same target is probed.
        let allowed = Reach::new(Policy::loopback());
        let ok = probe(
            &allowed,
            &Target::Tcp { address: format!("localhost:{}", addr.port()) },
            Duration::from_secs(2),
        )
        .await;
        assert!(ok.success, "{ok:?}");
        let http = Target::Http { url: format!("http://{addr}/ready"), expected_status: 200 };
        let reached = probe(&allowed, &http, Duration::from_secs(2)).await;
        assert!(
            !reached.error.as_deref().unwrap_or_default().starts_with("target_not_allowed"),
            "{reached:?}"
        );
        assert!(seen.load(std::sync::atomic::Ordering::SeqCst) >= 2, "the allowed probes connected");
    }
}
