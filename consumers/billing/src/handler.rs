//! Billing's handler: load what a command needs, let `decide` rule, write the projection, emit
//! the follow-on events, and record the provider calls the worker makes afterwards.

use std::sync::Arc;

use sqlx::PgConnection;
use studyspot_billing_projection::{
    self as projection, Invoice as InvoiceRow, Payment as PaymentRow, PaymentMethod, Refund as RefundRow,
    calls, calls::ProviderCall, invoices, methods, payments, refunds,
};
use studyspot_consumer_runtime::{Effects, HandleError, Handler, Inbound, Out, malformed};
use studyspot_schemas::{
    Record,
    billing::{
        AddPaymentMethod, AssignInvoiceNumber, BillSubscription, CancelSubscription, ChangeInvoiceStatus,
        ChangeSubscriptionPlan, ConfirmManualPayment, CreateInvoice, CreatePayment, CreateSubscription,
        DefineCoupon, DefinePlan, InvoiceCreated, InvoicePaid, InvoiceStatusChanged, IssueCreditNote,
        NumberInvoice, PauseSubscription, PaymentCreated, PaymentFailed, PaymentMethodAdded,
        PaymentRequiresAction, PaymentSucceeded, ProcessPayment, ProviderNotified, RecordChargeOutcome,
        RecordManualPayment, RecordRefundOutcome, RecordUsage, RefundFailed, RefundIssued, RefundPayment,
        RefundRequested, ResumeSubscription, RunBilling,
    },
};

use crate::{
    decide::{
        self, Refusal, invoices as invoice_rules, payments as payment_rules, refunds as refund_rules,
        subscriptions::Policy,
    },
    provider::CallRequest,
    shell::{ACTOR, Refuse, ask_number, start_charge},
};

mod attendance;
mod numbering;
mod state;
mod subscriptions;

#[derive(Debug, Default, Clone)]
pub struct BillingHandler {
    policy: Arc<Policy>,
}

impl BillingHandler {
    pub fn new(policy: Policy) -> Self {
        Self { policy: Arc::new(policy) }
    }
}

impl Handler for BillingHandler {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        message: &Inbound,
        effects: &mut Effects,
    ) -> Result<(), HandleError> {
        let mut out = Out::new(message, effects, ACTOR);
        let policy = &self.policy;
        match message.record_type.as_str() {
            CreatePayment::FULL_NAME => create_payment(tx, &mut out).await,
            ProcessPayment::FULL_NAME => process_payment(tx, &mut out).await,
            RecordChargeOutcome::FULL_NAME => charge_outcome(tx, &mut out, policy).await,
            ConfirmManualPayment::FULL_NAME => confirm_manual(tx, &mut out, policy).await,
            RecordManualPayment::FULL_NAME => record_manual(tx, &mut out, policy).await,
            RefundPayment::FULL_NAME => refund_payment(tx, &mut out).await,
            RecordRefundOutcome::FULL_NAME => refund_outcome(tx, &mut out).await,
            AddPaymentMethod::FULL_NAME => add_payment_method(tx, &mut out).await,
            CreateInvoice::FULL_NAME => create_invoice(tx, &mut out).await,
            ChangeInvoiceStatus::FULL_NAME => change_invoice_status(tx, &mut out).await,
            NumberInvoice::FULL_NAME => numbering::number_invoice(tx, &mut out).await,
            AssignInvoiceNumber::FULL_NAME => numbering::assign_invoice_number(tx, &mut out).await,
            ProviderNotified::FULL_NAME => provider_notified(tx, &mut out).await,
            DefinePlan::FULL_NAME => subscriptions::define_plan(tx, &mut out).await,
            DefineCoupon::FULL_NAME => subscriptions::define_coupon(tx, &mut out).await,
            RunBilling::FULL_NAME => subscriptions::run_billing(tx, &mut out).await,
            CreateSubscription::FULL_NAME => subscriptions::create_subscription(tx, &mut out, policy).await,
            ChangeSubscriptionPlan::FULL_NAME => subscriptions::change_plan(tx, &mut out, policy).await,
            PauseSubscription::FULL_NAME => subscriptions::pause(tx, &mut out, policy).await,
            ResumeSubscription::FULL_NAME => subscriptions::resume(tx, &mut out, policy).await,
            CancelSubscription::FULL_NAME => subscriptions::cancel(tx, &mut out, policy).await,
            RecordUsage::FULL_NAME => subscriptions::record_usage(tx, &mut out, policy).await,
            IssueCreditNote::FULL_NAME => subscriptions::issue_credit_note(tx, &mut out).await,
            BillSubscription::FULL_NAME => subscriptions::bill(tx, &mut out, policy).await,
            studyspot_schemas::attendance::SessionCompleted::FULL_NAME => {
                attendance::session_completed(&mut out)
            }
            // Attendance's other events are not billing's business.
            _ if message.topic.ends_with(studyspot_schemas::attendance::EVENTS.name) => Ok(()),
            other => Err(HandleError::UnknownRecord(other.to_owned())),
        }
    }
}

/// The organization's payment of that id, whoever's it is.
async fn load_payment(
    tx: &mut PgConnection,
    organization_id: &str,
    payment_id: &str,
) -> Result<Option<payment_rules::Payment>, HandleError> {
    payments::load(tx, organization_id, payment_id).await?.map(TryInto::try_into).transpose()
}

/// A refund as the core's state.
fn refund_state(refund: Option<RefundRow>) -> Result<Option<refund_rules::Refund>, HandleError> {
    refund.map(TryInto::try_into).transpose()
}

/// What a new payment needs to know of the method and the invoice it names.
async fn create_context(
    tx: &mut PgConnection,
    organization_id: &str,
    payment_id: &str,
    (payment_method_id, invoice_id): (Option<&str>, Option<&str>),
) -> Result<payment_rules::CreateContext, HandleError> {
    let mut ctx = payment_rules::CreateContext {
        exists: projection::payment_exists(tx, organization_id, payment_id).await?,
        ..Default::default()
    };
    if let Some(id) = payment_method_id {
        ctx.method_of = match methods::load(tx, organization_id, id).await? {
            Some(m) => Some(state::method_view(&m)?),
            None => None,
        };
    }
    if let Some(id) = invoice_id {
        ctx.invoice = match invoices::load(tx, organization_id, id).await? {
            Some(i) => Some(state::invoice_view(&i)?),
            None => None,
        };
    }
    Ok(ctx)
}

async fn create_payment(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CreatePayment = out.message.record()?;
    let asked = payment_rules::parse_create(&c).map_err(malformed::<CreatePayment>)?;
    let at = out.message.occurred_at()?;
    let references = (c.payment_method_id.as_deref(), c.invoice_id.as_deref());
    let ctx = create_context(tx, &c.metadata.organization_id, &c.payment_id, references).await?;
    match payment_rules::create(&ctx, &asked, at) {
        Ok(payment) => {
            payments::save(tx, &PaymentRow::from(payment)).await?;
            out.emit(|metadata| PaymentCreated {
                metadata,
                payment_id: c.payment_id,
                member_id: c.member_id,
                amount_minor: c.amount_minor,
                currency: c.currency,
                method: c.method,
                description: c.description,
                invoice_id: c.invoice_id,
            });
        }
        Err(refusal) => out.refuse::<CreatePayment>(&c.member_id, refusal),
    }
    Ok(())
}

async fn process_payment(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: ProcessPayment = out.message.record()?;
    decide::check_filled(&[("payment_id", &c.payment_id), ("member_id", &c.member_id)])
        .map_err(malformed::<ProcessPayment>)?;
    let at = out.message.occurred_at()?;
    // The command's id names the provider call and is its idempotency key: a redelivered command
    // is dropped by the runtime, and a retried call never charges twice.
    let call_id = out.message.metadata.event_id.clone();
    let given = load_payment(tx, out.org(), &c.payment_id).await?;
    let payment =
        match payment_rules::decide_process(given.as_ref(), (&c.payment_id, &c.member_id), &call_id, at) {
            Ok(payment) => PaymentRow::from(payment),
            Err(refusal) => {
                out.refuse::<ProcessPayment>(&c.member_id, refusal);
                return Ok(());
            }
        };
    let payer = studyspot_payment_connectors::Payer {
        email: c.payer_email.clone(),
        phone: c.payer_phone.clone(),
        ip: c.payer_ip.clone(),
        user_agent: c.payer_user_agent.clone(),
        provider_customer_id: None,
        scan_qr: c.scan_qr,
    };
    start_charge(tx, out, &payment, call_id, c.return_url.clone(), Some(payer), at).await
}

async fn charge_outcome(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
) -> Result<(), HandleError> {
    let o: RecordChargeOutcome = out.message.record()?;
    payment_rules::validate_outcome(&o).map_err(malformed::<RecordChargeOutcome>)?;
    let at = out.message.occurred_at()?;
    let given = load_payment(tx, out.org(), &o.payment_id).await?;
    let payment = match payment_rules::decide_outcome(given.as_ref(), &o, at) {
        Ok(payment) => PaymentRow::from(payment),
        Err(refusal) => {
            out.refuse::<RecordChargeOutcome>(&o.member_id, refusal);
            return Ok(());
        }
    };
    payments::save(tx, &payment).await?;
    match payment.status.as_str() {
        "succeeded" => {
            calls::settle(tx, &payment.organization_id, &o.call_id).await?;
            succeeded(tx, out, policy, &payment, at).await?;
        }
        "failed" => {
            calls::settle(tx, &payment.organization_id, &o.call_id).await?;
            out.emit(|metadata| PaymentFailed {
                metadata,
                payment_id: payment.payment_id.clone(),
                member_id: payment.member_id.clone(),
                amount_minor: payment.amount_minor,
                currency: payment.currency.clone(),
                method: payment.method.clone(),
                connector: o.connector.clone(),
                code: payment.failure_code.clone().unwrap_or_default(),
                message: payment.failure_message.clone().unwrap_or_default(),
            });
            if let Some(invoice) = &payment.invoice_id {
                subscriptions::payment_failed(tx, out, policy, &payment.organization_id, invoice, at).await?;
            }
        }
        "requires_action" => out.emit(|metadata| PaymentRequiresAction {
            metadata,
            payment_id: payment.payment_id.clone(),
            member_id: payment.member_id.clone(),
            connector: o.connector.clone(),
            action_kind: payment.action_kind.clone().unwrap_or_default(),
            action_url: payment.action_url.clone(),
        }),
        // Still with the provider: nothing new to tell.
        _ => {}
    }
    Ok(())
}

/// `PaymentSucceeded`, and the invoice it pays.
async fn succeeded(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
    payment: &PaymentRow,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), HandleError> {
    out.emit(|metadata| PaymentSucceeded {
        metadata,
        payment_id: payment.payment_id.clone(),
        member_id: payment.member_id.clone(),
        amount_minor: payment.amount_minor,
        currency: payment.currency.clone(),
        method: payment.method.clone(),
        connector: payment.connector.clone().unwrap_or_else(|| "manual".into()),
        provider_payment_id: payment.provider_payment_id.clone(),
        gateway_fee_minor: payment.gateway_fee_minor,
        processing_fee_minor: payment.processing_fee_minor,
        invoice_id: payment.invoice_id.clone(),
    });
    let Some(invoice_id) = &payment.invoice_id else { return Ok(()) };
    let Some(invoice) = invoices::load(tx, &payment.organization_id, invoice_id).await? else {
        return Ok(());
    };
    let (invoice, paid) = invoice_rules::pay(&invoice.try_into()?, payment.amount_minor, at);
    let invoice = InvoiceRow::from(invoice);
    invoices::save(tx, &invoice).await?;
    if paid {
        out.emit(|metadata| InvoicePaid {
            metadata,
            invoice_id: invoice.invoice_id.clone(),
            member_id: invoice.member_id.clone(),
            number: invoice.number.clone().unwrap_or_default(),
            currency: invoice.currency.clone(),
            amount_paid_minor: invoice.amount_paid_minor,
        });
        subscriptions::invoice_paid(tx, out, policy, &invoice.organization_id, &invoice.invoice_id, at)
            .await?;
    }
    Ok(())
}

async fn confirm_manual(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
) -> Result<(), HandleError> {
    let c: ConfirmManualPayment = out.message.record()?;
    decide::check_filled(&[("payment_id", &c.payment_id), ("member_id", &c.member_id)])
        .map_err(malformed::<ConfirmManualPayment>)?;
    let at = out.message.occurred_at()?;
    let given = load_payment(tx, out.org(), &c.payment_id).await?;
    match payment_rules::decide_confirm(given.as_ref(), (&c.payment_id, &c.member_id), at) {
        Ok(payment) => {
            let call = given.and_then(|p| p.pending_call_id);
            let payment = PaymentRow::from(payment);
            payments::save(tx, &payment).await?;
            if let Some(call) = call {
                calls::settle(tx, &payment.organization_id, &call).await?;
            }
            succeeded(tx, out, policy, &payment, at).await?;
        }
        Err(refusal) => out.refuse::<ConfirmManualPayment>(&c.member_id, refusal),
    }
    Ok(())
}

/// Staff received cash or a bank transfer for an invoice: a succeeded payment at once, which pays
/// the invoice (and brings back a subscription dunning for it) as a confirmed one does.
async fn record_manual(tx: &mut PgConnection, out: &mut Out<'_>, policy: &Policy) -> Result<(), HandleError> {
    let c: RecordManualPayment = out.message.record()?;
    let asked = payment_rules::parse_manual(&c).map_err(malformed::<RecordManualPayment>)?;
    let at = out.message.occurred_at()?;
    let references = (None, Some(c.invoice_id.as_str()));
    let ctx = create_context(tx, &c.metadata.organization_id, &c.payment_id, references).await?;
    match payment_rules::record_manual(&ctx, &asked, at) {
        Ok(payment) => {
            let payment = PaymentRow::from(payment);
            payments::save(tx, &payment).await?;
            out.emit(|metadata| PaymentCreated {
                metadata,
                payment_id: payment.payment_id.clone(),
                member_id: payment.member_id.clone(),
                amount_minor: payment.amount_minor,
                currency: payment.currency.clone(),
                method: payment.method.clone(),
                description: payment.description.clone(),
                invoice_id: payment.invoice_id.clone(),
            });
            succeeded(tx, out, policy, &payment, at).await?;
        }
        Err(refusal) => out.refuse::<RecordManualPayment>(&c.member_id, refusal),
    }
    Ok(())
}

async fn refund_payment(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: RefundPayment = out.message.record()?;
    let asked = refund_rules::parse_request(&c).map_err(malformed::<RefundPayment>)?;
    let at = out.message.occurred_at()?;
    let org = out.org().to_owned();
    let exists = refunds::exists(tx, &org, &c.refund_id).await?;
    let given = load_payment(tx, &org, &c.payment_id).await?;
    let (payment, refund) = match refund_rules::decide_request(given.as_ref(), exists, &asked, at) {
        Ok((payment, refund)) => (PaymentRow::from(payment), RefundRow::from(refund)),
        Err(refusal) => {
            out.refuse::<RefundPayment>(&c.member_id, refusal);
            return Ok(());
        }
    };
    payments::save(tx, &payment).await?;
    refunds::save(tx, &refund).await?;
    let call_id = out.message.metadata.event_id.clone();
    let request = CallRequest {
        idempotency_key: call_id.clone(),
        correlation_id: out.message.metadata.correlation_id.clone(),
        amount_minor: refund.amount_minor,
        currency: refund.currency.clone(),
        method: payment.method.clone(),
        payment_method_token: None,
        description: refund.reason.clone(),
        return_url: None,
        provider_payment_id: payment.provider_payment_id.clone(),
        payer: None,
    };
    calls::insert(
        tx,
        &ProviderCall {
            call_id,
            kind: "refund".into(),
            organization_id: payment.organization_id.clone(),
            member_id: payment.member_id.clone(),
            payment_id: payment.payment_id.clone(),
            refund_id: Some(refund.refund_id.clone()),
            status: "pending".into(),
            request: request.to_json(),
            // A refund goes back through whoever charged.
            connector: payment.connector.clone(),
            provider_payment_id: payment.provider_payment_id.clone(),
            attempts: 0,
            reports: 0,
            last_error: None,
            next_attempt_at: at,
            first_attempt_at: None,
            created_at: at,
        },
    )
    .await?;
    out.emit(|metadata| RefundRequested {
        metadata,
        refund_id: refund.refund_id.clone(),
        payment_id: refund.payment_id.clone(),
        member_id: refund.member_id.clone(),
        amount_minor: refund.amount_minor,
        currency: refund.currency.clone(),
    });
    Ok(())
}

async fn refund_outcome(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let o: RecordRefundOutcome = out.message.record()?;
    refund_rules::validate_outcome(&o).map_err(malformed::<RecordRefundOutcome>)?;
    let at = out.message.occurred_at()?;
    let org = out.org().to_owned();
    let refund = refund_state(refunds::load(tx, &org, &o.refund_id).await?)?;
    let payment = load_payment(tx, &org, &o.payment_id).await?;
    let decided = refund_rules::decide_outcome(payment.as_ref(), refund.as_ref(), &o, at);
    apply_refund_outcome::<RecordRefundOutcome>(tx, out, &o.member_id, decided).await
}

/// A provider's answer about a refund, by the worker's report or a signed webhook: the refund and
/// its payment move on, the call is done once the answer is final, and the event tells.
async fn apply_refund_outcome<C: Record>(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    member_id: &str,
    decided: Result<(payment_rules::Payment, refund_rules::Refund), Refusal>,
) -> Result<(), HandleError> {
    let (payment, refund) = match decided {
        Ok((payment, refund)) => (PaymentRow::from(payment), RefundRow::from(refund)),
        Err(refusal) => {
            out.refuse::<C>(member_id, refusal);
            return Ok(());
        }
    };
    payments::save(tx, &payment).await?;
    refunds::save(tx, &refund).await?;
    if refund.status != "pending" {
        calls::settle_refund(tx, &refund.organization_id, &refund.refund_id).await?;
    }
    emit_refund_settled(out, &payment, &refund);
    Ok(())
}

async fn add_payment_method(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: AddPaymentMethod = out.message.record()?;
    let asked = payment_rules::parse_add_method(&c).map_err(malformed::<AddPaymentMethod>)?;
    let at = out.message.occurred_at()?;
    let exists = methods::load(tx, &c.metadata.organization_id, &c.payment_method_id).await?.is_some();
    let added = match payment_rules::decide_add_method(exists, &asked) {
        Ok(added) => added,
        Err(refusal) => {
            out.refuse::<AddPaymentMethod>(&c.member_id, refusal);
            return Ok(());
        }
    };
    let is_default = methods::insert(
        tx,
        &PaymentMethod {
            payment_method_id: added.payment_method_id.to_string(),
            organization_id: c.metadata.organization_id.clone(),
            member_id: added.member_id.to_string(),
            method: added.method.to_string(),
            provider_token: added.provider_token,
            label: added.label.clone(),
            is_default: added.make_default,
            created_at: at,
        },
    )
    .await?;
    out.emit(|metadata| PaymentMethodAdded {
        metadata,
        payment_method_id: added.payment_method_id.into(),
        member_id: added.member_id.into(),
        method: added.method.into(),
        label: added.label,
        is_default,
    });
    Ok(())
}

async fn create_invoice(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CreateInvoice = out.message.record()?;
    invoice_rules::validate(&c).map_err(malformed::<CreateInvoice>)?;
    let priced = invoice_rules::price(&c).map_err(malformed::<CreateInvoice>)?;
    let at = out.message.occurred_at()?;
    let exists = invoices::load(tx, &c.metadata.organization_id, &c.invoice_id).await?.is_some();
    let (draft, lines) = match invoice_rules::create(exists, priced, at) {
        Ok((draft, lines)) => (draft.clone(), state::line_rows(draft.invoice_id.as_str(), lines)),
        Err(refusal) => {
            out.refuse::<CreateInvoice>(&c.member_id, refusal);
            return Ok(());
        }
    };
    let invoice = InvoiceRow::from(draft.clone());
    invoices::insert(tx, &invoice, &lines).await?;
    out.emit(|metadata| InvoiceCreated {
        metadata,
        invoice_id: invoice.invoice_id.clone(),
        member_id: invoice.member_id.clone(),
        currency: invoice.currency.clone(),
        subtotal_minor: invoice.subtotal_minor,
        tax_minor: invoice.tax_minor,
        total_minor: invoice.total_minor,
        due_at: c.due_at,
    });
    if c.finalize {
        finalize(tx, out, &draft, at).await?;
    }
    Ok(())
}

/// Opens a draft and asks the organization's series for its number (`InvoiceIssued` follows
/// with it).
async fn finalize(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    draft: &invoice_rules::Invoice,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), HandleError> {
    let invoice = InvoiceRow::from(invoice_rules::finalize(draft, at));
    invoices::save(tx, &invoice).await?;
    ask_number(out, &invoice);
    Ok(())
}

async fn change_invoice_status(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: ChangeInvoiceStatus = out.message.record()?;
    invoice_rules::validate_change(&c).map_err(malformed::<ChangeInvoiceStatus>)?;
    let at = out.message.occurred_at()?;
    let given = invoices::load(tx, &c.metadata.organization_id, &c.invoice_id).await?;
    let given: Option<invoice_rules::Invoice> = given.map(TryInto::try_into).transpose()?;
    match invoice_rules::decide_change(given.as_ref(), &c, at) {
        Ok(invoice_rules::Change::Finalize(invoice)) => {
            let invoice = InvoiceRow::from(invoice);
            invoices::save(tx, &invoice).await?;
            ask_number(out, &invoice);
        }
        Ok(invoice_rules::Change::Status { from, invoice }) => {
            let invoice = InvoiceRow::from(invoice);
            invoices::save(tx, &invoice).await?;
            out.emit(|metadata| InvoiceStatusChanged {
                metadata,
                invoice_id: invoice.invoice_id.clone(),
                member_id: invoice.member_id.clone(),
                from_status: from,
                status: invoice.status.clone(),
            });
        }
        Err(refusal) => out.refuse::<ChangeInvoiceStatus>(&c.member_id, refusal),
    }
    Ok(())
}

/// A verified provider webhook: the call the payment waits for is asked about now. Nothing else
/// changes until the provider's answer is reported.
async fn provider_notified(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let n: ProviderNotified = out.message.record()?;
    decide::check_filled(&[("payment_id", &n.payment_id), ("member_id", &n.member_id)])
        .map_err(malformed::<ProviderNotified>)?;
    let at = out.message.occurred_at()?;
    if n.refund_outcome.is_some() {
        return refund_notified(tx, out, n, at).await;
    }
    let given = load_payment(tx, &n.metadata.organization_id, &n.payment_id).await?;
    match payment_rules::decide_notified(given.as_ref(), (&n.payment_id, &n.member_id)) {
        Ok(Some(call)) => {
            let woken = calls::wake(tx, &n.metadata.organization_id, call, at).await?;
            tracing::debug!(payment = %n.payment_id, call = %call, woken, event = %n.event_type, "provider notified");
        }
        Ok(None) => {}
        Err(refusal) => out.refuse::<ProviderNotified>(&n.member_id, refusal),
    }
    Ok(())
}

/// A verified refund event: the pending refund it names settles as the event says.
async fn refund_notified(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    n: ProviderNotified,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), HandleError> {
    let org = &n.metadata.organization_id;
    let payment = load_payment(tx, org, &n.payment_id).await?;
    let refund = match (&n.refund_id, &n.provider_refund_id) {
        (Some(id), _) => refunds::load(tx, org, id).await?,
        (None, Some(provider_id)) => {
            refunds::load_by_provider_id(tx, org, &n.payment_id, provider_id).await?
        }
        (None, None) => None,
    };
    let refund = refund_state(refund)?;
    let outcome = match refund_rules::decide_notified(payment.as_ref(), refund.as_ref(), &n) {
        Ok(Some(outcome)) => outcome,
        Ok(None) => return Ok(()),
        Err(refusal) => {
            out.refuse::<ProviderNotified>(&n.member_id, refusal);
            return Ok(());
        }
    };
    refund_rules::validate_outcome(&outcome).map_err(malformed::<ProviderNotified>)?;
    let decided = refund_rules::decide_outcome(payment.as_ref(), refund.as_ref(), &outcome, at);
    apply_refund_outcome::<ProviderNotified>(tx, out, &n.member_id, decided).await
}

/// RefundIssued or RefundFailed, once a refund's outcome is known.
fn emit_refund_settled(out: &mut Out<'_>, payment: &PaymentRow, refund: &RefundRow) {
    match refund.status.as_str() {
        "succeeded" => out.emit(|metadata| RefundIssued {
            metadata,
            refund_id: refund.refund_id.clone(),
            payment_id: refund.payment_id.clone(),
            member_id: refund.member_id.clone(),
            amount_minor: refund.amount_minor,
            currency: refund.currency.clone(),
            provider_refund_id: refund.provider_refund_id.clone(),
            payment_status: payment.status.clone(),
        }),
        "failed" => out.emit(|metadata| RefundFailed {
            metadata,
            refund_id: refund.refund_id.clone(),
            payment_id: refund.payment_id.clone(),
            member_id: refund.member_id.clone(),
            code: refund.failure_code.clone().unwrap_or_default(),
            message: refund.failure_message.clone().unwrap_or_default(),
        }),
        _ => {}
    }
}
