//! What we need from whichever Kafka-compatible broker runs locally, checked with our own
//! producer: acknowledged records survive a broker crash (SIGKILL) and restart.
//!
//! Starts a private broker from `STUDYSPOT_TANSU_BIN` on a free port with its own data directory,
//! so it runs beside other tests. Without that variable the test says so and checks nothing else.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use studyspot_bus::{BusSettings, OutboundMessage, Producer, admin, reader};

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
