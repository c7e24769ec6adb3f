//! Given groups and a tick's per-alert notifications, when grouping applies, then these groups
//! are told.

use super::*;
use crate::decide::evaluate::State;

const MIN: i64 = 60_000;

fn route(id: &str, group_by: &[&str], wait: i64, interval: i64, recipient: &str) -> Route {
    Route {
        route_id: id.parse().expect("id"),
        matchers: Vec::new(),
        receivers: vec![Receiver { recipient_id: recipient.parse().expect("id"), channel: "email".into() }],
        mute_time_intervals: Vec::new(),
        group_by: group_by.iter().map(|l| (*l).to_owned()).collect(),
        group_wait_ms: wait,
        group_interval_ms: interval,
    }
}

fn alert(fp: &str, venue: &str, state: State) -> Alert {
    Alert {
        fingerprint: fp.into(),
        rule_id: "rul_occupancy".parse().expect("id"),
        labels: [("alertname", "VenueFull"), ("venue_id", venue), ("team", "ops")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        annotations: Labels::new(),
        severity: "warning".into(),
        group_key: String::new(),
        state,
        active_at: 0,
        fired_at: Some(0),
        resolved_at: (state == State::Resolved).then_some(10 * MIN),
        value: Some(0.97),
        last_notified_at: None,
        notified_receivers: Vec::new(),
        suppressed: None,
    }
}

fn fired(fp: &str, recipients: &[&str]) -> Notification {
    Notification::Fired {
        fingerprint: fp.into(),
        receivers: recipients
            .iter()
            .map(|r| Receiver { recipient_id: r.parse().expect("id"), channel: "email".into() })
            .collect(),
        repeat: false,
    }
}

fn resolved(fp: &str, recipients: &[&str]) -> Notification {
    Notification::Resolved {
        fingerprint: fp.into(),
        receivers: recipients
            .iter()
            .map(|r| Receiver { recipient_id: r.parse().expect("id"), channel: "email".into() })
            .collect(),
    }
}

fn run(now: i64, routes: &[Route], ns: Vec<Notification>, alerts: &[Alert], groups: Vec<Group>) -> Grouped {
    apply(now, routes, ns, |fp| alerts.iter().find(|a| a.fingerprint == fp), groups)
}

fn fingerprints(members: &[Member]) -> Vec<&str> {
    members.iter().map(|m| m.fingerprint.as_str()).collect()
}

#[test]
fn two_alerts_of_one_group_are_told_once_after_group_wait() {
    // Given a route grouping by team with a 30 s group_wait.
    let routes = [route("rte_ops", &["team"], 30_000, 5 * MIN, "usr_ops")];
    let alerts = [alert("a", "ven_1", State::Firing), alert("b", "ven_2", State::Firing)];

    // When the first alert fires, nobody is told yet and it waits in its group.
    let first = run(0, &routes, vec![fired("a", &["usr_ops"])], &alerts, Vec::new());
    assert!(first.notifications.is_empty(), "the grouping route's receiver hears of it from the group");
    assert!(first.told.is_empty());
    assert_eq!(first.groups.len(), 1);
    assert_eq!(first.groups[0].group_key, "rte_ops:{team=\"ops\"}");

    // When the second fires within group_wait, still nobody.
    let second = run(10_000, &routes, vec![fired("b", &["usr_ops"])], &alerts, first.groups);
    assert!(second.told.is_empty());

    // Then after group_wait one notification carries both.
    let due = run(30_000, &routes, Vec::new(), &alerts, second.groups);
    assert_eq!(due.told.len(), 1);
    let told = &due.told[0];
    assert_eq!(fingerprints(&told.firing), ["a", "b"]);
    assert_eq!((told.status(), told.severity(), told.repeat), ("firing", "warning".to_owned(), false));
    assert_eq!(told.receivers[0].recipient_id, "usr_ops");

    // And a later tick with nothing new tells nobody.
    let quiet = run(40 * MIN, &routes, Vec::new(), &alerts, due.groups);
    assert!(quiet.told.is_empty());
}

#[test]
fn additions_and_resolutions_wait_for_group_interval() {
    let routes = [route("rte_ops", &["team"], 0, 5 * MIN, "usr_ops")];
    let mut alerts = vec![alert("a", "ven_1", State::Firing), alert("b", "ven_2", State::Firing)];
    // Given a group told about `a` at 0.
    let t0 = run(0, &routes, vec![fired("a", &["usr_ops"])], &alerts, Vec::new());
    assert_eq!(t0.told.len(), 1);

    // When `b` fires a minute later, it waits for group_interval.
    let t1 = run(MIN, &routes, vec![fired("b", &["usr_ops"])], &alerts, t0.groups);
    assert!(t1.told.is_empty());
    // Then at group_interval the group is told again with both.
    let t5 = run(5 * MIN, &routes, Vec::new(), &alerts, t1.groups);
    assert_eq!(fingerprints(&t5.told[0].firing), ["a", "b"]);

    // When `a` resolves, the next notification carries it as resolved beside firing `b`.
    alerts[0] = alert("a", "ven_1", State::Resolved);
    let t6 = run(6 * MIN, &routes, vec![resolved("a", &["usr_ops"])], &alerts, t5.groups);
    assert!(t6.notifications.is_empty(), "the group tells the resolution");
    assert!(t6.told.is_empty(), "not before group_interval");
    let t10 = run(10 * MIN, &routes, Vec::new(), &alerts, t6.groups);
    let told = &t10.told[0];
    assert_eq!((fingerprints(&told.firing), fingerprints(&told.resolved)), (vec!["b"], vec!["a"]));
    assert_eq!(told.resolved[0].resolved_at, Some(10 * MIN));

    // When the last one resolves, the group is told "resolved" and ends.
    alerts[1] = alert("b", "ven_2", State::Resolved);
    let t16 = run(16 * MIN, &routes, vec![resolved("b", &["usr_ops"])], &alerts, t10.groups);
    assert_eq!(t16.told[0].status(), "resolved");
    assert_eq!(t16.ended, ["rte_ops:{team=\"ops\"}"]);
    assert!(t16.groups.is_empty());
}

#[test]
fn an_alert_resolved_before_its_group_was_told_ends_the_group_silently() {
    let routes = [route("rte_ops", &["team"], 5 * MIN, 5 * MIN, "usr_ops")];
    let alerts = [alert("a", "ven_1", State::Resolved)];
    let t0 = run(0, &routes, vec![fired("a", &["usr_ops"])], &alerts, Vec::new());
    let t1 = run(MIN, &routes, vec![resolved("a", &["usr_ops"])], &alerts, t0.groups);
    assert!(t1.told.is_empty());
    assert_eq!(t1.ended.len(), 1);
}

#[test]
fn routes_grouping_by_every_label_keep_one_notification_per_alert() {
    // Given the default route (group_by "...") and a grouping route with another receiver.
    let routes = [
        route("rte_pager", &[EVERY_LABEL], 0, 0, "usr_oncall"),
        route("rte_ops", &["team"], 0, MIN, "usr_ops"),
    ];
    let alerts = [alert("a", "ven_1", State::Firing)];
    let out = run(0, &routes, vec![fired("a", &["usr_oncall", "usr_ops"])], &alerts, Vec::new());
    // Then the per-alert notification keeps the pager only, and the group tells ops.
    assert_eq!(out.notifications, [fired("a", &["usr_oncall"])]);
    assert_eq!(out.told.len(), 1);
    assert_eq!(out.told[0].receivers[0].recipient_id, "usr_ops");
}

#[test]
fn a_repeat_re_tells_the_group_as_a_repeat() {
    let routes = [route("rte_ops", &["team"], 0, MIN, "usr_ops")];
    let alerts = [alert("a", "ven_1", State::Firing)];
    let t0 = run(0, &routes, vec![fired("a", &["usr_ops"])], &alerts, Vec::new());
    let again = Notification::Fired {
        fingerprint: "a".into(),
        receivers: vec![Receiver { recipient_id: "usr_ops".parse().expect("id"), channel: "email".into() }],
        repeat: true,
    };
    let t60 = run(60 * MIN, &routes, vec![again], &alerts, t0.groups);
    assert_eq!(t60.told.len(), 1);
    assert!(t60.told[0].repeat);
}

#[test]
fn groups_split_by_their_labels() {
    let routes = [route("rte_ops", &["venue_id"], 0, MIN, "usr_ops")];
    let alerts = [alert("a", "ven_1", State::Firing), alert("b", "ven_2", State::Firing)];
    let out = run(0, &routes, vec![fired("a", &["usr_ops"]), fired("b", &["usr_ops"])], &alerts, Vec::new());
    let keys: Vec<&str> = out.told.iter().map(|t| t.group_key.as_str()).collect();
    assert_eq!(keys, ["rte_ops:{venue_id=\"ven_1\"}", "rte_ops:{venue_id=\"ven_2\"}"]);
}
