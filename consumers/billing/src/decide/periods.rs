//! Calendar arithmetic of billing periods and proration, to the second, in integers.

use chrono::{DateTime, Days, Months, Utc};

/// The start of period `index` of a subscription anchored at `anchor`. Months are added to the
/// anchor (not to the previous period), so a subscription anchored on 31 January bills on 28 or 29
/// February and again on 31 March.
pub fn period_start(anchor: DateTime<Utc>, cycle: &str, index: i32) -> Option<DateTime<Utc>> {
    let n = u32::try_from(index).ok()?;
    match cycle {
        "daily" => anchor.checked_add_days(Days::new(u64::from(n))),
        "weekly" => anchor.checked_add_days(Days::new(7 * u64::from(n))),
        "monthly" => anchor.checked_add_months(Months::new(n)),
        "quarterly" => anchor.checked_add_months(Months::new(3 * n)),
        "yearly" => anchor.checked_add_months(Months::new(12 * n)),
        _ => None,
    }
}

/// `[start, end)` of period `index`.
pub fn period(anchor: DateTime<Utc>, cycle: &str, index: i32) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    Some((period_start(anchor, cycle, index)?, period_start(anchor, cycle, index.checked_add(1)?)?))
}

/// `amount × numerator / denominator`, rounded half up (amounts and spans are never negative).
pub fn ratio(amount_minor: i64, numerator: i64, denominator: i64) -> i64 {
    if denominator <= 0 || numerator <= 0 || amount_minor <= 0 {
        return 0;
    }
    let (a, n, d) = (i128::from(amount_minor), i128::from(numerator), i128::from(denominator));
    i64::try_from((2 * a * n + d) / (2 * d)).unwrap_or(i64::MAX)
}

/// The share of `amount` that pays for `[at, end)` out of `[from, end)`, counted in whole seconds.
pub fn prorate(amount_minor: i64, from: DateTime<Utc>, at: DateTime<Utc>, end: DateTime<Utc>) -> i64 {
    let span = (end - from).num_seconds();
    ratio(amount_minor, (end - at).num_seconds().min(span), span)
}

/// A price per cycle as monthly recurring revenue: a year is 12 months, 52 weeks or 365 days.
pub fn monthly(price_minor: i64, cycle: &str) -> i64 {
    match cycle {
        "daily" => ratio(price_minor, 365, 12),
        "weekly" => ratio(price_minor, 52, 12),
        "monthly" => price_minor,
        "quarterly" => ratio(price_minor, 1, 3),
        "yearly" => ratio(price_minor, 1, 12),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("an RFC 3339 time")
    }

    #[test]
    fn given_an_anchor_on_the_31st_when_months_pass_then_periods_clamp_to_month_ends_and_come_back() {
        let anchor = t("2027-01-31T10:00:00Z");
        let starts: Vec<_> = (0..4).map(|n| period_start(anchor, "monthly", n).expect("in range")).collect();
        assert_eq!(
            starts,
            [
                t("2027-01-31T10:00:00Z"),
                t("2027-02-28T10:00:00Z"),
                t("2027-03-31T10:00:00Z"),
                t("2027-04-30T10:00:00Z")
            ]
        );
        // 2028 is a leap year.
        assert_eq!(period_start(anchor, "monthly", 13), Some(t("2028-02-29T10:00:00Z")));
    }

    #[test]
    fn given_a_leap_day_anchor_when_years_pass_then_the_28th_stands_in_until_the_next_leap_year() {
        let anchor = t("2028-02-29T00:00:00Z");
        assert_eq!(period(anchor, "yearly", 0), Some((anchor, t("2029-02-28T00:00:00Z"))));
        assert_eq!(period_start(anchor, "yearly", 4), Some(t("2032-02-29T00:00:00Z")));
        assert_eq!(period(anchor, "quarterly", 0).map(|p| p.1), Some(t("2028-05-29T00:00:00Z")));
        assert_eq!(period(anchor, "weekly", 1), Some((t("2028-03-07T00:00:00Z"), t("2028-03-14T00:00:00Z"))));
        assert_eq!(period(anchor, "daily", 1).map(|p| p.1), Some(t("2028-03-02T00:00:00Z")));
        assert_eq!(period(anchor, "hourly", 0), None);
    }

    #[test]
    fn given_a_period_when_prorating_then_shares_are_exact_to_the_second_and_round_half_up() {
        // February 2027: 28 days; half of it remains at noon on the 15th.
        let (start, end) = (t("2027-02-01T00:00:00Z"), t("2027-03-01T00:00:00Z"));
        assert_eq!(prorate(2_800, start, t("2027-02-15T00:00:00Z"), end), 1_400);
        // February 2028 has 29 days: 14 of 29 days of 2 900 is 1 400.
        assert_eq!(
            prorate(2_900, t("2028-02-01T00:00:00Z"), t("2028-02-16T00:00:00Z"), t("2028-03-01T00:00:00Z")),
            1_400
        );
        // One second left of a 31-day month of 10 000: 0.0037 → 0; one second used → 9 999.99… → 10 000.
        let (jan, feb) = (t("2027-01-01T00:00:00Z"), t("2027-02-01T00:00:00Z"));
        assert_eq!(prorate(10_000, jan, t("2027-01-31T23:59:59Z"), feb), 0);
        assert_eq!(prorate(10_000, jan, t("2027-01-01T00:00:01Z"), feb), 10_000);
        // 1 of 3 seconds of 1 001: 333.67 → 334; half of 1: 0.5 → 1.
        assert_eq!(ratio(1_001, 1, 3), 334);
        assert_eq!(ratio(1, 1, 2), 1);
        assert_eq!(prorate(5_000, jan, jan, feb), 5_000, "at the start all of it");
        assert_eq!(prorate(5_000, jan, feb, feb), 0, "at the end none");
    }

    #[test]
    fn prices_normalize_to_monthly_recurring_revenue() {
        assert_eq!(monthly(1_200, "monthly"), 1_200);
        assert_eq!(monthly(12_000, "yearly"), 1_000);
        assert_eq!(monthly(3_000, "quarterly"), 1_000);
        assert_eq!(monthly(1_000, "weekly"), 4_333); // 52 / 12 = 4.333…
        assert_eq!(monthly(100, "daily"), 3_042); // 365 / 12 = 30.416…
    }
}
