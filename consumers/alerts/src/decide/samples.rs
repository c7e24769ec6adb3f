//! Metric samples: Prometheus' naming rules.

use studyspot_schemas::alerts::{MetricSample, RecordMetricSample};

use super::Malformed;

/// Prometheus' rule for metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Prometheus' rule for label names: `[a-zA-Z_][a-zA-Z0-9_]*`, `__` reserved.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn validate_sample(c: &RecordMetricSample) -> Result<(), Malformed> {
    if c.metadata.organization_id.trim().is_empty() {
        return Err(Malformed("metadata.organization_id is empty".into()));
    }
    validate_one(&MetricSample {
        metric: c.metric.clone(),
        labels: c.labels.clone(),
        value: c.value,
        sampled_at: c.sampled_at,
    })
}

/// One sample of a batch (or a single one).
pub fn validate_one(c: &MetricSample) -> Result<(), Malformed> {
    if !valid_metric_name(&c.metric) {
        return Err(Malformed(format!("metric {:?} is not a valid metric name", c.metric)));
    }
    if let Some(bad) = c.labels.keys().find(|k| !valid_label_name(k)) {
        return Err(Malformed(format!("label {bad:?} is not a valid label name")));
    }
    if !c.value.is_finite() {
        return Err(Malformed(format!("value {} is not finite", c.value)));
    }
    if chrono::DateTime::from_timestamp_millis(c.sampled_at).is_none() {
        return Err(Malformed(format!("sampled_at {} is not a valid time", c.sampled_at)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use studyspot_schemas::EventMetadata;

    use super::*;

    fn sample(metric: &str, value: f64) -> RecordMetricSample {
        RecordMetricSample {
            metadata: EventMetadata::example(),
            metric: metric.into(),
            labels: HashMap::from([("venue".into(), "ven_1".into())]),
            value,
            sampled_at: 1_700_000_000_000,
        }
    }

    #[test]
    fn prometheus_names_are_accepted() {
        assert_eq!(validate_sample(&sample("payment_failure_ratio", 0.25)), Ok(()));
        assert_eq!(validate_sample(&sample("job:latency:p99", 1.0)), Ok(()));
    }

    #[test]
    fn bad_names_labels_and_values_are_malformed() {
        assert!(validate_sample(&sample("9lives", 1.0)).is_err());
        assert!(validate_sample(&sample("with space", 1.0)).is_err());
        assert!(validate_sample(&sample("ok", f64::NAN)).is_err());
        assert!(validate_sample(&sample("ok", f64::INFINITY)).is_err());
        let mut reserved = sample("ok", 1.0);
        reserved.labels.insert("__name__".into(), "x".into());
        assert!(validate_sample(&reserved).is_err());
    }
}
