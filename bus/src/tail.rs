//! Following topics outside any consumer group, from given positions: what a live view (the
//! gateway's event stream) needs. One [`Tail`] per process fans records out to many readers; a
//! reader that resumes from an older position first reads the range it missed with
//! [`read_range`].

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};

use crate::{BusError, BusSettings, InboundMessage, PartitionId, reader::owned};

/// The next offset to read, per partition.
pub type Positions = BTreeMap<PartitionId, i64>;

fn consumer(settings: &BusSettings, purpose: &str) -> Result<BaseConsumer, BusError> {
    let mut config = settings.client_config();
    config
        // No group is joined (partitions are assigned); librdkafka still wants an id.
        .set("group.id", format!("studyspot-{purpose}-{}", uuid::Uuid::now_v7().simple()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("queued.max.messages.kbytes", "8192");
    settings.apply_extra(&mut config);
    Ok(config.create()?)
}

/// Every partition of `topics` with its high watermark now: where a reader starting "now" begins.
/// The offsets come from one ListOffsets request for all partitions (a round trip per partition
/// made the gateway's start take 20 s and more while the local broker was busy).
pub fn high_watermarks(
    settings: &BusSettings,
    topics: &[String],
    timeout: Duration,
) -> Result<Positions, BusError> {
    let consumer = consumer(settings, "watermarks")?;
    let mut latest = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                latest.add_partition_offset(topic, p.id(), Offset::End)?;
            }
        }
    }
    let mut positions = Positions::new();
    if latest.count() == 0 {
        return Ok(positions);
    }
    // A "timestamp" of Offset::End (-1) asks for the latest offset, as in Kafka's ListOffsets.
    for e in consumer.offsets_for_times(latest, timeout)?.elements() {
        e.error()?;
        let Offset::Offset(high) = e.offset() else {
            return Err(BusError::Config(format!(
                "the broker gave no latest offset for {} [{}]: {:?}",
                e.topic(),
                e.partition(),
                e.offset()
            )));
        };
        positions.insert(PartitionId { topic: e.topic().to_owned(), partition: e.partition() }, high);
    }
    Ok(positions)
}

/// Reads every record from `from` up to (not including) `until`, partition by partition in order,
/// handing each to `sink`; stops early when `sink` returns false.
pub fn read_range(
    settings: &BusSettings,
    from: &Positions,
    until: &Positions,
    timeout: Duration,
    mut sink: impl FnMut(InboundMessage) -> bool,
) -> Result<(), BusError> {
    let mut remaining: BTreeMap<PartitionId, i64> = until
        .iter()
        .filter(|(p, end)| from.get(p).copied().unwrap_or(0) < **end)
        .map(|(p, end)| (p.clone(), *end))
        .collect();
    if remaining.is_empty() {
        return Ok(());
    }
    let consumer = consumer(settings, "range")?;
    let mut assignment = TopicPartitionList::new();
    for p in remaining.keys() {
        let start = from.get(p).copied().unwrap_or(0);
        assignment.add_partition_offset(&p.topic, p.partition, Offset::Offset(start))?;
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + timeout;
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(BusError::Config(format!(
                "timed out reading a range; {} partitions unfinished",
                remaining.len()
            )));
        }
        let Some(result) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = owned(&result?);
        let id = message.partition_id();
        let Some(end) = remaining.get(&id).copied() else { continue };
        let offset = message.offset;
        if offset < end && !sink(message) {
            return Ok(());
        }
        if offset + 1 >= end {
            remaining.remove(&id);
        }
    }
    Ok(())
}

/// Follows `topics` from their ends as they are at start, on a thread of its own, handing every
/// new record to `sink` in partition order, until dropped.
pub struct Tail {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tail {
    pub fn start(
        settings: &BusSettings,
        topics: &[String],
        sink: impl Fn(InboundMessage) + Send + 'static,
    ) -> Result<(Self, Positions), BusError> {
        let start = high_watermarks(settings, topics, Duration::from_secs(10))?;
        let consumer = consumer(settings, "tail")?;
        let mut assignment = TopicPartitionList::new();
        for (p, offset) in &start {
            assignment.add_partition_offset(&p.topic, p.partition, Offset::Offset(*offset))?;
        }
        consumer.assign(&assignment)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("tail".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::SeqCst) {
                        match consumer.poll(Duration::from_millis(200)) {
                            Some(Ok(message)) => sink(owned(&message)),
                            Some(Err(e)) => tracing::warn!(error = %e, "tail: fetch failed; retrying"),
                            None => {}
                        }
                    }
                }
            })
            .map_err(|e| BusError::Config(format!("cannot start the tail thread: {e}")))?;
        Ok((Self { stop, thread: Some(thread) }, start))
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
