//! What the handler and the modules it dispatches to (numbering, subscriptions) share around the
//! runtime's [`Out`]: billing's rejection, asking the organization's series for an invoice's
//! number, and starting a charge through the provider worker.

use sqlx::PgConnection;
use studyspot_billing_projection::{
    Invoice, Payment,
    calls::{self, ProviderCall},
    methods, payments,
};
use studyspot_consumer_runtime::{HandleError, Out, Refusal};
use studyspot_schemas::{
    Record,
    billing::{CommandRejected, NumberInvoice, PaymentProcessingStarted},
};

use crate::provider::CallRequest;

pub(crate) const ACTOR: &str = "service:billing";

/// Billing's refusals name the member whose partition decided them.
pub(crate) trait Refuse {
    fn refuse<C: Record>(&mut self, member_id: &str, refusal: Refusal);
}

impl Refuse for Out<'_> {
    fn refuse<C: Record>(&mut self, member_id: &str, refusal: Refusal) {
        let command_id = self.command_id();
        self.reject(|metadata| CommandRejected {
            metadata,
            command_id,
            command_type: C::FULL_NAME.to_owned(),
            member_id: member_id.to_owned(),
            code: refusal.code.to_owned(),
            reason: refusal.reason,
        });
    }
}

/// Asks the organization's series for the finalized invoice's number (`NumberInvoice`, on the
/// catalog command topic, where the organization has one partition).
pub(crate) fn ask_number(out: &mut Out<'_>, invoice: &Invoice) {
    out.emit(|metadata| NumberInvoice {
        metadata,
        invoice_id: invoice.invoice_id.clone(),
        member_id: invoice.member_id.clone(),
    });
}

/// Saves a payment `process` moved to processing and records the provider call that charges it.
pub(crate) async fn start_charge(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    payment: &Payment,
    call_id: String,
    return_url: Option<String>,
    payer: Option<studyspot_payment_connectors::Payer>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), HandleError> {
    payments::save(tx, payment).await?;
    let token = match &payment.payment_method_id {
        Some(id) => methods::load(tx, &payment.organization_id, id).await?.and_then(|m| m.provider_token),
        None => None,
    };
    let request = CallRequest {
        idempotency_key: call_id.clone(),
        correlation_id: out.message.metadata.correlation_id.clone(),
        amount_minor: payment.amount_minor,
        currency: payment.currency.clone(),
        method: payment.method.clone(),
        payment_method_token: token,
        description: payment.description.clone(),
        return_url,
        provider_payment_id: None,
        payer,
    };
    calls::insert(
        tx,
        &ProviderCall {
            call_id,
            kind: "charge".into(),
            organization_id: payment.organization_id.clone(),
            member_id: payment.member_id.clone(),
            payment_id: payment.payment_id.clone(),
            refund_id: None,
            status: "pending".into(),
            request: request.to_json(),
            connector: None,
            provider_payment_id: None,
            attempts: 0,
            reports: 0,
            last_error: None,
            next_attempt_at: at,
            first_attempt_at: None,
            created_at: at,
        },
    )
    .await?;
    out.emit(|metadata| PaymentProcessingStarted {
        metadata,
        payment_id: payment.payment_id.clone(),
        member_id: payment.member_id.clone(),
        attempt: payment.attempts,
    });
    Ok(())
}
