//! Rows of billing's projection as the core's state, and the core's state as rows: the one place
//! that knows both. Ids and values were parsed when their command was decoded; a stored one that
//! no longer parses dead-letters the command that loaded it.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use studyspot_billing_projection as rows;
use studyspot_consumer_runtime::HandleError;
use studyspot_ids::ParseError;

use crate::decide::{catalog, invoices, payments, refunds, subscriptions};

/// A stored id or value as its type.
pub(crate) fn stored<T: std::str::FromStr<Err = ParseError>>(
    table: &str,
    field: &str,
    value: &str,
) -> Result<T, HandleError> {
    value.parse().map_err(|e: ParseError| {
        HandleError::malformed(&format!("stored {table}"), format!("{} ({value:?})", e.for_field(field)))
    })
}

fn stored_opt<T: std::str::FromStr<Err = ParseError>>(
    table: &str,
    field: &str,
    value: Option<&str>,
) -> Result<Option<T>, HandleError> {
    value.map(|v| stored(table, field, v)).transpose()
}

impl TryFrom<rows::Plan> for catalog::Plan {
    type Error = HandleError;

    fn try_from(p: rows::Plan) -> Result<Self, HandleError> {
        Ok(Self {
            plan_id: stored("plan", "plan_id", &p.plan_id)?,
            version: p.version,
            name: p.name,
            tier: stored("plan", "tier", &p.tier)?,
            cycle: stored("plan", "cycle", &p.cycle)?,
            price_minor: p.price_minor,
            currency: stored("plan", "currency", &p.currency)?,
            trial_days: p.trial_days,
            tax_rate_bps: p.tax_rate_bps,
            allowances: p
                .allowances
                .0
                .into_iter()
                .map(|a| catalog::Allowance {
                    metric: a.metric,
                    included: a.included,
                    overage_unit_minor: a.overage_unit_minor,
                })
                .collect(),
        })
    }
}

/// The plan version's row in the organization's catalogue.
pub(super) fn plan_row(organization_id: &str, p: &catalog::Plan, created_at: DateTime<Utc>) -> rows::Plan {
    rows::Plan {
        organization_id: organization_id.to_owned(),
        plan_id: p.plan_id.to_string(),
        version: p.version,
        name: p.name.clone(),
        tier: p.tier.to_string(),
        cycle: p.cycle.to_string(),
        price_minor: p.price_minor,
        currency: p.currency.to_string(),
        trial_days: p.trial_days,
        tax_rate_bps: p.tax_rate_bps,
        allowances: Json(
            p.allowances
                .iter()
                .map(|a| rows::Allowance {
                    metric: a.metric.clone(),
                    included: a.included,
                    overage_unit_minor: a.overage_unit_minor,
                })
                .collect(),
        ),
        created_at,
    }
}

impl TryFrom<rows::Coupon> for catalog::Coupon {
    type Error = HandleError;

    fn try_from(c: rows::Coupon) -> Result<Self, HandleError> {
        Ok(Self {
            coupon_id: stored("coupon", "coupon_id", &c.coupon_id)?,
            name: c.name,
            percent_off_bps: c.percent_off_bps,
            amount_off_minor: c.amount_off_minor,
            currency: stored_opt("coupon", "currency", c.currency.as_deref())?,
            duration: c.duration,
            duration_cycles: c.duration_cycles,
        })
    }
}

/// The coupon's row in the organization's catalogue.
pub(super) fn coupon_row(
    organization_id: &str,
    c: &catalog::Coupon,
    created_at: DateTime<Utc>,
) -> rows::Coupon {
    rows::Coupon {
        organization_id: organization_id.to_owned(),
        coupon_id: c.coupon_id.to_string(),
        name: c.name.clone(),
        percent_off_bps: c.percent_off_bps,
        amount_off_minor: c.amount_off_minor,
        currency: c.currency.as_ref().map(ToString::to_string),
        duration: c.duration.clone(),
        duration_cycles: c.duration_cycles,
        created_at,
    }
}

/// The credit note's row, holding all it was issued with.
pub(super) fn credit_note_row(organization_id: &str, n: &subscriptions::CreditNote) -> rows::CreditNote {
    rows::CreditNote {
        credit_note_id: n.credit_note_id.to_string(),
        organization_id: organization_id.to_owned(),
        member_id: n.member_id.to_string(),
        subscription_id: n.subscription_id.to_string(),
        currency: n.currency.to_string(),
        amount_minor: n.amount_minor,
        remaining_minor: n.amount_minor,
        reason: n.reason.clone(),
        memo: n.memo.clone(),
        created_at: n.at,
    }
}

/// Fields a subscription's row and state hold alike (times, counters, statuses).
macro_rules! subscription {
    ($s:ident, $($typed:ident: $value:expr),* $(,)?) => {
        subscriptions_or_row! {
            $($typed: $value,)*
            plan_version: $s.plan_version,
            status: $s.status,
            anchor: $s.anchor,
            period_index: $s.period_index,
            current_period_start: $s.current_period_start,
            current_period_end: $s.current_period_end,
            covered_from: $s.covered_from,
            covered_value_minor: $s.covered_value_minor,
            trial_end: $s.trial_end,
            trial_notice_sent: $s.trial_notice_sent,
            cancel_at_period_end: $s.cancel_at_period_end,
            cancelled_at: $s.cancelled_at,
            cancel_reason: $s.cancel_reason,
            paused_at: $s.paused_at,
            resume_at: $s.resume_at,
            coupon_percent_bps: $s.coupon_percent_bps,
            coupon_amount_minor: $s.coupon_amount_minor,
            coupon_cycles_left: $s.coupon_cycles_left,
            dunning_attempt: $s.dunning_attempt,
            dunning_started_at: $s.dunning_started_at,
            next_retry_at: $s.next_retry_at,
            applied_through: $s.applied_through,
            next_due_at: $s.next_due_at,
            mrr_minor: $s.mrr_minor,
            created_at: $s.created_at,
            updated_at: $s.updated_at,
        }
    };
}

macro_rules! subscriptions_or_row {
    ($($field:ident: $value:expr,)*) => {
        Self { $($field: $value),* }
    };
}

impl TryFrom<rows::Subscription> for subscriptions::Subscription {
    type Error = HandleError;

    fn try_from(s: rows::Subscription) -> Result<Self, HandleError> {
        let t = "subscription";
        Ok(subscription!(s,
            subscription_id: stored(t, "subscription_id", &s.subscription_id)?,
            organization_id: stored(t, "organization_id", &s.organization_id)?,
            member_id: stored(t, "member_id", &s.member_id)?,
            plan_id: stored(t, "plan_id", &s.plan_id)?,
            currency: stored(t, "currency", &s.currency)?,
            coupon_id: stored_opt(t, "coupon_id", s.coupon_id.as_deref())?,
            payment_method_id: stored_opt(t, "payment_method_id", s.payment_method_id.as_deref())?,
            dunning_invoice_id: stored_opt(t, "dunning_invoice_id", s.dunning_invoice_id.as_deref())?,
        ))
    }
}

impl From<subscriptions::Subscription> for rows::Subscription {
    fn from(s: subscriptions::Subscription) -> Self {
        subscription!(s,
            subscription_id: s.subscription_id.into(),
            organization_id: s.organization_id.into(),
            member_id: s.member_id.into(),
            plan_id: s.plan_id.into(),
            currency: s.currency.into(),
            coupon_id: s.coupon_id.map(Into::into),
            payment_method_id: s.payment_method_id.map(Into::into),
            dunning_invoice_id: s.dunning_invoice_id.map(Into::into),
        )
    }
}

impl TryFrom<rows::Payment> for payments::Payment {
    type Error = HandleError;

    fn try_from(p: rows::Payment) -> Result<Self, HandleError> {
        let t = "payment";
        Ok(Self {
            payment_id: stored(t, "payment_id", &p.payment_id)?,
            organization_id: stored(t, "organization_id", &p.organization_id)?,
            member_id: stored(t, "member_id", &p.member_id)?,
            currency: stored(t, "currency", &p.currency)?,
            method: stored(t, "method", &p.method)?,
            invoice_id: stored_opt(t, "invoice_id", p.invoice_id.as_deref())?,
            payment_method_id: stored_opt(t, "payment_method_id", p.payment_method_id.as_deref())?,
            amount_minor: p.amount_minor,
            description: p.description,
            status: p.status,
            created_at: p.created_at,
            updated_at: p.updated_at,
            attempts: p.attempts,
            pending_call_id: p.pending_call_id,
            connector: p.connector,
            provider_payment_id: p.provider_payment_id,
            gateway_fee_minor: p.gateway_fee_minor,
            processing_fee_minor: p.processing_fee_minor,
            refunded_minor: p.refunded_minor,
            reserved_minor: p.reserved_minor,
            failure_code: p.failure_code,
            failure_message: p.failure_message,
            action_kind: p.action_kind,
            action_url: p.action_url,
            succeeded_at: p.succeeded_at,
            failed_at: p.failed_at,
        })
    }
}

impl From<payments::Payment> for rows::Payment {
    fn from(p: payments::Payment) -> Self {
        Self {
            payment_id: p.payment_id.into(),
            organization_id: p.organization_id.into(),
            member_id: p.member_id.into(),
            currency: p.currency.into(),
            method: p.method.into(),
            invoice_id: p.invoice_id.map(Into::into),
            payment_method_id: p.payment_method_id.map(Into::into),
            amount_minor: p.amount_minor,
            description: p.description,
            status: p.status,
            created_at: p.created_at,
            updated_at: p.updated_at,
            attempts: p.attempts,
            pending_call_id: p.pending_call_id,
            connector: p.connector,
            provider_payment_id: p.provider_payment_id,
            gateway_fee_minor: p.gateway_fee_minor,
            processing_fee_minor: p.processing_fee_minor,
            refunded_minor: p.refunded_minor,
            reserved_minor: p.reserved_minor,
            failure_code: p.failure_code,
            failure_message: p.failure_message,
            action_kind: p.action_kind,
            action_url: p.action_url,
            succeeded_at: p.succeeded_at,
            failed_at: p.failed_at,
        }
    }
}

impl TryFrom<rows::Refund> for refunds::Refund {
    type Error = HandleError;

    fn try_from(r: rows::Refund) -> Result<Self, HandleError> {
        let t = "refund";
        Ok(Self {
            refund_id: stored(t, "refund_id", &r.refund_id)?,
            organization_id: stored(t, "organization_id", &r.organization_id)?,
            payment_id: stored(t, "payment_id", &r.payment_id)?,
            member_id: stored(t, "member_id", &r.member_id)?,
            currency: stored(t, "currency", &r.currency)?,
            amount_minor: r.amount_minor,
            status: r.status,
            reason: r.reason,
            provider_refund_id: r.provider_refund_id,
            failure_code: r.failure_code,
            failure_message: r.failure_message,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl From<refunds::Refund> for rows::Refund {
    fn from(r: refunds::Refund) -> Self {
        Self {
            refund_id: r.refund_id.into(),
            organization_id: r.organization_id.into(),
            payment_id: r.payment_id.into(),
            member_id: r.member_id.into(),
            currency: r.currency.into(),
            amount_minor: r.amount_minor,
            status: r.status,
            reason: r.reason,
            provider_refund_id: r.provider_refund_id,
            failure_code: r.failure_code,
            failure_message: r.failure_message,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl TryFrom<rows::Invoice> for invoices::Invoice {
    type Error = HandleError;

    fn try_from(i: rows::Invoice) -> Result<Self, HandleError> {
        let t = "invoice";
        Ok(Self {
            invoice_id: stored(t, "invoice_id", &i.invoice_id)?,
            organization_id: stored(t, "organization_id", &i.organization_id)?,
            member_id: stored(t, "member_id", &i.member_id)?,
            currency: stored(t, "currency", &i.currency)?,
            subscription_id: stored_opt(t, "subscription_id", i.subscription_id.as_deref())?,
            number: i.number,
            subtotal_minor: i.subtotal_minor,
            tax_minor: i.tax_minor,
            total_minor: i.total_minor,
            amount_paid_minor: i.amount_paid_minor,
            status: i.status,
            due_at: i.due_at,
            created_at: i.created_at,
            updated_at: i.updated_at,
            issued_at: i.issued_at,
            paid_at: i.paid_at,
            period_start: i.period_start,
            period_end: i.period_end,
            credit_applied_minor: i.credit_applied_minor,
            charge_on_number: i.charge_on_number,
        })
    }
}

impl From<invoices::Invoice> for rows::Invoice {
    fn from(i: invoices::Invoice) -> Self {
        Self {
            invoice_id: i.invoice_id.into(),
            organization_id: i.organization_id.into(),
            member_id: i.member_id.into(),
            currency: i.currency.into(),
            subscription_id: i.subscription_id.map(Into::into),
            number: i.number,
            subtotal_minor: i.subtotal_minor,
            tax_minor: i.tax_minor,
            total_minor: i.total_minor,
            amount_paid_minor: i.amount_paid_minor,
            status: i.status,
            due_at: i.due_at,
            created_at: i.created_at,
            updated_at: i.updated_at,
            issued_at: i.issued_at,
            paid_at: i.paid_at,
            period_start: i.period_start,
            period_end: i.period_end,
            credit_applied_minor: i.credit_applied_minor,
            charge_on_number: i.charge_on_number,
        }
    }
}

/// The invoice's lines as rows.
pub(crate) fn line_rows(invoice_id: &str, lines: Vec<invoices::InvoiceLine>) -> Vec<rows::InvoiceLine> {
    lines
        .into_iter()
        .map(|l| rows::InvoiceLine {
            invoice_id: invoice_id.to_owned(),
            line_no: l.line_no,
            description: l.description,
            quantity: l.quantity,
            unit_amount_minor: l.unit_amount_minor,
            amount_minor: l.amount_minor,
            tax_rate_bps: l.tax_rate_bps,
            tax_name: l.tax_name,
            tax_minor: l.tax_minor,
        })
        .collect()
}

impl From<rows::invoices::AssignedNumber> for invoices::AssignedNumber {
    fn from(a: rows::invoices::AssignedNumber) -> Self {
        Self { sequence: a.sequence, number: a.number }
    }
}

impl From<invoices::AssignedNumber> for rows::invoices::AssignedNumber {
    fn from(a: invoices::AssignedNumber) -> Self {
        Self { sequence: a.sequence, number: a.number }
    }
}

/// A stored payment method as a new payment sees it.
pub(crate) fn method_view(m: &rows::PaymentMethod) -> Result<payments::MethodView, HandleError> {
    Ok(payments::MethodView {
        member_id: stored("payment method", "member_id", &m.member_id)?,
        method: stored("payment method", "method", &m.method)?,
    })
}

/// A stored invoice as a new payment of it sees it.
pub(crate) fn invoice_view(i: &rows::Invoice) -> Result<payments::InvoiceView, HandleError> {
    Ok(payments::InvoiceView {
        member_id: stored("invoice", "member_id", &i.member_id)?,
        currency: stored("invoice", "currency", &i.currency)?,
        status: i.status.clone(),
        outstanding_minor: i.amount_due_minor(),
        numbered: i.number.is_some(),
    })
}
