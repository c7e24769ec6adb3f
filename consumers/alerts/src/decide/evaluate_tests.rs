//! Given (rules, routes, silences, inhibitions, samples), when ticks come, then these transitions
//! and notifications — Alertmanager's lifecycle, decided without a clock.

use std::collections::HashMap;

use studyspot_schemas::{
    EventMetadata,
    alerts::{
        CreateSilence, DefineAlertRule, DefineInhibitRule, DefineRoute, Matcher as M, Receiver as R,
        TimeInterval as T,
    },
};

use super::{
    config::{InhibitRule, Route, Rule, Silence},
    evaluate::{Alert, Notification, Outcome, State, Tick, evaluate},
    series::Sample,
};

const MIN: i64 = 60_000;
/// 2026-11-25T12:00:00Z, a Wednesday.
const T0: i64 = 1_795_608_000_000;

fn m(name: &str, op: &str, value: &str) -> M {
    M { name: name.into(), op: op.into(), value: value.into() }
}

fn failure_rate_rule() -> DefineAlertRule {
    DefineAlertRule {
        metadata: EventMetadata::example(),
        rule_id: "rul_pay".parse().expect("id"),
        name: "PaymentFailureRate".into(),
        kind: "ratio".into(),
        metric: "studyspot_payments".into(),
        matchers: vec![m("outcome", "=", "failed")],
        aggregation: "sum".into(),
        denominator_metric: None,
        denominator_matchers: vec![],
        window_seconds: 300,
        for_seconds: 120,
        op: ">".into(),
        threshold: 0.5,
        severity: "critical".into(),
        labels: HashMap::from([("team".into(), "billing".into())]),
        annotations: HashMap::from([("summary".into(), "Payments are failing".into())]),
        group_by: vec![],
        repeat_interval_seconds: 3600,
        enabled: true,
    }
}

fn rule(c: DefineAlertRule) -> Rule {
    Rule::from_command(&c).expect("well-formed").expect("accepted")
}

fn route(id: &str, matchers: Vec<M>, recipient: &str, mute: Vec<T>) -> Route {
    Route::from_command(&DefineRoute {
        metadata: EventMetadata::example(),
        route_id: id.parse().expect("id"),
        matchers,
        receivers: vec![R { recipient_id: recipient.parse().expect("id"), channel: "webhook".into() }],
        mute_time_intervals: mute,
        group_by: vec!["...".into()],
        group_wait_seconds: 0,
        group_interval_seconds: 0,
    })
    .expect("well-formed")
    .expect("accepted")
}

fn payments(at: i64, failed: usize, succeeded: usize) -> Vec<Sample> {
    let mut out = Vec::new();
    for i in 0..failed {
        out.push(Sample::new("studyspot_payments", &[("outcome", "failed")], 1.0, at + i as i64));
    }
    for i in 0..succeeded {
        out.push(Sample::new("studyspot_payments", &[("outcome", "succeeded")], 1.0, at + i as i64));
    }
    out
}

/// The persisted state between ticks, as the projection keeps it.
#[derive(Default)]
struct Given {
    rules: Vec<Rule>,
    routes: Vec<Route>,
    silences: Vec<Silence>,
    inhibit_rules: Vec<InhibitRule>,
    samples: Vec<Sample>,
    alerts: Vec<Alert>,
}

impl Given {
    fn with_rule(mut self, r: DefineAlertRule) -> Self {
        self.rules.push(rule(r));
        self
    }

    fn with_route(mut self, r: Route) -> Self {
        self.routes.push(r);
        self
    }

    fn samples(&mut self, s: Vec<Sample>) {
        self.samples.extend(s);
    }

    /// When a tick comes at `now`; the changed alerts are written back.
    fn tick(&mut self, now: i64) -> Outcome {
        let live: Vec<Alert> = self
            .alerts
            .iter()
            .filter(|a| matches!(a.state, State::Pending | State::Firing))
            .cloned()
            .collect();
        let outcome = evaluate(&Tick {
            now,
            rules: &self.rules,
            samples: &self.samples,
            alerts: &live,
            silences: &self.silences,
            inhibit_rules: &self.inhibit_rules,
            routes: &self.routes,
        });
        for a in &outcome.alerts {
            self.alerts.retain(|x| x.fingerprint != a.fingerprint);
            self.alerts.push(a.clone());
        }
        outcome
    }
}

fn fired(o: &Outcome) -> Vec<(String, bool)> {
    o.notifications
        .iter()
        .filter_map(|n| match n {
            Notification::Fired { receivers, repeat, .. } => Some((
                receivers.iter().map(|r| r.recipient_id.as_str()).collect::<Vec<_>>().join(","),
                *repeat,
            )),
            _ => None,
        })
        .collect()
}

fn resolved(o: &Outcome) -> usize {
    o.notifications.iter().filter(|n| matches!(n, Notification::Resolved { .. })).count()
}

fn suppressed(o: &Outcome) -> Vec<String> {
    o.notifications
        .iter()
        .filter_map(|n| match n {
            Notification::Suppressed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn states(o: &Outcome) -> Vec<(&'static str, &'static str)> {
    o.transitions.iter().map(|t| (t.from.as_str(), t.to.as_str())).collect()
}

#[test]
fn pending_for_the_for_duration_then_firing_once_then_resolved() {
    let mut g = Given::default().with_rule(failure_rate_rule()).with_route(route(
        "rte_ops",
        vec![],
        "usr_ops",
        vec![],
    ));
    g.samples(payments(T0 - 30_000, 6, 2));

    let first = g.tick(T0);
    assert_eq!(states(&first), [("inactive", "pending")]);
    assert!(first.notifications.is_empty(), "pending alerts are not notified");

    let still_pending = g.tick(T0 + MIN);
    assert!(still_pending.transitions.is_empty());

    let firing = g.tick(T0 + 2 * MIN);
    assert_eq!(states(&firing), [("pending", "firing")]);
    assert_eq!(fired(&firing), [("usr_ops".to_owned(), false)]);
    let alert = &firing.alerts[0];
    assert_eq!(alert.labels["alertname"], "PaymentFailureRate");
    assert_eq!(alert.labels["severity"], "critical");
    assert_eq!(alert.labels["team"], "billing");
    assert_eq!(alert.value, Some(0.75));
    assert_eq!(alert.active_at, T0);

    // De-duplication: the same alert keeps firing and is not told again before the repeat interval.
    g.samples(payments(T0 + 2 * MIN, 3, 0));
    let again = g.tick(T0 + 3 * MIN);
    assert!(again.transitions.is_empty() && again.notifications.is_empty(), "{again:?}");

    // Recovery: the failed ones leave the window, successes fill it.
    g.samples(payments(T0 + 7 * MIN, 0, 10));
    let recovered = g.tick(T0 + 8 * MIN);
    assert_eq!(states(&recovered), [("firing", "resolved")]);
    assert_eq!(resolved(&recovered), 1);
}

#[test]
fn a_condition_that_stops_before_for_goes_back_to_inactive_without_notice() {
    let mut g = Given::default().with_rule(failure_rate_rule()).with_route(route(
        "rte_ops",
        vec![],
        "usr_ops",
        vec![],
    ));
    g.samples(payments(T0 - 1000, 3, 0));
    assert_eq!(states(&g.tick(T0)), [("inactive", "pending")]);
    g.samples(payments(T0 + MIN, 0, 10));
    let cleared = g.tick(T0 + MIN + 1000);
    assert_eq!(states(&cleared), [("pending", "inactive")]);
    assert!(cleared.notifications.is_empty());
}

#[test]
fn without_a_for_duration_the_alert_fires_at_once_and_repeats_after_the_interval() {
    let mut r = failure_rate_rule();
    r.for_seconds = 0;
    r.repeat_interval_seconds = 600;
    let mut g = Given::default().with_rule(r).with_route(route("rte_ops", vec![], "usr_ops", vec![]));
    let mut at = T0;
    g.samples(payments(at - 1000, 5, 0));
    let first = g.tick(at);
    assert_eq!(states(&first), [("inactive", "pending"), ("pending", "firing")]);
    assert_eq!(fired(&first), [("usr_ops".to_owned(), false)]);
    // Still failing every 4 minutes; ticks every minute.
    let mut repeats = Vec::new();
    for _ in 0..12 {
        at += MIN;
        if (at - T0) % (4 * MIN) == 0 {
            g.samples(payments(at - 1000, 5, 0));
        }
        repeats.extend(fired(&g.tick(at)).into_iter().map(|(_, repeat)| (at - T0) / MIN * i64::from(repeat)));
    }
    assert_eq!(repeats, [10], "told again exactly once, ten minutes after the first notice");
}

#[test]
fn group_by_splits_a_rule_into_one_alert_per_group() {
    let mut r = failure_rate_rule();
    r.for_seconds = 0;
    r.group_by = vec!["connector".into()];
    let mut g = Given::default().with_rule(r).with_route(route("rte_ops", vec![], "usr_ops", vec![]));
    g.samples(vec![
        Sample::new("studyspot_payments", &[("outcome", "failed"), ("connector", "stripe")], 1.0, T0 - 10),
        Sample::new("studyspot_payments", &[("outcome", "failed"), ("connector", "stripe")], 1.0, T0 - 9),
        Sample::new("studyspot_payments", &[("outcome", "succeeded"), ("connector", "paypal")], 1.0, T0 - 8),
        Sample::new("studyspot_payments", &[("outcome", "failed"), ("connector", "razorpay")], 1.0, T0 - 7),
    ]);
    let o = g.tick(T0);
    let mut connectors: Vec<&str> = o.alerts.iter().map(|a| a.labels["connector"].as_str()).collect();
    connectors.sort_unstable();
    assert_eq!(connectors, ["razorpay", "stripe"], "paypal's ratio is 0");
    assert_eq!(fired(&o).len(), 2);
    assert_ne!(o.alerts[0].fingerprint, o.alerts[1].fingerprint);
    assert!(o.alerts.iter().all(|a| a.group_key.starts_with("rul_pay{connector=")));
}

#[test]
fn a_critical_alert_inhibits_the_warnings_with_equal_labels() {
    let mut critical = failure_rate_rule();
    critical.for_seconds = 0;
    critical.group_by = vec!["venue".into()];
    let mut warning = critical.clone();
    warning.rule_id = "rul_warn".into();
    warning.name = "PaymentFailuresRising".into();
    warning.severity = "warning".into();
    warning.threshold = 0.2;
    let mut g = Given::default().with_rule(critical).with_rule(warning).with_route(route(
        "rte_ops",
        vec![],
        "usr_ops",
        vec![],
    ));
    g.inhibit_rules.push(
        InhibitRule::from_command(&DefineInhibitRule {
            metadata: EventMetadata::example(),
            inhibit_rule_id: "inh_1".into(),
            source_matchers: vec![m("severity", "=", "critical")],
            target_matchers: vec![m("severity", "=", "warning")],
            equal: vec!["venue".into()],
        })
        .expect("well-formed")
        .expect("accepted"),
    );
    // Venue 1 is bad enough for both; venue 2 only for the warning.
    g.samples(vec![
        Sample::new("studyspot_payments", &[("outcome", "failed"), ("venue", "ven_1")], 1.0, T0 - 10),
        Sample::new("studyspot_payments", &[("outcome", "failed"), ("venue", "ven_2")], 1.0, T0 - 10),
        Sample::new("studyspot_payments", &[("outcome", "succeeded"), ("venue", "ven_2")], 2.0, T0 - 10),
    ]);
    let o = g.tick(T0);
    let told: Vec<(String, String)> = o
        .notifications
        .iter()
        .filter_map(|n| match n {
            Notification::Fired { fingerprint, .. } => {
                let a = o.alert(fingerprint).expect("alert");
                Some((a.labels["alertname"].clone(), a.labels["venue"].clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(told.contains(&("PaymentFailureRate".into(), "ven_1".into())));
    assert!(
        told.contains(&("PaymentFailuresRising".into(), "ven_2".into())),
        "another venue is not inhibited"
    );
    assert_eq!(suppressed(&o), ["inhibited:inh_1"]);

    // The next tick changes nothing: the inhibited warning stays silent, recorded once.
    let next = g.tick(T0 + MIN);
    assert!(next.notifications.is_empty(), "{next:?}");
}

#[test]
fn a_silence_with_matchers_suppresses_until_it_expires_then_the_alert_is_told() {
    let mut r = failure_rate_rule();
    r.for_seconds = 0;
    let mut g = Given::default().with_rule(r).with_route(route("rte_ops", vec![], "usr_ops", vec![]));
    let silence = Silence::from_command(&CreateSilence {
        metadata: EventMetadata { occurred_at: T0 - MIN, ..EventMetadata::example() },
        silence_id: "sil_1".into(),
        matchers: vec![m("alertname", "=~", "Payment.*"), m("team", "!=", "attendance")],
        starts_at: T0 - MIN,
        ends_at: T0 + 10 * MIN,
        comment: "Stripe maintenance".into(),
    })
    .expect("well-formed")
    .expect("accepted");
    g.silences.push(silence.clone());
    g.samples(payments(T0 - 1000, 5, 0));
    let o = g.tick(T0);
    assert_eq!(fired(&o), []);
    assert_eq!(suppressed(&o), ["silenced:sil_1"]);
    // Expired early by an operator at T0 + 3 min: the next tick tells.
    g.silences = vec![silence.expire(T0 + 3 * MIN).expect("still active")];
    assert!(g.tick(T0 + 2 * MIN).notifications.is_empty());
    assert_eq!(fired(&g.tick(T0 + 3 * MIN)), [("usr_ops".to_owned(), false)]);
    assert_eq!(silence.expire(T0 + 11 * MIN).map_err(|r| r.code), Err("silence_expired"));
}

#[test]
fn muted_routes_add_no_receivers_and_other_routes_still_do() {
    let mut r = failure_rate_rule();
    r.for_seconds = 0;
    // Wednesday 12:00 UTC is 13:00 in Berlin: inside "weekdays 08:00–18:00".
    let office = T {
        weekdays: vec!["wednesday".into()],
        start_minute: 8 * 60,
        end_minute: 18 * 60,
        time_zone: "Europe/Berlin".into(),
    };
    let mut g = Given::default()
        .with_rule(r)
        .with_route(route("rte_pager", vec![m("severity", "=", "critical")], "usr_pager", vec![office]))
        .with_route(route("rte_team", vec![m("team", "=", "billing")], "usr_team", vec![]));
    g.samples(payments(T0 - 1000, 5, 0));
    assert_eq!(fired(&g.tick(T0)), [("usr_team".to_owned(), false)], "the pager is muted in office hours");

    let mut only_pager = Given::default()
        .with_rule({
            let mut r = failure_rate_rule();
            r.for_seconds = 0;
            r
        })
        .with_route(g.routes[0].clone());
    only_pager.samples(payments(T0 - 1000, 5, 0));
    assert_eq!(suppressed(&only_pager.tick(T0)), ["muted:rte_pager"]);
    // 18:00 in Berlin: the mute ends, and the alert (still failing) is told.
    only_pager.samples(payments(T0 + 5 * 60 * MIN - 1000, 5, 0));
    assert_eq!(fired(&only_pager.tick(T0 + 5 * 60 * MIN)), [("usr_pager".to_owned(), false)]);
}

#[test]
fn a_resolved_alert_is_told_to_whoever_was_told_it_fired_and_can_fire_again() {
    let mut r = failure_rate_rule();
    r.for_seconds = 0;
    r.window_seconds = 60;
    let mut g = Given::default().with_rule(r).with_route(route("rte_ops", vec![], "usr_ops", vec![]));
    g.samples(payments(T0 - 1000, 5, 0));
    g.tick(T0);
    g.routes = vec![route("rte_other", vec![], "usr_other", vec![])];
    let o = g.tick(T0 + 2 * MIN);
    let Some(Notification::Resolved { receivers, .. }) = o.notifications.first() else { panic!("{o:?}") };
    assert_eq!(receivers[0].recipient_id, "usr_ops");
    g.samples(payments(T0 + 3 * MIN, 5, 0));
    let again = g.tick(T0 + 3 * MIN + 1000);
    // A new occurrence: the resolved one stays in the history.
    assert_eq!(states(&again), [("inactive", "pending"), ("pending", "firing")]);
    assert_eq!(fired(&again), [("usr_other".to_owned(), false)]);
}

#[test]
fn threshold_and_rate_rules() {
    let mut occupancy = failure_rate_rule();
    occupancy.rule_id = "rul_occ".into();
    occupancy.name = "VenueFull".into();
    occupancy.kind = "threshold".into();
    occupancy.metric = "studyspot_venue_occupancy_ratio".into();
    occupancy.matchers = vec![];
    occupancy.aggregation = "last".into();
    occupancy.op = ">=".into();
    occupancy.threshold = 0.9;
    occupancy.for_seconds = 0;
    occupancy.group_by = vec!["venue".into()];
    let mut refunds = occupancy.clone();
    refunds.rule_id = "rul_ref".into();
    refunds.name = "RefundBurst".into();
    refunds.kind = "rate".into();
    refunds.metric = "studyspot_refunds".into();
    refunds.window_seconds = 60;
    refunds.group_by = vec![];
    refunds.threshold = 0.1; // more than 6 a minute
    let mut g = Given::default().with_rule(occupancy).with_rule(refunds);
    g.samples(vec![
        Sample::new("studyspot_venue_occupancy_ratio", &[("venue", "ven_1")], 0.95, T0 - 20_000),
        Sample::new("studyspot_venue_occupancy_ratio", &[("venue", "ven_1")], 0.5, T0 - 10_000),
        Sample::new("studyspot_venue_occupancy_ratio", &[("venue", "ven_2")], 0.92, T0 - 10_000),
    ]);
    for i in 0..7 {
        g.samples(vec![Sample::new("studyspot_refunds", &[], 1.0, T0 - 1000 * i)]);
    }
    let o = g.tick(T0);
    let mut names: Vec<String> = o
        .alerts
        .iter()
        .map(|a| format!("{}{}", a.labels["alertname"], a.labels.get("venue").map_or("", |v| v)))
        .collect();
    names.sort();
    assert_eq!(names, ["RefundBurst", "VenueFullven_2"]);
    assert_eq!(suppressed(&o), ["no_receivers", "no_receivers"], "no route: recorded, told to nobody");
}

#[test]
fn a_replay_of_the_same_ticks_decides_the_same() {
    let run = || {
        let mut g = Given::default().with_rule(failure_rate_rule()).with_route(route(
            "rte_ops",
            vec![],
            "usr_ops",
            vec![],
        ));
        g.samples(payments(T0 - 1000, 5, 1));
        (0..6).map(|i| g.tick(T0 + i * MIN)).collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}
