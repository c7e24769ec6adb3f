//! Requests per token: a GCRA bucket per organization and subject, refilled at
//! `gateway.rate_limit_per_second` with room for `gateway.rate_limit_burst` at once.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::GatewayError;

#[derive(Clone)]
pub struct RateLimits {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst));
        Self { limiter: Arc::new(limiter), clock: DefaultClock::default() }
    }

    /// One request every `period`, with room for `burst` at once.
    pub fn every(period: Duration, burst: u32) -> Self {
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period.max(Duration::from_micros(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self { limiter: Arc::new(RateLimiter::keyed(quota)), clock: DefaultClock::default() }
    }

    pub fn check(&self, key: &str) -> Result<(), GatewayError> {
        self.limiter.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            GatewayError::RateLimited { retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64 }
        })
    }

    /// Drops buckets that are full again, so memory follows the active tokens, not all tokens ever.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    pub fn sweep_interval() -> Duration {
        Duration::from_secs(60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_past_its_burst_is_told_when_to_retry_and_others_are_not_affected() {
        let limits = RateLimits::new(1, 3);
        for _ in 0..3 {
            limits.check("org_1/user:a").expect("within the burst");
        }
        match limits.check("org_1/user:a") {
            Err(GatewayError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        limits.check("org_1/user:b").expect("another token has its own bucket");
    }
}
