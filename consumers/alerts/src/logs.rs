//! Structured logs: batches of records stored for search, and retention. A retention tick
//! (`EnforceLogRetention { up_to, retention_days }`) carries its instant and its period, so a
//! replay drops exactly the records the original run dropped; the alerts process sends one per
//! organization holding logs every `alerts.logs.retention_interval_secs`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use studyspot_alerts_projection::ops::{self, LogRow};
use studyspot_bus::TraceContext;
use studyspot_consumer_runtime::{HandleError, Inbound, Sidecar, SidecarContext};
use studyspot_schemas::{
    EventMetadata, Record,
    alerts::{EnforceLogRetention, LogRecord, RecordLogs},
};

/// From least to most severe; a search for a level finds it and everything more severe.
pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];
/// At most this many records in one command.
pub const MAX_BATCH: usize = 1000;
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
const DAY_MS: i64 = 86_400_000;

pub fn level_rank(level: &str) -> Option<i16> {
    LEVELS.iter().position(|l| *l == level).and_then(|i| i16::try_from(i).ok())
}

/// The first record logged at or after this instant survives a tick at `up_to`.
pub fn cutoff(up_to_ms: i64, retention_days: i32) -> i64 {
    up_to_ms.saturating_sub(i64::from(retention_days).saturating_mul(DAY_MS))
}

/// What the contract forbids in a record (the gateway lets none of these through).
pub fn validate(i: usize, r: &LogRecord) -> Result<(), String> {
    if level_rank(&r.level).is_none() {
        return Err(format!("records[{i}].level {:?} is not one of {}", r.level, LEVELS.join(", ")));
    }
    if r.service.trim().is_empty() {
        return Err(format!("records[{i}].service is required"));
    }
    if r.message.len() > MAX_MESSAGE_BYTES {
        return Err(format!("records[{i}].message is longer than {MAX_MESSAGE_BYTES} bytes"));
    }
    if DateTime::from_timestamp_millis(r.time).is_none() {
        return Err(format!("records[{i}].time is not a valid time"));
    }
    Ok(())
}

pub async fn record(tx: &mut PgConnection, message: &Inbound) -> Result<(), HandleError> {
    let c: RecordLogs = message.record()?;
    let malformed = |reason: String| HandleError::malformed(RecordLogs::FULL_NAME, reason);
    if c.records.is_empty() || c.records.len() > MAX_BATCH {
        return Err(malformed(format!("records must hold 1 to {MAX_BATCH} records")));
    }
    c.records.iter().enumerate().try_for_each(|(i, r)| validate(i, r)).map_err(malformed)?;
    let org = &message.metadata.organization_id;
    let rows = c
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(LogRow {
                log_id: format!("{}/{i}", message.metadata.event_id),
                organization_id: org,
                logged_at: DateTime::from_timestamp_millis(r.time).unwrap_or_default(),
                level: &r.level,
                level_rank: level_rank(&r.level).unwrap_or_default(),
                service: &r.service,
                message: &r.message,
                fields: serde_json::to_value(&r.fields)
                    .map_err(|e| HandleError::Fatal(format!("alerts projection: {e}")))?,
            })
        })
        .collect::<Result<Vec<_>, HandleError>>()?;
    ops::insert_logs(tx, &rows).await?;
    Ok(())
}

pub async fn enforce_retention(tx: &mut PgConnection, message: &Inbound) -> Result<(), HandleError> {
    let c: EnforceLogRetention = message.record()?;
    if c.retention_days < 1 {
        return Err(HandleError::malformed(
            EnforceLogRetention::FULL_NAME,
            "retention_days must be at least 1",
        ));
    }
    let before = DateTime::from_timestamp_millis(cutoff(c.up_to, c.retention_days))
        .ok_or_else(|| HandleError::malformed(EnforceLogRetention::FULL_NAME, "up_to is not a valid time"))?;
    let dropped = ops::delete_logs_before(tx, &message.metadata.organization_id, before).await?;
    tracing::debug!(organization_id = %message.metadata.organization_id, dropped, %before, "log retention");
    Ok(())
}

/// The tick for `organization_id` at `up_to`; its id is derived from both, so two alerts
/// instances asking at the same instant produce one tick.
pub fn retention_tick(
    organization_id: &str,
    up_to: DateTime<Utc>,
    retention_days: i32,
) -> EnforceLogRetention {
    let name = format!("log-retention/{organization_id}/{}", up_to.timestamp_millis());
    EnforceLogRetention {
        metadata: EventMetadata {
            event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string(),
            occurred_at: up_to.timestamp_millis(),
            correlation_id: name,
            causation_id: None,
            organization_id: organization_id.to_owned(),
            actor: "service:alerts-scheduler".to_owned(),
        },
        up_to: up_to.timestamp_millis(),
        retention_days,
    }
}

/// Sends the retention ticks every `alerts.logs.retention_interval_secs` (0: never).
pub fn retention_sidecar() -> Sidecar {
    Box::new(|ctx: SidecarContext| {
        Box::pin(async move {
            let settings = ctx.settings.alerts.logs.clone();
            if settings.retention_interval_secs == 0 {
                return;
            }
            let mut ticks = tokio::time::interval(Duration::from_secs(settings.retention_interval_secs));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = ctx.shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_else(Utc::now);
                if let Err(e) = send_ticks(&ctx, now, settings.retention_days).await {
                    tracing::warn!(error = %e, "could not ask for log retention; retrying next tick");
                }
            }
        })
    })
}

async fn send_ticks(
    ctx: &SidecarContext,
    now: DateTime<Utc>,
    retention_days: i32,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut tx = ctx.pool.begin().await?;
    let organizations = ops::organizations_with_logs(&mut *tx).await?;
    for organization_id in &organizations {
        ctx.outbox
            .enqueue(&mut tx, &retention_tick(organization_id, now, retention_days), &TraceContext::root())
            .await?;
    }
    tx.commit().await?;
    if !organizations.is_empty() {
        ctx.outbox.wake();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn log(level: &str) -> LogRecord {
        LogRecord {
            time: 1_700_000_000_000,
            level: level.into(),
            service: "billing".into(),
            message: "charge failed".into(),
            fields: HashMap::new(),
        }
    }

    #[test]
    fn levels_rank_from_trace_to_fatal_and_unknown_ones_are_malformed() {
        assert_eq!(LEVELS.map(level_rank), [0, 1, 2, 3, 4, 5].map(Some));
        assert!(validate(0, &log("warn")).is_ok());
        assert_eq!(validate(3, &log("WARNING")).unwrap_err().split(' ').next(), Some("records[3].level"));
        let mut nameless = log("info");
        nameless.service = " ".into();
        assert!(validate(0, &nameless).is_err());
    }

    #[test]
    fn a_tick_keeps_exactly_the_last_retention_days() {
        let up_to = 1_700_000_000_000;
        assert_eq!(cutoff(up_to, 14), up_to - 14 * DAY_MS);
        assert_eq!(cutoff(i64::MIN + 5, 1), i64::MIN, "saturates instead of wrapping");
    }

    #[test]
    fn two_instances_asking_at_one_instant_name_one_tick() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let (a, b) = (retention_tick("org_1", at, 14), retention_tick("org_1", at, 14));
        assert_eq!(a.metadata.event_id, b.metadata.event_id);
        assert_ne!(a.metadata.event_id, retention_tick("org_2", at, 14).metadata.event_id);
        assert_eq!((a.up_to, a.retention_days), (at.timestamp_millis(), 14));
    }
}
