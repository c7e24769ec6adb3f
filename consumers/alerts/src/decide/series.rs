//! A rule's values at an instant: the samples in its window `(at - window, at]`, split by its
//! `group_by` labels, reduced by its kind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    Labels,
    config::{Aggregation, Kind, Rule},
    matchers::{Matcher, all_match},
};

/// A stored sample, as evaluation reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub metric: String,
    pub labels: Labels,
    pub value: f64,
    pub at_ms: i64,
}

impl Sample {
    pub fn new(metric: &str, labels: &[(&str, &str)], value: f64, at_ms: i64) -> Self {
        Self {
            metric: metric.into(),
            labels: labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            value,
            at_ms,
        }
    }
}

fn group_of(rule: &Rule, labels: &Labels) -> Labels {
    rule.group_by.iter().map(|l| (l.clone(), labels.get(l).cloned().unwrap_or_default())).collect()
}

fn in_window<'a>(
    rule: &'a Rule,
    samples: &'a [Sample],
    at_ms: i64,
    metric: &'a str,
    matchers: &'a [Matcher],
) -> impl Iterator<Item = &'a Sample> + 'a {
    samples.iter().filter(move |s| {
        s.metric == metric
            && s.at_ms > at_ms - rule.window_ms
            && s.at_ms <= at_ms
            && all_match(matchers, &s.labels)
    })
}

fn grouped<'a>(rule: &Rule, samples: impl Iterator<Item = &'a Sample>) -> BTreeMap<Labels, Vec<&'a Sample>> {
    let mut groups: BTreeMap<Labels, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        groups.entry(group_of(rule, &s.labels)).or_default().push(s);
    }
    groups
}

fn sum(samples: &[&Sample]) -> f64 {
    samples.iter().map(|s| s.value).sum()
}

/// The rule's value per group at `at_ms`; a group without samples (or, for a ratio, without a
/// denominator) has no value, and no value never satisfies a condition.
pub fn values(rule: &Rule, samples: &[Sample], at_ms: i64) -> BTreeMap<Labels, f64> {
    let main = grouped(rule, in_window(rule, samples, at_ms, &rule.metric, &rule.matchers));
    match rule.kind {
        Kind::Threshold => main.into_iter().map(|(g, s)| (g, aggregate(rule.aggregation, &s))).collect(),
        Kind::Rate => {
            let seconds = rule.window_ms as f64 / 1000.0;
            main.into_iter().map(|(g, s)| (g, sum(&s) / seconds)).collect()
        }
        Kind::Ratio => {
            let metric = rule.denominator_metric.as_deref().unwrap_or(&rule.metric);
            let denominators =
                grouped(rule, in_window(rule, samples, at_ms, metric, &rule.denominator_matchers));
            denominators
                .into_iter()
                .filter_map(|(g, d)| {
                    let d = sum(&d);
                    let n = main.get(&g).map_or(0.0, |n| sum(n));
                    (d != 0.0).then(|| (g, n / d))
                })
                .collect()
        }
    }
}

fn aggregate(aggregation: Aggregation, samples: &[&Sample]) -> f64 {
    let values = samples.iter().map(|s| s.value);
    match aggregation {
        Aggregation::Sum => sum(samples),
        Aggregation::Avg => sum(samples) / samples.len() as f64,
        Aggregation::Min => values.fold(f64::INFINITY, f64::min),
        Aggregation::Max => values.fold(f64::NEG_INFINITY, f64::max),
        Aggregation::Count => samples.len() as f64,
        // The latest sample; of two at one instant, the larger (so the order they came in does not matter).
        Aggregation::Last => samples
            .iter()
            .max_by(|a, b| a.at_ms.cmp(&b.at_ms).then(a.value.total_cmp(&b.value)))
            .map_or(f64::NAN, |s| s.value),
        Aggregation::Increase => {
            let by_time =
                |a: &&&Sample, b: &&&Sample| a.at_ms.cmp(&b.at_ms).then(a.value.total_cmp(&b.value));
            match (samples.iter().min_by(by_time), samples.iter().max_by(by_time)) {
                (Some(first), Some(last)) => last.value - first.value,
                _ => f64::NAN,
            }
        }
    }
}
