//! The alerts scheduler's insight ticks, besides rule evaluation ([`crate::scheduler`]): the
//! clock and the broker are read here, outside `decide`, and what they say travels in commands
//! on alerts' own organization-keyed topic, so a replay rebuilds the same history.
//!
//! - every `alerts.insights_interval_secs`: `GenerateReports { up_to }` for organizations with
//!   reports and `PruneMetricSamples { older_than }` (`alerts.sample_retention_days`) for
//!   organizations with samples;
//! - every `alerts.broker_sample_interval_secs`: the records on each dead-letter topic and each
//!   consumer group's lag (high watermark less its committed offset), as samples of every
//!   organization with rules.

use std::{collections::BTreeMap, collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use studyspot_alerts_projection::{
    alerting,
    insights::{self, CONSUMER_LAG_METRIC, DEAD_LETTERS_METRIC},
};
use studyspot_bus::{BusSettings, PartitionId, TraceContext, history::Watermarks};
use studyspot_consumer_runtime::{Sidecar, SidecarContext, ticker};
use studyspot_schemas::alerts::{MetricSample, RecordMetricSamples};

use crate::{reports, retention};

const ACTOR: &str = "service:alerts-scheduler";
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

type Error = Box<dyn std::error::Error + Send + Sync>;

pub fn sidecar() -> Sidecar {
    Box::new(|ctx: SidecarContext| {
        Box::pin(async move {
            let ctx = Arc::new(ctx);
            let insights =
                tokio::spawn(every(ctx.clone(), ctx.settings.alerts.insights_interval_secs, Tick::Insights));
            let broker = tokio::spawn(every(
                ctx.clone(),
                ctx.settings.alerts.broker_sample_interval_secs,
                Tick::Broker,
            ));
            let _ = tokio::join!(insights, broker);
        })
    })
}

#[derive(Clone, Copy)]
enum Tick {
    Insights,
    Broker,
}

async fn every(ctx: Arc<SidecarContext>, secs: u64, tick: Tick) {
    let failed = "alerts scheduler could not ask for insight ticks";
    ticker::every(&ctx.shutdown, secs, failed, |now| {
        let ctx = &ctx;
        async move {
            match tick {
                Tick::Insights => insights(ctx, now).await,
                Tick::Broker => broker(ctx, now).await,
            }
        }
    })
    .await;
}

async fn insights(ctx: &SidecarContext, now: DateTime<Utc>) -> Result<(), Error> {
    let mut tx = ctx.pool.begin().await?;
    let with_reports = insights::organizations_with_reports(&mut *tx).await?;
    for org in &with_reports {
        ctx.outbox.enqueue(&mut tx, &reports::tick_for(org, now), &TraceContext::root()).await?;
    }
    let days = ctx.settings.alerts.sample_retention_days;
    let with_samples = insights::organizations_with_samples(&mut *tx).await?;
    for org in &with_samples {
        ctx.outbox.enqueue(&mut tx, &retention::prune_for(org, now, days), &TraceContext::root()).await?;
    }
    tx.commit().await?;
    if !with_reports.is_empty() || !with_samples.is_empty() {
        ctx.outbox.wake();
    }
    Ok(())
}

/// Samples of the broker at `at`, the same for every organization.
fn broker_samples(
    settings: &studyspot_config::Settings,
    bus: &BusSettings,
    at: DateTime<Utc>,
) -> Result<Vec<MetricSample>, Error> {
    let prefix = &settings.kafka.topic_prefix;
    let mut samples = Vec::new();
    let mut marks: BTreeMap<PartitionId, Watermarks> = BTreeMap::new();
    for topic in studyspot_schemas::catalogue() {
        for name in [topic.name, topic.dead_letter] {
            let kafka_name = format!("{prefix}{name}");
            // A topic not created yet (a dead-letter topic nobody wrote to) has nothing to count.
            match studyspot_bus::history::watermarks(bus, std::slice::from_ref(&kafka_name), BROKER_TIMEOUT) {
                Ok(found) => marks.extend(found),
                Err(e) => tracing::debug!(topic = %kafka_name, error = %e, "no watermarks"),
            }
        }
        let dead_letter = format!("{prefix}{}", topic.dead_letter);
        let records: i64 = marks.iter().filter(|(p, _)| p.topic == dead_letter).map(|(_, m)| m.high).sum();
        if marks.keys().any(|p| p.topic == dead_letter) {
            samples.push(sample(DEAD_LETTERS_METRIC, &[("topic", topic.dead_letter)], records, at));
        }
    }
    let partitions: Vec<PartitionId> = marks.keys().filter(|p| !p.topic.ends_with(".dlq")).cloned().collect();
    for consumer in &settings.alerts.lag_consumers {
        let group = format!("{prefix}studyspot.{consumer}");
        let committed = studyspot_bus::lag::committed_offsets(bus, &group, &partitions, BROKER_TIMEOUT)?;
        let mut lag: BTreeMap<&str, i64> = BTreeMap::new();
        for p in committed.keys() {
            lag.entry(p.topic.as_str()).or_default();
        }
        for p in &partitions {
            let Some(total) = lag.get_mut(p.topic.as_str()) else { continue };
            let m = marks[p];
            // A partition the group never committed is unread from its first stored record.
            let position = committed.get(p).copied().unwrap_or(m.low);
            *total += (m.high - position).max(0);
        }
        for (topic, records) in lag {
            let topic = topic.strip_prefix(prefix.as_str()).unwrap_or(topic);
            samples.push(sample(
                CONSUMER_LAG_METRIC,
                &[("consumer", consumer), ("topic", topic)],
                records,
                at,
            ));
        }
    }
    Ok(samples)
}

fn sample(metric: &str, labels: &[(&str, &str)], value: i64, at: DateTime<Utc>) -> MetricSample {
    MetricSample {
        metric: metric.into(),
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>(),
        value: value as f64,
        sampled_at: at.timestamp_millis(),
    }
}

/// The broker samples for `organization_id` at `at`; the id derives from both.
pub fn broker_samples_for(
    organization_id: &str,
    at: DateTime<Utc>,
    samples: Vec<MetricSample>,
) -> RecordMetricSamples {
    let name = format!("broker-samples/{organization_id}/{}", at.timestamp_millis());
    RecordMetricSamples { metadata: ticker::metadata(name, organization_id, at, ACTOR), samples }
}

async fn broker(ctx: &SidecarContext, now: DateTime<Utc>) -> Result<(), Error> {
    let organizations = alerting::organizations_with_rules(&ctx.pool).await?;
    if organizations.is_empty() {
        return Ok(());
    }
    let settings = ctx.settings.clone();
    let samples = tokio::task::spawn_blocking(move || {
        let bus = BusSettings::from_settings(&settings, "studyspot-alerts-broker-sampler");
        broker_samples(&settings, &bus, now)
    })
    .await??;
    if samples.is_empty() {
        return Ok(());
    }
    let mut tx = ctx.pool.begin().await?;
    for org in &organizations {
        ctx.outbox
            .enqueue(&mut tx, &broker_samples_for(org, now, samples.clone()), &TraceContext::root())
            .await?;
    }
    tx.commit().await?;
    ctx.outbox.wake();
    Ok(())
}
