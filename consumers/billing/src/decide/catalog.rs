//! The plan and coupon catalogue: shapes checked, versions numbered, and what a definition
//! refuses (a plan changing its currency, a coupon id taken).

use studyspot_schemas::billing::{
    COUPON_DURATIONS, CYCLES, DefineCoupon, DefinePlan, PLAN_TIERS, USAGE_METRICS,
};

use super::{Malformed, Refusal, check_currency, check_filled};

/// What a plan includes of one metric per period, and the price of each unit beyond it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowance {
    pub metric: String,
    pub included: i64,
    pub overage_unit_minor: i64,
}

/// One version of a plan of the organization's catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub plan_id: String,
    pub version: i32,
    pub name: String,
    pub tier: String,
    pub cycle: String,
    pub price_minor: i64,
    pub currency: String,
    pub trial_days: i32,
    pub tax_rate_bps: i32,
    pub allowances: Vec<Allowance>,
}

impl Plan {
    pub fn allowance(&self, metric: &str) -> Option<&Allowance> {
        self.allowances.iter().find(|a| a.metric == metric)
    }
}

/// A coupon of the organization: a percentage or an amount in one currency off, once, for some
/// cycles or for ever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub coupon_id: String,
    pub name: String,
    pub percent_off_bps: Option<i32>,
    pub amount_off_minor: Option<i64>,
    pub currency: Option<String>,
    pub duration: String,
    pub duration_cycles: Option<i32>,
}

/// What a catalogue command brings about (the handler writes it and announces it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A plan's new version (`PlanPublished`).
    PlanPublished(Plan),
    /// `CouponDefined`.
    CouponDefined(Coupon),
}

/// A plan's next version, given its current one: a new version cannot change its currency.
pub fn decide_plan(current: Option<&Plan>, c: &DefinePlan) -> Result<Vec<Event>, Refusal> {
    if let Some(p) = current
        && p.currency != c.currency
    {
        return Err(Refusal::new(
            "currency_mismatch",
            format!("plan {} bills in {}; a new version cannot change that", c.plan_id, p.currency),
        ));
    }
    Ok(vec![Event::PlanPublished(Plan {
        plan_id: c.plan_id.clone(),
        version: current.map_or(1, |p| p.version + 1),
        name: c.name.clone(),
        tier: c.tier.clone(),
        cycle: c.cycle.clone(),
        price_minor: c.price_minor,
        currency: c.currency.clone(),
        trial_days: c.trial_days,
        tax_rate_bps: c.tax_rate_bps,
        allowances: c
            .allowances
            .iter()
            .map(|a| Allowance {
                metric: a.metric.clone(),
                included: a.included,
                overage_unit_minor: a.overage_unit_minor,
            })
            .collect(),
    })])
}

/// A new coupon, unless its id is taken.
pub fn decide_coupon(exists: bool, c: &DefineCoupon) -> Result<Vec<Event>, Refusal> {
    if exists {
        return Err(Refusal::new("coupon_exists", format!("coupon {} already exists", c.coupon_id)));
    }
    Ok(vec![Event::CouponDefined(Coupon {
        coupon_id: c.coupon_id.clone(),
        name: c.name.clone(),
        percent_off_bps: c.percent_off_bps,
        amount_off_minor: c.amount_off_minor,
        currency: c.currency.clone(),
        duration: c.duration.clone(),
        duration_cycles: c.duration_cycles,
    })])
}

pub fn validate_plan(c: &DefinePlan) -> Result<(), Malformed> {
    check_filled(&[
        ("plan_id", &c.plan_id),
        ("name", &c.name),
        ("metadata.organization_id", &c.metadata.organization_id),
    ])?;
    check_currency(&c.currency)?;
    let one_of = |field: &str, value: &str, allowed: &[&str]| {
        if allowed.contains(&value) {
            Ok(())
        } else {
            Err(Malformed(format!("{field} {value:?} is not one of {}", allowed.join(", "))))
        }
    };
    one_of("tier", &c.tier, &PLAN_TIERS)?;
    one_of("cycle", &c.cycle, &CYCLES)?;
    if c.price_minor < 0 {
        return Err(Malformed("price_minor cannot be negative".into()));
    }
    if !(0..=730).contains(&c.trial_days) {
        return Err(Malformed("trial_days must be 0 to 730".into()));
    }
    if !(0..=10_000).contains(&c.tax_rate_bps) {
        return Err(Malformed("tax_rate_bps must be 0 to 10000".into()));
    }
    for (n, a) in c.allowances.iter().enumerate() {
        one_of(&format!("allowances[{n}].metric"), &a.metric, &USAGE_METRICS)?;
        if c.allowances[..n].iter().any(|b| b.metric == a.metric) {
            return Err(Malformed(format!("allowances[{n}].metric {:?} appears twice", a.metric)));
        }
        if a.included < 0 || a.overage_unit_minor < 0 {
            return Err(Malformed(format!("allowances[{n}] cannot be negative")));
        }
    }
    Ok(())
}

pub fn validate_coupon(c: &DefineCoupon) -> Result<(), Malformed> {
    check_filled(&[
        ("coupon_id", &c.coupon_id),
        ("name", &c.name),
        ("metadata.organization_id", &c.metadata.organization_id),
    ])?;
    match (c.percent_off_bps, c.amount_off_minor, &c.currency) {
        (Some(bps), None, _) if (1..=10_000).contains(&bps) => {}
        (None, Some(amount), Some(currency)) if amount > 0 => check_currency(currency)?,
        _ => {
            return Err(Malformed(
                "a coupon has percent_off_bps (1 to 10000) or a positive amount_off_minor with its currency"
                    .into(),
            ));
        }
    }
    if !COUPON_DURATIONS.contains(&c.duration.as_str()) {
        return Err(Malformed(format!(
            "duration {:?} is not one of {}",
            c.duration,
            COUPON_DURATIONS.join(", ")
        )));
    }
    if (c.duration == "repeating") != c.duration_cycles.is_some_and(|n| n > 0) {
        return Err(Malformed(
            "duration_cycles (positive) goes with duration repeating, and only with it".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::{EventMetadata, billing::PlanAllowance};

    use super::*;

    fn define_plan(currency: &str) -> DefinePlan {
        DefinePlan {
            metadata: EventMetadata::example(),
            plan_id: "plan_basic".into(),
            name: "Basic".into(),
            tier: "basic".into(),
            cycle: "monthly".into(),
            price_minor: 3_000,
            currency: currency.into(),
            trial_days: 0,
            tax_rate_bps: 0,
            allowances: vec![PlanAllowance {
                metric: "bookings".into(),
                included: 10,
                overage_unit_minor: 50,
            }],
        }
    }

    fn published(version: i32, currency: &str) -> Plan {
        Plan {
            plan_id: "plan_basic".into(),
            version,
            name: "Basic".into(),
            tier: "basic".into(),
            cycle: "monthly".into(),
            price_minor: 3_000,
            currency: currency.into(),
            trial_days: 0,
            tax_rate_bps: 0,
            allowances: vec![Allowance { metric: "bookings".into(), included: 10, overage_unit_minor: 50 }],
        }
    }

    fn define_coupon() -> DefineCoupon {
        DefineCoupon {
            metadata: EventMetadata::example(),
            coupon_id: "STUDENT".into(),
            name: "Student".into(),
            percent_off_bps: Some(2_000),
            amount_off_minor: None,
            currency: None,
            duration: "once".into(),
            duration_cycles: None,
        }
    }

    #[test]
    fn given_no_plan_when_defined_then_version_1_is_published_and_given_one_then_the_next() {
        assert_eq!(
            decide_plan(None, &define_plan("EUR")),
            Ok(vec![Event::PlanPublished(published(1, "EUR"))])
        );
        assert_eq!(
            decide_plan(Some(&published(3, "EUR")), &define_plan("EUR")),
            Ok(vec![Event::PlanPublished(published(4, "EUR"))])
        );
    }

    #[test]
    fn given_a_plan_in_eur_when_a_version_in_usd_is_defined_then_it_is_refused() {
        let refused = decide_plan(Some(&published(1, "EUR")), &define_plan("USD")).map_err(|r| r.code);
        assert_eq!(refused, Err("currency_mismatch"));
    }

    #[test]
    fn given_a_coupon_id_taken_when_defined_then_it_is_refused_and_otherwise_defined() {
        assert_eq!(decide_coupon(true, &define_coupon()).map_err(|r| r.code), Err("coupon_exists"));
        assert_eq!(
            decide_coupon(false, &define_coupon()),
            Ok(vec![Event::CouponDefined(Coupon {
                coupon_id: "STUDENT".into(),
                name: "Student".into(),
                percent_off_bps: Some(2_000),
                amount_off_minor: None,
                currency: None,
                duration: "once".into(),
                duration_cycles: None,
            })])
        );
    }
}
