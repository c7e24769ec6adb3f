//! What a health check may look like, and the alert rule each one brings: `HealthCheckDown`
//! fires when the check's `studyspot_health_check_up` sample drops to 0 (it is `down`), through
//! the same lifecycle, silences, inhibitions and routes as every other rule.

use std::collections::HashMap;

use studyspot_schemas::{
    EventMetadata,
    alerts::{DefineAlertRule, DefineHealthCheck, Matcher},
};

use crate::decide::{Malformed, config::SEVERITIES, samples::valid_label_name};

/// 1 while the check is `unknown` or `up`, 0 while it is `down`; labelled `health_check_id`,
/// `health_check` (its name) and `target`.
pub const UP_METRIC: &str = "studyspot_health_check_up";
/// How long each probe took, in seconds; labelled as [`UP_METRIC`].
pub const LATENCY_METRIC: &str = "studyspot_health_check_latency_seconds";
/// The `alertname` of every health check's alert.
pub const ALERT_NAME: &str = "HealthCheckDown";

pub const MAX_TIMEOUT_MS: i64 = 60_000;

/// The rule id of a check's alert.
pub fn rule_id(health_check_id: &str) -> String {
    format!("rul_health_{health_check_id}")
}

pub fn validate(c: &DefineHealthCheck) -> Result<(), Malformed> {
    if c.health_check_id.trim().is_empty() || c.name.trim().is_empty() {
        return Err(Malformed("health_check_id and name are required".into()));
    }
    match c.kind.as_str() {
        "http" => {
            let url = url::Url::parse(&c.target)
                .map_err(|e| Malformed(format!("target {:?} is not a URL: {e}", c.target)))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(Malformed(format!("target {:?} is not an http(s) URL", c.target)));
            }
            if !(100..=599).contains(&c.expected_status) {
                return Err(Malformed(format!(
                    "expected_status {} is not an HTTP status",
                    c.expected_status
                )));
            }
        }
        "tcp" => tcp_target(&c.target)?,
        other => return Err(Malformed(format!("kind {other:?} is not http or tcp"))),
    }
    if c.interval_seconds < 1 || c.interval_seconds > 86_400 {
        return Err(Malformed("interval_seconds must be 1 to 86400".into()));
    }
    if c.timeout_ms < 1 || c.timeout_ms > MAX_TIMEOUT_MS {
        return Err(Malformed(format!("timeout_ms must be 1 to {MAX_TIMEOUT_MS}")));
    }
    if c.failure_threshold < 1 || c.failure_threshold > 100 {
        return Err(Malformed("failure_threshold must be 1 to 100".into()));
    }
    if !SEVERITIES.contains(&c.severity.as_str()) {
        return Err(Malformed(format!("severity {:?} is not critical, warning or info", c.severity)));
    }
    if let Some(bad) = c.labels.keys().find(|l| !valid_label_name(l)) {
        return Err(Malformed(format!("label {bad:?} is not a valid label name")));
    }
    Ok(())
}

/// `host:port` (a bracketed IPv6 host too), port 1 to 65535.
pub fn tcp_target(target: &str) -> Result<(), Malformed> {
    let bad = || Malformed(format!("target {target:?} is not host:port"));
    let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.contains('/') {
        return Err(bad());
    }
    Ok(())
}

/// The labels of the check's samples (and so of its alert, by `group_by`).
pub fn sample_labels(health_check_id: &str, name: &str, target: &str) -> HashMap<String, String> {
    HashMap::from([
        ("health_check_id".to_owned(), health_check_id.to_owned()),
        ("health_check".to_owned(), name.to_owned()),
        ("target".to_owned(), target.to_owned()),
    ])
}

/// The rule a check brings: the latest `up` sample in a window of four intervals (at least a
/// minute) below 1, firing at once (the check's own `failure_threshold` is its `for`), repeated
/// every four hours. A check whose probes stop (the prober itself is down) has no value once
/// the window is empty, and its alert resolves, as a stale series does in Prometheus; the
/// prober's own process is checked by the other processes' scrapes in `deploy/prometheus`.
pub fn rule(c: &DefineHealthCheck, metadata: EventMetadata) -> DefineAlertRule {
    let mut labels = c.labels.clone();
    labels.insert("health_check".into(), c.name.clone());
    let how = if c.kind == "http" {
        format!("GET {} did not answer {} within {} ms", c.target, c.expected_status, c.timeout_ms)
    } else {
        format!("{} did not accept a TCP connection within {} ms", c.target, c.timeout_ms)
    };
    DefineAlertRule {
        metadata,
        rule_id: rule_id(&c.health_check_id),
        name: ALERT_NAME.into(),
        kind: "threshold".into(),
        metric: UP_METRIC.into(),
        matchers: vec![Matcher {
            name: "health_check_id".into(),
            op: "=".into(),
            value: c.health_check_id.clone(),
        }],
        aggregation: "last".into(),
        denominator_metric: None,
        denominator_matchers: Vec::new(),
        window_seconds: (4 * c.interval_seconds).max(60),
        for_seconds: 0,
        op: "<".into(),
        threshold: 1.0,
        severity: c.severity.clone(),
        labels,
        annotations: HashMap::from([
            ("summary".to_owned(), format!("{} is down", c.name)),
            ("description".to_owned(), format!("{how}, {} times in a row", c.failure_threshold)),
        ]),
        group_by: vec!["health_check_id".into(), "target".into()],
        repeat_interval_seconds: 4 * 3600,
        enabled: c.enabled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::config::Rule;

    fn check(kind: &str, target: &str) -> DefineHealthCheck {
        DefineHealthCheck {
            metadata: EventMetadata::example(),
            health_check_id: "hck_stripe".into(),
            name: "Stripe API".into(),
            kind: kind.into(),
            target: target.into(),
            expected_status: 200,
            interval_seconds: 30,
            timeout_ms: 2000,
            failure_threshold: 3,
            labels: HashMap::from([("team".to_owned(), "billing".to_owned())]),
            severity: "critical".into(),
            enabled: true,
        }
    }

    #[test]
    fn http_and_tcp_targets_are_checked() {
        assert!(validate(&check("http", "https://api.stripe.com/healthcheck")).is_ok());
        assert!(validate(&check("http", "ftp://example.org")).is_err());
        assert!(validate(&check("http", "not a url")).is_err());
        assert!(validate(&check("tcp", "db.internal:5432")).is_ok());
        assert!(validate(&check("tcp", "[::1]:9092")).is_ok());
        assert!(validate(&check("tcp", "db.internal")).is_err());
        assert!(validate(&check("tcp", "db.internal:0")).is_err());
        assert!(validate(&check("icmp", "db.internal")).is_err());
        let mut c = check("tcp", "db:1");
        c.failure_threshold = 0;
        assert!(validate(&c).is_err());
    }

    #[test]
    fn a_check_brings_a_valid_rule_that_fires_below_one_for_its_own_id() {
        let c = check("http", "https://api.stripe.com/healthcheck");
        let command = rule(&c, EventMetadata::example());
        let r = Rule::from_command(&command).expect("well formed").expect("not refused");
        assert_eq!(r.rule_id, "rul_health_hck_stripe");
        assert_eq!((r.name.as_str(), r.metric.as_str(), r.threshold), (ALERT_NAME, UP_METRIC, 1.0));
        assert_eq!(r.window_ms, 120_000, "four intervals of 30 s");
        assert_eq!(r.labels.get("team").map(String::as_str), Some("billing"));
        assert_eq!(r.labels.get("health_check").map(String::as_str), Some("Stripe API"));
        assert_eq!(r.severity, "critical");
        assert!(r.op.holds(0.0, r.threshold) && !r.op.holds(1.0, r.threshold));
    }
}
