//! Rows of billing's projection as the core's state, and the core's state as rows: the one place
//! that knows both. Ids and values were parsed when their command was decoded; a stored one that
//! no longer parses dead-letters the command that loaded it.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use studyspot_billing_projection as rows;
use studyspot_consumer_runtime::HandleError;
use studyspot_ids::ParseError;

use crate::decide::{catalog, subscriptions};

/// A stored id or value as its type.
pub(super) fn stored<T: std::str::FromStr<Err = ParseError>>(
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
