//! PayPal, REST Orders v2 over reqwest.
//!
//! Authentication: `POST /v1/oauth2/token` (`Authorization: Basic client_id:client_secret`,
//! `grant_type=client_credentials`); the bearer token is cached until a minute before it
//! expires, and fetched again once if an API call answers 401.
//!
//! Every POST carries `PayPal-Request-Id` (PayPal's idempotency header) and
//! `Prefer: return=representation` (so a completed order comes back with its captures):
//! - charge: `POST /v2/checkout/orders` with `PayPal-Request-Id: <idempotency_key>` and
//!   `{"intent":"CAPTURE","purchase_units":[{"reference_id":<payment_id>,"custom_id":<payment_id>,
//!   "description":…,"amount":{"currency_code":…,"value":"10.50"}}],"payment_source":…}`.
//!   With a vault id in `payment_method_token`, `payment_source.paypal.vault_id` charges at once
//!   (`COMPLETED`). Without one the payer must approve: `payment_source.paypal.experience_context`
//!   carries `return_url`/`cancel_url` (both the request's `return_url`) and the order comes back
//!   `PAYER_ACTION_REQUIRED` with a `payer-action` link (without a return URL, `CREATED` with an
//!   `approve` link) → [`ChargeOutcome::RequiresAction`] `redirect`, `provider_payment_id` = the
//!   **order id**.
//! - capture: PayPal does not take the money when the payer approves; the merchant captures.
//!   `fetch` (and `charge`, if an order comes back `APPROVED`) captures an approved order:
//!   `POST /v2/checkout/orders/{order}/capture` with `PayPal-Request-Id: <idempotency_key>:capture`.
//! - succeeded: `provider_payment_id` is the **capture id** (what refunds need) and the fee is
//!   `seller_receivable_breakdown.paypal_fee`.
//! - refund: `POST /v2/payments/captures/{capture}/refund` with `PayPal-Request-Id: <idempotency_key>`
//!   and `{"amount":{…},"custom_id":<refund_id>,"note_to_payer":<reason>}`.
//! - fetch: `GET /v2/checkout/orders/{id}`; an id that is not an order is looked up as a
//!   capture (`GET /v2/payments/captures/{id}`). Without an id the create request is replayed
//!   with the same `PayPal-Request-Id`, which makes PayPal return the order it already made
//!   (or, if the first request never arrived, create one that still needs the payer: no money
//!   moves without approval).
//!
//! Amounts are decimal strings with PayPal's decimals for the currency (see [`crate::money`]).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::PaymentConnector;
use crate::config::{PayPalConfig, RetryPolicy};
use crate::error::ConnectorError;
use crate::http::with_retry;
use crate::http::{self, Reply};
use crate::money;
use crate::types::{ChargeOutcome, ChargeRequest, ConnectorName, NextAction, RefundOutcome, RefundRequest};

const NAME: ConnectorName = ConnectorName::PayPal;

/// Issues PayPal answers with when the payer's funding is refused (a decline, not a bad request).
const DECLINE_ISSUES: &[&str] = &[
    "INSTRUMENT_DECLINED",
    "PAYER_CANNOT_PAY",
    "PAYER_ACCOUNT_RESTRICTED",
    "PAYER_ACCOUNT_LOCKED_OR_CLOSED",
    "TRANSACTION_REFUSED",
    "COMPLIANCE_VIOLATION",
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
    "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING",
    "CARD_EXPIRED",
    "CARD_CLOSED",
    "DECLINED_DUE_TO_RELATED_TXN",
];

/// The PayPal connector. Cheap to share (`Arc`), safe to call concurrently.
pub struct PayPalConnector {
    http: reqwest::Client,
    base_url: String,
    client_id: String,
    client_secret: SecretString,
    retry: RetryPolicy,
    token: Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for PayPalConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayPalConnector")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

struct CachedToken {
    access_token: SecretString,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Debug, Deserialize)]
struct Order {
    id: String,
    status: String,
    #[serde(default)]
    links: Vec<Link>,
    #[serde(default)]
    purchase_units: Vec<PurchaseUnit>,
}

#[derive(Debug, Deserialize)]
struct Link {
    href: String,
    rel: String,
}

#[derive(Debug, Deserialize)]
struct PurchaseUnit {
    #[serde(default)]
    payments: Option<Payments>,
}

#[derive(Debug, Deserialize)]
struct Payments {
    #[serde(default)]
    captures: Vec<Capture>,
}

#[derive(Debug, Deserialize)]
struct Capture {
    id: String,
    status: String,
    #[serde(default)]
    status_details: Option<StatusDetails>,
    #[serde(default)]
    seller_receivable_breakdown: Option<SellerReceivableBreakdown>,
    #[serde(default)]
    processor_response: Option<ProcessorResponse>,
}

#[derive(Debug, Deserialize)]
struct StatusDetails {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SellerReceivableBreakdown {
    #[serde(default)]
    paypal_fee: Option<Money>,
}

#[derive(Debug, Deserialize)]
struct Money {
    currency_code: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct ProcessorResponse {
    #[serde(default)]
    response_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Refund {
    id: String,
    status: String,
    #[serde(default)]
    status_details: Option<StatusDetails>,
}

/// PayPal's error body: `{"name","message","debug_id","details":[{"issue","description"}]}`
/// (the token endpoint answers OAuth's `{"error","error_description"}` instead).
#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    debug_id: Option<String>,
    #[serde(default)]
    details: Vec<ErrorDetail>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    issue: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

impl ApiError {
    fn from_reply(reply: &Reply) -> Self {
        serde_json::from_slice(&reply.body).unwrap_or_default()
    }

    fn issue(&self) -> Option<&str> {
        self.details.iter().find_map(|d| d.issue.as_deref())
    }

    fn code(&self) -> String {
        self.issue().or(self.name.as_deref()).or(self.error.as_deref()).unwrap_or("UNKNOWN").to_owned()
    }

    fn message(&self) -> String {
        let detail = self.details.iter().find_map(|d| d.description.as_deref());
        let text =
            detail.or(self.message.as_deref()).or(self.error_description.as_deref()).unwrap_or("").to_owned();
        match &self.debug_id {
            Some(debug_id) => format!("{text} (debug_id {debug_id})"),
            None => text,
        }
    }

    fn is_decline(&self) -> bool {
        self.issue().is_some_and(|issue| DECLINE_ISSUES.contains(&issue))
    }

    fn rejected(&self, status: StatusCode) -> ConnectorError {
        ConnectorError::Rejected {
            connector: NAME,
            status: status.as_u16(),
            code: self.code(),
            message: self.message(),
        }
    }
}

impl PayPalConnector {
    /// A connector for `config`, retrying transient failures per `retry`.
    pub fn new(config: &PayPalConfig, retry: RetryPolicy) -> Result<Self, ConnectorError> {
        Ok(PayPalConnector {
            http: http::client(NAME, &retry)?,
            base_url: config.base_url.trim().to_owned(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            retry,
            token: Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> String {
        http::join(&self.base_url, path)
    }

    /// A valid bearer token: the cached one, or a new one (`fresh` forces a new one).
    async fn token(&self, fresh: bool) -> Result<SecretString, ConnectorError> {
        let mut cached = self.token.lock().await;
        if !fresh
            && let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.access_token.clone());
        }
        // One attempt: the API call this token is for retries the whole thing.
        let request = self
            .http
            .post(self.url("/v1/oauth2/token"))
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .header("Accept", "application/json")
            .form(&[("grant_type", "client_credentials")]);
        let reply = http::send(NAME, request).await?;
        if !reply.status.is_success() {
            return Err(ApiError::from_reply(&reply).rejected(reply.status));
        }
        let token: TokenResponse = reply.json(NAME)?;
        // Refresh a minute early (or at half-life for short-lived tokens) so a token never
        // expires between the check and PayPal reading it.
        let margin = Duration::from_secs(60.min(token.expires_in / 2));
        let refresh_at = Instant::now() + Duration::from_secs(token.expires_in) - margin;
        let access_token = SecretString::from(token.access_token);
        *cached = Some(CachedToken { access_token: access_token.clone(), refresh_at });
        Ok(access_token)
    }

    /// One API call with retries of transient failures; every attempt sends the same
    /// `PayPal-Request-Id`. A 401 with a cached token fetches a new token and tries again once.
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        request_id: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, ConnectorError> {
        let url = self.url(path);
        with_retry(&self.retry, NAME, operation, || {
            let method = method.clone();
            let url = url.clone();
            async move {
                let mut fresh = false;
                loop {
                    let token = self.token(fresh).await?;
                    let mut request = self
                        .http
                        .request(method.clone(), &url)
                        .bearer_auth(token.expose_secret())
                        .header("Accept", "application/json");
                    if let Some(id) = request_id {
                        request = request.header("PayPal-Request-Id", id);
                    }
                    if let Some(body) = body {
                        request = request.header("Prefer", "return=representation").json(body);
                    }
                    let reply = http::send(NAME, request).await?;
                    if reply.status == StatusCode::UNAUTHORIZED && !fresh {
                        fresh = true;
                        continue;
                    }
                    return Ok(reply);
                }
            }
        })
        .await
    }

    fn order_body(&self, r: &ChargeRequest) -> Result<Value, ConnectorError> {
        let value = money::to_paypal_value(r.amount_minor, &r.currency).ok_or_else(|| {
            ConnectorError::invalid_request(
                NAME,
                format!(
                    "{} minor units of {} cannot be expressed in PayPal's decimals for that currency",
                    r.amount_minor, r.currency
                ),
            )
        })?;
        let mut unit = json!({
            "reference_id": r.payment_id,
            "custom_id": r.payment_id,
            "amount": { "currency_code": r.currency, "value": value },
        });
        if let Some(description) = &r.description {
            unit["description"] = json!(description.chars().take(127).collect::<String>());
        }
        let mut body = json!({ "intent": "CAPTURE", "purchase_units": [unit] });
        if let Some(vault_id) = &r.payment_method_token {
            body["payment_source"] = json!({ "paypal": { "vault_id": vault_id } });
        } else if let Some(return_url) = &r.return_url {
            body["payment_source"] = json!({ "paypal": { "experience_context": {
                "return_url": return_url,
                "cancel_url": return_url,
                "user_action": "PAY_NOW",
                "shipping_preference": "NO_SHIPPING",
            } } });
        }
        Ok(body)
    }

    /// Creates the order (or, replayed with the same request id, gets the one made before).
    async fn create_order(&self, r: &ChargeRequest) -> Result<Result<Order, ChargeOutcome>, ConnectorError> {
        let body = self.order_body(r)?;
        let reply = self
            .call("create_order", Method::POST, "/v2/checkout/orders", Some(&r.idempotency_key), Some(&body))
            .await?;
        if reply.status.is_success() {
            return Ok(Ok(reply.json(NAME)?));
        }
        let error = ApiError::from_reply(&reply);
        if error.is_decline() {
            return Ok(Err(ChargeOutcome::Failed {
                provider_payment_id: None,
                code: error.code(),
                message: error.message(),
            }));
        }
        Err(error.rejected(reply.status))
    }

    /// What an order stands for, capturing it first when the payer has approved it.
    async fn settle(&self, r: &ChargeRequest, order: Order) -> Result<ChargeOutcome, ConnectorError> {
        if order.status != "APPROVED" {
            return outcome_of_order(order, &r.currency);
        }
        let request_id = format!("{}:capture", r.idempotency_key);
        let path = format!("/v2/checkout/orders/{}/capture", order.id);
        let reply =
            self.call("capture_order", Method::POST, &path, Some(&request_id), Some(&json!({}))).await?;
        if reply.status.is_success() {
            return outcome_of_order(reply.json(NAME)?, &r.currency);
        }
        let error = ApiError::from_reply(&reply);
        if error.issue() == Some("ORDER_ALREADY_CAPTURED") {
            let again = self.get_order(&order.id).await?.ok_or_else(|| {
                ConnectorError::invalid_response(NAME, format!("order {} vanished after capture", order.id))
            })?;
            return outcome_of_order(again, &r.currency);
        }
        if error.is_decline() {
            return Ok(ChargeOutcome::Failed {
                provider_payment_id: Some(order.id),
                code: error.code(),
                message: error.message(),
            });
        }
        Err(error.rejected(reply.status))
    }

    async fn get_order(&self, id: &str) -> Result<Option<Order>, ConnectorError> {
        let reply =
            self.call("get_order", Method::GET, &format!("/v2/checkout/orders/{id}"), None, None).await?;
        match reply.status {
            status if status.is_success() => Ok(Some(reply.json(NAME)?)),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(ApiError::from_reply(&reply).rejected(status)),
        }
    }

    async fn get_capture(&self, id: &str) -> Result<Option<Capture>, ConnectorError> {
        let reply =
            self.call("get_capture", Method::GET, &format!("/v2/payments/captures/{id}"), None, None).await?;
        match reply.status {
            status if status.is_success() => Ok(Some(reply.json(NAME)?)),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(ApiError::from_reply(&reply).rejected(status)),
        }
    }
}

#[async_trait::async_trait]
impl PaymentConnector for PayPalConnector {
    fn name(&self) -> ConnectorName {
        NAME
    }

    async fn charge(&self, r: &ChargeRequest) -> Result<ChargeOutcome, ConnectorError> {
        if matches!(r.method.as_str(), "cash" | "upi") {
            return Err(ConnectorError::invalid_request(
                NAME,
                format!("PayPal cannot take {} payments", r.method),
            ));
        }
        match self.create_order(r).await? {
            Ok(order) => self.settle(r, order).await,
            Err(declined) => Ok(declined),
        }
    }

    async fn refund(&self, r: &RefundRequest) -> Result<RefundOutcome, ConnectorError> {
        let value = money::to_paypal_value(r.amount_minor, &r.currency).ok_or_else(|| {
            ConnectorError::invalid_request(
                NAME,
                format!("{} minor units of {} cannot be expressed for PayPal", r.amount_minor, r.currency),
            )
        })?;
        let mut body = json!({
            "amount": { "currency_code": r.currency, "value": value },
            "custom_id": r.refund_id,
        });
        if let Some(reason) = &r.reason {
            body["note_to_payer"] = json!(reason.chars().take(255).collect::<String>());
        }
        let path = format!("/v2/payments/captures/{}/refund", r.provider_payment_id);
        let reply =
            self.call("refund_capture", Method::POST, &path, Some(&r.idempotency_key), Some(&body)).await?;
        if reply.status.is_success() {
            let refund: Refund = reply.json(NAME)?;
            let provider_refund_id = refund.id;
            return Ok(match refund.status.as_str() {
                "COMPLETED" => RefundOutcome::Succeeded { provider_refund_id },
                "FAILED" | "CANCELLED" => RefundOutcome::Failed {
                    provider_refund_id: Some(provider_refund_id),
                    code: refund.status.clone(),
                    message: refund.status_details.and_then(|d| d.reason).unwrap_or_default(),
                },
                _ => RefundOutcome::Pending { provider_refund_id },
            });
        }
        let error = ApiError::from_reply(&reply);
        // 422: PayPal's business refusals (CAPTURE_FULLY_REFUNDED, REFUND_AMOUNT_EXCEEDED,
        // REFUND_TIME_LIMIT_EXCEEDED, …) are its final word on this refund.
        if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
            return Ok(RefundOutcome::Failed {
                provider_refund_id: None,
                code: error.code(),
                message: error.message(),
            });
        }
        Err(error.rejected(reply.status))
    }

    async fn fetch(
        &self,
        r: &ChargeRequest,
        provider_payment_id: Option<&str>,
    ) -> Result<Option<ChargeOutcome>, ConnectorError> {
        let Some(id) = provider_payment_id else {
            return match self.create_order(r).await? {
                Ok(order) => self.settle(r, order).await.map(Some),
                Err(declined) => Ok(Some(declined)),
            };
        };
        if let Some(order) = self.get_order(id).await? {
            return self.settle(r, order).await.map(Some);
        }
        match self.get_capture(id).await? {
            Some(capture) => Ok(Some(outcome_of_capture(capture, &r.currency))),
            None => Ok(None),
        }
    }
}

fn outcome_of_order(order: Order, currency: &str) -> Result<ChargeOutcome, ConnectorError> {
    match order.status.as_str() {
        "COMPLETED" => {
            let capture = order
                .purchase_units
                .into_iter()
                .filter_map(|unit| unit.payments)
                .flat_map(|payments| payments.captures)
                .last()
                .ok_or_else(|| {
                    ConnectorError::invalid_response(
                        NAME,
                        format!("completed order {} has no capture", order.id),
                    )
                })?;
            Ok(outcome_of_capture(capture, currency))
        }
        "PAYER_ACTION_REQUIRED" | "CREATED" => {
            let link = order
                .links
                .iter()
                .find(|link| link.rel == "payer-action")
                .or_else(|| order.links.iter().find(|link| link.rel == "approve"))
                .map(|link| link.href.clone());
            match link {
                Some(url) => Ok(ChargeOutcome::RequiresAction {
                    provider_payment_id: order.id,
                    action: NextAction::new(NextAction::REDIRECT, Some(url)),
                }),
                None => Err(ConnectorError::invalid_response(
                    NAME,
                    format!("order {} awaits the payer but has no approval link", order.id),
                )),
            }
        }
        "VOIDED" => Ok(ChargeOutcome::Failed {
            provider_payment_id: Some(order.id),
            code: "VOIDED".to_owned(),
            message: "the order was voided".to_owned(),
        }),
        // SAVED, APPROVED (not captured here), anything new
        _ => Ok(ChargeOutcome::Processing { provider_payment_id: order.id }),
    }
}

fn outcome_of_capture(capture: Capture, currency: &str) -> ChargeOutcome {
    match capture.status.as_str() {
        "COMPLETED" | "PARTIALLY_REFUNDED" | "REFUNDED" => {
            let fee = capture
                .seller_receivable_breakdown
                .and_then(|b| b.paypal_fee)
                .filter(|fee| fee.currency_code == currency)
                .and_then(|fee| money::from_paypal_value(&fee.value, currency));
            ChargeOutcome::Succeeded { provider_payment_id: capture.id, provider_fee_minor: fee }
        }
        "DECLINED" | "FAILED" => ChargeOutcome::Failed {
            code: capture
                .processor_response
                .and_then(|p| p.response_code)
                .map_or_else(|| capture.status.clone(), |code| format!("PROCESSOR_{code}")),
            message: capture
                .status_details
                .and_then(|d| d.reason)
                .unwrap_or_else(|| format!("the capture was {}", capture.status.to_ascii_lowercase())),
            provider_payment_id: Some(capture.id),
        },
        // PENDING (status_details.reason says why), anything new
        _ => ChargeOutcome::Processing { provider_payment_id: capture.id },
    }
}
