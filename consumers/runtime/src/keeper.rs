use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    time::Duration,
};

use sqlx::PgPool;
use studyspot_bus::{InboundMessage, PartitionId, PositionKeeper};
use tokio::{runtime::Handle, sync::mpsc};

pub(crate) enum LaneInput {
    Message(InboundMessage),
    /// Commit what is buffered for these partitions, then acknowledge: they are about to move.
    Revoke(std::sync::mpsc::Sender<()>),
}

/// Runs on the source's poll thread: loads positions from PostgreSQL, routes records to lanes by
/// partition (so a partition's order is kept), and holds a revocation until the lanes are done.
pub(crate) struct Keeper {
    pub(crate) runtime: Handle,
    pub(crate) pool: PgPool,
    pub(crate) lanes: Vec<mpsc::Sender<LaneInput>>,
}

/// The lane of `message`'s partition among `lanes`: a partition always goes to one lane, and one
/// topic's partitions go round the lanes in turn (a hash of the partition number left some lanes
/// with two partitions and others with none).
pub(crate) fn lane_of(message: &InboundMessage, lanes: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    message.topic.hash(&mut hasher);
    let first = (hasher.finish() % lanes as u64) as usize;
    (first + usize::try_from(message.partition).unwrap_or(0)) % lanes
}

impl PositionKeeper for Keeper {
    fn positions(&mut self, partitions: &[PartitionId]) -> Result<HashMap<PartitionId, Option<i64>>, String> {
        let topics: Vec<String> = partitions.iter().map(|p| p.topic.clone()).collect();
        let numbers: Vec<i32> = partitions.iter().map(|p| p.partition).collect();
        let rows: Vec<(String, i32, i64)> = self
            .runtime
            .block_on(
                sqlx::query_as(
                    "SELECT o.topic, o.partition, o.next_offset FROM consumer_offsets o \
                     JOIN UNNEST($1::text[], $2::int[]) AS a(topic, partition) USING (topic, partition)",
                )
                .bind(&topics)
                .bind(&numbers)
                .fetch_all(&self.pool),
            )
            .map_err(|e| e.to_string())?;
        let stored: HashMap<PartitionId, i64> = rows
            .into_iter()
            .map(|(topic, partition, next)| (PartitionId { topic, partition }, next))
            .collect();
        for p in partitions {
            tracing::info!(topic = %p.topic, partition = p.partition, next_offset = ?stored.get(p), "resuming from PostgreSQL");
        }
        Ok(partitions.iter().map(|p| (p.clone(), stored.get(p).copied())).collect())
    }

    fn revoked(&mut self, _partitions: &[PartitionId]) {
        let (ack, done) = std::sync::mpsc::channel();
        let mut waiting = 0;
        for lane in &self.lanes {
            if lane.blocking_send(LaneInput::Revoke(ack.clone())).is_ok() {
                waiting += 1;
            }
        }
        drop(ack);
        for _ in 0..waiting {
            // A lane stuck retrying a dead database must not hold the group forever: the offsets
            // in PostgreSQL stay the truth, so the next owner redoes whatever did not commit.
            if done.recv_timeout(Duration::from_secs(30)).is_err() {
                tracing::warn!("a lane did not finish before the revocation deadline");
                break;
            }
        }
    }

    fn deliver(&mut self, message: InboundMessage) {
        let lane = lane_of(&message, self.lanes.len());
        if self.lanes[lane].blocking_send(LaneInput::Message(message)).is_err() {
            tracing::debug!(
                "lane closed; dropping a record that will be read again from the stored position"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use studyspot_bus::{Headers, InboundMessage};

    use super::lane_of;

    fn message(topic: &str, partition: i32) -> InboundMessage {
        InboundMessage {
            topic: topic.into(),
            partition,
            offset: 0,
            key: None,
            payload: None,
            headers: Headers::default(),
            timestamp_ms: None,
        }
    }

    #[test]
    fn a_topics_partitions_go_round_the_lanes() {
        for topic in ["studyspot.attendance.commands.v1", "studyspot.billing.events.v1"] {
            let mut per_lane = [0; 4];
            for partition in 0..6 {
                let lane = lane_of(&message(topic, partition), 4);
                assert_eq!(lane, lane_of(&message(topic, partition), 4), "a partition keeps its lane");
                per_lane[lane] += 1;
            }
            let mut counts = per_lane.to_vec();
            counts.sort_unstable();
            assert_eq!(counts, [1, 1, 2, 2], "{topic}: {per_lane:?}");
        }
    }
}
