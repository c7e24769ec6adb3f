//! Billing's provider worker: makes the provider calls the handler decided (charges, refunds)
//! and reports each answer back to billing as a `Record…Outcome` command.
//!
//! A call is leased, sent with an idempotency key derived from the deciding command, and its
//! answer is put in the consumer's outbox in the same transaction that moves the call on, so an
//! answer is reported exactly when it is recorded. A crash before that repeats the call with the
//! same key: the provider answers without charging twice. Unreachable providers are retried with
//! backoff; a charge still unsettled after `stale_after_secs` is reconciled with the provider
//! (`fetch`) and settled, or failed — never left hanging.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::Utc;
use sqlx::PgPool;
use studyspot_billing_projection::calls::{self, ProviderCall};
use studyspot_bus::TraceContext;
use studyspot_config::{Billing, Fee};
use studyspot_consumer_runtime::{OutboxWriter, Sidecar, SidecarContext, slots::Slots};
use studyspot_payment_connectors::{
    ChargeOutcome, ChargeRequest, ConnectorError, ConnectorName, Connectors, ConnectorsConfig, PayPalConfig,
    Payer, PaymentConnector, RazorpayConfig, RefundOutcome, RefundRequest, RetryPolicy, StripeConfig,
};
use studyspot_schemas::{
    EventMetadata,
    billing::{RecordChargeOutcome, RecordRefundOutcome},
};

use crate::decide::basis_points;

const ACTOR: &str = "service:billing-provider";

/// What the handler stores for the worker with each call.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallRequest {
    /// The deciding command's id; the provider sees `studyspot-<id>`.
    pub idempotency_key: String,
    pub correlation_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub method: String,
    pub payment_method_token: Option<String>,
    pub description: Option<String>,
    pub return_url: Option<String>,
    /// For refunds: the charge to refund.
    pub provider_payment_id: Option<String>,
    /// Who pays, as far as the provider needs to know.
    #[serde(default)]
    pub payer: Option<Payer>,
}

impl CallRequest {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn provider_key(&self) -> String {
        format!("studyspot-{}", self.idempotency_key)
    }
}

/// Which connector charges a payment method, per organization.
#[derive(Debug, Clone)]
pub struct Routing {
    pub default: BTreeMap<String, String>,
    pub organizations: BTreeMap<String, BTreeMap<String, String>>,
}

impl Routing {
    pub fn route(&self, organization_id: &str, method: &str) -> Option<ConnectorName> {
        self.organizations
            .get(organization_id)
            .and_then(|m| m.get(method))
            .or_else(|| self.default.get(method))
            .and_then(|name| name.parse().ok())
    }
}

/// `percent_bps` of the amount, rounded half up, plus the fixed part.
pub fn fee(fee: Fee, amount_minor: i64) -> i64 {
    basis_points(amount_minor, i64::from(fee.percent_bps))
        .unwrap_or(i64::MAX)
        .saturating_add(fee.fixed_minor)
        .max(0)
}

/// The worker's settings, in the units it uses.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub poll_interval: Duration,
    pub concurrency: usize,
    pub lease_secs: f64,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub awaiting_poll: Duration,
    pub stale_after: chrono::Duration,
}

pub struct ProviderWorker {
    pub pool: PgPool,
    pub outbox: OutboxWriter,
    pub connectors: Connectors,
    pub routing: Routing,
    pub fees: BTreeMap<String, Fee>,
    pub processing_fees: BTreeMap<String, Fee>,
    pub settings: WorkerSettings,
}

/// The connectors `billing` configures: a provider with credentials is built, one without is not
/// (its payments fail with `connector_not_configured`); manual always.
pub fn connectors_of(billing: &Billing) -> Result<Connectors, ConnectorError> {
    use secrecy::ExposeSecret;
    let provider = &billing.provider;
    let secret = |s: &secrecy::SecretString| {
        let s = s.expose_secret();
        (!s.is_empty()).then(|| secrecy::SecretString::from(s.to_owned()))
    };
    let config = ConnectorsConfig {
        stripe: secret(&billing.stripe.secret_key).map(|secret_key| StripeConfig {
            base_url: billing.stripe.base_url.clone(),
            secret_key,
            webhook_secret: secret(&billing.stripe.webhook_secret),
        }),
        paypal: secret(&billing.paypal.client_secret).map(|client_secret| PayPalConfig {
            base_url: billing.paypal.base_url.clone(),
            client_id: billing.paypal.client_id.clone(),
            client_secret,
        }),
        razorpay: secret(&billing.razorpay.key_secret).map(|key_secret| RazorpayConfig {
            base_url: billing.razorpay.base_url.clone(),
            key_id: billing.razorpay.key_id.clone(),
            key_secret,
            webhook_secret: secret(&billing.razorpay.webhook_secret),
        }),
        manual: true,
        retry: RetryPolicy {
            max_attempts: provider.max_attempts.max(1),
            base_delay_ms: 200,
            max_delay_ms: 5_000,
            timeout_ms: provider.timeout_ms,
        },
    };
    studyspot_payment_connectors::connectors(&config)
}

/// The worker as a sidecar of the billing consumer process.
pub fn sidecar() -> Sidecar {
    Box::new(|ctx: SidecarContext| {
        Box::pin(async move {
            let billing = &ctx.settings.billing;
            let connectors = match connectors_of(billing) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "payment connectors are misconfigured; no provider calls are made");
                    return;
                }
            };
            let p = &billing.provider;
            let worker = ProviderWorker {
                pool: ctx.pool,
                outbox: ctx.outbox,
                connectors,
                routing: Routing {
                    default: billing.routing.clone(),
                    organizations: billing.organization_routing.clone(),
                },
                fees: billing.fees.clone(),
                processing_fees: billing.processing_fees.clone(),
                settings: WorkerSettings {
                    poll_interval: Duration::from_millis(p.poll_interval_ms.max(10)),
                    concurrency: p.concurrency.max(1),
                    lease_secs: p.lease_secs.max(1) as f64,
                    retry_base: Duration::from_millis(p.retry_base_ms.max(1)),
                    retry_max: Duration::from_millis(p.retry_max_ms.max(1)),
                    awaiting_poll: Duration::from_secs(p.awaiting_poll_secs.max(1)),
                    stale_after: chrono::Duration::seconds(p.stale_after_secs as i64),
                },
            };
            worker.run(ctx.shutdown).await;
        })
    })
}

/// What to do with a call after one round.
enum Next {
    /// Report this answer; `status` is the call's next state.
    Report { answer: Answer, status: &'static str },
    /// Nothing to report yet; ask again later in this state.
    Later { status: &'static str, delay: Duration, error: Option<String> },
}

enum Answer {
    Charge(ConnectorName, ChargeOutcome),
    Refund(RefundOutcome),
}

impl ProviderWorker {
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        let this = Arc::new(self);
        tracing::info!(connectors = ?this.connectors.keys().collect::<Vec<_>>(), "provider worker started");
        let slots = Slots::new(this.settings.concurrency);
        while !shutdown.is_cancelled() {
            let worked = this.round(&slots).await;
            if worked > 0 {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(this.settings.poll_interval) => {}
            }
        }
        // Calls in flight are recorded before the worker ends.
        slots.drain().await;
    }

    /// Leases due calls for the free slots (`Slots::take`) and works each off in a task of its
    /// own that holds its slot until the answer is recorded; returns how many.
    async fn round(self: &Arc<Self>, slots: &Slots) -> usize {
        let mut held = slots.take().await;
        let limit = i64::try_from(held.count()).unwrap_or(0);
        let due = match calls::lease_due(&self.pool, limit, self.settings.lease_secs).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot lease provider calls");
                return 0;
            }
        };
        let count = due.len();
        for call in due {
            let Some(slot) = held.one() else { break };
            let this = self.clone();
            tokio::spawn(async move {
                let call_id = call.call_id.clone();
                if let Err(e) = this.work(call).await {
                    // The lease runs out and the call is tried again with the same key.
                    tracing::warn!(call = %call_id, error = %e, "provider call not recorded");
                }
                drop(slot);
            });
        }
        count
    }

    async fn work(&self, call: ProviderCall) -> Result<(), String> {
        let request: CallRequest = serde_json::from_value(call.request.clone()).map_err(|e| e.to_string())?;
        let routed = match &call.connector {
            Some(name) => name.parse().ok(),
            None => self.routing.route(&call.organization_id, &request.method),
        };
        let connector = routed.and_then(|name| self.connectors.get(&name).cloned());
        let next = match connector {
            None => self.unconfigured(&call, &request, routed),
            Some(connector) if call.kind == "refund" => {
                self.refund(&call, &request, connector.as_ref()).await
            }
            Some(connector) => self.charge(&call, &request, connector.as_ref()).await,
        };
        match next {
            Next::Later { status, delay, error } => {
                metrics::counter!("studyspot_billing_provider_retries_total").increment(1);
                let (org, id) = (&call.organization_id, &call.call_id);
                calls::retry_later(&self.pool, org, id, status, delay.as_secs_f64(), error.as_deref())
                    .await
                    .map_err(|e| e.to_string())
            }
            Next::Report { answer, status } => self.report(&call, &request, answer, status).await,
        }
    }

    fn unconfigured(
        &self,
        call: &ProviderCall,
        request: &CallRequest,
        routed: Option<ConnectorName>,
    ) -> Next {
        let message = match routed {
            Some(name) => format!("connector {name} is not configured"),
            None => format!("no connector is routed for {} payments", request.method),
        };
        let code = "connector_not_configured".to_owned();
        let answer = if call.kind == "refund" {
            Answer::Refund(RefundOutcome::Failed { provider_refund_id: None, code, message })
        } else {
            let name = routed.unwrap_or(ConnectorName::Manual);
            Answer::Charge(name, ChargeOutcome::Failed { provider_payment_id: None, code, message })
        };
        Next::Report { answer, status: "reported" }
    }

    fn stale(&self, call: &ProviderCall) -> bool {
        call.first_attempt_at.is_some_and(|first| Utc::now() - first > self.settings.stale_after)
    }

    fn backoff(&self, call: &ProviderCall) -> Duration {
        let exponent = u32::try_from(call.attempts.clamp(1, 30) - 1).unwrap_or(0);
        self.settings.retry_base.saturating_mul(2_u32.saturating_pow(exponent)).min(self.settings.retry_max)
    }

    async fn charge(
        &self,
        call: &ProviderCall,
        request: &CallRequest,
        connector: &dyn PaymentConnector,
    ) -> Next {
        let name = connector.name();
        let charge = ChargeRequest {
            idempotency_key: request.provider_key(),
            payment_id: call.payment_id.clone(),
            organization_id: call.organization_id.clone(),
            member_id: call.member_id.clone(),
            amount_minor: request.amount_minor,
            currency: request.currency.clone(),
            method: request.method.clone(),
            payment_method_token: request.payment_method_token.clone(),
            description: request.description.clone(),
            return_url: request.return_url.clone(),
            payer: request.payer.clone(),
        };
        let report =
            |outcome: ChargeOutcome, status| Next::Report { answer: Answer::Charge(name, outcome), status };
        let awaiting = call.status == "awaiting";
        let answer = if awaiting {
            connector.fetch(&charge, call.provider_payment_id.as_deref()).await
        } else {
            connector.charge(&charge).await.map(Some)
        };
        match answer {
            Ok(Some(outcome)) if outcome.is_final() => report(outcome, "reported"),
            // Cash and bank transfers wait for staff, not for the provider: nothing to poll.
            Ok(Some(outcome @ ChargeOutcome::RequiresAction { .. })) if name == ConnectorName::Manual => {
                report(outcome, "reported")
            }
            Ok(Some(outcome)) if !awaiting => report(outcome, "awaiting"),
            Ok(_) if self.stale(call) => report(
                ChargeOutcome::Failed {
                    provider_payment_id: call.provider_payment_id.clone(),
                    code: "expired".into(),
                    message: format!("not completed within {} s", self.settings.stale_after.num_seconds()),
                },
                "reported",
            ),
            Ok(_) => Next::Later { status: "awaiting", delay: self.settings.awaiting_poll, error: None },
            Err(e) if e.outcome_unknown() && self.stale(call) => {
                // Reconcile: the provider may have charged although no answer came back.
                match connector.fetch(&charge, call.provider_payment_id.as_deref()).await {
                    Ok(Some(outcome)) if outcome.is_final() => report(outcome, "reported"),
                    Ok(Some(outcome)) => report(outcome, "awaiting"),
                    Ok(None) | Err(_) => report(
                        ChargeOutcome::Failed {
                            provider_payment_id: call.provider_payment_id.clone(),
                            code: "provider_unavailable".into(),
                            message: e.to_string(),
                        },
                        "reported",
                    ),
                }
            }
            Err(e) if e.outcome_unknown() => Next::Later {
                status: if awaiting { "awaiting" } else { "pending" },
                delay: self.backoff(call),
                error: Some(e.to_string()),
            },
            Err(e) => report(
                ChargeOutcome::Failed {
                    provider_payment_id: call.provider_payment_id.clone(),
                    code: rejection_code(&e),
                    message: e.to_string(),
                },
                "reported",
            ),
        }
    }

    async fn refund(
        &self,
        call: &ProviderCall,
        request: &CallRequest,
        connector: &dyn PaymentConnector,
    ) -> Next {
        let refund = RefundRequest {
            idempotency_key: request.provider_key(),
            refund_id: call.refund_id.clone().unwrap_or_default(),
            payment_id: call.payment_id.clone(),
            provider_payment_id: request.provider_payment_id.clone().unwrap_or_default(),
            amount_minor: request.amount_minor,
            currency: request.currency.clone(),
            reason: request.description.clone(),
        };
        match connector.refund(&refund).await {
            // A pending refund is reported once; its end comes by webhook.
            Ok(outcome) => Next::Report { answer: Answer::Refund(outcome), status: "reported" },
            Err(e) if e.outcome_unknown() && !self.stale(call) => {
                Next::Later { status: "pending", delay: self.backoff(call), error: Some(e.to_string()) }
            }
            Err(e) => Next::Report {
                answer: Answer::Refund(RefundOutcome::Failed {
                    provider_refund_id: None,
                    code: if e.outcome_unknown() {
                        "provider_unavailable".into()
                    } else {
                        rejection_code(&e)
                    },
                    message: e.to_string(),
                }),
                status: "reported",
            },
        }
    }

    /// Puts the answer in the outbox and moves the call on, in one transaction.
    async fn report(
        &self,
        call: &ProviderCall,
        request: &CallRequest,
        answer: Answer,
        status: &str,
    ) -> Result<(), String> {
        let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
        let (connector, provider_id) = match &answer {
            Answer::Charge(name, outcome) => {
                (name.as_str().to_owned(), outcome.provider_payment_id().map(str::to_owned))
            }
            Answer::Refund(_) => (call.connector.clone().unwrap_or_default(), None),
        };
        let poll = self.settings.awaiting_poll.as_secs_f64();
        let (org, id) = (&call.organization_id, &call.call_id);
        let number = calls::reported(&mut tx, org, id, status, &connector, provider_id.as_deref(), poll)
            .await
            .map_err(|e| e.to_string())?;
        let metadata = EventMetadata {
            event_id: uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("{}/report/{number}", call.call_id).as_bytes(),
            )
            .to_string(),
            occurred_at: Utc::now().timestamp_millis(),
            correlation_id: request.correlation_id.clone(),
            causation_id: Some(call.call_id.clone()),
            organization_id: call.organization_id.clone(),
            actor: ACTOR.to_owned(),
        };
        let trace = TraceContext::root();
        // Counted once the report commits: Prometheus' view of provider charges (deploy/prometheus).
        let mut charged = None;
        let enqueued = match answer {
            Answer::Charge(_, outcome) => {
                let record = self.charge_record(call, request, metadata, &connector, outcome);
                charged = Some((record.connector.clone(), record.outcome.clone()));
                self.outbox.enqueue(&mut tx, &record, &trace).await
            }
            Answer::Refund(outcome) => {
                let record = refund_record(call, metadata, outcome);
                self.outbox.enqueue(&mut tx, &record, &trace).await
            }
        };
        enqueued.map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        self.outbox.wake();
        metrics::counter!("studyspot_billing_provider_reports_total", "kind" => call.kind.clone())
            .increment(1);
        if let Some((connector, outcome)) = charged {
            metrics::counter!("studyspot_billing_charge_outcomes_total", "connector" => connector, "outcome" => outcome)
                .increment(1);
        }
        Ok(())
    }

    fn charge_record(
        &self,
        call: &ProviderCall,
        request: &CallRequest,
        metadata: EventMetadata,
        connector: &str,
        outcome: ChargeOutcome,
    ) -> RecordChargeOutcome {
        let gateway_fee = |provider_fee: Option<i64>| {
            provider_fee.unwrap_or_else(|| {
                fee(self.fees.get(connector).copied().unwrap_or_default(), request.amount_minor)
            })
        };
        let processing_fee =
            fee(self.processing_fees.get(&request.method).copied().unwrap_or_default(), request.amount_minor);
        let mut record = RecordChargeOutcome {
            metadata,
            payment_id: call.payment_id.clone(),
            member_id: call.member_id.clone(),
            call_id: call.call_id.clone(),
            connector: connector.to_owned(),
            outcome: String::new(),
            provider_payment_id: outcome.provider_payment_id().map(str::to_owned),
            code: None,
            message: None,
            action_kind: None,
            action_url: None,
            gateway_fee_minor: 0,
            processing_fee_minor: 0,
        };
        match outcome {
            ChargeOutcome::Succeeded { provider_fee_minor, .. } => {
                record.outcome = "succeeded".into();
                record.gateway_fee_minor = gateway_fee(provider_fee_minor);
                record.processing_fee_minor = processing_fee;
            }
            ChargeOutcome::Failed { code, message, .. } => {
                record.outcome = "failed".into();
                record.code = Some(code);
                record.message = Some(message);
            }
            ChargeOutcome::RequiresAction { action, .. } => {
                record.outcome = "requires_action".into();
                record.action_kind = Some(action.kind);
                record.action_url = action.url;
                record.gateway_fee_minor = gateway_fee(None);
                record.processing_fee_minor = processing_fee;
            }
            ChargeOutcome::Processing { .. } => {
                record.outcome = "processing".into();
                record.gateway_fee_minor = gateway_fee(None);
                record.processing_fee_minor = processing_fee;
            }
        }
        record
    }
}

fn refund_record(
    call: &ProviderCall,
    metadata: EventMetadata,
    outcome: RefundOutcome,
) -> RecordRefundOutcome {
    let (outcome, provider_refund_id, code, message) = match outcome {
        RefundOutcome::Succeeded { provider_refund_id } => {
            ("succeeded", Some(provider_refund_id), None, None)
        }
        RefundOutcome::Pending { provider_refund_id } => ("pending", Some(provider_refund_id), None, None),
        RefundOutcome::Failed { provider_refund_id, code, message } => {
            ("failed", provider_refund_id, Some(code), Some(message))
        }
    };
    RecordRefundOutcome {
        metadata,
        refund_id: call.refund_id.clone().unwrap_or_default(),
        payment_id: call.payment_id.clone(),
        member_id: call.member_id.clone(),
        call_id: call.call_id.clone(),
        outcome: outcome.into(),
        provider_refund_id,
        code,
        message,
    }
}

/// A provider refused the request itself: the payment fails with a code that says so.
fn rejection_code(e: &ConnectorError) -> String {
    match e {
        ConnectorError::Rejected { .. } => "provider_rejected".into(),
        ConnectorError::InvalidRequest { .. } => "unsupported_by_provider".into(),
        ConnectorError::Config { .. } => "connector_not_configured".into(),
        _ => "provider_error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_are_a_rounded_percentage_plus_a_fixed_part() {
        assert_eq!(fee(Fee { percent_bps: 290, fixed_minor: 30 }, 2000), 88);
        assert_eq!(fee(Fee { percent_bps: 0, fixed_minor: 25 }, 2000), 25);
        assert_eq!(fee(Fee::default(), 2000), 0);
    }

    #[test]
    fn routing_prefers_the_organizations_choice() {
        let routing = Routing {
            default: [("card".to_owned(), "stripe".to_owned())].into(),
            organizations: [("org_in".to_owned(), [("card".to_owned(), "razorpay".to_owned())].into())]
                .into(),
        };
        assert_eq!(routing.route("org_de", "card"), Some(ConnectorName::Stripe));
        assert_eq!(routing.route("org_in", "card"), Some(ConnectorName::Razorpay));
        assert_eq!(routing.route("org_de", "wallet"), None);
    }
}
