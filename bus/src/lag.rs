//! A consumer group's progress as Kafka holds it (the offsets it committed), for lag: the
//! group's committed offset against each partition's high watermark. Reading committed offsets
//! joins no group, so the group being measured is not disturbed.

use std::{collections::BTreeMap, time::Duration};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};

use crate::{BusError, BusSettings, PartitionId};

/// The offsets `group` committed on `partitions`; partitions it never committed are absent.
pub fn committed_offsets(
    settings: &BusSettings,
    group: &str,
    partitions: &[PartitionId],
    timeout: Duration,
) -> Result<BTreeMap<PartitionId, i64>, BusError> {
    let mut config = settings.client_config();
    config.set("group.id", group).set("enable.auto.commit", "false");
    settings.apply_extra(&mut config);
    let consumer: BaseConsumer = config.create()?;
    let mut query = TopicPartitionList::new();
    for p in partitions {
        query.add_partition(&p.topic, p.partition);
    }
    let answer = consumer.committed_offsets(query, timeout)?;
    let mut found = BTreeMap::new();
    for p in partitions {
        if let Some(Offset::Offset(o)) = answer.find_partition(&p.topic, p.partition).map(|e| e.offset()) {
            found.insert(p.clone(), o);
        }
    }
    Ok(found)
}
