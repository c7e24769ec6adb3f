//! The plan and coupon catalogue: shapes checked here, versions numbered by the handler.

use studyspot_schemas::billing::{
    COUPON_DURATIONS, CYCLES, DefineCoupon, DefinePlan, PLAN_TIERS, USAGE_METRICS,
};

use super::{Malformed, check_currency, check_filled};

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
