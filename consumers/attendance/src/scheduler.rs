//! The attendance scheduler: every `attendance.scheduler_interval_secs` it asks each venue with
//! due work (an automatic check-out at closing time or after the maximum stay, a booking whose
//! no-show grace ran out) for a time-carrying `RunAttendance { up_to: now }` through the outbox.
//! The clock is read here, outside `decide`: the instant travels in the command.

use chrono::{DateTime, Utc};
use studyspot_consumer_runtime::{Sidecar, SidecarContext, ticker};
use studyspot_schemas::attendance::RunAttendance;

const ACTOR: &str = "service:attendance-scheduler";

/// The run for a venue up to `up_to`; its id is derived from both, so two schedulers (or a
/// restart) asking for the same instant produce one run.
pub fn run_for(organization_id: &str, venue_id: &str, up_to: DateTime<Utc>) -> RunAttendance {
    let name = format!("run-attendance/{organization_id}/{venue_id}/{}", up_to.timestamp_millis());
    RunAttendance {
        metadata: ticker::metadata(name, organization_id, up_to, ACTOR),
        venue_id: venue_id.to_owned(),
        up_to: up_to.timestamp_millis(),
    }
}

pub fn sidecar() -> Sidecar {
    Box::new(|ctx: SidecarContext| {
        Box::pin(async move {
            let every = ctx.settings.attendance.scheduler_interval_secs;
            let failed = "attendance scheduler could not ask for due work";
            ticker::every(&ctx.shutdown, every, failed, |now| schedule(&ctx, now)).await;
        })
    })
}

async fn schedule(ctx: &SidecarContext, now: DateTime<Utc>) -> Result<(), ticker::TickError> {
    let mut tx = ctx.pool.begin().await?;
    let due = studyspot_attendance_projection::write::venues_due(&mut *tx, now).await?;
    let runs: Vec<_> = due.iter().map(|(organization, venue)| run_for(organization, venue, now)).collect();
    let runs = ctx.request(tx, runs).await?;
    if runs > 0 {
        tracing::info!(venues = runs, up_to = %now, "attendance runs requested");
    }
    Ok(())
}
