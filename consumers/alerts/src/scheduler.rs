//! The alerts scheduler: every `alerts.evaluation_interval_secs` it asks each organization with
//! enabled rules for an evaluation with a time-carrying `EvaluateRules` ("evaluate at now"). The
//! clock is read here, outside `decide`: the instant travels in the command, so a replay
//! evaluates the same.

use chrono::{DateTime, Utc};
use studyspot_consumer_runtime::{Sidecar, SidecarContext, ticker};
use studyspot_schemas::alerts::EvaluateRules;

const ACTOR: &str = "service:alerts-scheduler";

/// The tick for `organization_id` at `up_to`; its id is derived from both, so two schedulers
/// (or a restart) asking for the same instant produce one tick.
pub fn tick_for(organization_id: &str, up_to: DateTime<Utc>) -> EvaluateRules {
    let name = format!("evaluate-rules/{organization_id}/{}", up_to.timestamp_millis());
    EvaluateRules {
        metadata: ticker::metadata(name, organization_id, up_to, ACTOR),
        up_to: up_to.timestamp_millis(),
    }
}

pub fn sidecar() -> Sidecar {
    Box::new(|ctx: SidecarContext| {
        Box::pin(async move {
            let every = ctx.settings.alerts.evaluation_interval_secs;
            let failed = "alerts scheduler could not ask for an evaluation";
            ticker::every(&ctx.shutdown, every, failed, |now| schedule(&ctx, now)).await;
        })
    })
}

async fn schedule(ctx: &SidecarContext, now: DateTime<Utc>) -> Result<(), ticker::TickError> {
    let mut tx = ctx.pool.begin().await?;
    let organizations = studyspot_alerts_projection::alerting::organizations_with_rules(&mut *tx).await?;
    let ticks: Vec<_> = organizations.iter().map(|organization_id| tick_for(organization_id, now)).collect();
    let ticks = ctx.request(tx, ticks).await?;
    if ticks > 0 {
        tracing::debug!(organizations = ticks, up_to = %now, "rule evaluations requested");
    }
    Ok(())
}
