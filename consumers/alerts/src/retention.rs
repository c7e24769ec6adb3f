//! Sample retention: the scheduler asks each organization to drop samples older than
//! `alerts.sample_retention_days` with a time-carrying `PruneMetricSamples`; the cut-off travels
//! in the command, so a replay keeps exactly the samples the original run kept.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use studyspot_alerts_projection::insights;
use studyspot_consumer_runtime::{HandleError, Out};
use studyspot_schemas::alerts::{MetricSamplesPruned, PruneMetricSamples};

use crate::shell::time;

const ACTOR: &str = "service:alerts-scheduler";

/// The cut-off of a retention window of `days` at `now`: samples before it go.
pub fn cutoff(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - chrono::Duration::days(i64::from(days))
}

/// The retention tick for `organization_id` at `now`; its id derives from both, so two
/// schedulers (or a restart) asking at the same instant produce one tick.
pub fn prune_for(organization_id: &str, now: DateTime<Utc>, days: u32) -> PruneMetricSamples {
    let name = format!("prune-metric-samples/{organization_id}/{}", now.timestamp_millis());
    PruneMetricSamples {
        metadata: studyspot_consumer_runtime::ticker::metadata(name, organization_id, now, ACTOR),
        older_than: cutoff(now, days).timestamp_millis(),
    }
}

pub(crate) async fn prune(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: PruneMetricSamples = out.message.record()?;
    let older_than = time::<PruneMetricSamples>("older_than", c.older_than)?;
    let org = out.org().to_owned();
    let removed = insights::prune_samples(tx, &org, older_than).await?;
    out.emit(|metadata| MetricSamplesPruned {
        metadata,
        older_than: c.older_than,
        removed: i64::try_from(removed).unwrap_or(i64::MAX),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn given_a_thirty_day_window_when_the_tick_comes_then_older_samples_are_cut() {
        let tick = prune_for("org_1", at("2026-11-26T00:00:00Z"), 30);
        assert_eq!(tick.older_than, at("2026-10-27T00:00:00Z").timestamp_millis());
        assert_eq!(tick.metadata.occurred_at, at("2026-11-26T00:00:00Z").timestamp_millis());
    }

    #[test]
    fn given_the_same_instant_when_asked_twice_then_one_tick() {
        let now = at("2026-11-26T00:00:00Z");
        assert_eq!(
            prune_for("org_1", now, 30).metadata.event_id,
            prune_for("org_1", now, 30).metadata.event_id
        );
        assert_ne!(
            prune_for("org_1", now, 30).metadata.event_id,
            prune_for("org_2", now, 30).metadata.event_id
        );
    }
}
