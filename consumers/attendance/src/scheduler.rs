//! The attendance scheduler: every `attendance.scheduler_interval_secs` it asks each venue with
//! due work (an automatic check-out at closing time or after the maximum stay, a booking whose
//! no-show grace ran out) for a time-carrying `RunAttendance { up_to: now }` through the outbox.
//! The clock is read here, outside `decide`: the instant travels in the command.

use std::time::Duration;

use chrono::{DateTime, Utc};
use studyspot_bus::TraceContext;
use studyspot_consumer_runtime::{Sidecar, SidecarContext};
use studyspot_schemas::{EventMetadata, attendance::RunAttendance};

const ACTOR: &str = "service:attendance-scheduler";

/// The run for a venue up to `up_to`; its id is derived from both, so two schedulers (or a
/// restart) asking for the same instant produce one run.
pub fn run_for(organization_id: &str, venue_id: &str, up_to: DateTime<Utc>) -> RunAttendance {
    let name = format!("run-attendance/{organization_id}/{venue_id}/{}", up_to.timestamp_millis());
    RunAttendance {
        metadata: EventMetadata {
            event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string(),
            occurred_at: up_to.timestamp_millis(),
            correlation_id: name.clone(),
            causation_id: None,
            organization_id: organization_id.to_owned(),
            actor: ACTOR.to_owned(),
        },
        venue_id: venue_id.to_owned(),
        up_to: up_to.timestamp_millis(),
    }
}

pub fn sidecar() -> Sidecar {
    Box::new(|ctx: SidecarContext| {
        Box::pin(async move {
            let every = ctx.settings.attendance.scheduler_interval_secs;
            if every == 0 {
                return;
            }
            let mut ticks = tokio::time::interval(Duration::from_secs(every));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = ctx.shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                // Whole seconds, so instances ticking together name the same run.
                let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_else(Utc::now);
                if let Err(e) = schedule(&ctx, now).await {
                    tracing::warn!(error = %e, "attendance scheduler could not ask for due work; retrying next tick");
                }
            }
        })
    })
}

async fn schedule(
    ctx: &SidecarContext,
    now: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut tx = ctx.pool.begin().await?;
    let due = studyspot_attendance_projection::write::venues_due(&mut *tx, now).await?;
    for (organization_id, venue_id) in &due {
        ctx.outbox.enqueue(&mut tx, &run_for(organization_id, venue_id, now), &TraceContext::root()).await?;
    }
    tx.commit().await?;
    if !due.is_empty() {
        ctx.outbox.wake();
        tracing::info!(venues = due.len(), up_to = %now, "attendance runs requested");
    }
    Ok(())
}
