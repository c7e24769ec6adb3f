//! Reading a slice of history: any partitions of any topics between two positions, pulled one
//! record at a time so a caller (replay, rebuild) can stream years of records in flat memory.
//!
//! [`watermarks`] says where each partition begins and ends now, [`offsets_at`] turns an instant
//! into the first offset at or after it, and [`HistoryReader`] reads from one set of positions up
//! to (not including) another.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};

use crate::{BusError, BusSettings, InboundMessage, PartitionId, reader::owned, tail::Positions};

/// The low and high watermark of a partition: the first offset still stored and the next one to
/// be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    pub low: i64,
    pub high: i64,
}

fn consumer(settings: &BusSettings) -> Result<BaseConsumer, BusError> {
    let mut config = settings.client_config();
    config
        // No group is joined (partitions are assigned); librdkafka still wants an id.
        .set("group.id", format!("studyspot-history-{}", uuid::Uuid::now_v7().simple()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // Bounded prefetch: what keeps a long replay's memory flat.
        .set("queued.max.messages.kbytes", "16384");
    settings.apply_extra(&mut config);
    Ok(config.create()?)
}

/// Every partition of `topics` with its watermarks now. A topic that does not exist is an error.
pub fn watermarks(
    settings: &BusSettings,
    topics: &[String],
    timeout: Duration,
) -> Result<BTreeMap<PartitionId, Watermarks>, BusError> {
    let consumer = consumer(settings)?;
    let mut found = BTreeMap::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(BusError::Config(format!("topic {topic} does not exist (or has no partitions)")));
        }
        for partition in partitions {
            let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
            found.insert(PartitionId { topic: topic.clone(), partition }, Watermarks { low, high });
        }
    }
    Ok(found)
}

/// For each of `partitions`, the offset of the first record whose timestamp is at or after
/// `timestamp_ms`; the partition's high watermark when there is none (the instant is in the future
/// of that partition).
pub fn offsets_at(
    settings: &BusSettings,
    partitions: &BTreeMap<PartitionId, Watermarks>,
    timestamp_ms: i64,
    timeout: Duration,
) -> Result<Positions, BusError> {
    let consumer = consumer(settings)?;
    let mut query = TopicPartitionList::new();
    for p in partitions.keys() {
        query.add_partition_offset(&p.topic, p.partition, Offset::Offset(timestamp_ms))?;
    }
    let answer = consumer.offsets_for_times(query, timeout)?;
    let mut positions = Positions::new();
    for (p, marks) in partitions {
        let offset = answer
            .find_partition(&p.topic, p.partition)
            .map(|e| e.offset())
            .ok_or_else(|| BusError::Config(format!("no answer for {}/{}", p.topic, p.partition)))?;
        let offset = match offset {
            Offset::Offset(o) if o >= 0 => o.clamp(marks.low, marks.high),
            // End (-1) or invalid: no record at or after the instant.
            _ => marks.high,
        };
        positions.insert(p.clone(), offset);
    }
    Ok(positions)
}

/// Reads records from `from` up to (not including) `until`, partition by partition in offset
/// order (partitions interleave), one [`next`](Self::next) at a time. Only what librdkafka
/// prefetches (bounded) is held in memory.
pub struct HistoryReader {
    consumer: Option<BaseConsumer>,
    remaining: BTreeMap<PartitionId, i64>,
    /// Records before this instant are skipped until a partition's first one at or after it.
    from_ms: Option<i64>,
    /// A partition ends at its first record at or after this instant.
    until_ms: Option<i64>,
    started: std::collections::BTreeSet<PartitionId>,
    /// The offset each partition's next record must have: a record librdkafka hands out again
    /// (fetching from the last returned position after a resume) is skipped.
    next_offsets: BTreeMap<PartitionId, i64>,
}

impl HistoryReader {
    /// A reader of every partition of `until` whose start (`from`, default 0) is below its end.
    pub fn open(settings: &BusSettings, from: &Positions, until: &Positions) -> Result<Self, BusError> {
        let remaining: BTreeMap<PartitionId, i64> = until
            .iter()
            .filter(|(p, end)| from.get(p).copied().unwrap_or(0) < **end)
            .map(|(p, end)| (p.clone(), *end))
            .collect();
        if remaining.is_empty() {
            return Ok(Self {
                consumer: None,
                remaining,
                from_ms: None,
                until_ms: None,
                started: Default::default(),
                next_offsets: Default::default(),
            });
        }
        let consumer = consumer(settings)?;
        let mut assignment = TopicPartitionList::new();
        for p in remaining.keys() {
            let start = from.get(p).copied().unwrap_or(0);
            assignment.add_partition_offset(&p.topic, p.partition, Offset::Offset(start))?;
        }
        consumer.assign(&assignment)?;
        let next_offsets = remaining.keys().map(|p| (p.clone(), from.get(p).copied().unwrap_or(0))).collect();
        Ok(Self {
            consumer: Some(consumer),
            remaining,
            from_ms: None,
            until_ms: None,
            started: Default::default(),
            next_offsets,
        })
    }

    /// Bounds the slice by record timestamps as well, the way Kafka's offsets for times do: a
    /// partition starts at its first record at or after `from_ms` and ends before its first record
    /// at or after `until_ms`. Checked on the records themselves, so the slice is right even on a
    /// broker whose answer to [`offsets_at`] is only approximate (the embedded one).
    pub fn with_time_bounds(mut self, from_ms: Option<i64>, until_ms: Option<i64>) -> Self {
        self.from_ms = from_ms;
        self.until_ms = until_ms;
        self
    }

    /// Stops fetching `partition` until [`resume`](Self::resume): a caller that holds many of its
    /// records while it waits for another partition's keeps librdkafka from prefetching more.
    /// What was prefetched is dropped and fetched again after the last record returned.
    pub fn pause(&self, partition: &PartitionId) -> Result<(), BusError> {
        let Some(consumer) = &self.consumer else { return Ok(()) };
        let mut list = TopicPartitionList::new();
        list.add_partition(&partition.topic, partition.partition);
        Ok(consumer.pause(&list)?)
    }

    /// Fetches `partition` again after [`pause`](Self::pause), from the record after the last one
    /// returned.
    pub fn resume(&self, partition: &PartitionId) -> Result<(), BusError> {
        let Some(consumer) = &self.consumer else { return Ok(()) };
        if !self.remaining.contains_key(partition) {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        list.add_partition(&partition.topic, partition.partition);
        Ok(consumer.resume(&list)?)
    }

    /// Partitions not read to their end yet.
    pub fn unfinished(&self) -> usize {
        self.remaining.len()
    }

    /// The next record, `Ok(None)` once every partition reached its end. Blocking; fails when no
    /// record arrives for `idle_timeout` while some are still expected.
    pub fn next(&mut self, idle_timeout: Duration) -> Result<Option<InboundMessage>, BusError> {
        let Some(consumer) = &self.consumer else { return Ok(None) };
        let deadline = Instant::now() + idle_timeout;
        while !self.remaining.is_empty() {
            if Instant::now() > deadline {
                return Err(BusError::Config(format!(
                    "no record for {idle_timeout:?} while reading history; {} partitions unfinished",
                    self.remaining.len()
                )));
            }
            let Some(result) = consumer.poll(Duration::from_millis(200)) else { continue };
            let message = match result {
                Ok(message) => owned(&message),
                // librdkafka reports a timed-out fetch or a dropped connection as a consumer
                // error and then reconnects and fetches again by itself (a busy embedded broker
                // can take longer than the request timeout to answer a large fetch); only the
                // idle deadline decides that the history cannot be read.
                Err(e) => {
                    let e = BusError::from(e);
                    if !e.is_transient() {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, "reading history: the broker did not answer; fetching again");
                    continue;
                }
            };
            let id = message.partition_id();
            let Some(end) = self.remaining.get(&id).copied() else { continue };
            let offset = message.offset;
            if self.next_offsets.get(&id).is_some_and(|next| offset < *next) {
                continue;
            }
            self.next_offsets.insert(id.clone(), offset + 1);
            let timestamp = message.timestamp_ms.unwrap_or(-1);
            if self.until_ms.is_some_and(|until| timestamp >= until) {
                self.remaining.remove(&id);
                let mut done = TopicPartitionList::new();
                done.add_partition(&id.topic, id.partition);
                consumer.pause(&done)?;
                continue;
            }
            if offset + 1 >= end {
                self.remaining.remove(&id);
            }
            if let Some(from) = self.from_ms
                && !self.started.contains(&id)
            {
                if timestamp < from {
                    continue;
                }
                self.started.insert(id);
            }
            if offset < end {
                return Ok(Some(message));
            }
        }
        Ok(None)
    }
}
