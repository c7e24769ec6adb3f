//! The history reader against the tests' broker: a partition paused while the caller waits for
//! another, then resumed, yields every record once, in offset order.

use std::{collections::BTreeMap, time::Duration};

use rdkafka::{
    ClientConfig,
    error::{KafkaError, RDKafkaErrorCode},
    producer::{BaseProducer, BaseRecord, Producer as _},
};
use studyspot_bus::{BusSettings, PartitionId, admin, history::HistoryReader};

const PER_PARTITION: i64 = 3000;

fn settings() -> BusSettings {
    BusSettings {
        bootstrap_servers: std::env::var("STUDYSPOT_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into()),
        registry_url: "http://127.0.0.1:1".into(),
        extra: Default::default(),
        client_id: "history-test".into(),
        rejoin_when_unassigned: None,
        session_timeout: Duration::from_secs(10),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_partition_resumes_after_the_last_record_returned() {
    let bus = settings();
    let topic = format!("t{}.history.pause", uuid::Uuid::now_v7().simple());
    admin::ensure_topics(&bus, &[topic.as_str()], 2, 1).await.expect("topic");
    let producer: BaseProducer =
        ClientConfig::new().set("bootstrap.servers", &bus.bootstrap_servers).create().expect("producer");
    for partition in 0..2 {
        for i in 0..PER_PARTITION {
            let payload = format!("{partition}:{i}");
            loop {
                match producer.send(BaseRecord::to(&topic).partition(partition).key("k").payload(&payload)) {
                    Ok(()) => break,
                    // A full local queue: let deliveries drain.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => panic!("produce: {e}"),
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");

    let first = PartitionId { topic: topic.clone(), partition: 0 };
    let until: BTreeMap<PartitionId, i64> =
        (0..2).map(|p| (PartitionId { topic: topic.clone(), partition: p }, PER_PARTITION)).collect();
    let mut seen = tokio::task::spawn_blocking(move || {
        let mut reader = HistoryReader::open(&settings(), &BTreeMap::new(), &until).expect("reader");
        let mut seen: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        let mut paused = false;
        while let Some(message) = reader.next(Duration::from_secs(30)).expect("next") {
            seen.entry(message.partition).or_default().push(message.offset);
            let of_first = seen.get(&0).map_or(0, Vec::len);
            if !paused && of_first == 10 {
                reader.pause(&first).expect("pause");
                paused = true;
            }
            // Partition 1 read to its end while partition 0 waits.
            if paused && seen.get(&1).map_or(0, Vec::len) as i64 == PER_PARTITION {
                reader.resume(&first).expect("resume");
                paused = false;
            }
        }
        seen
    })
    .await
    .expect("reader thread");
    for partition in 0..2 {
        let offsets = seen.remove(&partition).unwrap_or_default();
        assert_eq!(offsets, (0..PER_PARTITION).collect::<Vec<_>>(), "partition {partition}");
    }
}
