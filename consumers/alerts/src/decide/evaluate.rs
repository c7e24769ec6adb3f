//! One evaluation tick: every rule's condition at `now`, the lifecycle of every alert, and who is
//! told. Alertmanager's rules, decided here once and persisted:
//!
//! - **Lifecycle**: a condition that starts to hold makes the alert `pending` (`active_at`); after
//!   `for` it is `firing`; when it stops holding a pending alert goes back to `inactive` and a firing
//!   one is `resolved`. One alert per fingerprint (rule id + labels): de-duplication.
//! - **Suppression** of a firing alert, in this order: a silence whose matchers all match and that
//!   is active at `now`; an inhibition by another firing alert; routes whose mute intervals
//!   contain `now` (a route muted adds no receiver); no route at all. A suppressed alert is
//!   recorded (each new reason once) and told to nobody.
//! - **Notification**: a firing, unsuppressed alert is notified when it has never been, and again
//!   every `repeat_interval` (0: never again). A resolved alert that was notified is told to
//!   whoever was told it fired.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use studyspot_ids::RuleId;

use super::{
    Labels,
    config::{InhibitRule, Receiver, Route, Rule, Silence},
    matchers::all_match,
    series::{self, Sample},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Inactive,
    Pending,
    Firing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "inactive",
            Self::Pending => "pending",
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert: what the projection keeps per fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub fingerprint: String,
    pub rule_id: RuleId,
    pub labels: Labels,
    pub annotations: Labels,
    pub severity: String,
    pub group_key: String,
    pub state: State,
    /// When the condition began to hold (pending since).
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub value: Option<f64>,
    /// When the last `AlertFired` went out, and to whom.
    pub last_notified_at: Option<i64>,
    pub notified_receivers: Vec<Receiver>,
    /// Why it is not being notified (`silenced:sil_…`, `inhibited:inh_…`, `muted:rte_…`,
    /// `no_receivers`), while it is not.
    pub suppressed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub fingerprint: String,
    pub rule_id: RuleId,
    pub labels: Labels,
    pub from: State,
    pub to: State,
    pub value: Option<f64>,
}

/// What happened to a notification, persisted for every decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Notification {
    Fired { fingerprint: String, receivers: Vec<Receiver>, repeat: bool },
    Resolved { fingerprint: String, receivers: Vec<Receiver> },
    Suppressed { fingerprint: String, reason: String },
}

impl Notification {
    pub fn fingerprint(&self) -> &str {
        match self {
            Self::Fired { fingerprint, .. }
            | Self::Resolved { fingerprint, .. }
            | Self::Suppressed { fingerprint, .. } => fingerprint,
        }
    }
}

/// Everything one tick reads.
#[derive(Debug, Default)]
pub struct Tick<'a> {
    pub now: i64,
    pub rules: &'a [Rule],
    pub samples: &'a [Sample],
    /// The organization's alerts that are pending or firing (others need not be passed).
    pub alerts: &'a [Alert],
    pub silences: &'a [Silence],
    pub inhibit_rules: &'a [InhibitRule],
    pub routes: &'a [Route],
}

/// What one tick decided: the alerts that changed (to write), in fingerprint order, the state
/// transitions and the notification decisions, in the order they happened.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub alerts: Vec<Alert>,
    pub transitions: Vec<Transition>,
    pub notifications: Vec<Notification>,
}

impl Outcome {
    pub fn alert(&self, fingerprint: &str) -> Option<&Alert> {
        self.alerts.iter().find(|a| a.fingerprint == fingerprint)
    }
}

/// The labels of a rule's alert for one group: the group's labels, the rule's, `alertname` and
/// `severity` (later ones win).
pub fn alert_labels(rule: &Rule, group: &Labels) -> Labels {
    let mut labels = group.clone();
    labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert("alertname".into(), rule.name.clone());
    labels.insert("severity".into(), rule.severity.clone());
    labels
}

/// A stable id of rule + labels: FNV-1a (64 bit) over them, as hex. Stable across processes and
/// versions, unlike `std`'s hasher.
pub fn fingerprint(rule_id: &str, labels: &Labels) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(rule_id.as_bytes());
    for (k, v) in labels {
        feed(&[0xff]);
        feed(k.as_bytes());
        feed(&[0xfe]);
        feed(v.as_bytes());
    }
    format!("{hash:016x}")
}

pub fn group_key(rule: &Rule, group: &Labels) -> String {
    let parts: Vec<String> = group.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{}{{{}}}", rule.rule_id, parts.join(","))
}

pub fn evaluate(tick: &Tick<'_>) -> Outcome {
    let now = tick.now;
    let mut out = Outcome::default();
    let mut alerts: BTreeMap<String, Alert> =
        tick.alerts.iter().map(|a| (a.fingerprint.clone(), a.clone())).collect();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    let mut holding: BTreeSet<String> = BTreeSet::new();

    // 1. Conditions: which alerts hold now.
    for rule in tick.rules.iter().filter(|r| r.enabled) {
        for (group, value) in series::values(rule, tick.samples, now) {
            if !rule.op.holds(value, rule.threshold) {
                continue;
            }
            let labels = alert_labels(rule, &group);
            let fp = fingerprint(rule.rule_id.as_str(), &labels);
            holding.insert(fp.clone());
            let alert = alerts.entry(fp.clone()).or_insert_with(|| Alert {
                fingerprint: fp.clone(),
                rule_id: rule.rule_id.clone(),
                labels: labels.clone(),
                annotations: rule.annotations.clone(),
                severity: rule.severity.clone(),
                group_key: group_key(rule, &group),
                state: State::Inactive,
                active_at: now,
                fired_at: None,
                resolved_at: None,
                value: None,
                last_notified_at: None,
                notified_receivers: Vec::new(),
                suppressed: None,
            });
            alert.value = Some(value);
            alert.annotations = rule.annotations.clone();
            changed.insert(fp.clone());
            if matches!(alert.state, State::Inactive | State::Resolved) {
                let from = alert.state;
                *alert = Alert {
                    state: State::Pending,
                    active_at: now,
                    fired_at: None,
                    resolved_at: None,
                    last_notified_at: None,
                    notified_receivers: Vec::new(),
                    suppressed: None,
                    ..alert.clone()
                };
                out.transitions.push(transition(alert, from));
            }
            if alert.state == State::Pending && now - alert.active_at >= rule.for_ms {
                alert.state = State::Firing;
                alert.fired_at = Some(now);
                out.transitions.push(transition(alert, State::Pending));
            }
        }
    }

    // 2. Alerts whose condition no longer holds (or whose rule is gone or disabled).
    let mut resolved = Vec::new();
    for alert in alerts.values_mut() {
        if holding.contains(&alert.fingerprint) || !matches!(alert.state, State::Pending | State::Firing) {
            continue;
        }
        let from = alert.state;
        alert.value = None;
        alert.state = if from == State::Firing { State::Resolved } else { State::Inactive };
        if from == State::Firing {
            alert.resolved_at = Some(now);
            resolved.push(alert.fingerprint.clone());
        }
        changed.insert(alert.fingerprint.clone());
        out.transitions.push(transition(alert, from));
    }

    // 3. Who is told about each firing alert.
    let firing: Vec<Labels> =
        alerts.values().filter(|a| a.state == State::Firing).map(|a| a.labels.clone()).collect();
    for alert in alerts.values_mut().filter(|a| a.state == State::Firing) {
        let (suppressed, receivers) = route(tick, &firing, &alert.labels);
        if let Some(reason) = suppressed {
            if alert.suppressed.as_deref() != Some(&reason) {
                out.notifications.push(Notification::Suppressed {
                    fingerprint: alert.fingerprint.clone(),
                    reason: reason.clone(),
                });
                alert.suppressed = Some(reason);
                changed.insert(alert.fingerprint.clone());
            }
            continue;
        }
        let rule = tick.rules.iter().find(|r| r.rule_id == alert.rule_id);
        let due = match alert.last_notified_at {
            None => true,
            Some(last) => rule.is_some_and(|r| r.repeat_ms > 0 && now - last >= r.repeat_ms),
        };
        if alert.suppressed.take().is_some() {
            changed.insert(alert.fingerprint.clone());
        }
        if due {
            out.notifications.push(Notification::Fired {
                fingerprint: alert.fingerprint.clone(),
                receivers: receivers.clone(),
                repeat: alert.last_notified_at.is_some(),
            });
            alert.last_notified_at = Some(now);
            alert.notified_receivers = receivers;
            changed.insert(alert.fingerprint.clone());
        }
    }

    // 4. Resolutions reach whoever was told.
    for fp in resolved {
        let Some(alert) = alerts.get_mut(&fp) else { continue };
        if alert.last_notified_at.is_some() && !alert.notified_receivers.is_empty() {
            out.notifications.push(Notification::Resolved {
                fingerprint: fp.clone(),
                receivers: alert.notified_receivers.clone(),
            });
        }
        alert.suppressed = None;
    }

    out.alerts = alerts.into_iter().filter(|(fp, _)| changed.contains(fp)).map(|(_, a)| a).collect();
    out
}

fn transition(alert: &Alert, from: State) -> Transition {
    Transition {
        fingerprint: alert.fingerprint.clone(),
        rule_id: alert.rule_id.clone(),
        labels: alert.labels.clone(),
        from,
        to: alert.state,
        value: alert.value,
    }
}

/// The suppression reason, or the receivers (each once, in order) of an alert with `labels`.
fn route(tick: &Tick<'_>, firing: &[Labels], labels: &Labels) -> (Option<String>, Vec<Receiver>) {
    if let Some(s) = tick.silences.iter().find(|s| s.active_at(tick.now) && all_match(&s.matchers, labels)) {
        return (Some(format!("silenced:{}", s.silence_id)), Vec::new());
    }
    if let Some(i) =
        tick.inhibit_rules.iter().find(|i| firing.iter().any(|source| i.inhibits(source, labels)))
    {
        return (Some(format!("inhibited:{}", i.inhibit_rule_id)), Vec::new());
    }
    let matching: Vec<&Route> = tick.routes.iter().filter(|r| all_match(&r.matchers, labels)).collect();
    let Some(first) = matching.first() else { return (Some("no_receivers".into()), Vec::new()) };
    let mut receivers: Vec<Receiver> = Vec::new();
    for r in matching.iter().filter(|r| !r.muted_at(tick.now)) {
        for receiver in &r.receivers {
            if !receivers.contains(receiver) {
                receivers.push(receiver.clone());
            }
        }
    }
    if receivers.is_empty() {
        return (Some(format!("muted:{}", first.route_id)), Vec::new());
    }
    (None, receivers)
}
