//! Rows of billing's projection as the core's state, and the core's state as rows: the one place
//! that knows both.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use studyspot_billing_projection as rows;

use crate::decide::{catalog, subscriptions};

impl From<rows::Plan> for catalog::Plan {
    fn from(p: rows::Plan) -> Self {
        Self {
            plan_id: p.plan_id,
            version: p.version,
            name: p.name,
            tier: p.tier,
            cycle: p.cycle,
            price_minor: p.price_minor,
            currency: p.currency,
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
        }
    }
}

/// The plan version's row in the organization's catalogue.
pub(super) fn plan_row(organization_id: &str, p: &catalog::Plan, created_at: DateTime<Utc>) -> rows::Plan {
    rows::Plan {
        organization_id: organization_id.to_owned(),
        plan_id: p.plan_id.clone(),
        version: p.version,
        name: p.name.clone(),
        tier: p.tier.clone(),
        cycle: p.cycle.clone(),
        price_minor: p.price_minor,
        currency: p.currency.clone(),
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

impl From<rows::Coupon> for catalog::Coupon {
    fn from(c: rows::Coupon) -> Self {
        Self {
            coupon_id: c.coupon_id,
            name: c.name,
            percent_off_bps: c.percent_off_bps,
            amount_off_minor: c.amount_off_minor,
            currency: c.currency,
            duration: c.duration,
            duration_cycles: c.duration_cycles,
        }
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
        coupon_id: c.coupon_id.clone(),
        name: c.name.clone(),
        percent_off_bps: c.percent_off_bps,
        amount_off_minor: c.amount_off_minor,
        currency: c.currency.clone(),
        duration: c.duration.clone(),
        duration_cycles: c.duration_cycles,
        created_at,
    }
}

/// The credit note's row, holding all it was issued with.
pub(super) fn credit_note_row(organization_id: &str, n: &subscriptions::CreditNote) -> rows::CreditNote {
    rows::CreditNote {
        credit_note_id: n.credit_note_id.clone(),
        organization_id: organization_id.to_owned(),
        member_id: n.member_id.clone(),
        subscription_id: n.subscription_id.clone(),
        currency: n.currency.clone(),
        amount_minor: n.amount_minor,
        remaining_minor: n.amount_minor,
        reason: n.reason.clone(),
        memo: n.memo.clone(),
        created_at: n.at,
    }
}

macro_rules! same_fields {
    ($from:ty => $to:ty { $($field:ident),* $(,)? }) => {
        impl From<$from> for $to {
            fn from(s: $from) -> Self {
                Self { $($field: s.$field),* }
            }
        }
    };
}

// A subscription's row holds its state field for field.
macro_rules! subscription_fields {
    ($($dir:tt)*) => {
        same_fields!($($dir)* {
            subscription_id, organization_id, member_id, plan_id, plan_version, currency, status, anchor,
            period_index, current_period_start, current_period_end, covered_from, covered_value_minor,
            trial_end, trial_notice_sent, cancel_at_period_end, cancelled_at, cancel_reason, paused_at,
            resume_at, coupon_id, coupon_percent_bps, coupon_amount_minor, coupon_cycles_left,
            payment_method_id, dunning_invoice_id, dunning_attempt, dunning_started_at, next_retry_at,
            applied_through, next_due_at, mrr_minor, created_at, updated_at,
        });
    };
}

subscription_fields!(rows::Subscription => subscriptions::Subscription);
subscription_fields!(subscriptions::Subscription => rows::Subscription);
