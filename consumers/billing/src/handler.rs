use sqlx::PgConnection;
use studyspot_billing_projection::{self as projection, Payment};
use studyspot_consumer_runtime::{Effects, HandleError, Handler, Inbound};
use studyspot_schemas::{
    Record,
    billing::{CommandRejected, CreatePayment, PaymentCreated},
};

use crate::decide::{CreatePaymentDecision, decide_create_payment, validate_create_payment};

const ACTOR: &str = "service:billing";

#[derive(Debug, Default, Clone)]
pub struct BillingHandler;

impl Handler for BillingHandler {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        message: &Inbound,
        effects: &mut Effects,
    ) -> Result<(), HandleError> {
        if message.is::<CreatePayment>() {
            create_payment(tx, message, effects).await
        } else {
            Err(HandleError::UnknownRecord(message.record_type.clone()))
        }
    }
}

async fn create_payment(
    tx: &mut PgConnection,
    message: &Inbound,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let c: CreatePayment = message.record()?;
    validate_create_payment(&c).map_err(|m| HandleError::malformed(CreatePayment::FULL_NAME, m.0))?;
    let at = message.occurred_at()?;
    match decide_create_payment(projection::payment_exists(tx, &c.payment_id).await?, &c) {
        CreatePaymentDecision::Create => {
            projection::insert_payment(
                tx,
                &Payment {
                    payment_id: c.payment_id.clone(),
                    organization_id: c.metadata.organization_id.clone(),
                    member_id: c.member_id.clone(),
                    amount_minor: c.amount_minor,
                    currency: c.currency.clone(),
                    method: c.method.clone(),
                    description: c.description.clone(),
                    status: "created".into(),
                    created_at: at,
                    updated_at: at,
                },
            )
            .await?;
            effects.emit(PaymentCreated {
                metadata: message.follow_on(0, ACTOR),
                payment_id: c.payment_id,
                member_id: c.member_id,
                amount_minor: c.amount_minor,
                currency: c.currency,
                method: c.method,
                description: c.description,
            });
        }
        CreatePaymentDecision::Rejected { code, reason } => effects.reject(CommandRejected {
            metadata: message.follow_on(0, ACTOR),
            command_id: c.metadata.event_id.clone(),
            command_type: CreatePayment::FULL_NAME.to_owned(),
            member_id: c.member_id,
            code: code.to_owned(),
            reason,
        }),
    }
    Ok(())
}
