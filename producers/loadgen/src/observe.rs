//! End-to-end latency: from the first request of a command to its first follow-on event being
//! readable on the event topics (matched by the `causation_id` header the consumers set).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use hdrhistogram::Histogram;
use studyspot_bus::{BusSettings, headers, tail::Tail};

pub struct FollowOns {
    arrivals: Arc<Mutex<HashMap<String, Instant>>>,
    _tail: Tail,
}

impl FollowOns {
    /// Follows every event topic of `prefix` from its current end.
    pub async fn start(bus: &BusSettings, prefix: &str) -> anyhow::Result<Self> {
        let topics: Vec<String> = studyspot_schemas::catalogue()
            .iter()
            .filter(|t| t.kind == studyspot_schemas::TopicKind::Events)
            .map(|t| format!("{prefix}{}", t.name))
            .collect();
        let arrivals = Arc::new(Mutex::new(HashMap::new()));
        let sink = arrivals.clone();
        let bus = bus.clone();
        let tail = tokio::task::spawn_blocking(move || {
            Tail::start(&bus, &topics, move |record| {
                let now = Instant::now();
                if let Some(cause) = record.headers.get(headers::CAUSATION_ID)
                    && let Ok(mut seen) = sink.lock()
                {
                    seen.entry(cause.to_owned()).or_insert(now);
                }
            })
        })
        .await??
        .0;
        Ok(Self { arrivals, _tail: tail })
    }

    /// Latencies (µs) of the `sent` commands whose follow-on event arrived, and how many had none.
    pub fn latencies(&self, sent: &[(String, Instant)]) -> anyhow::Result<(Histogram<u64>, usize)> {
        let mut histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3)?;
        let arrivals = self.arrivals.lock().map_err(|_| anyhow::anyhow!("arrivals lock"))?;
        let mut missing = 0;
        for (id, at) in sent {
            match arrivals.get(id) {
                Some(arrived) => {
                    histogram.record(arrived.saturating_duration_since(*at).as_micros().max(1) as u64)?
                }
                None => missing += 1,
            }
        }
        Ok((histogram, missing))
    }

    pub fn seen(&self) -> usize {
        self.arrivals.lock().map(|a| a.len()).unwrap_or_default()
    }
}
