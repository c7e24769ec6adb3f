//! Reading a topic from the beginning to its end as it is now, outside any consumer group:
//! for tests, audits and tooling that must see everything once.

use std::{collections::HashMap, time::Duration};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::Headers as _,
};

use crate::{BusError, BusSettings, Headers, InboundMessage};

/// Every record of `topic` from offset zero up to the high watermark observed at the start,
/// in partition order (partitions one after another).
pub fn read_to_end(
    settings: &BusSettings,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<InboundMessage>, BusError> {
    let mut config = settings.client_config();
    config
        .set("group.id", format!("studyspot-reader-{}", uuid::Uuid::now_v7().simple()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    settings.apply_extra(&mut config);
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        if high > low {
            ends.insert(p, high);
            assignment.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut records = Vec::new();
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(BusError::Config(format!(
                "timed out reading {topic}; {} partitions unfinished",
                ends.len()
            )));
        }
        let Some(result) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = result?;
        let partition = message.partition();
        records.push(owned(&message));
        if ends.get(&partition).is_some_and(|end| message.offset() + 1 >= *end) {
            ends.remove(&partition);
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

pub(crate) fn owned(message: &impl Message) -> InboundMessage {
    InboundMessage {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        headers: message
            .headers()
            .map(|hs| {
                Headers(
                    hs.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                h.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default(),
                            )
                        })
                        .collect(),
                )
            })
            .unwrap_or_default(),
        timestamp_ms: message.timestamp().to_millis(),
    }
}
