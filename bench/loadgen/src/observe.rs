//! Latency through the system, hop by hop: from the first request of a command to
//! 1. its command record being readable on its topic (matched by the `event_id` header),
//! 2. its outcome committed by the consumer (the `NOTIFY` every consumer sends in the batch's
//!    transaction, delivered at commit), and
//! 3. its first follow-on event readable on the event topics (matched by the `causation_id`
//!    header the consumers set).
//!
//! The observer's own reads add to hops 1 and 3: its tail asks the broker with a short
//! `fetch.wait.max.ms`, so what it adds is the broker's answer time, not a polling interval —
//! which on the local broker is long: one tail fetch reads every partition of every topic, and
//! the consumers, which read fewer, often commit a command's outcome before the tail has seen the
//! command. So request → outcome committed is also measured directly (the request's instant to
//! the `NOTIFY`), without the tail in between.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use hdrhistogram::Histogram;
use sqlx::postgres::PgListener;
use studyspot_bus::{BusSettings, headers, tail::Tail};
use studyspot_schemas::{COMMAND_OUTCOMES_CHANNEL, TopicKind};

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

pub struct FollowOns {
    /// Command id → when its record was readable.
    commands: Seen,
    /// Command id → when its outcome was committed.
    committed: Seen,
    /// Causing command id → when its first follow-on event was readable.
    events: Seen,
    _tail: Tail,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for FollowOns {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Latencies in µs from the request (or the previous hop) to each hop, and how many accepted
/// commands never reached it.
pub struct Hops {
    pub request_to_command: Histogram<u64>,
    pub request_to_commit: Histogram<u64>,
    pub command_to_commit: Histogram<u64>,
    pub commit_to_event: Histogram<u64>,
    pub request_to_event: Histogram<u64>,
    pub without_command: usize,
    pub without_commit: usize,
    pub without_event: usize,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

fn record(h: &mut Histogram<u64>, from: Instant, to: Instant) -> anyhow::Result<()> {
    Ok(h.record(to.saturating_duration_since(from).as_micros().max(1) as u64)?)
}

impl FollowOns {
    /// Follows every topic of `prefix` from its current end, and the command outcomes committed in
    /// `database_url`.
    pub async fn start(bus: &BusSettings, prefix: &str, database_url: &str) -> anyhow::Result<Self> {
        let kind: HashMap<String, TopicKind> =
            studyspot_schemas::catalogue().iter().map(|t| (format!("{prefix}{}", t.name), t.kind)).collect();
        let topics: Vec<String> = kind.keys().cloned().collect();
        let (commands, committed, events): (Seen, Seen, Seen) = Default::default();

        let mut listener = PgListener::connect(database_url).await?;
        listener.listen(COMMAND_OUTCOMES_CHANNEL).await?;
        let listener = tokio::spawn({
            let committed = committed.clone();
            async move {
                while let Ok(notification) = listener.recv().await {
                    let now = Instant::now();
                    if let Ok(mut seen) = committed.lock() {
                        for id in notification.payload().split(',') {
                            seen.entry(id.to_owned()).or_insert(now);
                        }
                    }
                }
            }
        });

        let (command_sink, event_sink) = (commands.clone(), events.clone());
        let mut bus = bus.clone();
        bus.extra.insert("fetch.wait.max.ms".into(), "10".into());
        let tail = tokio::task::spawn_blocking(move || {
            Tail::start(&bus, &topics, move |record| {
                let now = Instant::now();
                let (sink, header) = match kind.get(&record.topic) {
                    Some(TopicKind::Commands) => (&command_sink, headers::EVENT_ID),
                    Some(TopicKind::Events) => (&event_sink, headers::CAUSATION_ID),
                    None => return,
                };
                if let Some(id) = record.headers.get(header)
                    && let Ok(mut seen) = sink.lock()
                {
                    seen.entry(id.to_owned()).or_insert(now);
                }
            })
        })
        .await??
        .0;
        Ok(Self { commands, committed, events, _tail: tail, listener })
    }

    /// The hops of the `sent` commands (id, when its first request went out).
    pub fn hops(&self, sent: &[(String, Instant)]) -> anyhow::Result<Hops> {
        let lock = |s: &Seen| s.lock().map(|m| m.clone()).map_err(|_| anyhow::anyhow!("observer lock"));
        let (commands, committed, events) =
            (lock(&self.commands)?, lock(&self.committed)?, lock(&self.events)?);
        let mut hops = Hops {
            request_to_command: histogram()?,
            request_to_commit: histogram()?,
            command_to_commit: histogram()?,
            commit_to_event: histogram()?,
            request_to_event: histogram()?,
            without_command: 0,
            without_commit: 0,
            without_event: 0,
        };
        for (id, at) in sent {
            let command = commands.get(id);
            let commit = committed.get(id);
            let event = events.get(id);
            match command {
                Some(c) => record(&mut hops.request_to_command, *at, *c)?,
                None => hops.without_command += 1,
            }
            if let Some(k) = commit {
                record(&mut hops.request_to_commit, *at, *k)?;
            }
            match (command, commit) {
                (Some(c), Some(k)) => record(&mut hops.command_to_commit, *c, *k)?,
                (_, None) => hops.without_commit += 1,
                _ => {}
            }
            match event {
                Some(e) => {
                    record(&mut hops.request_to_event, *at, *e)?;
                    if let Some(k) = commit {
                        record(&mut hops.commit_to_event, *k, *e)?;
                    }
                }
                None => hops.without_event += 1,
            }
        }
        Ok(hops)
    }
}
