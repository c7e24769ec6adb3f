//! Razorpay, REST over reqwest (`Authorization: Basic key_id:key_secret`, JSON bodies).
//!
//! UPI only, by the intent flow (the collect flow, where the payer types a VPA, is being
//! withdrawn by NPCI): the payer's UPI app opens the returned `upi://pay?…` link, or scans it
//! as a QR code on a desktop ([`Payer::scan_qr`](crate::Payer)). Razorpay's server-to-server
//! payment API must be enabled on the account; it wants the payer's `email`, `contact`, `ip` and
//! `user_agent` ([`Payer`](crate::Payer)), and rejects the payment without them.
//!
//! Idempotency. Razorpay documents no idempotency header for orders or payments, so a charge
//! is made idempotent through the order: the order's `receipt` is our `payment_id` (hashed to
//! 40 characters when longer, Razorpay's limit) and a charge first looks for it:
//! 1. `GET /v1/orders?receipt=<payment_id>&expand[]=payments` — an order already made for this
//!    payment (its notes name our organization: payment ids are unique only within one) is
//!    reused; if one of its payments is captured, the charge has succeeded.
//! 2. otherwise `POST /v1/orders` `{"amount","currency","receipt","notes":{payment_id,
//!    organization_id, member_id, idempotency_key}}`.
//! 3. `POST /v1/payments/create/upi` `{"amount","currency","order_id","method":"upi",
//!    "upi":{"flow":"intent"},"email","contact","ip","user_agent","description","notes"}` →
//!    `{"razorpay_payment_id","link"}` → [`ChargeOutcome::RequiresAction`] `upi_intent` /
//!    `upi_qr` with the link. A retried or repeated attempt makes another payment on the same
//!    order; an order is paid at most once (`partial_payment` is off), so money moves once.
//!
//! Refunds carry Razorpay's documented refund idempotency header,
//! `X-Refund-Idempotency: <idempotency_key>` (Razorpay accepts 10+ characters of
//! `[A-Za-z0-9_-]`; any other key is sent as its SHA-256 in hex):
//! `POST /v1/payments/{pay_id}/refund` `{"amount","speed":"normal","receipt","notes"}`.
//!
//! Fetch: `GET /v1/payments/{pay_id}`, `GET /v1/orders/{order_id}/payments`, or without an id
//! the receipt lookup of step 1. Statuses: `captured` (and later `refunded`) → Succeeded with
//! `fee` (Razorpay's fee including tax); `failed` → Failed with `error_reason` (else
//! `error_code`) and `error_description`; `created` (the payer has not paid yet) and
//! `authorized` (captured automatically by the account's capture settings) → Processing.

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::PaymentConnector;
use crate::config::{RazorpayConfig, RetryPolicy};
use crate::error::ConnectorError;
use crate::http::{self, Reply, with_retry};
use crate::types::{ChargeOutcome, ChargeRequest, ConnectorName, NextAction, RefundOutcome, RefundRequest};

const NAME: ConnectorName = ConnectorName::Razorpay;
/// Razorpay's limit on `receipt`.
const RECEIPT_MAX: usize = 40;

/// The Razorpay connector. Cheap to share (`Arc`), safe to call concurrently.
pub struct RazorpayConnector {
    http: reqwest::Client,
    base_url: String,
    key_id: String,
    key_secret: SecretString,
    retry: RetryPolicy,
}

impl std::fmt::Debug for RazorpayConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RazorpayConnector")
            .field("base_url", &self.base_url)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Collection<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct Order {
    id: String,
    amount: i64,
    currency: String,
    #[serde(default)]
    receipt: Option<String>,
    #[serde(default)]
    payments: Option<Collection<Payment>>,
    /// An object, or `[]` when empty.
    #[serde(default)]
    notes: Value,
}

/// A payment entity, as the API and webhooks carry it.
#[derive(Debug, Deserialize)]
pub(crate) struct Payment {
    pub(crate) id: String,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) fee: Option<i64>,
    #[serde(default)]
    pub(crate) error_code: Option<String>,
    #[serde(default)]
    pub(crate) error_description: Option<String>,
    #[serde(default)]
    pub(crate) error_reason: Option<String>,
    /// An object, or `[]` when empty.
    #[serde(default)]
    pub(crate) notes: Value,
    #[serde(default)]
    pub(crate) created_at: i64,
}

#[derive(Debug, Deserialize)]
struct UpiPayment {
    razorpay_payment_id: String,
    #[serde(default)]
    link: Option<String>,
}

/// A refund entity.
#[derive(Debug, Deserialize)]
pub(crate) struct Refund {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) payment_id: Option<String>,
    #[serde(default)]
    pub(crate) notes: Value,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorInner,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorInner {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    field: Option<String>,
}

fn rejected(reply: &Reply) -> ConnectorError {
    let body: ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_default();
    let inner = body.error;
    let reason = inner.reason.filter(|r| !r.is_empty() && r != "NA");
    let code = reason.or(inner.code).unwrap_or_else(|| "UNKNOWN".to_owned());
    let mut message = inner.description.unwrap_or_else(|| http::snippet(&reply.body));
    if let Some(field) = inner.field {
        message = format!("{message} (field {field})");
    }
    ConnectorError::Rejected { connector: NAME, status: reply.status.as_u16(), code, message }
}

impl RazorpayConnector {
    /// A connector for `config`, retrying transient failures per `retry`.
    pub fn new(config: &RazorpayConfig, retry: RetryPolicy) -> Result<Self, ConnectorError> {
        Ok(RazorpayConnector {
            http: http::client(NAME, &retry)?,
            base_url: config.base_url.trim().to_owned(),
            key_id: config.key_id.clone(),
            key_secret: config.key_secret.clone(),
            retry,
        })
    }

    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply, ConnectorError> {
        let url = http::join(&self.base_url, path);
        with_retry(&self.retry, NAME, operation, || {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .basic_auth(&self.key_id, Some(self.key_secret.expose_secret()));
            if !query.is_empty() {
                request = request.query(query);
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            http::send(NAME, request)
        })
        .await
    }

    /// The order made for this payment before, with its payments.
    /// The order made for our payment: its receipt, and the organization in its notes — payment
    /// ids are unique only within an organization, so another organization's payment of the same
    /// id has an order of the same receipt, which is not ours to reuse.
    async fn find_order(
        &self,
        receipt: &str,
        organization_id: &str,
    ) -> Result<Option<Order>, ConnectorError> {
        let reply = self
            .call(
                "find_order",
                Method::GET,
                "/v1/orders",
                &[("receipt", receipt), ("expand[]", "payments")],
                &[],
                None,
            )
            .await?;
        if !reply.status.is_success() {
            return Err(rejected(&reply));
        }
        let orders: Collection<Order> = reply.json(NAME)?;
        Ok(orders.items.into_iter().find(|order| {
            order.receipt.as_deref() == Some(receipt)
                && order.notes.get("organization_id").and_then(Value::as_str) == Some(organization_id)
        }))
    }

    async fn order_payments(&self, order_id: &str) -> Result<Option<Vec<Payment>>, ConnectorError> {
        let path = format!("/v1/orders/{order_id}/payments");
        let reply = self.call("order_payments", Method::GET, &path, &[], &[], None).await?;
        match reply.status {
            status if status.is_success() => Ok(Some(reply.json::<Collection<Payment>, _>(NAME)?.items)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(rejected(&reply)),
        }
    }

    async fn payment(&self, id: &str) -> Result<Option<Payment>, ConnectorError> {
        let reply =
            self.call("get_payment", Method::GET, &format!("/v1/payments/{id}"), &[], &[], None).await?;
        match reply.status {
            status if status.is_success() => Ok(Some(reply.json(NAME)?)),
            StatusCode::NOT_FOUND => Ok(None),
            // Razorpay answers an unknown id with 400 BAD_REQUEST_ERROR "The id provided does not exist".
            StatusCode::BAD_REQUEST if http::snippet(&reply.body).contains("does not exist") => Ok(None),
            _ => Err(rejected(&reply)),
        }
    }

    async fn create_order(&self, r: &ChargeRequest, receipt: &str) -> Result<Order, ConnectorError> {
        let body = json!({
            "amount": r.amount_minor,
            "currency": r.currency,
            "receipt": receipt,
            "notes": notes(r),
        });
        let reply = self.call("create_order", Method::POST, "/v1/orders", &[], &[], Some(&body)).await?;
        if !reply.status.is_success() {
            return Err(rejected(&reply));
        }
        reply.json(NAME)
    }

    async fn create_upi_payment(
        &self,
        r: &ChargeRequest,
        order_id: &str,
    ) -> Result<ChargeOutcome, ConnectorError> {
        let mut body = json!({
            "amount": r.amount_minor,
            "currency": r.currency,
            "order_id": order_id,
            "method": "upi",
            "upi": { "flow": "intent" },
            "notes": notes(r),
        });
        if let Some(description) = &r.description {
            body["description"] = json!(description);
        }
        let payer = r.payer.clone().unwrap_or_default();
        for (field, value) in [
            ("email", payer.email),
            ("contact", payer.phone),
            ("ip", payer.ip),
            ("user_agent", payer.user_agent),
        ] {
            if let Some(value) = value {
                body[field] = json!(value);
            }
        }
        let reply = self
            .call("create_upi_payment", Method::POST, "/v1/payments/create/upi", &[], &[], Some(&body))
            .await?;
        if !reply.status.is_success() {
            return Err(rejected(&reply));
        }
        let created: UpiPayment = reply.json(NAME)?;
        let link = created.link.ok_or_else(|| {
            ConnectorError::invalid_response(
                NAME,
                format!("UPI payment {} came back without an intent link", created.razorpay_payment_id),
            )
        })?;
        let kind = if payer.scan_qr { NextAction::UPI_QR } else { NextAction::UPI_INTENT };
        Ok(ChargeOutcome::RequiresAction {
            provider_payment_id: created.razorpay_payment_id,
            action: NextAction::new(kind, Some(link)),
        })
    }
}

#[async_trait::async_trait]
impl PaymentConnector for RazorpayConnector {
    fn name(&self) -> ConnectorName {
        NAME
    }

    async fn charge(&self, r: &ChargeRequest) -> Result<ChargeOutcome, ConnectorError> {
        if r.method != "upi" {
            return Err(ConnectorError::invalid_request(
                NAME,
                format!("the Razorpay connector takes UPI payments only, not {}", r.method),
            ));
        }
        if r.currency != "INR" {
            return Err(ConnectorError::invalid_request(
                NAME,
                format!("UPI payments are in INR, not {}", r.currency),
            ));
        }
        let receipt = receipt_of(&r.payment_id);
        let order = match self.find_order(&receipt, &r.organization_id).await? {
            Some(order) => {
                if order.amount != r.amount_minor || order.currency != r.currency {
                    return Err(ConnectorError::invalid_request(
                        NAME,
                        format!(
                            "order {} for payment {} is for {} {}, not {} {}",
                            order.id, r.payment_id, order.amount, order.currency, r.amount_minor, r.currency
                        ),
                    ));
                }
                let payments = order.payments.as_ref().map(|c| c.items.as_slice()).unwrap_or_default();
                if let Some(paid) = payments.iter().find(|p| is_paid(p)) {
                    return Ok(outcome_of_payment(paid));
                }
                order
            }
            None => self.create_order(r, &receipt).await?,
        };
        self.create_upi_payment(r, &order.id).await
    }

    async fn refund(&self, r: &RefundRequest) -> Result<RefundOutcome, ConnectorError> {
        let body = json!({
            "amount": r.amount_minor,
            "speed": "normal",
            "receipt": receipt_of(&r.refund_id),
            "notes": {
                "refund_id": r.refund_id,
                "payment_id": r.payment_id,
                "reason": r.reason.clone().unwrap_or_default(),
            },
        });
        let key = refund_idempotency_key(&r.idempotency_key);
        let path = format!("/v1/payments/{}/refund", r.provider_payment_id);
        let reply = self
            .call(
                "create_refund",
                Method::POST,
                &path,
                &[],
                &[("X-Refund-Idempotency", key.as_str())],
                Some(&body),
            )
            .await?;
        if !reply.status.is_success() {
            return Err(rejected(&reply));
        }
        let refund: Refund = reply.json(NAME)?;
        Ok(refund_outcome(refund.id, refund.status.as_deref()))
    }

    async fn fetch(
        &self,
        r: &ChargeRequest,
        provider_payment_id: Option<&str>,
    ) -> Result<Option<ChargeOutcome>, ConnectorError> {
        let payments = match provider_payment_id {
            Some(id) if id.starts_with("order_") => self.order_payments(id).await?.unwrap_or_default(),
            Some(id) => return Ok(self.payment(id).await?.as_ref().map(outcome_of_payment)),
            None => match self.find_order(&receipt_of(&r.payment_id), &r.organization_id).await? {
                Some(order) => order.payments.map(|c| c.items).unwrap_or_default(),
                None => return Ok(None),
            },
        };
        Ok(pick(&payments).map(outcome_of_payment))
    }
}

fn notes(r: &ChargeRequest) -> Value {
    json!({
        "payment_id": r.payment_id,
        "organization_id": r.organization_id,
        "member_id": r.member_id,
        "idempotency_key": r.idempotency_key,
    })
}

fn is_paid(payment: &Payment) -> bool {
    matches!(payment.status.as_str(), "captured" | "refunded")
}

/// The payment that speaks for an order: a paid one, else the latest attempt.
fn pick(payments: &[Payment]) -> Option<&Payment> {
    payments.iter().find(|p| is_paid(p)).or_else(|| payments.iter().max_by_key(|p| p.created_at))
}

pub(crate) fn outcome_of_payment(payment: &Payment) -> ChargeOutcome {
    let id = payment.id.clone();
    match payment.status.as_str() {
        "captured" | "refunded" => {
            ChargeOutcome::Succeeded { provider_payment_id: id, provider_fee_minor: payment.fee }
        }
        "failed" => ChargeOutcome::Failed {
            provider_payment_id: Some(id),
            code: payment
                .error_reason
                .clone()
                .or_else(|| payment.error_code.clone())
                .unwrap_or_else(|| "payment_failed".to_owned()),
            message: payment.error_description.clone().unwrap_or_default(),
        },
        // created: the payer has not paid yet; authorized: capture follows (account setting)
        _ => ChargeOutcome::Processing { provider_payment_id: id },
    }
}

pub(crate) fn refund_outcome(id: String, status: Option<&str>) -> RefundOutcome {
    match status {
        Some("processed") => RefundOutcome::Succeeded { provider_refund_id: id },
        Some("failed") => RefundOutcome::Failed {
            provider_refund_id: Some(id),
            code: "failed".to_owned(),
            message: "Razorpay could not process the refund".to_owned(),
        },
        _ => RefundOutcome::Pending { provider_refund_id: id },
    }
}

/// `id` when it fits Razorpay's 40-character `receipt`, else the first 40 hex digits of its SHA-256.
fn receipt_of(id: &str) -> String {
    if id.len() <= RECEIPT_MAX {
        id.to_owned()
    } else {
        hex::encode(Sha256::digest(id.as_bytes()))[..RECEIPT_MAX].to_owned()
    }
}

/// Razorpay takes 10 or more characters of `[A-Za-z0-9_-]`; any other key is sent as its
/// SHA-256 in hex, which is stable, so retries still match.
fn refund_idempotency_key(key: &str) -> String {
    let valid = key.len() >= 10 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid { key.to_owned() } else { hex::encode(Sha256::digest(key.as_bytes())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_fit_razorpays_limit() {
        assert_eq!(receipt_of("pay_123"), "pay_123");
        let long = "pay_0195f0e2-7a4b-7c3d-9e8f-001122334455-extra";
        assert_eq!(receipt_of(long).len(), 40);
        assert_eq!(receipt_of(long), receipt_of(long));
    }

    #[test]
    fn refund_keys_follow_razorpays_alphabet() {
        assert_eq!(refund_idempotency_key("0195f0e2-7a4b-7c3d"), "0195f0e2-7a4b-7c3d");
        assert_eq!(refund_idempotency_key("short").len(), 64);
        assert_eq!(refund_idempotency_key("refund:ref_1:v1").len(), 64);
    }
}
