//! Webhook endpoints as the delivery worker treats them: at most
//! `notifications.delivery.webhook_rate_per_second` requests to one endpoint (with room for
//! `webhook_rate_burst`), and an endpoint failing without a success for
//! `webhook_disable_after_secs` is disabled — its messages fail as `endpoint_disabled`, which
//! marks it, tells its owner, and holds until they set their preferences again.

use std::{num::NonZeroU32, time::Duration};

use chrono::{DateTime, Utc};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock as _, DefaultClock},
};
use sqlx::PgConnection;
use studyspot_notifications_projection::{endpoints, store::Due};

/// The code a message to a disabled endpoint fails with.
pub const DISABLED: &str = "endpoint_disabled";

pub(crate) struct Endpoints {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    disable_after: chrono::Duration,
}

/// Whether a webhook may be sent now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    Go,
    /// Over the endpoint's rate: try again after this long.
    Wait(Duration),
    /// Disabled at this time.
    Disabled(DateTime<Utc>),
}

impl Endpoints {
    pub(crate) fn new(per_second: u32, burst: u32, disable_after_secs: u64) -> Self {
        let per_second = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            clock: DefaultClock::default(),
            disable_after: chrono::Duration::seconds(
                i64::try_from(disable_after_secs).unwrap_or(i64::MAX / 1000),
            ),
        }
    }

    pub(crate) async fn gate(&self, tx: &mut PgConnection, d: &Due) -> Result<Gate, sqlx::Error> {
        let url = d.address.clone().unwrap_or_default();
        if let Some(at) = endpoints::disabled_at(tx, &d.organization_id, &url).await? {
            return Ok(Gate::Disabled(at));
        }
        Ok(match self.limiter.check_key(&format!("{}\n{url}", d.organization_id)) {
            Ok(()) => Gate::Go,
            Err(not_until) => Gate::Wait(not_until.wait_time_from(self.clock.now())),
        })
    }

    /// Records a failed request; returns since when the endpoint has failed when that is long
    /// enough to disable it (and disables it).
    pub(crate) async fn failed(
        &self,
        tx: &mut PgConnection,
        d: &Due,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        let url = d.address.clone().unwrap_or_default();
        let since = endpoints::failed(tx, &d.organization_id, &url, &d.recipient_id, error, now).await?;
        if now - since < self.disable_after {
            return Ok(None);
        }
        endpoints::disable(tx, &d.organization_id, &url, now).await?;
        Ok(Some(since))
    }

    pub(crate) async fn succeeded(&self, tx: &mut PgConnection, d: &Due) -> Result<(), sqlx::Error> {
        endpoints::succeeded(tx, &d.organization_id, d.address.as_deref().unwrap_or_default()).await
    }
}
