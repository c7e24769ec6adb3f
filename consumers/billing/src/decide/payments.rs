//! The payment state machine: created → processing → succeeded | failed | requires_action, and
//! on to (partially) refunded. Anything else is refused with a reason.

use chrono::{DateTime, Utc};
use studyspot_ids::{
    Currency, InvoiceId, MemberId, OrganizationId, PaymentId, PaymentMethodId, PaymentMethodKind,
};
use studyspot_schemas::billing::{
    AddPaymentMethod, CHARGE_OUTCOMES, CreatePayment, RecordChargeOutcome, RecordManualPayment,
};

use super::{Malformed, Refusal, check_currency, check_filled, check_method, parse, parse_opt};

/// A payment: its whole state (status, attempts, provider, fees, refunds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub payment_id: PaymentId,
    pub organization_id: OrganizationId,
    pub member_id: MemberId,
    pub amount_minor: i64,
    pub currency: Currency,
    pub method: PaymentMethodKind,
    pub description: Option<String>,
    /// created, processing, requires_action, succeeded, failed, partially_refunded or refunded.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub invoice_id: Option<InvoiceId>,
    pub payment_method_id: Option<PaymentMethodId>,
    /// How many times it was sent to a provider.
    pub attempts: i32,
    /// The provider call whose answer the payment waits for (the deciding command's id, or one
    /// derived from it).
    pub pending_call_id: Option<String>,
    /// stripe, paypal, razorpay or manual: who charged it.
    pub connector: Option<String>,
    /// The provider's own id of the charge.
    pub provider_payment_id: Option<String>,
    pub gateway_fee_minor: i64,
    pub processing_fee_minor: i64,
    pub refunded_minor: i64,
    /// Refunds accepted and not yet answered by the provider.
    pub reserved_minor: i64,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    /// What must happen before it completes: redirect, upi_intent, upi_qr or staff_confirmation.
    pub action_kind: Option<String>,
    pub action_url: Option<String>,
    pub succeeded_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

pub fn validate_create(c: &CreatePayment) -> Result<(), Malformed> {
    check_filled(&[
        ("payment_id", &c.payment_id),
        ("member_id", &c.member_id),
        ("metadata.organization_id", &c.metadata.organization_id),
    ])?;
    if c.amount_minor <= 0 {
        return Err(Malformed(format!("amount_minor must be positive, got {}", c.amount_minor)));
    }
    check_currency(&c.currency)?;
    check_method(&c.method)
}

/// A payment asked for (`CreatePayment`, a staff-recorded one, a subscription invoice's charge),
/// its ids and values parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    pub payment_id: PaymentId,
    pub organization_id: OrganizationId,
    pub member_id: MemberId,
    pub amount_minor: i64,
    pub currency: Currency,
    pub method: PaymentMethodKind,
    pub description: Option<String>,
    pub invoice_id: Option<InvoiceId>,
    pub payment_method_id: Option<PaymentMethodId>,
}

/// A `CreatePayment` as the payment it asks for (checked as [`validate_create`] does).
pub fn parse_create(c: &CreatePayment) -> Result<NewPayment, Malformed> {
    validate_create(c)?;
    Ok(NewPayment {
        payment_id: parse("payment_id", &c.payment_id)?,
        organization_id: parse("metadata.organization_id", &c.metadata.organization_id)?,
        member_id: parse("member_id", &c.member_id)?,
        amount_minor: c.amount_minor,
        currency: parse("currency", &c.currency)?,
        method: parse("method", &c.method)?,
        description: c.description.clone(),
        invoice_id: parse_opt("invoice_id", c.invoice_id.as_deref())?,
        payment_method_id: parse_opt("payment_method_id", c.payment_method_id.as_deref())?,
    })
}

/// A stored payment method as a new payment sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodView {
    pub member_id: MemberId,
    pub method: PaymentMethodKind,
}

/// An invoice as a new payment of it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceView {
    pub member_id: MemberId,
    pub currency: Currency,
    pub status: String,
    /// What payments still have to cover.
    pub outstanding_minor: i64,
    /// It has its number: it is payable only then (a receipt, the provider's description and
    /// `InvoicePaid` name it).
    pub numbered: bool,
}

/// What the handler knows about the references a new payment makes.
#[derive(Debug, Clone, Default)]
pub struct CreateContext {
    pub exists: bool,
    /// The named payment method.
    pub method_of: Option<MethodView>,
    /// The named invoice.
    pub invoice: Option<InvoiceView>,
}

pub fn create(ctx: &CreateContext, c: &NewPayment, at: DateTime<Utc>) -> Result<Payment, Refusal> {
    if ctx.exists {
        return Err(Refusal::new("payment_exists", format!("payment {} already exists", c.payment_id)));
    }
    if let Some(id) = &c.payment_method_id {
        match &ctx.method_of {
            None => {
                return Err(Refusal::new(
                    "payment_method_not_found",
                    format!("payment method {id} does not exist"),
                ));
            }
            Some(m) if m.member_id != c.member_id => {
                return Err(Refusal::new(
                    "payment_method_not_found",
                    format!("payment method {id} is not member {}'s", c.member_id),
                ));
            }
            Some(m) if m.method != c.method => {
                return Err(Refusal::new(
                    "payment_method_mismatch",
                    format!("payment method {id} is a {} method, the payment is by {}", m.method, c.method),
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(id) = &c.invoice_id {
        let Some(invoice) = &ctx.invoice else {
            return Err(Refusal::new("invoice_not_found", format!("invoice {id} does not exist")));
        };
        let (currency, status, outstanding) = (&invoice.currency, &invoice.status, invoice.outstanding_minor);
        if invoice.member_id != c.member_id {
            return Err(Refusal::new(
                "invoice_not_found",
                format!("invoice {id} is not member {}'s", c.member_id),
            ));
        }
        if !matches!(status.as_str(), "open" | "uncollectible") {
            return Err(Refusal::new("invoice_not_payable", format!("invoice {id} is {status}")));
        }
        if !invoice.numbered {
            return Err(Refusal::new(
                "invoice_awaiting_number",
                format!("invoice {id} is finalized but has no number yet; try again shortly"),
            ));
        }
        if currency != &c.currency {
            return Err(Refusal::new(
                "currency_mismatch",
                format!("invoice {id} is in {currency}, the payment in {}", c.currency),
            ));
        }
        if c.amount_minor > outstanding {
            return Err(Refusal::new(
                "amount_exceeds_invoice",
                format!(
                    "{} exceeds the {outstanding} {currency} minor units outstanding on invoice {id}",
                    c.amount_minor
                ),
            ));
        }
    }
    Ok(Payment {
        payment_id: c.payment_id.clone(),
        organization_id: c.organization_id.clone(),
        member_id: c.member_id.clone(),
        amount_minor: c.amount_minor,
        currency: c.currency.clone(),
        method: c.method,
        description: c.description.clone(),
        status: "created".into(),
        created_at: at,
        updated_at: at,
        invoice_id: c.invoice_id.clone(),
        payment_method_id: c.payment_method_id.clone(),
        attempts: 0,
        pending_call_id: None,
        connector: None,
        provider_payment_id: None,
        gateway_fee_minor: 0,
        processing_fee_minor: 0,
        refunded_minor: 0,
        reserved_minor: 0,
        failure_code: None,
        failure_message: None,
        action_kind: None,
        action_url: None,
        succeeded_at: None,
        failed_at: None,
    })
}

/// Sends the payment to its provider: from created, or again after a failure (a new attempt with
/// a new idempotency key). `call_id` names the provider call.
pub fn process(p: &Payment, call_id: &str, at: DateTime<Utc>) -> Result<Payment, Refusal> {
    match p.status.as_str() {
        "created" | "failed" => Ok(Payment {
            status: "processing".into(),
            attempts: p.attempts + 1,
            pending_call_id: Some(call_id.to_owned()),
            failure_code: None,
            failure_message: None,
            action_kind: None,
            action_url: None,
            failed_at: None,
            updated_at: at,
            ..p.clone()
        }),
        "processing" => Err(Refusal::new(
            "payment_processing",
            format!("payment {} is already with its provider", p.payment_id),
        )),
        "requires_action" => Err(Refusal::new(
            "payment_requires_action",
            format!(
                "payment {} waits for {}; complete that or let it fail first",
                p.payment_id,
                p.action_kind.as_deref().unwrap_or("the payer")
            ),
        )),
        status => Err(Refusal::new(
            "payment_already_succeeded",
            format!("payment {} is {status}; it cannot be charged again", p.payment_id),
        )),
    }
}

pub fn validate_outcome(o: &RecordChargeOutcome) -> Result<(), Malformed> {
    check_filled(&[("payment_id", &o.payment_id), ("call_id", &o.call_id), ("connector", &o.connector)])?;
    if !CHARGE_OUTCOMES.contains(&o.outcome.as_str()) {
        return Err(Malformed(format!(
            "outcome {:?} is not one of {}",
            o.outcome,
            CHARGE_OUTCOMES.join(", ")
        )));
    }
    if o.outcome == "requires_action" && o.action_kind.is_none() {
        return Err(Malformed("requires_action without action_kind".into()));
    }
    if o.gateway_fee_minor < 0 || o.processing_fee_minor < 0 {
        return Err(Malformed("fees cannot be negative".into()));
    }
    Ok(())
}

/// A provider's answer to the call the payment waits for. Answers to older attempts, or arriving
/// after the payment settled, are refused (and so recorded).
pub fn apply_outcome(p: &Payment, o: &RecordChargeOutcome, at: DateTime<Utc>) -> Result<Payment, Refusal> {
    if p.pending_call_id.as_deref() != Some(o.call_id.as_str()) {
        return Err(Refusal::new(
            "outcome_not_expected",
            format!("payment {} does not wait for call {} (it is {})", p.payment_id, o.call_id, p.status),
        ));
    }
    let answered = Payment {
        connector: Some(o.connector.clone()),
        provider_payment_id: o.provider_payment_id.clone().or_else(|| p.provider_payment_id.clone()),
        gateway_fee_minor: o.gateway_fee_minor,
        processing_fee_minor: o.processing_fee_minor,
        updated_at: at,
        ..p.clone()
    };
    Ok(match o.outcome.as_str() {
        "succeeded" => Payment {
            status: "succeeded".into(),
            pending_call_id: None,
            action_kind: None,
            action_url: None,
            succeeded_at: Some(at),
            ..answered
        },
        "failed" => Payment {
            status: "failed".into(),
            pending_call_id: None,
            failure_code: Some(o.code.clone().unwrap_or_else(|| "provider_error".into())),
            failure_message: o.message.clone(),
            action_kind: None,
            action_url: None,
            failed_at: Some(at),
            // A failed charge costs nothing.
            gateway_fee_minor: 0,
            processing_fee_minor: 0,
            ..answered
        },
        "requires_action" => Payment {
            status: "requires_action".into(),
            action_kind: o.action_kind.clone(),
            action_url: o.action_url.clone(),
            ..answered
        },
        _ => Payment { status: "processing".into(), ..answered },
    })
}

/// The methods staff collect by hand (nothing to send to a provider).
pub const MANUAL_METHODS: [&str; 2] = ["cash", "bank_transfer"];

pub fn validate_manual(c: &RecordManualPayment) -> Result<(), Malformed> {
    check_filled(&[("invoice_id", &c.invoice_id)])?;
    validate_create(&as_create(c))?;
    if !MANUAL_METHODS.contains(&c.method.as_str()) {
        return Err(Malformed(format!("method {:?} is not one of {}", c.method, MANUAL_METHODS.join(", "))));
    }
    Ok(())
}

/// A `RecordManualPayment` as the payment it records (checked as [`validate_manual`] does).
pub fn parse_manual(c: &RecordManualPayment) -> Result<NewPayment, Malformed> {
    validate_manual(c)?;
    parse_create(&as_create(c))
}

/// The payment a manual record makes, as a payment request: the same checks against the invoice.
fn as_create(c: &RecordManualPayment) -> CreatePayment {
    let reference = c.reference.as_deref().map(|r| format!(" (reference {r})")).unwrap_or_default();
    CreatePayment {
        metadata: c.metadata.clone(),
        payment_id: c.payment_id.clone(),
        member_id: c.member_id.clone(),
        amount_minor: c.amount_minor,
        currency: c.currency.clone(),
        method: c.method.clone(),
        description: Some(format!("{} received by staff{reference}", c.method.replace('_', " "))),
        invoice_id: Some(c.invoice_id.clone()),
        payment_method_id: None,
    }
}

/// Staff received cash or a bank transfer for an invoice: the payment exists from now on as
/// succeeded, through the manual connector, with the checks any payment of an invoice has (the
/// member's invoice, open and numbered, in its currency, at most what is outstanding).
pub fn record_manual(ctx: &CreateContext, c: &NewPayment, at: DateTime<Utc>) -> Result<Payment, Refusal> {
    let created = create(ctx, c, at)?;
    Ok(Payment {
        status: "succeeded".into(),
        connector: Some("manual".into()),
        succeeded_at: Some(at),
        ..created
    })
}

/// Staff say the cash or bank transfer arrived.
pub fn confirm_manual(p: &Payment, at: DateTime<Utc>) -> Result<Payment, Refusal> {
    if p.status != "requires_action" || p.action_kind.as_deref() != Some("staff_confirmation") {
        return Err(Refusal::new(
            "not_awaiting_confirmation",
            format!("payment {} is {}, not waiting for staff to confirm it", p.payment_id, p.status),
        ));
    }
    Ok(Payment {
        status: "succeeded".into(),
        pending_call_id: None,
        action_kind: None,
        action_url: None,
        succeeded_at: Some(at),
        updated_at: at,
        ..p.clone()
    })
}

/// The payment a member's command names, if it is theirs in the organization; otherwise
/// `payment_not_found`, the same whether it is another member's, another organization's or
/// nobody's.
pub fn members<'a>(
    given: Option<&'a Payment>,
    payment_id: &str,
    member_id: &str,
) -> Result<&'a Payment, Refusal> {
    given.filter(|p| p.member_id == member_id).ok_or_else(|| {
        Refusal::new(
            "payment_not_found",
            format!("payment {payment_id} does not exist for member {member_id}"),
        )
    })
}

/// `ProcessPayment`: the member's payment goes to its provider (see [`process`]).
pub fn decide_process(
    given: Option<&Payment>,
    (payment_id, member_id): (&str, &str),
    call_id: &str,
    at: DateTime<Utc>,
) -> Result<Payment, Refusal> {
    process(members(given, payment_id, member_id)?, call_id, at)
}

/// `RecordChargeOutcome`: the provider's answer about the member's payment (see [`apply_outcome`]).
pub fn decide_outcome(
    given: Option<&Payment>,
    o: &RecordChargeOutcome,
    at: DateTime<Utc>,
) -> Result<Payment, Refusal> {
    apply_outcome(members(given, &o.payment_id, &o.member_id)?, o, at)
}

/// `ConfirmManualPayment`: staff confirm the member's cash or transfer (see [`confirm_manual`]).
pub fn decide_confirm(
    given: Option<&Payment>,
    (payment_id, member_id): (&str, &str),
    at: DateTime<Utc>,
) -> Result<Payment, Refusal> {
    confirm_manual(members(given, payment_id, member_id)?, at)
}

/// A provider's webhook about the member's payment: the call the payment waits for (if any) is
/// asked about now; nothing else changes until the answer is reported.
pub fn decide_notified<'a>(
    given: Option<&'a Payment>,
    (payment_id, member_id): (&str, &str),
) -> Result<Option<&'a str>, Refusal> {
    Ok(members(given, payment_id, member_id)?.pending_call_id.as_deref())
}

/// A stored payment method a member adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMethod {
    pub payment_method_id: PaymentMethodId,
    pub member_id: MemberId,
    pub method: PaymentMethodKind,
    pub provider_token: Option<String>,
    pub label: Option<String>,
    /// Asked to be the member's default (the member's first method is, whatever it asks).
    pub make_default: bool,
}

/// An `AddPaymentMethod` as the method it adds, its ids and kind parsed.
pub fn parse_add_method(c: &AddPaymentMethod) -> Result<NewMethod, Malformed> {
    check_filled(&[
        ("payment_method_id", &c.payment_method_id),
        ("member_id", &c.member_id),
        ("metadata.organization_id", &c.metadata.organization_id),
    ])?;
    check_method(&c.method)?;
    Ok(NewMethod {
        payment_method_id: parse("payment_method_id", &c.payment_method_id)?,
        member_id: parse("member_id", &c.member_id)?,
        method: parse("method", &c.method)?,
        provider_token: c.provider_token.clone(),
        label: c.label.clone(),
        make_default: c.make_default,
    })
}

/// `AddPaymentMethod`, unless the id is taken.
pub fn decide_add_method(exists: bool, added: &NewMethod) -> Result<NewMethod, Refusal> {
    if exists {
        return Err(Refusal::new(
            "payment_method_exists",
            format!("payment method {} already exists", added.payment_method_id),
        ));
    }
    Ok(added.clone())
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::EventMetadata;

    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + minute * 60, 0).expect("time")
    }

    fn command() -> CreatePayment {
        CreatePayment {
            metadata: EventMetadata::example(),
            payment_id: "pay_1".into(),
            member_id: "mem_1".into(),
            amount_minor: 1500,
            currency: "EUR".into(),
            method: "card".into(),
            description: None,
            invoice_id: None,
            payment_method_id: None,
        }
    }

    fn parsed(c: &CreatePayment) -> NewPayment {
        parse_create(c).expect("well-formed")
    }

    fn created() -> Payment {
        create(&CreateContext::default(), &parsed(&command()), at(0)).expect("created")
    }

    fn invoice_of(member: &str, currency: &str, status: &str, outstanding_minor: i64) -> Option<InvoiceView> {
        Some(InvoiceView {
            member_id: member.parse().unwrap(),
            currency: currency.parse().unwrap(),
            status: status.into(),
            outstanding_minor,
            numbered: true,
        })
    }

    fn method_of(member: &str, method: PaymentMethodKind) -> Option<MethodView> {
        Some(MethodView { member_id: member.parse().unwrap(), method })
    }

    fn outcome(call: &str, outcome: &str) -> RecordChargeOutcome {
        RecordChargeOutcome {
            metadata: EventMetadata::example(),
            payment_id: "pay_1".into(),
            member_id: "mem_1".into(),
            call_id: call.into(),
            connector: "stripe".into(),
            outcome: outcome.into(),
            provider_payment_id: Some("pi_1".into()),
            code: (outcome == "failed").then(|| "card_declined".into()),
            message: None,
            action_kind: (outcome == "requires_action").then(|| "redirect".into()),
            action_url: (outcome == "requires_action").then(|| "https://hooks.stripe.com/3ds".into()),
            gateway_fee_minor: 74,
            processing_fee_minor: 0,
        }
    }

    fn manual(amount_minor: i64) -> RecordManualPayment {
        RecordManualPayment {
            metadata: EventMetadata::example(),
            payment_id: "pay_cash".into(),
            member_id: "mem_1".into(),
            invoice_id: "inv_1".into(),
            amount_minor,
            currency: "EUR".into(),
            method: "cash".into(),
            reference: Some("R-7".into()),
        }
    }

    #[test]
    fn given_an_open_invoice_when_staff_record_cash_then_the_payment_has_succeeded_in_one_step() {
        let open = CreateContext { invoice: invoice_of("mem_1", "EUR", "open", 3000), ..Default::default() };
        assert_eq!(validate_manual(&manual(3000)), Ok(()));
        let p = record_manual(&open, &parse_manual(&manual(3000)).unwrap(), at(5)).expect("recorded");
        assert_eq!(
            (
                p.status.as_str(),
                p.connector.as_deref(),
                p.succeeded_at,
                p.invoice_id.as_ref().map(InvoiceId::as_str)
            ),
            ("succeeded", Some("manual"), Some(at(5)), Some("inv_1"))
        );
        assert_eq!(p.description.as_deref(), Some("cash received by staff (reference R-7)"));
        // The checks of any payment of an invoice.
        assert_eq!(
            record_manual(&open, &parse_manual(&manual(3001)).unwrap(), at(5)).map_err(|r| r.code),
            Err("amount_exceeds_invoice")
        );
        let paid = CreateContext { invoice: invoice_of("mem_1", "EUR", "paid", 0), ..Default::default() };
        assert_eq!(
            record_manual(&paid, &parse_manual(&manual(3000)).unwrap(), at(5)).map_err(|r| r.code),
            Err("invoice_not_payable")
        );
        assert_eq!(
            record_manual(&CreateContext::default(), &parse_manual(&manual(3000)).unwrap(), at(5))
                .map_err(|r| r.code),
            Err("invoice_not_found")
        );
        // Only what staff collect by hand.
        let card = RecordManualPayment { method: "card".into(), ..manual(3000) };
        assert!(validate_manual(&card).is_err());
    }

    #[test]
    fn given_a_new_payment_when_created_then_it_is_recorded_as_created() {
        assert_eq!(validate_create(&command()), Ok(()));
        let p = created();
        assert_eq!((p.status.as_str(), p.amount_minor, p.attempts), ("created", 1500, 0));
    }

    #[test]
    fn given_the_payment_exists_when_created_again_then_it_is_refused() {
        let ctx = CreateContext { exists: true, ..Default::default() };
        assert_eq!(create(&ctx, &parsed(&command()), at(0)).map_err(|r| r.code), Err("payment_exists"));
    }

    #[test]
    fn amounts_currencies_and_methods_are_checked() {
        let mut zero = command();
        zero.amount_minor = 0;
        assert!(validate_create(&zero).is_err());
        for currency in ["eur", "EURO", "E1R", ""] {
            let mut c = command();
            c.currency = currency.into();
            assert!(validate_create(&c).is_err(), "{currency}");
        }
        let mut bitcoin = command();
        bitcoin.method = "bitcoin".into();
        assert!(validate_create(&bitcoin).is_err());
        let mut anonymous = command();
        anonymous.member_id = " ".into();
        assert!(validate_create(&anonymous).is_err());
    }

    #[test]
    fn references_to_methods_and_invoices_must_fit() {
        let mut c = command();
        c.payment_method_id = Some("pm_1".into());
        let none = CreateContext::default();
        assert_eq!(create(&none, &parsed(&c), at(0)).map_err(|r| r.code), Err("payment_method_not_found"));
        let other =
            CreateContext { method_of: method_of("mem_2", PaymentMethodKind::Card), ..Default::default() };
        assert_eq!(create(&other, &parsed(&c), at(0)).map_err(|r| r.code), Err("payment_method_not_found"));
        let upi =
            CreateContext { method_of: method_of("mem_1", PaymentMethodKind::Upi), ..Default::default() };
        assert_eq!(create(&upi, &parsed(&c), at(0)).map_err(|r| r.code), Err("payment_method_mismatch"));

        let mut c = command();
        c.invoice_id = Some("inv_1".into());
        let invoice = |status: &str, currency: &str, outstanding| CreateContext {
            invoice: invoice_of("mem_1", currency, status, outstanding),
            ..Default::default()
        };
        assert_eq!(create(&none, &parsed(&c), at(0)).map_err(|r| r.code), Err("invoice_not_found"));
        assert_eq!(
            create(&invoice("paid", "EUR", 0), &parsed(&c), at(0)).map_err(|r| r.code),
            Err("invoice_not_payable")
        );
        assert_eq!(
            create(&invoice("open", "USD", 5000), &parsed(&c), at(0)).map_err(|r| r.code),
            Err("currency_mismatch")
        );
        assert_eq!(
            create(&invoice("open", "EUR", 1000), &parsed(&c), at(0)).map_err(|r| r.code),
            Err("amount_exceeds_invoice")
        );
        assert!(create(&invoice("open", "EUR", 1500), &parsed(&c), at(0)).is_ok());
        let unnumbered = CreateContext {
            invoice: invoice_of("mem_1", "EUR", "open", 1500).map(|i| InvoiceView { numbered: false, ..i }),
            ..Default::default()
        };
        assert_eq!(
            create(&unnumbered, &parsed(&c), at(0)).map_err(|r| r.code),
            Err("invoice_awaiting_number")
        );
    }

    #[test]
    fn given_created_when_processed_then_it_waits_for_the_provider() {
        let p = process(&created(), "call_1", at(1)).expect("processing");
        assert_eq!(
            (p.status.as_str(), p.attempts, p.pending_call_id.as_deref()),
            ("processing", 1, Some("call_1"))
        );
    }

    #[test]
    fn given_processing_or_waiting_or_succeeded_when_processed_again_then_it_is_refused() {
        let processing = process(&created(), "call_1", at(1)).expect("processing");
        assert_eq!(process(&processing, "call_2", at(2)).map_err(|r| r.code), Err("payment_processing"));
        let waiting =
            apply_outcome(&processing, &outcome("call_1", "requires_action"), at(2)).expect("waits");
        assert_eq!(process(&waiting, "call_2", at(3)).map_err(|r| r.code), Err("payment_requires_action"));
        let succeeded = apply_outcome(&processing, &outcome("call_1", "succeeded"), at(2)).expect("ok");
        assert_eq!(
            process(&succeeded, "call_2", at(3)).map_err(|r| r.code),
            Err("payment_already_succeeded")
        );
    }

    #[test]
    fn given_processing_when_the_provider_succeeds_then_fees_and_provider_id_are_kept() {
        let processing = process(&created(), "call_1", at(1)).expect("processing");
        let p = apply_outcome(&processing, &outcome("call_1", "succeeded"), at(2)).expect("succeeded");
        assert_eq!(p.status, "succeeded");
        assert_eq!((p.gateway_fee_minor, p.provider_payment_id.as_deref()), (74, Some("pi_1")));
        assert_eq!((p.succeeded_at, p.pending_call_id), (Some(at(2)), None));
    }

    #[test]
    fn given_processing_when_declined_then_failed_with_the_code_and_it_may_be_retried() {
        let processing = process(&created(), "call_1", at(1)).expect("processing");
        let failed = apply_outcome(&processing, &outcome("call_1", "failed"), at(2)).expect("failed");
        assert_eq!(
            (failed.status.as_str(), failed.failure_code.as_deref()),
            ("failed", Some("card_declined"))
        );
        assert_eq!(failed.gateway_fee_minor, 0, "a decline costs nothing");
        let again = process(&failed, "call_2", at(3)).expect("a new attempt");
        assert_eq!((again.attempts, again.failure_code), (2, None));
    }

    #[test]
    fn given_requires_action_when_the_provider_later_succeeds_then_it_succeeds() {
        let processing = process(&created(), "call_1", at(1)).expect("processing");
        let waiting =
            apply_outcome(&processing, &outcome("call_1", "requires_action"), at(2)).expect("waits");
        assert_eq!(waiting.action_kind.as_deref(), Some("redirect"));
        let done = apply_outcome(&waiting, &outcome("call_1", "succeeded"), at(3)).expect("succeeded");
        assert_eq!((done.status.as_str(), done.action_kind), ("succeeded", None));
    }

    #[test]
    fn answers_to_another_call_or_after_settling_are_refused() {
        let processing = process(&created(), "call_1", at(1)).expect("processing");
        assert_eq!(
            apply_outcome(&processing, &outcome("call_0", "succeeded"), at(2)).map_err(|r| r.code),
            Err("outcome_not_expected")
        );
        let done = apply_outcome(&processing, &outcome("call_1", "succeeded"), at(2)).expect("ok");
        assert_eq!(
            apply_outcome(&done, &outcome("call_1", "failed"), at(3)).map_err(|r| r.code),
            Err("outcome_not_expected")
        );
    }

    #[test]
    fn outcomes_are_validated() {
        let mut o = outcome("call_1", "refunded");
        assert!(validate_outcome(&o).is_err());
        o = outcome("call_1", "requires_action");
        o.action_kind = None;
        assert!(validate_outcome(&o).is_err());
        o = outcome("call_1", "succeeded");
        o.gateway_fee_minor = -1;
        assert!(validate_outcome(&o).is_err());
    }

    #[test]
    fn manual_payments_succeed_when_staff_confirm_them_and_only_then() {
        let processing = process(&created(), "call_1", at(1)).expect("processing");
        assert_eq!(confirm_manual(&processing, at(2)).map_err(|r| r.code), Err("not_awaiting_confirmation"));
        let mut cash = outcome("call_1", "requires_action");
        cash.action_kind = Some("staff_confirmation".into());
        cash.action_url = None;
        let waiting = apply_outcome(&processing, &cash, at(2)).expect("waits");
        let done = confirm_manual(&waiting, at(3)).expect("confirmed");
        assert_eq!((done.status.as_str(), done.succeeded_at), ("succeeded", Some(at(3))));
        assert_eq!(confirm_manual(&done, at(4)).map_err(|r| r.code), Err("not_awaiting_confirmation"));
    }

    // The refusals of commands naming a payment or a method, decided on what the handler loaded.

    #[test]
    fn given_no_payment_or_another_members_when_commanded_then_payment_not_found() {
        let processing = process(&created(), "call_1", at(1)).expect("processing");
        let theirs = Payment { member_id: "mem_2".parse().unwrap(), ..processing.clone() };
        for given in [None, Some(&theirs)] {
            let code = |r: Result<Payment, Refusal>| r.map_err(|r| r.code);
            assert_eq!(
                code(decide_process(given, ("pay_1", "mem_1"), "call_2", at(2))),
                Err("payment_not_found")
            );
            assert_eq!(
                code(decide_outcome(given, &outcome("call_1", "succeeded"), at(2))),
                Err("payment_not_found")
            );
            assert_eq!(code(decide_confirm(given, ("pay_1", "mem_1"), at(2))), Err("payment_not_found"));
            assert_eq!(
                decide_notified(given, ("pay_1", "mem_1")).map_err(|r| r.code),
                Err("payment_not_found")
            );
        }
        assert_eq!(decide_notified(Some(&processing), ("pay_1", "mem_1")), Ok(Some("call_1")));
        assert_eq!(decide_notified(Some(&created()), ("pay_1", "mem_1")), Ok(None));
        assert_eq!(
            decide_outcome(Some(&processing), &outcome("call_1", "succeeded"), at(2)).map(|p| p.status),
            Ok("succeeded".to_owned())
        );
    }

    fn add_method() -> AddPaymentMethod {
        AddPaymentMethod {
            metadata: EventMetadata::example(),
            payment_method_id: "pm_1".into(),
            member_id: "mem_1".into(),
            method: "card".into(),
            provider_token: Some("pm_stripe".into()),
            label: Some("Visa 4242".into()),
            make_default: false,
        }
    }

    #[test]
    fn given_a_method_id_taken_when_a_method_is_added_then_it_is_refused_and_otherwise_added() {
        let added = parse_add_method(&add_method()).expect("well-formed");
        assert_eq!(decide_add_method(true, &added).map_err(|r| r.code), Err("payment_method_exists"));
        assert_eq!(
            decide_add_method(false, &added),
            Ok(NewMethod {
                payment_method_id: "pm_1".parse().unwrap(),
                member_id: "mem_1".parse().unwrap(),
                method: PaymentMethodKind::Card,
                provider_token: Some("pm_stripe".into()),
                label: Some("Visa 4242".into()),
                make_default: false,
            })
        );
    }
}
