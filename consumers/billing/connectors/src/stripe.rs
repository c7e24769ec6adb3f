//! Stripe, through the `async-stripe` 1.0 split crates (PaymentIntents and Refunds).
//!
//! What goes over the wire (form-encoded, `Authorization: Bearer <secret key>`, and on every
//! POST `Idempotency-Key: <request's idempotency_key>`; retries resend the same key):
//! - charge: `POST /v1/payment_intents` with `amount`, `currency` (lower case), `confirm=true`,
//!   `payment_method`, `metadata[payment_id|organization_id|member_id]`, `description`,
//!   `customer` (from [`Payer::provider_customer_id`](crate::Payer)), `return_url` when given —
//!   otherwise `automatic_payment_methods[enabled]=true&automatic_payment_methods[allow_redirects]=never`,
//!   which Stripe requires to confirm without a return URL — and
//!   `expand[0]=latest_charge.balance_transaction` to learn the fee.
//! - refund: `POST /v1/refunds` with `payment_intent`, `amount`, `metadata[refund_id|payment_id]`
//!   and `reason` when ours is one of Stripe's (`duplicate`, `fraudulent`, `requested_by_customer`).
//! - fetch: `GET /v1/payment_intents/{id}`; without an id,
//!   `GET /v1/payment_intents/search?query=metadata['payment_id']:'…' AND metadata['organization_id']:'…'`
//!   (payment ids are unique only within an organization). Stripe's search is
//!   eventually consistent (new intents may take about a minute to appear), so `None` from a
//!   search right after a lost response is not proof that nothing was charged: retrying the
//!   charge with the same idempotency key is (Stripe keeps keys for at least 24 hours).

use std::collections::HashMap;

use secrecy::ExposeSecret;
use stripe::{
    ApiErrors, ApiErrorsType, Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError,
    StripeRequest,
};
use stripe_core::payment_intent::{
    CreatePaymentIntent, CreatePaymentIntentAutomaticPaymentMethods,
    CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects, RetrievePaymentIntent, SearchPaymentIntent,
};
use stripe_core::refund::{CreateRefund, CreateRefundReason};
use stripe_core::{PaymentIntent, PaymentIntentStatus};
use stripe_types::{Currency, Expandable};

use crate::PaymentConnector;
use crate::config::{RetryPolicy, StripeConfig};
use crate::error::ConnectorError;
use crate::http::with_retry;
use crate::money;
use crate::types::{ChargeOutcome, ChargeRequest, ConnectorName, NextAction, RefundOutcome, RefundRequest};

const NAME: ConnectorName = ConnectorName::Stripe;
const FEE_EXPANSION: &str = "latest_charge.balance_transaction";

/// The Stripe connector. Cheap to share (`Arc`), safe to call concurrently.
#[derive(Debug)]
pub struct StripeConnector {
    client: Client,
    retry: RetryPolicy,
}

impl StripeConnector {
    /// A connector for `config`, retrying transient failures per `retry`; every attempt times
    /// out after `retry.timeout_ms`.
    pub fn new(config: &StripeConfig, retry: RetryPolicy) -> Result<Self, ConnectorError> {
        let mut base_url = config.base_url.trim().to_owned();
        if !base_url.ends_with('/') {
            base_url.push('/');
        }
        let client = ClientBuilder::new(config.secret_key.expose_secret())
            .url(base_url)
            .timeout(retry.timeout())
            .request_strategy(RequestStrategy::Once)
            .app_info("studyspot-payment-connectors", Some(env!("CARGO_PKG_VERSION").to_owned()), None)
            .build()
            .map_err(|err| ConnectorError::Config { connector: NAME, message: err.to_string() })?;
        Ok(StripeConnector { client, retry })
    }

    async fn create_intent(&self, r: &ChargeRequest) -> Result<ChargeOutcome, ConnectorError> {
        let token = r.payment_method_token.as_deref().ok_or_else(|| {
            ConnectorError::invalid_request(
                NAME,
                "a Stripe charge needs payment_method_token (a PaymentMethod id, pm_…)",
            )
        })?;
        let amount = stripe_amount(r.amount_minor, &r.currency)?;
        let key = idempotency_key(&r.idempotency_key)?;
        let mut create = CreatePaymentIntent::new(amount, stripe_currency(&r.currency))
            .confirm(true)
            .payment_method(token)
            .metadata(HashMap::from([
                ("payment_id".to_owned(), r.payment_id.clone()),
                ("organization_id".to_owned(), r.organization_id.clone()),
                ("member_id".to_owned(), r.member_id.clone()),
            ]))
            .expand(vec![FEE_EXPANSION.to_owned()]);
        if let Some(description) = &r.description {
            create = create.description(description.as_str());
        }
        if let Some(customer) = r.payer.as_ref().and_then(|p| p.provider_customer_id.as_deref()) {
            create = create.customer(customer);
        }
        create = match &r.return_url {
            Some(url) => create.return_url(url.as_str()),
            None => {
                let mut apm = CreatePaymentIntentAutomaticPaymentMethods::new(true);
                apm.allow_redirects = Some(CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects::Never);
                create.automatic_payment_methods(apm)
            }
        };
        let sent = with_retry(&self.retry, NAME, "create_payment_intent", || {
            let request = create.customize().request_strategy(RequestStrategy::Idempotent(key.clone()));
            async move { classify(request.send(&self.client).await) }
        })
        .await?;
        match sent {
            Ok(intent) => Ok(outcome_of(&intent)),
            Err((api, _status)) if is_card_error(&api) => Ok(decline_of(&api)),
            Err((api, status)) => Err(rejected(&api, status)),
        }
    }
}

#[async_trait::async_trait]
impl PaymentConnector for StripeConnector {
    fn name(&self) -> ConnectorName {
        NAME
    }

    async fn charge(&self, r: &ChargeRequest) -> Result<ChargeOutcome, ConnectorError> {
        self.create_intent(r).await
    }

    async fn refund(&self, r: &RefundRequest) -> Result<RefundOutcome, ConnectorError> {
        let amount = stripe_amount(r.amount_minor, &r.currency)?;
        let key = idempotency_key(&r.idempotency_key)?;
        let mut create = CreateRefund::new()
            .payment_intent(r.provider_payment_id.as_str())
            .amount(amount)
            .metadata(HashMap::from([
                ("refund_id".to_owned(), r.refund_id.clone()),
                ("payment_id".to_owned(), r.payment_id.clone()),
            ]));
        if let Some(reason) = r.reason.as_deref().and_then(refund_reason) {
            create = create.reason(reason);
        }
        let sent = with_retry(&self.retry, NAME, "create_refund", || {
            let request = create.customize().request_strategy(RequestStrategy::Idempotent(key.clone()));
            async move { classify(request.send(&self.client).await) }
        })
        .await?;
        match sent {
            Ok(refund) => {
                Ok(refund_outcome(refund.id.as_str(), refund.status.as_deref(), refund.failure_reason))
            }
            Err((api, _)) if is_refund_refusal(&api) => Ok(RefundOutcome::Failed {
                provider_refund_id: None,
                code: api_code(&api),
                message: api.message.clone().unwrap_or_default(),
            }),
            Err((api, status)) => Err(rejected(&api, status)),
        }
    }

    async fn fetch(
        &self,
        r: &ChargeRequest,
        provider_payment_id: Option<&str>,
    ) -> Result<Option<ChargeOutcome>, ConnectorError> {
        if let Some(id) = provider_payment_id {
            let retrieve = RetrievePaymentIntent::new(id).expand(vec![FEE_EXPANSION.to_owned()]);
            let got = with_retry(&self.retry, NAME, "retrieve_payment_intent", || {
                let request = retrieve.customize();
                async move { classify(request.send(&self.client).await) }
            })
            .await?;
            return match got {
                Ok(intent) => Ok(Some(outcome_of(&intent))),
                Err((api, 404)) if api_code(&api) == "resource_missing" => Ok(None),
                Err((api, status)) => Err(rejected(&api, status)),
            };
        }
        // Payment ids are unique only within an organization: the search names both.
        let query = format!(
            "metadata['payment_id']:'{}' AND metadata['organization_id']:'{}'",
            search_escape(&r.payment_id),
            search_escape(&r.organization_id)
        );
        let search = SearchPaymentIntent::new(query).limit(10).expand(vec![format!("data.{FEE_EXPANSION}")]);
        let found = with_retry(&self.retry, NAME, "search_payment_intents", || {
            let request = search.customize();
            async move { classify(request.send(&self.client).await) }
        })
        .await?;
        match found {
            Ok(list) => Ok(list.data.iter().max_by_key(|intent| intent.created).map(outcome_of)),
            Err((api, status)) => Err(rejected(&api, status)),
        }
    }
}

/// Splits a Stripe result three ways: the object; an API error the caller maps (`Ok(Err)`);
/// or a [`ConnectorError`] (transient ones are retried by the caller's loop).
fn classify<T>(result: Result<T, StripeError>) -> Result<Result<T, (Box<ApiErrors>, u16)>, ConnectorError> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(StripeError::Stripe(api, status)) => {
            let transient =
                matches!(status, 409 | 429 | 500..=599) || matches!(api.type_, ApiErrorsType::ApiError);
            if transient && !is_card_error(&api) {
                Err(ConnectorError::transient(
                    NAME,
                    format!("HTTP {status} {}: {}", api_code(&api), api.message.as_deref().unwrap_or("")),
                ))
            } else {
                Ok(Err((api, status)))
            }
        }
        Err(StripeError::Timeout) => Err(ConnectorError::transient(NAME, "timed out")),
        Err(StripeError::ClientError(message)) => Err(ConnectorError::transient(NAME, message)),
        // async-stripe reports an error status whose body is not a Stripe error object (a proxy's
        // HTML 502, say) with this message and no status: treat it as the 5xx it almost always is.
        Err(StripeError::JSONDeserialize(message)) if message.contains("Stripe error") => {
            Err(ConnectorError::transient(NAME, format!("error status with an unreadable body: {message}")))
        }
        Err(StripeError::JSONDeserialize(message)) => Err(ConnectorError::invalid_response(NAME, message)),
        Err(StripeError::ConfigError(message)) => Err(ConnectorError::Config { connector: NAME, message }),
    }
}

fn is_card_error(api: &ApiErrors) -> bool {
    matches!(api.type_, ApiErrorsType::CardError)
}

/// Refund refusals that are Stripe's final word on this refund, not a malformed request.
fn is_refund_refusal(api: &ApiErrors) -> bool {
    matches!(
        api_code(api).as_str(),
        "charge_already_refunded" | "charge_disputed" | "refund_disputed_payment"
    )
}

fn api_code(api: &ApiErrors) -> String {
    match &api.code {
        Some(code) => code.as_str().to_owned(),
        None => api.type_.as_str().to_owned(),
    }
}

fn rejected(api: &ApiErrors, status: u16) -> ConnectorError {
    ConnectorError::Rejected {
        connector: NAME,
        status,
        code: api_code(api),
        message: api.message.clone().unwrap_or_default(),
    }
}

/// A 402 `card_error`: the decline code when the issuer gave one (`insufficient_funds`), else
/// the error code (`card_declined`, `expired_card`, `incorrect_cvc`).
fn decline_of(api: &ApiErrors) -> ChargeOutcome {
    ChargeOutcome::Failed {
        provider_payment_id: api.payment_intent.as_ref().map(|intent| intent.id.as_str().to_owned()),
        code: api.decline_code.clone().unwrap_or_else(|| api_code(api)),
        message: api.message.clone().unwrap_or_default(),
    }
}

/// The outcome a PaymentIntent stands for.
pub(crate) fn outcome_of(intent: &PaymentIntent) -> ChargeOutcome {
    let id = intent.id.as_str().to_owned();
    match &intent.status {
        PaymentIntentStatus::Succeeded => {
            ChargeOutcome::Succeeded { provider_fee_minor: fee_of(intent), provider_payment_id: id }
        }
        PaymentIntentStatus::RequiresAction => {
            let redirect = intent
                .next_action
                .as_ref()
                .and_then(|action| action.redirect_to_url.as_ref())
                .and_then(|redirect| redirect.url.clone());
            let action = match redirect {
                Some(url) => NextAction::new(NextAction::REDIRECT, Some(url)),
                None => NextAction::new(NextAction::CLIENT_SDK, None),
            };
            ChargeOutcome::RequiresAction { provider_payment_id: id, action }
        }
        PaymentIntentStatus::RequiresPaymentMethod => match intent.last_payment_error.as_deref() {
            Some(api) => ChargeOutcome::Failed {
                provider_payment_id: Some(id),
                code: api.decline_code.clone().unwrap_or_else(|| api_code(api)),
                message: api.message.clone().unwrap_or_default(),
            },
            None => ChargeOutcome::Failed {
                provider_payment_id: Some(id),
                code: "requires_payment_method".to_owned(),
                message: "the payment intent has no usable payment method".to_owned(),
            },
        },
        PaymentIntentStatus::Canceled => ChargeOutcome::Failed {
            provider_payment_id: Some(id),
            code: "canceled".to_owned(),
            message: intent
                .cancellation_reason
                .as_ref()
                .map_or_else(|| "the payment intent was canceled".to_owned(), |r| r.as_str().to_owned()),
        },
        // processing, requires_capture, requires_confirmation, anything new
        _ => ChargeOutcome::Processing { provider_payment_id: id },
    }
}

/// The fee of the latest charge's balance transaction, when it was expanded and is in the
/// payment's own currency (a fee settled in another currency cannot be expressed here).
fn fee_of(intent: &PaymentIntent) -> Option<i64> {
    let Some(Expandable::Object(charge)) = &intent.latest_charge else { return None };
    let Some(Expandable::Object(txn)) = &charge.balance_transaction else { return None };
    (txn.currency == intent.currency)
        .then(|| money::from_stripe_amount(txn.fee, &intent.currency.to_string().to_ascii_uppercase()))
}

pub(crate) fn refund_outcome(
    id: &str,
    status: Option<&str>,
    failure_reason: Option<String>,
) -> RefundOutcome {
    let provider_refund_id = id.to_owned();
    match status {
        Some("succeeded") => RefundOutcome::Succeeded { provider_refund_id },
        Some(status @ ("failed" | "canceled")) => RefundOutcome::Failed {
            provider_refund_id: Some(provider_refund_id),
            code: failure_reason.clone().unwrap_or_else(|| status.to_owned()),
            message: failure_reason.unwrap_or_else(|| format!("the refund is {status}")),
        },
        // pending, requires_action (the customer must give bank details), unknown
        _ => RefundOutcome::Pending { provider_refund_id },
    }
}

fn refund_reason(reason: &str) -> Option<CreateRefundReason> {
    match reason {
        "duplicate" => Some(CreateRefundReason::Duplicate),
        "fraudulent" => Some(CreateRefundReason::Fraudulent),
        "requested_by_customer" => Some(CreateRefundReason::RequestedByCustomer),
        _ => None,
    }
}

fn stripe_amount(amount_minor: i64, currency: &str) -> Result<i64, ConnectorError> {
    money::to_stripe_amount(amount_minor, currency).ok_or_else(|| {
        ConnectorError::invalid_request(NAME, format!("amount {amount_minor} {currency} overflows"))
    })
}

fn stripe_currency(currency: &str) -> Currency {
    // Infallible: unknown codes become Currency::Unknown and Stripe answers for them.
    currency.to_ascii_lowercase().parse().unwrap_or_else(|never: std::convert::Infallible| match never {})
}

fn idempotency_key(key: &str) -> Result<IdempotencyKey, ConnectorError> {
    IdempotencyKey::new(key)
        .map_err(|err| ConnectorError::invalid_request(NAME, format!("idempotency key: {err}")))
}

/// Stripe's search query language quotes with `'`; a quote inside is escaped with `\`.
fn search_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_values_are_escaped() {
        assert_eq!(search_escape("pay_1"), "pay_1");
        assert_eq!(search_escape("a'b"), "a\\'b");
    }

    #[test]
    fn only_stripes_refund_reasons_are_sent() {
        assert!(refund_reason("duplicate").is_some());
        assert!(refund_reason("the seat was broken").is_none());
    }
}
