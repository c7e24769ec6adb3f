//! Crash points for the recovery tests: `STUDYSPOT_CRASH_AT=<point>:<n>` makes the process
//! SIGKILL itself the n-th time it reaches `<point>`. Unset (always, in production), it is one
//! relaxed atomic load.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Records polled and applied in the open transaction, not committed.
    BeforeCommit,
    /// Transaction committed, outbox not yet published.
    AfterCommit,
    /// Outbox records acknowledged by the broker, rows not yet marked published.
    AfterPublish,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Self::BeforeCommit => "before_commit",
            Self::AfterCommit => "after_commit",
            Self::AfterPublish => "after_publish",
        }
    }
}

struct Armed {
    point: String,
    at: u64,
    seen: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("STUDYSPOT_CRASH_AT").ok()?;
            let (point, at) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
            Some(Armed { point: point.to_owned(), at: at.parse().unwrap_or(1), seen: AtomicU64::new(0) })
        })
        .as_ref()
}

pub fn reached(point: Point) {
    let Some(armed) = armed() else { return };
    if armed.point == point.name() && armed.seen.fetch_add(1, Ordering::SeqCst) + 1 == armed.at {
        tracing::warn!(point = point.name(), "crash point reached: SIGKILL");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    }
}
