//! The one ticker of the consumers' schedulers (billing's runs, attendance's runs, alerts' rule
//! evaluations, insight and broker ticks): every so many seconds it reads the wall clock — here,
//! outside `decide` — and asks for time-carrying commands through the outbox, so a replay
//! decides the same.

use std::{future::Future, time::Duration};

use chrono::{DateTime, Utc};
use studyspot_bus::TraceContext;
use studyspot_schemas::{EventMetadata, Record};
use tokio_util::sync::CancellationToken;

use crate::{HandleError, SidecarContext};

/// What a tick that failed says; it is logged and the next tick tries again.
pub type TickError = Box<dyn std::error::Error + Send + Sync>;

/// Calls `tick` every `every_secs` seconds (the first at once; never when zero) until `shutdown`,
/// with the wall clock's now in whole seconds, so instances ticking together name the same
/// instant. A tick that fails is logged as `failed` ("… could not ask for …") and the next one
/// tries again; a slow tick delays the next rather than bunching them.
pub async fn every<F, Fut>(shutdown: &CancellationToken, every_secs: u64, failed: &str, mut tick: F)
where
    F: FnMut(DateTime<Utc>) -> Fut,
    Fut: Future<Output = Result<(), TickError>>,
{
    if every_secs == 0 {
        return;
    }
    let mut ticks = tokio::time::interval(Duration::from_secs(every_secs));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(e) = tick(whole_seconds_now()).await {
            tracing::warn!(error = %e, "{failed}; retrying next tick");
        }
    }
}

/// The wall clock's now, in whole seconds.
pub fn whole_seconds_now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_else(Utc::now)
}

/// The metadata of a command a scheduler asks for at `at`, named `name` (what it is, whom it is
/// for and the instant): its id derives from the name, so two schedulers (or a restart) asking
/// for the same thing at the same instant produce one command.
pub fn metadata(name: String, organization_id: &str, at: DateTime<Utc>, actor: &str) -> EventMetadata {
    EventMetadata {
        event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string(),
        occurred_at: at.timestamp_millis(),
        correlation_id: name,
        causation_id: None,
        organization_id: organization_id.to_owned(),
        actor: actor.to_owned(),
    }
}

impl SidecarContext {
    /// Puts `records` in the outbox inside `tx`, commits it, and wakes the publisher when there
    /// were any; how many there were.
    pub async fn request<R: Record>(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        records: impl IntoIterator<Item = R>,
    ) -> Result<usize, HandleError> {
        let mut count = 0;
        for record in records {
            self.outbox.enqueue(&mut tx, &record, &TraceContext::root()).await?;
            count += 1;
        }
        tx.commit().await?;
        if count > 0 {
            self.outbox.wake();
        }
        Ok(count)
    }
}
