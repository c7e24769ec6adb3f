//! Slots for a sidecar worker that leases due work from PostgreSQL (deliveries, provider calls)
//! and works each item in a task of its own.
//!
//! Slots rather than rounds: a round of N items waited for its slowest before leasing again, so
//! one slow endpoint left the other N − 1 slots idle, and a backlog drained at the pace of each
//! round's slowest call. A lease is a commit of its own, so a worker waits for a quarter of the
//! slots to be free rather than leasing for one slot at a time.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Slots {
    semaphore: Arc<Semaphore>,
    size: u32,
}

/// Slots taken for one lease: [`Taken::one`] hands one to each leased item's task; those not
/// handed out are free again when this is dropped.
pub struct Taken(Option<OwnedSemaphorePermit>);

/// One item's slot, free again when dropped (when its task ends).
pub struct Slot(#[expect(dead_code, reason = "held for its drop")] OwnedSemaphorePermit);

impl Slots {
    pub fn new(size: usize) -> Self {
        let size = u32::try_from(size.max(1)).unwrap_or(u32::MAX >> 3);
        Self { semaphore: Arc::new(Semaphore::new(size as usize)), size }
    }

    /// Waits until a quarter of the slots (at least one) are free, and takes every free one.
    pub async fn take(&self) -> Taken {
        let Ok(mut taken) = self.semaphore.clone().acquire_many_owned((self.size / 4).max(1)).await else {
            return Taken(None);
        };
        let free = u32::try_from(self.semaphore.available_permits()).unwrap_or(0);
        if let Ok(more) = self.semaphore.clone().try_acquire_many_owned(free) {
            taken.merge(more);
        }
        Taken(Some(taken))
    }

    /// Waits for every slot to be free: the items in flight have been worked off.
    pub async fn drain(&self) {
        let _ = self.semaphore.acquire_many(self.size).await;
    }
}

impl Taken {
    /// How many items to lease.
    pub fn count(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }

    pub fn one(&mut self) -> Option<Slot> {
        self.0.as_mut()?.split(1).map(Slot)
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

    use super::Slots;

    #[tokio::test]
    async fn a_lease_waits_for_a_quarter_of_the_slots_and_takes_every_free_one() {
        let slots = Slots::new(8);
        let mut first = slots.take().await;
        assert_eq!(first.count(), 8);
        let busy: Vec<_> = (0..7).map(|_| first.one().expect("a slot")).collect();
        drop(first); // the eighth, not handed out, is free again
        // One free slot is not enough for a lease of its own …
        assert!(slots.take().now_or_never().is_none(), "a lease waits for two of eight slots");
        // … two are, and the lease takes both.
        let mut busy = busy.into_iter();
        drop(busy.next());
        assert_eq!(slots.take().await.count(), 2);
        drop(busy);
        slots.drain().await;
    }
}
