//! Given / when / then: a subscription's life, one rule at a time.

use chrono::{DateTime, Utc};

use studyspot_ids::PlanTier;

use crate::decide::catalog::{Allowance, Coupon, Plan};

/// An id or value of the core, from its text.
fn typed<T: std::str::FromStr<Err = studyspot_ids::ParseError>>(text: &str) -> T {
    text.parse().unwrap()
}

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 time")
}

fn plan(id: &str, price: i64, cycle: &str) -> Plan {
    Plan {
        plan_id: typed(id),
        version: 1,
        name: id.into(),
        tier: PlanTier::Basic,
        cycle: typed(cycle),
        price_minor: price,
        currency: typed("EUR"),
        trial_days: 0,
        tax_rate_bps: 0,
        allowances: vec![Allowance { metric: "bookings".into(), included: 10, overage_unit_minor: 50 }],
    }
}

fn ctx(plan: Plan, has_method: bool) -> Context {
    Context {
        plan,
        has_method,
        collected_by_staff: false,
        usage: Vec::new(),
        pending: Vec::new(),
        credit_minor: 0,
    }
}

fn request() -> CreateRequest {
    CreateRequest {
        subscription_id: typed("sub_1"),
        organization_id: typed("org_1"),
        member_id: typed("mem_1"),
        plan_id: typed("basic"),
        coupon_id: None,
        trial_days: None,
        paused: false,
        resume_at: None,
        payment_method_id: None,
    }
}

/// The subscription as the handler would reload it for the next command.
fn reload<'p>(m: Machine<'_>, ctx: Context, policy: &'p Policy, at: DateTime<Utc>) -> Machine<'p> {
    let mut next = Machine::load(m.sub, ctx, policy, at).expect("not in the past");
    next.advance(at).expect("advances");
    next
}

fn bills(steps: &[Event]) -> Vec<&Bill> {
    steps
        .iter()
        .filter_map(|s| match s {
            Event::Invoice(b) => Some(b),
            _ => None,
        })
        .collect()
}

fn statuses(steps: &[Event]) -> Vec<(String, &'static str)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Event::Status { to, reason, .. } => Some((to.clone(), *reason)),
            _ => None,
        })
        .collect()
}

fn credits(steps: &[Event]) -> Vec<(i64, &'static str)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Event::Credit { amount_minor, reason, .. } => Some((*amount_minor, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn given_no_trial_when_created_then_the_first_month_is_billed_and_charged_at_once() {
    let policy = Policy::default();
    let m = create(
        &request(),
        ctx(plan("basic", 3_000, "monthly"), true),
        None,
        t("2027-01-31T09:00:00Z"),
        &policy,
    )
    .expect("created");
    assert_eq!(m.sub.status, "active");
    assert_eq!(
        (m.sub.current_period_start, m.sub.current_period_end),
        (t("2027-01-31T09:00:00Z"), t("2027-02-28T09:00:00Z"))
    );
    let bills = bills(&m.steps);
    assert_eq!(bills.len(), 1);
    assert_eq!((bills[0].total_minor, bills[0].amount_due_minor, bills[0].charge), (3_000, 3_000, true));
    assert_eq!(m.sub.next_due_at, Some(t("2027-02-28T09:00:00Z")));
    assert_eq!(m.sub.mrr_minor, 3_000);
}

#[test]
fn given_a_trial_with_a_method_when_it_ends_then_a_notice_came_before_and_it_converts_to_paid() {
    let policy = Policy::default();
    let r = CreateRequest { trial_days: Some(14), ..request() };
    let m = create(&r, ctx(plan("basic", 3_000, "monthly"), true), None, t("2027-03-01T00:00:00Z"), &policy)
        .expect("ok");
    assert_eq!((m.sub.status.as_str(), m.sub.mrr_minor), ("trialing", 0));
    assert!(bills(&m.steps).is_empty(), "nothing is billed in a trial");
    assert_eq!(m.sub.next_due_at, Some(t("2027-03-12T00:00:00Z")), "the notice is due 3 days before");
    let m = reload(m, ctx(plan("basic", 3_000, "monthly"), true), &policy, t("2027-03-20T00:00:00Z"));
    assert_eq!(
        m.steps.first(),
        Some(&Event::TrialEnding { trial_end: t("2027-03-15T00:00:00Z"), has_method: true })
    );
    assert_eq!(statuses(&m.steps), [("active".to_owned(), "trial_converted")]);
    let bills = bills(&m.steps);
    assert_eq!(bills[0].period, Some((t("2027-03-15T00:00:00Z"), t("2027-04-15T00:00:00Z"))));
}

#[test]
fn given_a_trial_without_a_method_when_it_ends_then_it_is_cancelled_unbilled() {
    let policy = Policy::default();
    let r = CreateRequest { trial_days: Some(7), ..request() };
    let m = create(&r, ctx(plan("basic", 3_000, "monthly"), false), None, t("2027-03-01T00:00:00Z"), &policy)
        .expect("ok");
    let mut m = reload(m, ctx(plan("basic", 3_000, "monthly"), false), &policy, t("2027-04-01T00:00:00Z"));
    m.finish(t("2027-04-01T00:00:00Z"));
    assert_eq!(statuses(&m.steps), [("cancelled".to_owned(), "no_payment_method")]);
    assert!(bills(&m.steps).is_empty());
    assert_eq!(m.sub.next_due_at, None);
}

#[test]
fn given_a_30_day_month_when_upgrading_at_its_middle_then_half_is_credited_and_half_of_the_new_price_waits() {
    let policy = Policy::default();
    let m = create(
        &request(),
        ctx(plan("basic", 3_000, "monthly"), true),
        None,
        t("2027-04-01T00:00:00Z"),
        &policy,
    )
    .expect("ok");
    let mut m = reload(m, ctx(plan("basic", 3_000, "monthly"), true), &policy, t("2027-04-16T00:00:00Z"));
    m.change_plan(plan("premium", 6_000, "monthly"), "next_invoice", t("2027-04-16T00:00:00Z"))
        .expect("changes");
    assert_eq!(credits(&m.steps), [(1_500, "proration")]);
    assert!(m.steps.iter().any(|s| matches!(s, Event::Item { amount_minor: 3_000, .. })));
    assert_eq!(m.sub.mrr_minor, 6_000);
    // The renewal bills the new price, the waiting 3 000, and draws the 1 500 credit.
    let next = Context {
        pending: vec![("premium: rest of the period".into(), 3_000)],
        credit_minor: 1_500,
        ..ctx(plan("premium", 6_000, "monthly"), true)
    };
    m.finish(t("2027-04-16T00:00:00Z"));
    let m = reload(m, next, &policy, t("2027-05-01T00:00:00Z"));
    let bills = bills(&m.steps);
    assert_eq!(
        (bills[0].subtotal_minor, bills[0].credit_applied_minor, bills[0].amount_due_minor),
        (9_000, 1_500, 7_500)
    );
    assert!(bills[0].takes_pending);
}

#[test]
fn given_a_leap_february_when_downgrading_immediately_then_the_invoice_now_is_covered_by_the_credit() {
    let policy = Policy::default();
    let m = create(
        &request(),
        ctx(plan("premium", 5_800, "monthly"), true),
        None,
        t("2028-02-01T00:00:00Z"),
        &policy,
    )
    .expect("ok");
    let mut m = reload(m, ctx(plan("premium", 5_800, "monthly"), true), &policy, t("2028-02-15T00:00:00Z"));
    m.change_plan(plan("basic", 2_900, "monthly"), "immediately", t("2028-02-15T00:00:00Z"))
        .expect("changes");
    // 15 of February 2028's 29 days remain: 5 800 × 15/29 = 3 000 back, 2 900 × 15/29 = 1 500 now.
    assert_eq!(credits(&m.steps), [(3_000, "proration")]);
    let bills = bills(&m.steps);
    assert_eq!((bills[0].kind, bills[0].total_minor, bills[0].amount_due_minor), ("proration", 1_500, 0));
    assert!(!bills[0].charge);
}

#[test]
fn given_a_monthly_plan_when_moving_to_yearly_then_a_new_period_starts_and_is_billed_in_full() {
    let policy = Policy::default();
    let m = create(
        &request(),
        ctx(plan("basic", 3_100, "monthly"), true),
        None,
        t("2027-01-01T00:00:00Z"),
        &policy,
    )
    .expect("ok");
    let mut m = reload(m, ctx(plan("basic", 3_100, "monthly"), true), &policy, t("2027-01-11T00:00:00Z"));
    m.change_plan(plan("annual", 30_000, "yearly"), "next_invoice", t("2027-01-11T00:00:00Z"))
        .expect("changes");
    assert_eq!(credits(&m.steps), [(2_100, "proration")], "21 of 31 days unused");
    let bills = bills(&m.steps);
    assert_eq!(bills[0].period, Some((t("2027-01-11T00:00:00Z"), t("2028-01-11T00:00:00Z"))));
    assert_eq!((bills[0].total_minor, bills[0].credit_applied_minor), (30_000, 2_100));
    assert_eq!(m.sub.mrr_minor, 2_500);
}

#[test]
fn given_an_active_month_when_paused_then_resumed_then_the_rest_is_credited_and_a_new_period_begins() {
    let policy = Policy::default();
    let m = create(
        &request(),
        ctx(plan("basic", 3_000, "monthly"), true),
        None,
        t("2027-06-01T00:00:00Z"),
        &policy,
    )
    .expect("ok");
    let mut m = reload(m, ctx(plan("basic", 3_000, "monthly"), true), &policy, t("2027-06-11T00:00:00Z"));
    m.pause(Some(t("2027-08-01T00:00:00Z")), t("2027-06-11T00:00:00Z")).expect("pauses");
    assert_eq!(credits(&m.steps), [(2_000, "pause")]);
    assert_eq!((m.sub.status.as_str(), m.sub.mrr_minor), ("paused", 0));
    assert_eq!(m.check_usage().map_err(|r| r.code), Err("subscription_paused"));
    m.finish(t("2027-06-11T00:00:00Z"));
    assert_eq!(m.sub.next_due_at, Some(t("2027-08-01T00:00:00Z")), "no renewal while paused");
    // Nothing is billed on 1 July; on 1 August it resumes by itself, drawing the credit.
    let later = Context { credit_minor: 2_000, ..ctx(plan("basic", 3_000, "monthly"), true) };
    let m = reload(m, later, &policy, t("2027-08-05T00:00:00Z"));
    assert_eq!(statuses(&m.steps), [("active".to_owned(), "resumed")]);
    let bills = bills(&m.steps);
    assert_eq!(bills.len(), 1);
    assert_eq!(bills[0].period, Some((t("2027-08-01T00:00:00Z"), t("2027-09-01T00:00:00Z"))));
    assert_eq!(bills[0].amount_due_minor, 1_000);
}

#[test]
fn given_a_subscription_created_paused_when_resumed_by_command_then_billing_starts_then() {
    let policy = Policy::default();
    let r = CreateRequest { paused: true, ..request() };
    let m = create(&r, ctx(plan("basic", 3_000, "monthly"), true), None, t("2027-06-01T00:00:00Z"), &policy)
        .expect("ok");
    assert!(bills(&m.steps).is_empty());
    assert_eq!(m.sub.next_due_at, None);
    let mut m = reload(m, ctx(plan("basic", 3_000, "monthly"), true), &policy, t("2027-06-20T12:00:00Z"));
    m.resume(t("2027-06-20T12:00:00Z")).expect("resumes");
    assert_eq!(bills(&m.steps)[0].period, Some((t("2027-06-20T12:00:00Z"), t("2027-07-20T12:00:00Z"))));
}

#[test]
fn given_cancel_at_period_end_when_the_period_ends_then_it_cancels_billing_only_its_overage() {
    let policy = Policy::default();
    let m = create(
        &request(),
        ctx(plan("basic", 3_000, "monthly"), true),
        None,
        t("2027-06-01T00:00:00Z"),
        &policy,
    )
    .expect("ok");
    let mut m = reload(m, ctx(plan("basic", 3_000, "monthly"), true), &policy, t("2027-06-10T00:00:00Z"));
    m.cancel(true, false, t("2027-06-10T00:00:00Z")).expect("scheduled");
    assert_eq!(m.steps.last(), Some(&Event::CancelScheduled { cancel_at: t("2027-07-01T00:00:00Z") }));
    assert_eq!(
        m.cancel(true, false, t("2027-06-10T00:00:00Z")).map_err(|r| r.code),
        Err("cancellation_scheduled")
    );
    m.finish(t("2027-06-10T00:00:00Z"));
    let used = Context { usage: vec![("bookings".into(), 14)], ..ctx(plan("basic", 3_000, "monthly"), true) };
    let m = reload(m, used, &policy, t("2027-08-01T00:00:00Z"));
    assert_eq!(statuses(&m.steps), [("cancelled".to_owned(), "cancelled")]);
    let bills = bills(&m.steps);
    assert_eq!(bills.len(), 1, "no renewal, only the final invoice");
    assert_eq!((bills[0].kind, bills[0].total_minor), ("final", 200), "4 bookings over at 50");
}

#[test]
fn given_cancel_now_with_proration_then_the_unused_days_are_credited_and_without_they_are_not() {
    let policy = Policy::default();
    for (prorate, expected) in [(true, vec![(1_000, "cancellation")]), (false, vec![])] {
        let m = create(
            &request(),
            ctx(plan("basic", 3_000, "monthly"), true),
            None,
            t("2027-06-01T00:00:00Z"),
            &policy,
        )
        .expect("ok");
        let mut m = reload(m, ctx(plan("basic", 3_000, "monthly"), true), &policy, t("2027-06-21T00:00:00Z"));
        m.cancel(false, prorate, t("2027-06-21T00:00:00Z")).expect("cancels");
        assert_eq!(credits(&m.steps), expected);
        assert_eq!((m.sub.status.as_str(), m.sub.mrr_minor), ("cancelled", 0));
        m.finish(t("2027-06-21T00:00:00Z"));
        assert_eq!(m.sub.next_due_at, None);
        assert_eq!(
            m.cancel(false, false, t("2027-06-22T00:00:00Z")).map_err(|r| r.code),
            Err("subscription_cancelled")
        );
    }
}

#[test]
fn given_a_failed_renewal_when_every_retry_fails_then_dunning_steps_run_on_schedule_and_it_cancels() {
    let policy = Policy::default();
    let m = create(
        &request(),
        ctx(plan("basic", 3_000, "monthly"), true),
        None,
        t("2027-06-01T00:00:00Z"),
        &policy,
    )
    .expect("ok");
    let mut m = reload(m, ctx(plan("basic", 3_000, "monthly"), true), &policy, t("2027-07-01T00:00:00Z"));
    let invoice = bills(&m.steps)[0].invoice_id.clone();
    m.payment_failed(&invoice, t("2027-07-01T00:00:00Z"));
    assert_eq!(statuses(&m.steps), [("past_due".to_owned(), "payment_failed")]);
    assert_eq!(m.sub.next_retry_at, Some(t("2027-07-02T00:00:00Z")));
    assert_eq!(m.sub.mrr_minor, 3_000, "past due still counts as revenue");
    let mut at = t("2027-07-01T00:00:00Z");
    for (attempt, next) in [(2, Some("2027-07-04T00:00:00Z")), (3, Some("2027-07-06T00:00:00Z")), (4, None)] {
        m.finish(at);
        at = m.sub.next_retry_at.expect("a retry is scheduled");
        m = reload(m, ctx(plan("basic", 3_000, "monthly"), true), &policy, at);
        assert_eq!(m.steps, [Event::Retry { invoice_id: invoice.clone(), at }]);
        m.payment_failed(&invoice, at);
        assert!(m.steps.contains(&Event::Dunning {
            invoice_id: invoice.clone(),
            attempt,
            next_retry_at: next.map(t),
            final_action: "cancel".into()
        }));
    }
    assert_eq!(statuses(&m.steps), [("cancelled".to_owned(), "dunning_exhausted")]);
    assert!(m.steps.contains(&Event::Uncollectible { invoice_id: invoice }));
}

#[test]
fn given_dunning_when_the_invoice_is_paid_then_the_subscription_recovers_and_suspension_is_an_option() {
    let suspend =
        Policy { dunning_retry_days: vec![2], dunning_final_action: "suspend".into(), ..Policy::default() };
    let m = create(
        &request(),
        ctx(plan("basic", 3_000, "monthly"), false),
        None,
        t("2027-06-01T00:00:00Z"),
        &suspend,
    )
    .expect("ok");
    // No chargeable method: the first invoice waits, and dunning reminds at once.
    assert_eq!(m.sub.status, "past_due");
    let invoice = bills(&m.steps)[0].invoice_id.clone();
    let mut m = reload(m, ctx(plan("basic", 3_000, "monthly"), false), &suspend, t("2027-06-05T00:00:00Z"));
    assert_eq!(statuses(&m.steps), [("suspended".to_owned(), "dunning_exhausted")]);
    assert_eq!(m.check_usage().map_err(|r| r.code), Err("subscription_suspended"));
    m.invoice_paid(&invoice, t("2027-06-06T00:00:00Z"));
    assert_eq!(statuses(&m.steps)[1], ("active".to_owned(), "recovered"));
    assert_eq!(m.sub.dunning_invoice_id, None);
}

#[test]
fn usage_crossing_80_and_100_percent_is_told_once_each() {
    assert_eq!(thresholds_crossed(70, 85, 100), [80]);
    assert_eq!(thresholds_crossed(79, 100, 100), [80, 100]);
    assert_eq!(thresholds_crossed(80, 99, 100), Vec::<i32>::new());
    assert_eq!(thresholds_crossed(99, 150, 100), [100]);
    assert_eq!(thresholds_crossed(0, 7, 9), Vec::<i32>::new(), "7/9 is 77 %");
    assert_eq!(thresholds_crossed(0, 8, 10), [80]);
    assert_eq!(thresholds_crossed(0, 5, 0), Vec::<i32>::new(), "nothing included, nothing to cross");
}

#[test]
fn given_a_repeating_coupon_then_it_discounts_two_periods_and_mrr_rises_after() {
    let policy = Policy::default();
    let coupon = Coupon {
        coupon_id: typed("STUDENT"),
        name: "Student".into(),
        percent_off_bps: Some(2_000),
        amount_off_minor: None,
        currency: None,
        duration: "repeating".into(),
        duration_cycles: Some(2),
    };
    let m = create(
        &request(),
        ctx(plan("basic", 3_000, "monthly"), true),
        Some(&coupon),
        t("2027-01-01T00:00:00Z"),
        &policy,
    )
    .expect("ok");
    assert_eq!(bills(&m.steps)[0].total_minor, 2_400);
    assert_eq!(m.sub.mrr_minor, 2_400);
    let m = reload(m, ctx(plan("basic", 3_000, "monthly"), true), &policy, t("2027-03-01T00:00:00Z"));
    let totals: Vec<i64> = bills(&m.steps).iter().map(|b| b.total_minor).collect();
    assert_eq!(totals, [2_400, 3_000]);
    assert_eq!(m.sub.mrr_minor, 3_000);
    let fixed =
        Coupon { percent_off_bps: None, amount_off_minor: Some(500), currency: Some(typed("USD")), ..coupon };
    let refused = create(
        &request(),
        ctx(plan("basic", 3_000, "monthly"), true),
        Some(&fixed),
        t("2027-01-01T00:00:00Z"),
        &policy,
    );
    assert_eq!(refused.map(|_| ()).map_err(|r| r.code), Err("currency_mismatch"));
}

#[test]
fn commands_before_what_was_applied_are_refused_and_a_year_of_renewals_is_twelve_invoices() {
    let policy = Policy::default();
    let mut m = create(
        &request(),
        ctx(plan("basic", 3_000, "monthly"), true),
        None,
        t("2028-01-31T00:00:00Z"),
        &policy,
    )
    .expect("ok");
    m.advance(t("2029-01-30T23:59:59Z")).expect("a year");
    m.finish(t("2029-01-30T23:59:59Z"));
    let starts: Vec<String> =
        bills(&m.steps).iter().filter_map(|b| b.period).map(|p| p.0.format("%m-%d").to_string()).collect();
    assert_eq!(
        starts,
        [
            "01-31", "02-29", "03-31", "04-30", "05-31", "06-30", "07-31", "08-31", "09-30", "10-31",
            "11-30", "12-31"
        ]
    );
    let refused =
        Machine::load(m.sub, ctx(plan("basic", 3_000, "monthly"), true), &policy, t("2028-06-01T00:00:00Z"));
    assert_eq!(refused.map(|_| ()).map_err(|r| r.code), Err("effective_at_before_applied"));
}

fn cash(plan: Plan) -> Context {
    Context { collected_by_staff: true, ..ctx(plan, false) }
}

#[test]
fn given_a_member_paying_cash_when_subscribing_then_the_invoice_waits_for_staff_until_it_is_due() {
    let policy = Policy::default();
    let created = t("2027-06-01T09:00:00Z");
    let m = create(&request(), cash(plan("basic", 3_000, "monthly")), None, created, &policy).expect("ok");
    // Nothing to charge and nothing failed: active, no dunning, no message to the member.
    assert_eq!(m.sub.status, "active");
    assert!(
        !m.steps.iter().any(|s| matches!(s, Event::Dunning { .. } | Event::Status { .. })),
        "{:?}",
        m.steps
    );
    let bill = bills(&m.steps)[0].clone();
    assert_eq!((bill.charge, bill.amount_due_minor), (false, 3_000));
    assert_eq!(bill.due_at, t("2027-06-08T09:00:00Z"), "due after manual_invoice_due_days");
    assert_eq!(m.sub.next_due_at, Some(bill.due_at), "the next thing that happens is the due date");

    // A billing run before the due date changes nothing.
    let mut m = reload(m, cash(plan("basic", 3_000, "monthly")), &policy, t("2027-06-07T09:00:00Z"));
    assert!(m.steps.is_empty(), "{:?}", m.steps);
    m.finish(t("2027-06-07T09:00:00Z"));

    // Staff record the payment: nothing ever went past due.
    let mut paid =
        reload(m.clone(), cash(plan("basic", 3_000, "monthly")), &policy, t("2027-06-07T10:00:00Z"));
    paid.invoice_paid(&bill.invoice_id, t("2027-06-07T10:00:00Z"));
    paid.finish(t("2027-06-07T10:00:00Z"));
    assert!(statuses(&paid.steps).is_empty());
    assert_eq!((paid.sub.status.as_str(), paid.sub.dunning_invoice_id.as_ref()), ("active", None));
    assert_eq!(paid.sub.next_due_at, Some(t("2027-07-01T09:00:00Z")), "next: the renewal");

    // Unpaid at its due date: dunning starts then, its retries counted from the due date.
    let m = reload(m, cash(plan("basic", 3_000, "monthly")), &policy, t("2027-06-08T09:00:00Z"));
    assert_eq!(statuses(&m.steps), [("past_due".to_owned(), "payment_failed")]);
    assert!(m.steps.contains(&Event::Dunning {
        invoice_id: bill.invoice_id.clone(),
        attempt: 1,
        next_retry_at: Some(t("2027-06-09T09:00:00Z")),
        final_action: "cancel".into()
    }));
}

#[test]
fn given_a_trial_paid_in_cash_when_it_ends_then_it_converts_and_the_invoice_waits_for_staff() {
    let policy = Policy::default();
    let r = CreateRequest { trial_days: Some(7), ..request() };
    let m = create(&r, cash(plan("basic", 3_000, "monthly")), None, t("2027-03-01T00:00:00Z"), &policy)
        .expect("ok");
    let m = reload(m, cash(plan("basic", 3_000, "monthly")), &policy, t("2027-03-09T00:00:00Z"));
    assert_eq!(
        m.steps.first(),
        Some(&Event::TrialEnding { trial_end: t("2027-03-08T00:00:00Z"), has_method: true })
    );
    assert_eq!(statuses(&m.steps), [("active".to_owned(), "trial_converted")]);
    assert_eq!(bills(&m.steps)[0].due_at, t("2027-03-15T00:00:00Z"));
}

// The refusals `decide` makes of commands on what the handler loaded.

fn create_state(plan: Option<Plan>) -> CreateState {
    CreateState { exists: false, plan, coupon: None, has_method: true, collected_by_staff: false }
}

fn create_request() -> CreateRequest {
    request()
}

fn code<T>(decided: Result<T, Refusal>) -> Result<T, &'static str> {
    decided.map_err(|r| r.code)
}

#[test]
fn given_a_plan_when_a_subscription_is_created_then_created_comes_first_and_the_first_period_is_billed() {
    let policy = Policy::default();
    let at = t("2027-01-01T00:00:00Z");
    let given = create_state(Some(plan("basic", 3_000, "monthly")));
    let decided = decide_create(&given, &create_request(), at, &policy).expect("created");
    assert_eq!(decided.events.first(), Some(&Event::Created));
    assert_eq!(bills(&decided.events).len(), 1);
    assert_eq!((decided.sub.status.as_str(), decided.sub.plan_id.as_str()), ("active", "basic"));
}

#[test]
fn given_a_taken_id_or_no_plan_or_no_coupon_when_a_subscription_is_created_then_it_is_refused() {
    let policy = Policy::default();
    let at = t("2027-01-01T00:00:00Z");
    let basic = Some(plan("basic", 3_000, "monthly"));
    let taken = CreateState { exists: true, ..create_state(basic.clone()) };
    assert_eq!(code(decide_create(&taken, &create_request(), at, &policy)), Err("subscription_exists"));
    assert_eq!(
        code(decide_create(&create_state(None), &create_request(), at, &policy)),
        Err("plan_not_found")
    );
    let with_coupon = CreateRequest { coupon_id: Some(typed("STUDENT")), ..create_request() };
    assert_eq!(code(decide_create(&create_state(basic), &with_coupon, at, &policy)), Err("coupon_not_found"));
}

fn loaded_active(policy: &Policy) -> Loaded {
    let given = create_state(Some(plan("basic", 3_000, "monthly")));
    let decided =
        decide_create(&given, &create_request(), t("2027-01-01T00:00:00Z"), policy).expect("created");
    Loaded { sub: decided.sub, ctx: ctx(plan("basic", 3_000, "monthly"), true) }
}

#[test]
fn given_no_subscription_or_another_members_when_commanded_then_subscription_not_found() {
    let policy = Policy::default();
    let at = t("2027-01-10T00:00:00Z");
    let loaded = loaded_active(&policy);
    for command in [Command::Resume, Command::Bill, Command::Cancel { at_period_end: false, prorate: false }]
    {
        assert_eq!(
            code(decide(None, (&typed("sub_1"), &typed("mem_1")), &command, at, &policy)),
            Err("subscription_not_found")
        );
        assert_eq!(
            code(decide(Some(&loaded), (&typed("sub_1"), &typed("mem_2")), &command, at, &policy)),
            Err("subscription_not_found")
        );
    }
}

#[test]
fn given_no_such_plan_when_changing_plan_then_plan_not_found_before_anything_else() {
    let policy = Policy::default();
    let change = Command::ChangePlan { plan_id: typed("gone"), plan: None, proration: "immediately".into() };
    let at = t("2027-01-10T00:00:00Z");
    assert_eq!(
        code(decide(None, (&typed("sub_1"), &typed("mem_1")), &change, at, &policy)),
        Err("plan_not_found")
    );
    let loaded = loaded_active(&policy);
    assert_eq!(
        code(decide(Some(&loaded), (&typed("sub_1"), &typed("mem_1")), &change, at, &policy)),
        Err("plan_not_found")
    );
}

#[test]
fn given_a_subscription_applied_later_when_an_older_billing_run_arrives_then_nothing_happens() {
    let policy = Policy::default();
    let loaded = loaded_active(&policy);
    let older = t("2026-12-31T00:00:00Z");
    assert_eq!(
        decide(Some(&loaded), (&typed("sub_1"), &typed("mem_1")), &Command::Bill, older, &policy),
        Ok(None)
    );
    let cancel = Command::Cancel { at_period_end: false, prorate: false };
    assert_eq!(
        code(decide(Some(&loaded), (&typed("sub_1"), &typed("mem_1")), &cancel, older, &policy)),
        Err("effective_at_before_applied")
    );
}

#[test]
fn given_an_active_subscription_when_usage_without_an_instant_arrives_late_then_it_counts_in_the_current_period()
 {
    let policy = Policy::default();
    let loaded = loaded_active(&policy);
    let usage = Command::RecordUsage {
        usage_id: typed("use_1"),
        metric: "bookings".into(),
        quantity: 2,
        dated: false,
    };
    let late = t("2026-12-31T00:00:00Z");
    let decided = decide(Some(&loaded), (&typed("sub_1"), &typed("mem_1")), &usage, late, &policy)
        .expect("ok")
        .expect("decided");
    assert_eq!(
        decided.events.last(),
        Some(&Event::UsageCounted {
            usage_id: typed("use_1"),
            metric: "bookings".into(),
            quantity: 2,
            included: 10,
            period_start: t("2027-01-01T00:00:00Z"),
            at: t("2027-01-01T00:00:00Z"),
        })
    );
    let dated = Command::RecordUsage {
        usage_id: typed("use_1"),
        metric: "bookings".into(),
        quantity: 2,
        dated: true,
    };
    assert_eq!(
        code(decide(Some(&loaded), (&typed("sub_1"), &typed("mem_1")), &dated, late, &policy)),
        Err("effective_at_before_applied")
    );
}

fn credit_note_command(id: &str, member: &str) -> IssueCreditNote {
    IssueCreditNote {
        credit_note_id: typed(id),
        subscription_id: typed("sub_1"),
        member_id: typed(member),
        amount_minor: 500,
        memo: Some("sorry".into()),
    }
}

#[test]
fn given_a_subscription_when_a_credit_note_is_issued_then_goodwill_in_its_currency_unless_refused() {
    let policy = Policy::default();
    let sub = loaded_active(&policy).sub;
    let at = t("2027-01-05T00:00:00Z");
    assert_eq!(
        decide_credit_note(Some(&sub), false, &credit_note_command("cn_1", "mem_1"), at),
        Ok(CreditNote {
            credit_note_id: typed("cn_1"),
            subscription_id: typed("sub_1"),
            member_id: typed("mem_1"),
            currency: typed("EUR"),
            amount_minor: 500,
            reason: "goodwill".into(),
            memo: Some("sorry".into()),
            at,
        })
    );
    let issue = |sub: Option<&Subscription>, exists: bool, member: &str| {
        code(decide_credit_note(sub, exists, &credit_note_command("cn_1", member), at))
    };
    assert_eq!(issue(None, false, "mem_1"), Err("subscription_not_found"));
    assert_eq!(issue(Some(&sub), false, "mem_2"), Err("subscription_not_found"));
    assert_eq!(issue(Some(&sub), true, "mem_1"), Err("credit_note_exists"));
}
