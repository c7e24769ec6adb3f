//! The billing scheduler: every `billing.subscriptions.scheduler_interval_secs` it asks for each
//! organization's due billing with a time-carrying `RunBilling` ("bill up to now"). The clock is
//! read here, outside `decide`: the instant travels in the command, so a replay bills the same.

use chrono::{DateTime, Utc};
use studyspot_consumer_runtime::{Sidecar, SidecarContext, ticker};
use studyspot_schemas::billing::RunBilling;

const ACTOR: &str = "service:billing-scheduler";

/// The run for `organization_id` up to `up_to`; its id is derived from both, so two schedulers
/// (or a restart) asking for the same instant produce one run.
pub fn run_for(organization_id: &str, up_to: DateTime<Utc>) -> RunBilling {
    let name = format!("run-billing/{organization_id}/{}", up_to.timestamp_millis());
    RunBilling {
        metadata: ticker::metadata(name, organization_id, up_to, ACTOR),
        up_to: up_to.timestamp_millis(),
    }
}

pub fn sidecar() -> Sidecar {
    Box::new(|ctx: SidecarContext| {
        Box::pin(async move {
            let every = ctx.settings.billing.subscriptions.scheduler_interval_secs;
            let failed = "billing scheduler could not ask for due billing";
            ticker::every(&ctx.shutdown, every, failed, |now| schedule(&ctx, now)).await;
        })
    })
}

async fn schedule(ctx: &SidecarContext, now: DateTime<Utc>) -> Result<(), ticker::TickError> {
    let mut tx = ctx.pool.begin().await?;
    let organizations = studyspot_billing_projection::subscriptions::organizations_due(&mut *tx, now).await?;
    let runs: Vec<_> = organizations.iter().map(|organization_id| run_for(organization_id, now)).collect();
    let runs = ctx.request(tx, runs).await?;
    if runs > 0 {
        tracing::info!(organizations = runs, up_to = %now, "billing runs requested");
    }
    Ok(())
}
