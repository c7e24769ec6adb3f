//! The gateway as an app sees it: commands over HTTP (keep-alive) or gRPC, each sent with an
//! `Idempotency-Key` and sent again with the same key while the gateway is unreachable or answers
//! 503 / 409 (a restart, a broker or database outage), so a command is accepted once or not at all.

use std::time::{Duration, Instant};

use serde_json::Value;
use studyspot_grpc_api::{self as pb, gateway_client::GatewayClient};
use tonic::{Code, Request, transport::Channel};

use crate::mix::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Http,
    Grpc,
}

#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    base: String,
    grpc: GatewayClient<Channel>,
    /// How long one command is tried before it counts as not accepted.
    pub patience: Duration,
}

/// Why a command was not accepted.
#[derive(Debug)]
pub enum Refused {
    /// The gateway refused it for good (4xx): the mix asked for something invalid.
    Invalid(String),
    /// Still unreachable or busy after the patience ran out.
    GaveUp(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(why) => write!(f, "refused: {why}"),
            Self::GaveUp(why) => write!(f, "gave up: {why}"),
        }
    }
}

impl Gateway {
    pub fn new(base: &str, patience: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(20))
            .build()?;
        // Lazy: it connects (and reconnects after a gateway restart) on use.
        let channel = Channel::from_shared(base.to_owned())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20))
            .connect_lazy();
        Ok(Self { http, base: base.to_owned(), grpc: GatewayClient::new(channel), patience })
    }

    /// Sends `command` until the gateway accepts it; returns the command id.
    pub async fn submit(
        &self,
        token: &str,
        command: &Command,
        transport: Transport,
    ) -> Result<String, Refused> {
        let key = uuid::Uuid::now_v7().to_string();
        let deadline = Instant::now() + self.patience;
        let mut backoff = Duration::from_millis(50);
        loop {
            let attempt = match transport {
                Transport::Grpc if command.has_grpc() => self.grpc_once(token, &key, command).await,
                _ => self.http_once(token, &key, command).await,
            };
            match attempt {
                Ok(id) => return Ok(id),
                Err(Attempt::Invalid(why)) => return Err(Refused::Invalid(why)),
                Err(Attempt::Again(why)) if Instant::now() + backoff > deadline => {
                    return Err(Refused::GaveUp(why));
                }
                Err(Attempt::Again(_)) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    async fn http_once(&self, token: &str, key: &str, command: &Command) -> Result<String, Attempt> {
        let (path, body) = command.http();
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .map_err(|e| Attempt::Again(format!("{path}: {e}")))?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            202 | 200 => answer["command_id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| Attempt::Invalid(format!("{path}: no command id in {answer}"))),
            408 | 409 | 425 | 429 | 500..=599 => Err(Attempt::Again(format!("{path}: {status} {answer}"))),
            _ => Err(Attempt::Invalid(format!("{path}: {status} {answer}"))),
        }
    }

    async fn grpc_once(&self, token: &str, key: &str, command: &Command) -> Result<String, Attempt> {
        let mut client = self.grpc.clone();
        let answer = match command.grpc() {
            Some(Grpc::CheckIn(m)) => client.check_in(authorized(m, token, key)).await,
            Some(Grpc::CheckOut(m)) => client.check_out(authorized(m, token, key)).await,
            Some(Grpc::Booking(m)) => client.create_booking(authorized(m, token, key)).await,
            Some(Grpc::CreatePayment(m)) => client.create_payment(authorized(m, token, key)).await,
            Some(Grpc::ProcessPayment(m)) => client.process_payment(authorized(m, token, key)).await,
            Some(Grpc::Notify(m)) => client.send_notification(authorized(m, token, key)).await,
            Some(Grpc::Metrics(m)) => client.record_metric_samples(authorized(m, token, key)).await,
            None => return self.http_once(token, key, command).await,
        };
        match answer {
            Ok(accepted) => Ok(accepted.into_inner().command_id),
            Err(status) => match status.code() {
                Code::Unavailable
                | Code::Aborted
                | Code::ResourceExhausted
                | Code::DeadlineExceeded
                | Code::Unknown
                | Code::Internal
                | Code::Cancelled => Err(Attempt::Again(format!("{}: {status}", command.kind()))),
                _ => Err(Attempt::Invalid(format!("{}: {status}", command.kind()))),
            },
        }
    }

    /// The command's status once decided (`applied`, `rejected`, `failed`), or None at the deadline.
    pub async fn decided(&self, token: &str, command_id: &str, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let answer = self
                .http
                .get(format!("{}/api/commands/{command_id}?wait=10s", self.base))
                .bearer_auth(token)
                .send()
                .await;
            match answer {
                Ok(r) if r.status().is_success() => {
                    let status: Value = r.json().await.unwrap_or(Value::Null);
                    if status["status"] != "accepted" && !status["status"].is_null() {
                        return Some(status);
                    }
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        None
    }

    /// `GET path` as JSON.
    pub async fn get(&self, token: &str, path: &str) -> anyhow::Result<Value> {
        let response = self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await?;
        anyhow::ensure!(response.status().is_success(), "GET {path}: {}", response.status());
        Ok(response.json().await.unwrap_or(Value::Null))
    }
}

fn authorized<T>(message: T, token: &str, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    let metadata = request.metadata_mut();
    if let (Ok(auth), Ok(key)) = (format!("Bearer {token}").parse(), key.parse()) {
        metadata.insert("authorization", auth);
        metadata.insert("idempotency-key", key);
    }
    request
}

enum Attempt {
    Invalid(String),
    Again(String),
}

/// A command as a gRPC request.
pub enum Grpc {
    CheckIn(pb::CheckInRequest),
    CheckOut(pb::CheckOutRequest),
    Booking(pb::CreateBookingRequest),
    CreatePayment(pb::CreatePaymentRequest),
    ProcessPayment(pb::ProcessPaymentRequest),
    Notify(pb::SendNotificationRequest),
    Metrics(pb::RecordMetricSamplesRequest),
}
