//! What alerts holds as configuration: rules, routes, inhibitions, silences. Each is built from
//! its command, validated: `Err(Malformed)` for what the contract forbids (dead letter),
//! `Ok(Err(Refusal))` for a well-formed command the domain refuses.

use serde::{Deserialize, Serialize};
use studyspot_ids::{InhibitRuleId, RecipientId, RouteId, RuleId, SilenceId};
use studyspot_schemas::alerts::{
    CreateSilence, DefineAlertRule, DefineInhibitRule, DefineRoute, Receiver as ReceiverRecord,
};

use super::{
    Labels, Malformed, Refusal,
    matchers::{Matcher, all_match, from_records},
    mute::TimeInterval,
    samples::{valid_label_name, valid_metric_name},
};

pub const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];
pub const CHANNELS: [&str; 6] = ["email", "sms", "whatsapp", "push", "in_app", "webhook"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Threshold,
    Rate,
    Ratio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    Avg,
    Sum,
    Min,
    Max,
    Count,
    Last,
    /// The last sample less the first in the window: what a counter (dead-letter records, a
    /// sampled total) grew by.
    Increase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Comparison {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Gt => value > threshold,
            Self::Ge => value >= threshold,
            Self::Lt => value < threshold,
            Self::Le => value <= threshold,
            Self::Eq => value == threshold,
            Self::Ne => value != threshold,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub rule_id: RuleId,
    pub name: String,
    pub kind: Kind,
    pub metric: String,
    pub matchers: Vec<Matcher>,
    pub aggregation: Aggregation,
    pub denominator_metric: Option<String>,
    pub denominator_matchers: Vec<Matcher>,
    pub window_ms: i64,
    pub for_ms: i64,
    pub op: Comparison,
    pub threshold: f64,
    pub severity: String,
    pub labels: Labels,
    pub annotations: Labels,
    pub group_by: Vec<String>,
    pub repeat_ms: i64,
    pub enabled: bool,
}

fn parse<T: for<'de> Deserialize<'de>>(field: &str, value: &str) -> Result<T, Malformed> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|_| Malformed(format!("{field} {value:?} is not one of the allowed values")))
}

/// An id the command's own check found filled, as its type (the check keeps its message).
fn id<T: std::str::FromStr<Err = studyspot_ids::ParseError>>(
    field: &str,
    value: &str,
) -> Result<T, Malformed> {
    value.parse().map_err(|e: studyspot_ids::ParseError| Malformed(e.for_field(field)))
}

impl Rule {
    pub fn from_command(c: &DefineAlertRule) -> Result<Result<Self, Refusal>, Malformed> {
        if c.rule_id.trim().is_empty() || c.name.trim().is_empty() {
            return Err(Malformed("rule_id and name are required".into()));
        }
        if !valid_metric_name(&c.metric) {
            return Err(Malformed(format!("metric {:?} is not a valid metric name", c.metric)));
        }
        if let Some(m) = c.denominator_metric.as_deref().filter(|m| !valid_metric_name(m)) {
            return Err(Malformed(format!("denominator_metric {m:?} is not a valid metric name")));
        }
        if c.window_seconds <= 0 || c.for_seconds < 0 || c.repeat_interval_seconds < 0 {
            return Err(Malformed(
                "window_seconds must be positive, for and repeat_interval not negative".into(),
            ));
        }
        if !c.threshold.is_finite() {
            return Err(Malformed("threshold is not finite".into()));
        }
        if !SEVERITIES.contains(&c.severity.as_str()) {
            return Err(Malformed(format!("severity {:?} is not critical, warning or info", c.severity)));
        }
        if let Some(bad) = c.group_by.iter().chain(c.labels.keys()).find(|l| !valid_label_name(l)) {
            return Err(Malformed(format!("label {bad:?} is not a valid label name")));
        }
        let matchers = match from_records(&c.matchers)? {
            Ok(m) => m,
            Err(r) => return Ok(Err(r)),
        };
        let denominator_matchers = match from_records(&c.denominator_matchers)? {
            Ok(m) => m,
            Err(r) => return Ok(Err(r)),
        };
        Ok(Ok(Self {
            rule_id: id("rule_id", &c.rule_id)?,
            name: c.name.clone(),
            kind: parse("kind", &c.kind)?,
            metric: c.metric.clone(),
            matchers,
            aggregation: parse("aggregation", &c.aggregation)?,
            denominator_metric: c.denominator_metric.clone(),
            denominator_matchers,
            window_ms: c.window_seconds.saturating_mul(1000),
            for_ms: c.for_seconds.saturating_mul(1000),
            op: parse("op", &c.op)?,
            threshold: c.threshold,
            severity: c.severity.clone(),
            labels: c.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            annotations: c.annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            group_by: c.group_by.clone(),
            repeat_ms: c.repeat_interval_seconds.saturating_mul(1000),
            enabled: c.enabled,
        }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Receiver {
    pub recipient_id: RecipientId,
    pub channel: String,
}

impl Receiver {
    pub fn to_record(&self) -> ReceiverRecord {
        ReceiverRecord { recipient_id: self.recipient_id.to_string(), channel: self.channel.clone() }
    }
}

/// `group_by` this label alone: group by every label (no grouping).
pub const EVERY_LABEL: &str = "...";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub route_id: RouteId,
    pub matchers: Vec<Matcher>,
    pub receivers: Vec<Receiver>,
    pub mute_time_intervals: Vec<TimeInterval>,
    /// Grouping (see [`super::grouping`]); routes stored before grouping existed tell each
    /// alert on its own.
    #[serde(default = "super::grouping::every_label")]
    pub group_by: Vec<String>,
    #[serde(default)]
    pub group_wait_ms: i64,
    #[serde(default)]
    pub group_interval_ms: i64,
}

impl Route {
    pub fn from_command(c: &DefineRoute) -> Result<Result<Self, Refusal>, Malformed> {
        if c.route_id.trim().is_empty() {
            return Err(Malformed("route_id is required".into()));
        }
        if c.receivers.is_empty() {
            return Err(Malformed("a route needs at least one receiver".into()));
        }
        let mut receivers = Vec::with_capacity(c.receivers.len());
        for r in &c.receivers {
            if r.recipient_id.trim().is_empty() || !CHANNELS.contains(&r.channel.as_str()) {
                return Err(Malformed(format!(
                    "receiver ({:?}, {:?}) needs a recipient and a channel of {}",
                    r.recipient_id,
                    r.channel,
                    CHANNELS.join(", ")
                )));
            }
            receivers.push(Receiver {
                recipient_id: id("recipient_id", &r.recipient_id)?,
                channel: r.channel.clone(),
            });
        }
        let mute_time_intervals =
            c.mute_time_intervals.iter().map(TimeInterval::from_record).collect::<Result<Vec<_>, _>>()?;
        if c.group_wait_seconds < 0 || c.group_interval_seconds < 0 {
            return Err(Malformed("group_wait and group_interval may not be negative".into()));
        }
        let every = c.group_by.iter().any(|l| l == EVERY_LABEL);
        if every && c.group_by.len() > 1 {
            return Err(Malformed("group_by \"...\" stands alone".into()));
        }
        if let Some(bad) = c.group_by.iter().find(|l| !every && !valid_label_name(l)) {
            return Err(Malformed(format!("group_by label {bad:?} is not a valid label name")));
        }
        let route_id = id("route_id", &c.route_id)?;
        Ok(from_records(&c.matchers)?.map(|matchers| Self {
            route_id,
            matchers,
            receivers,
            mute_time_intervals,
            group_by: c.group_by.clone(),
            group_wait_ms: c.group_wait_seconds.saturating_mul(1000),
            group_interval_ms: c.group_interval_seconds.saturating_mul(1000),
        }))
    }

    pub fn muted_at(&self, at_ms: i64) -> bool {
        self.mute_time_intervals.iter().any(|i| i.contains(at_ms))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InhibitRule {
    pub inhibit_rule_id: InhibitRuleId,
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    pub equal: Vec<String>,
}

impl InhibitRule {
    pub fn from_command(c: &DefineInhibitRule) -> Result<Result<Self, Refusal>, Malformed> {
        if c.inhibit_rule_id.trim().is_empty() {
            return Err(Malformed("inhibit_rule_id is required".into()));
        }
        if c.source_matchers.is_empty() || c.target_matchers.is_empty() {
            return Err(Malformed("source_matchers and target_matchers may not be empty".into()));
        }
        if let Some(bad) = c.equal.iter().find(|l| !valid_label_name(l)) {
            return Err(Malformed(format!("equal label {bad:?} is not a valid label name")));
        }
        let source_matchers = match from_records(&c.source_matchers)? {
            Ok(m) => m,
            Err(r) => return Ok(Err(r)),
        };
        let inhibit_rule_id = id("inhibit_rule_id", &c.inhibit_rule_id)?;
        Ok(from_records(&c.target_matchers)?.map(|target_matchers| Self {
            inhibit_rule_id,
            source_matchers,
            target_matchers,
            equal: c.equal.clone(),
        }))
    }

    /// Whether `source` (firing) inhibits `target`: Alertmanager's rule, where a label missing on
    /// both sides counts as equal and an alert never inhibits itself.
    pub fn inhibits(&self, source: &Labels, target: &Labels) -> bool {
        source != target
            && all_match(&self.source_matchers, source)
            && all_match(&self.target_matchers, target)
            && self.equal.iter().all(|l| source.get(l) == target.get(l))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub silence_id: SilenceId,
    pub matchers: Vec<Matcher>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
    pub created_by: String,
}

impl Silence {
    pub fn from_command(c: &CreateSilence) -> Result<Result<Self, Refusal>, Malformed> {
        if c.silence_id.trim().is_empty() {
            return Err(Malformed("silence_id is required".into()));
        }
        if c.matchers.is_empty() {
            return Err(Malformed("a silence needs at least one matcher".into()));
        }
        if c.ends_at <= c.starts_at {
            return Err(Malformed("ends_at must be after starts_at".into()));
        }
        if c.ends_at <= c.metadata.occurred_at {
            return Ok(Err(Refusal::new("silence_already_ended", "ends_at is already past")));
        }
        let silence_id = id("silence_id", &c.silence_id)?;
        Ok(from_records(&c.matchers)?.map(|matchers| Self {
            silence_id,
            matchers,
            starts_at: c.starts_at,
            ends_at: c.ends_at,
            comment: c.comment.clone(),
            created_by: c.metadata.actor.clone(),
        }))
    }

    pub fn active_at(&self, at_ms: i64) -> bool {
        self.starts_at <= at_ms && at_ms < self.ends_at
    }

    /// Expiring silence `silence_id` (`stored`, when it exists) at `at_ms`: it ends then.
    /// Refused when there is no such silence or it has already ended.
    pub fn decide_expire(stored: Option<&Self>, silence_id: &str, at_ms: i64) -> Result<Self, Refusal> {
        let Some(silence) = stored else {
            return Err(Refusal::new("silence_not_found", format!("no silence {silence_id}")));
        };
        silence.expire(at_ms)
    }

    /// Expiring at `at_ms`: the silence ends then. Refused when it has already ended.
    pub fn expire(&self, at_ms: i64) -> Result<Self, Refusal> {
        if self.ends_at <= at_ms {
            return Err(Refusal::new(
                "silence_expired",
                format!("silence {} has already ended", self.silence_id),
            ));
        }
        // A silence not yet started ends before it starts: it never silences anything.
        Ok(Self { ends_at: at_ms.max(self.starts_at), ..self.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence() -> Silence {
        Silence {
            silence_id: "sil_1".parse().expect("id"),
            matchers: Vec::new(),
            starts_at: 1_000,
            ends_at: 5_000,
            comment: "maintenance".into(),
            created_by: "ops".into(),
        }
    }

    #[test]
    fn given_an_active_silence_when_it_is_expired_then_it_ends_now() {
        assert_eq!(
            Silence::decide_expire(Some(&silence()), "sil_1", 2_000),
            Ok(Silence { ends_at: 2_000, ..silence() })
        );
    }

    #[test]
    fn given_no_silence_when_one_is_expired_then_silence_not_found() {
        assert_eq!(
            Silence::decide_expire(None, "sil_9", 2_000),
            Err(Refusal::new("silence_not_found", "no silence sil_9"))
        );
    }

    #[test]
    fn given_an_ended_silence_when_it_is_expired_then_silence_expired() {
        assert_eq!(
            Silence::decide_expire(Some(&silence()), "sil_1", 5_000),
            Err(Refusal::new("silence_expired", "silence sil_1 has already ended"))
        );
    }
}
