//! Alertmanager's grouping, after a tick's per-alert decisions: a route with `group_by` collects
//! the alerts it would tell into groups (one per route and `group_by` label values). A new group
//! waits `group_wait` before its first notification, so alerts firing together are told
//! together; afterwards alerts added or resolved are told at most every `group_interval`; a
//! rule's repeat re-tells its group. Every notification carries the whole group: the firing
//! alerts and those resolved since the last one. A route grouping by `...` (every label, the
//! default) tells each alert on its own, as [`super::evaluate`] decided.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use studyspot_ids::{RouteId, RuleId};

use super::{
    Labels,
    config::{Receiver, Route},
    evaluate::{Alert, Notification},
    matchers::all_match,
};

pub use super::config::EVERY_LABEL;

pub fn every_label() -> Vec<String> {
    vec![EVERY_LABEL.to_owned()]
}

fn grouped(route: &Route) -> bool {
    !route.group_by.iter().any(|l| l == EVERY_LABEL)
}

/// One alert in a group, as its notification shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub fingerprint: String,
    pub rule_id: RuleId,
    pub labels: Labels,
    pub annotations: Labels,
    pub severity: String,
    pub value: Option<f64>,
    pub started_at: i64,
    pub resolved_at: Option<i64>,
}

impl Member {
    fn of(alert: &Alert) -> Self {
        Self {
            fingerprint: alert.fingerprint.clone(),
            rule_id: alert.rule_id.clone(),
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            severity: alert.severity.clone(),
            value: alert.value,
            started_at: alert.active_at,
            resolved_at: alert.resolved_at,
        }
    }
}

/// A group as the projection keeps it between ticks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub route_id: RouteId,
    pub group_key: String,
    pub labels: Labels,
    pub created_at: i64,
    pub last_notified_at: Option<i64>,
    /// Firing now.
    pub firing: BTreeMap<String, Member>,
    /// Resolved since the last notification (and told firing before).
    pub resolved: BTreeMap<String, Member>,
    /// The firing alerts the last notification carried.
    pub told: BTreeSet<String>,
    /// A member's rule asked for a repeat.
    pub repeat_due: bool,
}

/// One notification for a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupNotification {
    pub route_id: RouteId,
    pub group_key: String,
    pub labels: Labels,
    pub receivers: Vec<Receiver>,
    pub firing: Vec<Member>,
    pub resolved: Vec<Member>,
    pub repeat: bool,
}

impl GroupNotification {
    pub fn status(&self) -> &'static str {
        if self.firing.is_empty() { "resolved" } else { "firing" }
    }

    /// The most severe of its alerts (`critical` before `warning` before `info`).
    pub fn severity(&self) -> String {
        let rank = |s: &str| match s {
            "critical" => 0,
            "warning" => 1,
            _ => 2,
        };
        let alerts = if self.firing.is_empty() { &self.resolved } else { &self.firing };
        alerts.iter().map(|m| m.severity.clone()).min_by_key(|s| rank(s)).unwrap_or_else(|| "info".into())
    }
}

/// What grouping decided at one tick.
#[derive(Debug, Default, PartialEq)]
pub struct Grouped {
    /// The per-alert notifications left: receivers of grouping routes removed, notifications
    /// without receivers left out (suppressions pass through).
    pub notifications: Vec<Notification>,
    /// Groups changed (to write).
    pub groups: Vec<Group>,
    /// Groups that ended (to delete): every alert resolved and told.
    pub ended: Vec<String>,
    pub told: Vec<GroupNotification>,
}

pub fn group_key(route: &Route, labels: &Labels) -> (String, Labels) {
    let values: Labels =
        route.group_by.iter().map(|l| (l.clone(), labels.get(l).cloned().unwrap_or_default())).collect();
    let parts: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    (format!("{}:{{{}}}", route.route_id, parts.join(",")), values)
}

/// Applies a tick's per-alert notifications to the groups and says which groups are told now.
/// `alert` finds an alert of the tick by fingerprint.
pub fn apply<'a>(
    now: i64,
    routes: &[Route],
    notifications: Vec<Notification>,
    alert: impl Fn(&str) -> Option<&'a Alert>,
    groups: Vec<Group>,
) -> Grouped {
    let mut groups: BTreeMap<String, Group> = groups.into_iter().map(|g| (g.group_key.clone(), g)).collect();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    let mut out = Grouped::default();

    for n in notifications {
        let Some(a) = alert(n.fingerprint()) else {
            out.notifications.push(n);
            continue;
        };
        match n {
            Notification::Fired { fingerprint, receivers, repeat } => {
                let matching: Vec<&Route> =
                    routes.iter().filter(|r| all_match(&r.matchers, &a.labels) && !r.muted_at(now)).collect();
                for route in matching.iter().filter(|r| grouped(r)) {
                    let (key, labels) = group_key(route, &a.labels);
                    let group = groups.entry(key.clone()).or_insert_with(|| Group {
                        route_id: route.route_id.clone(),
                        group_key: key.clone(),
                        labels,
                        created_at: now,
                        last_notified_at: None,
                        firing: BTreeMap::new(),
                        resolved: BTreeMap::new(),
                        told: BTreeSet::new(),
                        repeat_due: false,
                    });
                    group.resolved.remove(&fingerprint);
                    group.firing.insert(fingerprint.clone(), Member::of(a));
                    group.repeat_due |= repeat;
                    changed.insert(key);
                }
                let own: BTreeSet<&Receiver> =
                    matching.iter().filter(|r| !grouped(r)).flat_map(|r| &r.receivers).collect();
                let receivers: Vec<Receiver> = receivers.into_iter().filter(|r| own.contains(r)).collect();
                if !receivers.is_empty() {
                    out.notifications.push(Notification::Fired { fingerprint, receivers, repeat });
                }
            }
            Notification::Resolved { fingerprint, receivers } => {
                let mut grouped_receivers: BTreeSet<Receiver> = BTreeSet::new();
                for group in groups.values_mut() {
                    let Some(member) = group.firing.remove(&fingerprint) else { continue };
                    if let Some(route) = routes.iter().find(|r| r.route_id == group.route_id) {
                        grouped_receivers.extend(route.receivers.iter().cloned());
                    }
                    if group.told.contains(&fingerprint) {
                        group.resolved.insert(
                            fingerprint.clone(),
                            Member { resolved_at: a.resolved_at, value: None, ..member },
                        );
                    }
                    changed.insert(group.group_key.clone());
                }
                // Receivers that only a group told hear of the resolution from the group.
                let own: BTreeSet<&Receiver> = routes
                    .iter()
                    .filter(|r| !grouped(r) && all_match(&r.matchers, &a.labels))
                    .flat_map(|r| &r.receivers)
                    .collect();
                let receivers: Vec<Receiver> = receivers
                    .into_iter()
                    .filter(|r| own.contains(r) || !grouped_receivers.contains(r))
                    .collect();
                if !receivers.is_empty() {
                    out.notifications.push(Notification::Resolved { fingerprint, receivers });
                }
            }
            suppressed @ Notification::Suppressed { .. } => out.notifications.push(suppressed),
        }
    }

    for group in groups.values_mut() {
        let Some(route) = routes.iter().find(|r| r.route_id == group.route_id) else {
            // The route is gone: its groups end untold.
            out.ended.push(group.group_key.clone());
            continue;
        };
        let firing: BTreeSet<String> = group.firing.keys().cloned().collect();
        let news = firing != group.told || !group.resolved.is_empty();
        let due = match group.last_notified_at {
            None => !group.firing.is_empty() && now - group.created_at >= route.group_wait_ms,
            Some(last) => (news || group.repeat_due) && now - last >= route.group_interval_ms,
        };
        if due {
            out.told.push(GroupNotification {
                route_id: group.route_id.clone(),
                group_key: group.group_key.clone(),
                labels: group.labels.clone(),
                receivers: route.receivers.clone(),
                firing: group.firing.values().cloned().collect(),
                resolved: group.resolved.values().cloned().collect(),
                repeat: !news,
            });
            group.last_notified_at = Some(now);
            group.told = firing;
            group.resolved.clear();
            group.repeat_due = false;
            changed.insert(group.group_key.clone());
        }
        if group.firing.is_empty() && group.resolved.is_empty() {
            out.ended.push(group.group_key.clone());
        }
    }
    let ended: BTreeSet<&String> = out.ended.iter().collect();
    out.groups = groups
        .into_values()
        .filter(|g| changed.contains(&g.group_key) && !ended.contains(&g.group_key))
        .collect();
    out.ended.sort();
    out.ended.dedup();
    out
}

#[cfg(test)]
#[path = "grouping_tests.rs"]
mod tests;
