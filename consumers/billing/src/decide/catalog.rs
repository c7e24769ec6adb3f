//! The plan and coupon catalogue: shapes checked, versions numbered, and what a definition
//! refuses (a plan changing its currency, a coupon id taken).

use studyspot_ids::{CouponId, Currency, Cycle, PlanId, PlanTier};
use studyspot_schemas::billing::{
    COUPON_DURATIONS, CYCLES, DefineCoupon, DefinePlan, PLAN_TIERS, USAGE_METRICS,
};

use super::{Malformed, Refusal, check_currency, check_filled, parse, parse_opt};

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
    pub plan_id: PlanId,
    pub version: i32,
    pub name: String,
    pub tier: PlanTier,
    pub cycle: Cycle,
    pub price_minor: i64,
    pub currency: Currency,
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
    pub coupon_id: CouponId,
    pub name: String,
    pub percent_off_bps: Option<i32>,
    pub amount_off_minor: Option<i64>,
    pub currency: Option<Currency>,
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

/// A `DefinePlan` as the plan it defines, its ids and values parsed (its version is
/// [`decide_plan`]'s).
pub fn parse_plan(c: &DefinePlan) -> Result<Plan, Malformed> {
    validate_plan(c)?;
    Ok(Plan {
        plan_id: parse("plan_id", &c.plan_id)?,
        version: 0,
        name: c.name.clone(),
        tier: parse("tier", &c.tier)?,
        cycle: parse("cycle", &c.cycle)?,
        price_minor: c.price_minor,
        currency: parse("currency", &c.currency)?,
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
    })
}

/// A `DefineCoupon` as the coupon it defines, its ids and values parsed.
pub fn parse_coupon(c: &DefineCoupon) -> Result<Coupon, Malformed> {
    validate_coupon(c)?;
    Ok(Coupon {
        coupon_id: parse("coupon_id", &c.coupon_id)?,
        name: c.name.clone(),
        percent_off_bps: c.percent_off_bps,
        amount_off_minor: c.amount_off_minor,
        currency: parse_opt("currency", c.currency.as_deref())?,
        duration: c.duration.clone(),
        duration_cycles: c.duration_cycles,
    })
}

/// A plan's next version, given its current one: a new version cannot change its currency.
pub fn decide_plan(current: Option<&Plan>, defined: &Plan) -> Result<Vec<Event>, Refusal> {
    if let Some(p) = current
        && p.currency != defined.currency
    {
        return Err(Refusal::new(
            "currency_mismatch",
            format!("plan {} bills in {}; a new version cannot change that", defined.plan_id, p.currency),
        ));
    }
    Ok(vec![Event::PlanPublished(Plan { version: current.map_or(1, |p| p.version + 1), ..defined.clone() })])
}

/// A new coupon, unless its id is taken.
pub fn decide_coupon(exists: bool, defined: &Coupon) -> Result<Vec<Event>, Refusal> {
    if exists {
        return Err(Refusal::new("coupon_exists", format!("coupon {} already exists", defined.coupon_id)));
    }
    Ok(vec![Event::CouponDefined(defined.clone())])
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
            plan_id: "plan_basic".parse().unwrap(),
            version,
            name: "Basic".into(),
            tier: PlanTier::Basic,
            cycle: Cycle::Monthly,
            price_minor: 3_000,
            currency: currency.parse().unwrap(),
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
            decide_plan(None, &parse_plan(&define_plan("EUR")).unwrap()),
            Ok(vec![Event::PlanPublished(published(1, "EUR"))])
        );
        assert_eq!(
            decide_plan(Some(&published(3, "EUR")), &parse_plan(&define_plan("EUR")).unwrap()),
            Ok(vec![Event::PlanPublished(published(4, "EUR"))])
        );
    }

    #[test]
    fn given_a_plan_in_eur_when_a_version_in_usd_is_defined_then_it_is_refused() {
        let refused = decide_plan(Some(&published(1, "EUR")), &parse_plan(&define_plan("USD")).unwrap())
            .map_err(|r| r.code);
        assert_eq!(refused, Err("currency_mismatch"));
    }

    #[test]
    fn given_a_coupon_id_taken_when_defined_then_it_is_refused_and_otherwise_defined() {
        assert_eq!(
            decide_coupon(true, &parse_coupon(&define_coupon()).unwrap()).map_err(|r| r.code),
            Err("coupon_exists")
        );
        assert_eq!(
            decide_coupon(false, &parse_coupon(&define_coupon()).unwrap()),
            Ok(vec![Event::CouponDefined(Coupon {
                coupon_id: "STUDENT".parse().unwrap(),
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
