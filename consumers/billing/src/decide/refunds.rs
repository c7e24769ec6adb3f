//! Refunds, full or partial: never more than was captured minus what is refunded or being refunded.

use chrono::{DateTime, Utc};
use studyspot_ids::{Currency, MemberId, OrganizationId, PaymentId, RefundId};
use studyspot_schemas::billing::{ProviderNotified, REFUND_OUTCOMES, RecordRefundOutcome, RefundPayment};

use super::{
    Malformed, Refusal, check_filled, parse,
    payments::{Payment, members},
};

/// A refund of a payment: pending until the provider answers, then succeeded or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub refund_id: RefundId,
    pub organization_id: OrganizationId,
    pub payment_id: PaymentId,
    pub member_id: MemberId,
    pub amount_minor: i64,
    pub currency: Currency,
    /// pending, succeeded or failed.
    pub status: String,
    pub reason: Option<String>,
    /// The provider's own id of the refund.
    pub provider_refund_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A refund asked for (`RefundPayment`), its ids parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub refund_id: RefundId,
    pub payment_id: PaymentId,
    pub member_id: MemberId,
    /// Everything left to refund when absent.
    pub amount_minor: Option<i64>,
    pub reason: Option<String>,
}

/// A `RefundPayment` as the refund it asks for (checked as [`validate`] does).
pub fn parse_request(c: &RefundPayment) -> Result<RefundRequest, Malformed> {
    validate(c)?;
    Ok(RefundRequest {
        refund_id: parse("refund_id", &c.refund_id)?,
        payment_id: parse("payment_id", &c.payment_id)?,
        member_id: parse("member_id", &c.member_id)?,
        amount_minor: c.amount_minor,
        reason: c.reason.clone(),
    })
}

pub fn validate(c: &RefundPayment) -> Result<(), Malformed> {
    check_filled(&[("refund_id", &c.refund_id), ("payment_id", &c.payment_id), ("member_id", &c.member_id)])?;
    if let Some(amount) = c.amount_minor
        && amount <= 0
    {
        return Err(Malformed(format!("amount_minor must be positive, got {amount}")));
    }
    Ok(())
}

/// Reserves the refund's amount on the payment; the provider is asked next.
pub fn request(
    p: &Payment,
    exists: bool,
    c: &RefundRequest,
    at: DateTime<Utc>,
) -> Result<(Payment, Refund), Refusal> {
    if exists {
        return Err(Refusal::new("refund_exists", format!("refund {} already exists", c.refund_id)));
    }
    if !matches!(p.status.as_str(), "succeeded" | "partially_refunded") {
        return Err(Refusal::new(
            "payment_not_refundable",
            format!("payment {} is {}; only succeeded payments are refunded", p.payment_id, p.status),
        ));
    }
    let refundable = p.amount_minor - p.refunded_minor - p.reserved_minor;
    if refundable <= 0 {
        return Err(Refusal::new(
            "payment_fully_refunded",
            format!("payment {} has nothing left to refund", p.payment_id),
        ));
    }
    let amount = c.amount_minor.unwrap_or(refundable);
    if amount > refundable {
        return Err(Refusal::new(
            "refund_exceeds_payment",
            format!(
                "a refund of {amount} exceeds the {refundable} {} minor units left to refund on payment {} \
                 ({} captured, {} refunded, {} being refunded)",
                p.currency, p.payment_id, p.amount_minor, p.refunded_minor, p.reserved_minor
            ),
        ));
    }
    let payment = Payment { reserved_minor: p.reserved_minor + amount, updated_at: at, ..p.clone() };
    let refund = Refund {
        refund_id: c.refund_id.clone(),
        organization_id: p.organization_id.clone(),
        payment_id: p.payment_id.clone(),
        member_id: p.member_id.clone(),
        amount_minor: amount,
        currency: p.currency.clone(),
        status: "pending".into(),
        reason: c.reason.clone(),
        provider_refund_id: None,
        failure_code: None,
        failure_message: None,
        created_at: at,
        updated_at: at,
    };
    Ok((payment, refund))
}

pub fn validate_outcome(o: &RecordRefundOutcome) -> Result<(), Malformed> {
    check_filled(&[("refund_id", &o.refund_id), ("payment_id", &o.payment_id), ("call_id", &o.call_id)])?;
    if !REFUND_OUTCOMES.contains(&o.outcome.as_str()) {
        return Err(Malformed(format!(
            "outcome {:?} is not one of {}",
            o.outcome,
            REFUND_OUTCOMES.join(", ")
        )));
    }
    Ok(())
}

/// The provider's answer: succeeded moves the reserved amount to refunded, failed releases it,
/// pending keeps waiting.
pub fn apply_outcome(
    p: &Payment,
    r: &Refund,
    o: &RecordRefundOutcome,
    at: DateTime<Utc>,
) -> Result<(Payment, Refund), Refusal> {
    if r.status != "pending" {
        return Err(Refusal::new(
            "outcome_not_expected",
            format!("refund {} is already {}", r.refund_id, r.status),
        ));
    }
    let provider_refund_id = o.provider_refund_id.clone().or_else(|| r.provider_refund_id.clone());
    Ok(match o.outcome.as_str() {
        "succeeded" => {
            let refunded = p.refunded_minor + r.amount_minor;
            let status = if refunded >= p.amount_minor { "refunded" } else { "partially_refunded" };
            (
                Payment {
                    refunded_minor: refunded,
                    reserved_minor: p.reserved_minor - r.amount_minor,
                    status: status.into(),
                    updated_at: at,
                    ..p.clone()
                },
                Refund { status: "succeeded".into(), provider_refund_id, updated_at: at, ..r.clone() },
            )
        }
        "failed" => (
            Payment { reserved_minor: p.reserved_minor - r.amount_minor, updated_at: at, ..p.clone() },
            Refund {
                status: "failed".into(),
                provider_refund_id,
                failure_code: Some(o.code.clone().unwrap_or_else(|| "provider_error".into())),
                failure_message: o.message.clone(),
                updated_at: at,
                ..r.clone()
            },
        ),
        _ => (p.clone(), Refund { provider_refund_id, updated_at: at, ..r.clone() }),
    })
}

/// `RefundPayment` of the member's payment (see [`request`]).
pub fn decide_request(
    given: Option<&Payment>,
    exists: bool,
    c: &RefundRequest,
    at: DateTime<Utc>,
) -> Result<(Payment, Refund), Refusal> {
    request(members(given, c.payment_id.as_str(), c.member_id.as_str())?, exists, c, at)
}

/// The refund a command names, if it is one of the payment's.
fn of_payment<'a>(refund: Option<&'a Refund>, payment: &Payment) -> Option<&'a Refund> {
    refund.filter(|r| r.payment_id == payment.payment_id)
}

/// `RecordRefundOutcome`: the provider's answer about a refund of the member's payment (see
/// [`apply_outcome`]).
pub fn decide_outcome(
    payment: Option<&Payment>,
    refund: Option<&Refund>,
    o: &RecordRefundOutcome,
    at: DateTime<Utc>,
) -> Result<(Payment, Refund), Refusal> {
    let payment = members(payment, &o.payment_id, &o.member_id)?;
    let Some(refund) = of_payment(refund, payment) else {
        return Err(Refusal::new(
            "refund_not_found",
            format!("refund {} of payment {} does not exist", o.refund_id, o.payment_id),
        ));
    };
    apply_outcome(payment, refund, o, at)
}

/// A verified refund event about the member's payment: the outcome to record of the pending
/// refund it names (by our id, or the provider's), or `None` when that refund settled already (a
/// redelivered or late event: nothing changes).
pub fn decide_notified(
    payment: Option<&Payment>,
    refund: Option<&Refund>,
    n: &ProviderNotified,
) -> Result<Option<RecordRefundOutcome>, Refusal> {
    let payment = members(payment, &n.payment_id, &n.member_id)?;
    let Some(refund) = of_payment(refund, payment) else {
        return Err(Refusal::new(
            "refund_not_found",
            format!("no refund of payment {} matches the provider's event", payment.payment_id),
        ));
    };
    if refund.status != "pending" {
        return Ok(None);
    }
    Ok(Some(RecordRefundOutcome {
        metadata: n.metadata.clone(),
        refund_id: refund.refund_id.to_string(),
        payment_id: payment.payment_id.to_string(),
        member_id: payment.member_id.to_string(),
        call_id: format!("webhook:{}", n.metadata.event_id),
        outcome: n.refund_outcome.clone().unwrap_or_default(),
        provider_refund_id: n.provider_refund_id.clone(),
        code: n.refund_code.clone(),
        message: n.refund_message.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::EventMetadata;

    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + minute * 60, 0).expect("time")
    }

    fn succeeded() -> Payment {
        let card = super::super::payments::NewPayment {
            payment_id: "pay_1".parse().unwrap(),
            organization_id: "org_1".parse().unwrap(),
            member_id: "mem_1".parse().unwrap(),
            amount_minor: 1000,
            currency: "EUR".parse().unwrap(),
            method: studyspot_ids::PaymentMethodKind::Card,
            description: None,
            invoice_id: None,
            payment_method_id: None,
        };
        let created = super::super::payments::create(&Default::default(), &card, at(0)).expect("created");
        Payment { status: "succeeded".into(), ..created }
    }

    /// A refund asked for, parsed as the handler parses it.
    fn refund(id: &str, amount: Option<i64>) -> RefundRequest {
        parse_request(&refund_command(id, amount)).expect("well-formed")
    }

    fn refund_command(id: &str, amount: Option<i64>) -> RefundPayment {
        RefundPayment {
            metadata: EventMetadata::example(),
            refund_id: id.into(),
            payment_id: "pay_1".into(),
            member_id: "mem_1".into(),
            amount_minor: amount,
            reason: None,
        }
    }

    fn answer(id: &str, outcome: &str) -> RecordRefundOutcome {
        RecordRefundOutcome {
            metadata: EventMetadata::example(),
            refund_id: id.into(),
            payment_id: "pay_1".into(),
            member_id: "mem_1".into(),
            call_id: "call".into(),
            outcome: outcome.into(),
            provider_refund_id: Some("re_provider".into()),
            code: (outcome == "failed").then(|| "insufficient_balance".into()),
            message: None,
        }
    }

    #[test]
    fn given_a_succeeded_payment_when_partly_refunded_then_the_amount_is_reserved_then_refunded() {
        let (p, r) = request(&succeeded(), false, &refund("re_1", Some(300)), at(1)).expect("requested");
        assert_eq!((p.reserved_minor, r.amount_minor, r.status.as_str()), (300, 300, "pending"));
        let (p, r) = apply_outcome(&p, &r, &answer("re_1", "succeeded"), at(2)).expect("issued");
        assert_eq!((p.status.as_str(), p.refunded_minor, p.reserved_minor), ("partially_refunded", 300, 0));
        assert_eq!((r.status.as_str(), r.provider_refund_id.as_deref()), ("succeeded", Some("re_provider")));
    }

    #[test]
    fn given_no_amount_when_refunded_then_everything_left_is_refunded() {
        let partly = Payment { refunded_minor: 300, status: "partially_refunded".into(), ..succeeded() };
        let (p, r) = request(&partly, false, &refund("re_2", None), at(1)).expect("requested");
        assert_eq!(r.amount_minor, 700);
        let (p, _) = apply_outcome(&p, &r, &answer("re_2", "succeeded"), at(2)).expect("issued");
        assert_eq!((p.status.as_str(), p.refunded_minor), ("refunded", 1000));
        assert_eq!(
            request(&p, false, &refund("re_3", None), at(3)).map_err(|r| r.code),
            Err("payment_not_refundable")
        );
    }

    #[test]
    fn a_refund_above_what_is_left_counting_pending_refunds_is_refused() {
        let (p, _) = request(&succeeded(), false, &refund("re_1", Some(600)), at(1)).expect("requested");
        let refused = request(&p, false, &refund("re_2", Some(500)), at(2)).expect_err("too much");
        assert_eq!(refused.code, "refund_exceeds_payment");
        assert!(refused.reason.contains("400"), "{}", refused.reason);
        assert!(request(&p, false, &refund("re_2", Some(400)), at(2)).is_ok());
        let all = Payment { reserved_minor: 1000, ..succeeded() };
        assert_eq!(
            request(&all, false, &refund("re_9", None), at(2)).map_err(|r| r.code),
            Err("payment_fully_refunded")
        );
    }

    #[test]
    fn only_succeeded_payments_are_refunded_and_refund_ids_are_unique() {
        for status in ["created", "processing", "requires_action", "failed", "refunded"] {
            let p = Payment { status: status.into(), ..succeeded() };
            assert_eq!(
                request(&p, false, &refund("re_1", Some(1)), at(1)).map_err(|r| r.code),
                Err("payment_not_refundable"),
                "{status}"
            );
        }
        assert_eq!(
            request(&succeeded(), true, &refund("re_1", Some(1)), at(1)).map_err(|r| r.code),
            Err("refund_exists")
        );
    }

    #[test]
    fn a_failed_refund_releases_its_amount_and_answers_after_settling_are_refused() {
        let (p, r) = request(&succeeded(), false, &refund("re_1", Some(300)), at(1)).expect("requested");
        let (p, r) = apply_outcome(&p, &r, &answer("re_1", "failed"), at(2)).expect("failed");
        assert_eq!((p.reserved_minor, p.refunded_minor, p.status.as_str()), (0, 0, "succeeded"));
        assert_eq!(r.failure_code.as_deref(), Some("insufficient_balance"));
        assert_eq!(
            apply_outcome(&p, &r, &answer("re_1", "succeeded"), at(3)).map_err(|r| r.code),
            Err("outcome_not_expected")
        );
    }

    #[test]
    fn refund_commands_are_validated() {
        assert!(validate(&refund_command("re_1", Some(0))).is_err());
        assert!(validate(&refund_command("", Some(1))).is_err());
        assert!(validate(&refund_command("re_1", None)).is_ok());
        assert!(validate_outcome(&answer("re_1", "maybe")).is_err());
    }

    // The refusals of commands naming a payment and a refund, decided on what the handler loaded.

    fn notified(refund_id: Option<&str>, outcome: &str) -> ProviderNotified {
        ProviderNotified {
            metadata: EventMetadata::example(),
            payment_id: "pay_1".into(),
            member_id: "mem_1".into(),
            connector: "stripe".into(),
            event_type: "charge.refund.updated".into(),
            provider_event_id: None,
            provider_payment_id: "pi_1".into(),
            refund_id: refund_id.map(Into::into),
            provider_refund_id: Some("re_provider".into()),
            refund_outcome: Some(outcome.into()),
            refund_code: None,
            refund_message: None,
        }
    }

    #[test]
    fn given_no_payment_or_another_members_when_refunded_then_payment_not_found() {
        let theirs = Payment { member_id: "mem_2".parse().unwrap(), ..succeeded() };
        for given in [None, Some(&theirs)] {
            let refused = decide_request(given, false, &refund("re_1", None), at(1)).map_err(|r| r.code);
            assert_eq!(refused, Err("payment_not_found"));
        }
    }

    #[test]
    fn given_no_refund_of_the_payment_when_its_outcome_arrives_then_refund_not_found() {
        let (p, r) = request(&succeeded(), false, &refund("re_1", Some(300)), at(1)).expect("requested");
        let of_another_payment = Refund { payment_id: "pay_2".parse().unwrap(), ..r.clone() };
        let code = |refund: Option<&Refund>| {
            decide_outcome(Some(&p), refund, &answer("re_1", "succeeded"), at(2))
                .map(|(_, r)| r.status)
                .map_err(|r| r.code)
        };
        assert_eq!(code(None), Err("refund_not_found"));
        assert_eq!(code(Some(&of_another_payment)), Err("refund_not_found"));
        assert_eq!(code(Some(&r)), Ok("succeeded".to_owned()));
        let refused = decide_outcome(None, Some(&r), &answer("re_1", "succeeded"), at(2)).map_err(|r| r.code);
        assert_eq!(refused, Err("payment_not_found"));
    }

    #[test]
    fn given_a_pending_refund_when_its_signed_event_arrives_then_its_outcome_is_recorded_once() {
        let (p, r) = request(&succeeded(), false, &refund("re_1", Some(300)), at(1)).expect("requested");
        let event = notified(Some("re_1"), "succeeded");
        let outcome = decide_notified(Some(&p), Some(&r), &event).expect("decided").expect("an outcome");
        assert_eq!(
            (outcome.refund_id.as_str(), outcome.outcome.as_str(), outcome.call_id.as_str()),
            ("re_1", "succeeded", "webhook:e1")
        );
        let settled = Refund { status: "succeeded".into(), ..r.clone() };
        assert_eq!(
            decide_notified(Some(&p), Some(&settled), &event),
            Ok(None),
            "told again: nothing changes"
        );
        assert_eq!(decide_notified(Some(&p), None, &event).map_err(|r| r.code), Err("refund_not_found"));
        assert_eq!(decide_notified(None, Some(&r), &event).map_err(|r| r.code), Err("payment_not_found"));
    }
}
