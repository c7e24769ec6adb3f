//! What we need from whichever Kafka-compatible broker runs locally, checked with our own
//! producer: acknowledged records survive a broker crash (SIGKILL) and restart; a record reaches
//! an idle consumer as soon as it is written, not when the consumer's fetch wait runs out; records
//! come back exactly as written (keys, values, headers in order, offsets) across topics and
//! partitions.
//!
//! Each test starts a private broker from `STUDYSPOT_TANSU_BIN` on a free port with its own data
//! directory, so it runs beside other tests. Without that variable a test says so and checks
//! nothing else.

use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use studyspot_bus::{
    BusSettings, Delivery, Headers, InboundMessage, OutboundMessage, Producer, admin, reader, tail,
};

struct Broker {
    child: Child,
}

impl Broker {
    fn start(binary: &str, dir: &std::path::Path, address: &str) -> Self {
        let child = Command::new(binary)
            .args(["broker", "--listener-url", &format!("tcp://{address}")])
            .args(["--advertised-listener-url", &format!("tcp://{address}")])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the broker");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "the broker did not listen on {address}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child }
    }

    fn crash(&mut self) {
        self.child.kill().expect("SIGKILL the broker");
        self.child.wait().expect("reap");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A private broker on a free port with a fresh data directory (removed when dropped), and
/// settings for our clients to reach it; `None` without STUDYSPOT_TANSU_BIN.
struct PrivateBroker {
    broker: Option<Broker>,
    dir: std::path::PathBuf,
    settings: BusSettings,
}

impl PrivateBroker {
    fn start(client_id: &str) -> Option<Self> {
        let Ok(binary) = std::env::var("STUDYSPOT_TANSU_BIN") else {
            eprintln!("STUDYSPOT_TANSU_BIN is not set (./deploy/local/test sets it): nothing to check");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("studyspot-broker-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("data dir");
        let address = format!("127.0.0.1:{}", free_port());
        let broker = Broker::start(&binary, &dir, &address);
        let settings = BusSettings {
            bootstrap_servers: address,
            registry_url: "http://127.0.0.1:1".into(),
            extra: Default::default(),
            client_id: client_id.into(),
            rejoin_when_unassigned: None,
            session_timeout: Duration::from_secs(10),
        };
        Some(Self { broker: Some(broker), dir, settings })
    }

    /// Our settings with librdkafka properties added.
    fn with(&self, extra: &[(&str, &str)]) -> BusSettings {
        let mut settings = self.settings.clone();
        settings.extra.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        settings
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        drop(self.broker.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_records_survive_a_broker_crash() {
    let Ok(binary) = std::env::var("STUDYSPOT_TANSU_BIN") else {
        eprintln!("STUDYSPOT_TANSU_BIN is not set (./deploy/local/test sets it): nothing to check");
        return;
    };
    let dir = std::env::temp_dir().join(format!("studyspot-broker-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("data dir");
    let address = format!("127.0.0.1:{}", free_port());
    let mut broker = Broker::start(&binary, &dir, &address);
    let settings = BusSettings {
        bootstrap_servers: address.clone(),
        registry_url: "http://127.0.0.1:1".into(),
        extra: Default::default(),
        client_id: "broker-durability-test".into(),
        rejoin_when_unassigned: None,
        session_timeout: Duration::from_secs(10),
    };
    admin::ensure_topics(&settings, &["durable"], 3, 1).await.expect("topic");
    let producer = Producer::new(&settings).expect("producer");
    let sends = (0..2000).map(|i| {
        let message = OutboundMessage {
            topic: "durable".into(),
            key: format!("k{}", i % 17),
            payload: format!("record {i}").into_bytes(),
            headers: Default::default(),
        };
        let producer = producer.clone();
        async move { producer.send(&message).await }
    });
    for acknowledged in futures::future::join_all(sends).await {
        acknowledged.expect("acknowledged by the broker");
    }
    drop(producer);

    broker.crash();
    let restarted = Broker::start(&binary, &dir, &address);

    let read = tokio::task::spawn_blocking(move || {
        reader::read_to_end(&settings, "durable", Duration::from_secs(60))
    })
    .await
    .expect("join")
    .expect("read back");
    let mut seen: Vec<String> = read
        .iter()
        .map(|r| String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2000, "every acknowledged record is there after the crash, once");
    assert_eq!(read.len(), 2000, "the idempotent producer wrote no duplicates");
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A consumer waiting in a fetch gets a new record as soon as it is written. Tansu 0.6.0 answered
/// only as its fetch wait ran out (it slept half the remaining wait after every look), so with
/// `fetch.wait.max.ms=10000` each of these records took about 7 s.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_reaches_an_idle_consumer_long_before_its_fetch_wait_ends() {
    let Some(broker) = PrivateBroker::start("broker-idle-fetch-test") else { return };
    let topics = ["idle.a".to_owned(), "idle.b".to_owned()];
    admin::ensure_topics(&broker.settings, &[topics[0].as_str(), topics[1].as_str()], 3, 1)
        .await
        .expect("topics");
    // The consumer waits on six partitions of two topics; the records go to the second topic, so
    // any partition of a fetch must be able to end its wait.
    let consumer = broker.with(&[("fetch.wait.max.ms", "10000")]);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<InboundMessage>();
    let follower = tokio::task::spawn_blocking({
        let topics = topics.to_vec();
        move || tail::Tail::start(&consumer, &topics, move |m| drop(tx.send(m)))
    })
    .await
    .expect("join")
    .expect("follow");
    let producer = Producer::new(&broker.with(&[("linger.ms", "0")])).expect("producer");

    // The first record only shows the consumer is fetching: after it, the consumer is back in a
    // fetch that waits when each next record is written.
    let mut slowest = Duration::ZERO;
    for i in 0..4 {
        let message = OutboundMessage {
            topic: topics[1].clone(),
            key: format!("k{i}"),
            payload: format!("idle {i}").into_bytes(),
            headers: Default::default(),
        };
        let started = Instant::now();
        producer.send(&message).await.expect("acknowledged");
        let deadline = started + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let received = tokio::time::timeout(left, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("record {i} did not arrive within 30 s"))
                .expect("the consumer is running");
            if received.payload == Some(message.payload.clone()) {
                break;
            }
        }
        if i > 0 {
            slowest = slowest.max(started.elapsed());
        }
    }
    drop(follower);
    assert!(
        slowest < Duration::from_secs(3),
        "a record took {slowest:?} to reach a consumer waiting up to 10 s in its fetch"
    );
}

/// Records come back exactly as written: key, value, headers (in order, repeated names and empty
/// values included), partition and offset, across topics and partitions, in batches of many
/// records and of one.
#[tokio::test(flavor = "multi_thread")]
async fn records_with_keys_and_headers_round_trip_exactly() {
    let Some(broker) = PrivateBroker::start("broker-round-trip-test") else { return };
    let topics = ["exact.a", "exact.b"];
    admin::ensure_topics(&broker.settings, &topics, 3, 1).await.expect("topics");
    let message = |i: usize| {
        let topic = topics[i % 2];
        let mut headers =
            vec![("studyspot.event_id".to_owned(), format!("event-{i}")), ("n".to_owned(), i.to_string())];
        // Some records without headers, some with a repeated name and an empty value.
        match i % 4 {
            0 => headers.clear(),
            1 => {
                headers.extend([("n".to_owned(), format!("again {i}")), ("empty".to_owned(), String::new())])
            }
            _ => {}
        }
        OutboundMessage {
            topic: topic.to_owned(),
            key: format!("key-{}", i % 23),
            // Sizes from a few bytes to a few kilobytes.
            payload: format!("{i}:")
                .into_bytes()
                .into_iter()
                .chain(std::iter::repeat_n(b'x', (i * 37) % 3000))
                .collect(),
            headers: Headers(headers),
        }
    };

    let mut written: Vec<(OutboundMessage, Delivery)> = Vec::new();
    // Many records at once (librdkafka batches them), then one at a time.
    let batched = Producer::new(&broker.settings).expect("producer");
    let sends = (0..600).map(|i| {
        let (producer, message) = (batched.clone(), message(i));
        async move { producer.send(&message).await.map(|delivery| (message, delivery)) }
    });
    for sent in futures::future::join_all(sends).await {
        written.push(sent.expect("acknowledged"));
    }
    let single = Producer::new(&broker.with(&[("linger.ms", "0")])).expect("producer");
    for i in 600..640 {
        let message = message(i);
        let delivery = single.send(&message).await.expect("acknowledged");
        written.push((message, delivery));
    }

    for topic in topics {
        let settings = broker.settings.clone();
        let read = tokio::task::spawn_blocking(move || {
            reader::read_to_end(&settings, topic, Duration::from_secs(60))
        })
        .await
        .expect("join")
        .expect("read back");
        let expected: BTreeMap<(i32, i64), &OutboundMessage> = written
            .iter()
            .filter(|(m, _)| m.topic == topic)
            .map(|(m, d)| ((d.partition, d.offset), m))
            .collect();
        assert_eq!(read.len(), expected.len(), "{topic}: every record once");
        let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
        for record in &read {
            let offset = next_offset.entry(record.partition).or_insert(0);
            assert_eq!(record.offset, *offset, "{topic} [{}]: offsets follow each other", record.partition);
            *offset += 1;
            let sent = expected
                .get(&(record.partition, record.offset))
                .unwrap_or_else(|| panic!("{topic} [{}] @{}: not written", record.partition, record.offset));
            assert_eq!(record.key.as_deref(), Some(sent.key.as_bytes()), "key @{}", record.offset);
            assert_eq!(record.payload.as_deref(), Some(sent.payload.as_slice()), "value @{}", record.offset);
            assert_eq!(record.headers, sent.headers, "headers @{}", record.offset);
        }
        assert!(next_offset.len() > 1, "{topic}: the records spread over several partitions");
    }
    // Within a partition the broker kept the order in which each producer sent.
    for producer_range in [0..600, 600..640] {
        let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for (message, delivery) in &written[producer_range] {
            if let Some(previous) = last.insert((message.topic.as_str(), delivery.partition), delivery.offset)
            {
                assert!(
                    previous < delivery.offset,
                    "sent order kept in {} [{}]",
                    message.topic,
                    delivery.partition
                );
            }
        }
    }
}
