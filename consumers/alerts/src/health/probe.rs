//! One probe of one target: the only I/O of health checks besides the outbox.

use std::time::{Duration, Instant};

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

pub async fn probe(client: &reqwest::Client, target: &Target, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let elapsed = |started: Instant| i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    match target {
        Target::Http { url, expected_status } => {
            match tokio::time::timeout(timeout, client.get(url).timeout(timeout).send()).await {
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
                Ok(Err(e)) => failed(elapsed(started), describe(&e)),
                Err(_) => failed(elapsed(started), format!("no answer within {} ms", timeout.as_millis())),
            }
        }
        Target::Tcp { address } => {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address.as_str())).await {
                Ok(Ok(_stream)) => {
                    Outcome { success: true, latency_ms: elapsed(started), status_code: None, error: None }
                }
                Ok(Err(e)) => failed(elapsed(started), format!("connect to {address}: {e}")),
                Err(_) => {
                    failed(elapsed(started), format!("no connection within {} ms", timeout.as_millis()))
                }
            }
        }
    }
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
    use super::*;

    #[tokio::test]
    async fn a_closed_port_fails_and_a_listening_one_succeeds() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let open = listener.local_addr().expect("addr").to_string();
        let client = reqwest::Client::new();
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
}
