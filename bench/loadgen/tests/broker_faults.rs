//! The local broker survives what the chaos soak does to it, checked with our own producer on a
//! broker of its own (from `STUDYSPOT_TANSU_BIN`, on a free port). Without that variable the test
//! says so and checks nothing else.
//!
//! A broker that stalls longer than `message.timeout.ms` makes librdkafka's idempotent producer
//! time records out and then bump its producer epoch by itself (KIP-360), starting the new epoch
//! at sequence 0 without asking the broker. Unpatched Tansu 0.6.0 panicked in its storage task on
//! the first batch of the new epoch ("more or less than one row") and failed every request from
//! then on; deploy/local/tansu/ holds the fix.

use std::time::Duration;

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use studyspot_bus::{BusSettings, OutboundMessage, Producer, admin, reader};
use studyspot_loadgen::stack::{OwnBroker, until};

const TOPIC: &str = "stalled";

fn message(i: usize) -> OutboundMessage {
    OutboundMessage {
        topic: TOPIC.into(),
        key: format!("k{}", i % 7),
        payload: format!("record {i}").into_bytes(),
        headers: Default::default(),
    }
}

/// Sends records `range` at once and returns how many the broker acknowledged.
async fn send_all(producer: &Producer, range: std::ops::Range<usize>) -> Vec<Result<usize, String>> {
    let sends = range.map(|i| {
        let producer = producer.clone();
        async move { producer.send(&message(i)).await.map(|_| i).map_err(|e| e.to_string()) }
    });
    futures::future::join_all(sends).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotent_producer_bumping_its_epoch_after_a_stall_keeps_the_broker_serving() {
    let Ok(tansu) = std::env::var("STUDYSPOT_TANSU_BIN") else {
        eprintln!("STUDYSPOT_TANSU_BIN is not set (./deploy/local/test sets it): nothing to check");
        return;
    };
    let home =
        std::env::temp_dir().join(format!("studyspot-broker-faults-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&home).expect("home");
    let broker = OwnBroker::create(tansu.as_ref(), &home, &home).await.expect("start the broker");
    let pid = Pid::from_raw(broker.process.pid().expect("running") as i32);

    let mut settings = BusSettings {
        bootstrap_servers: broker.addr.clone(),
        registry_url: "http://127.0.0.1:1".into(),
        extra: Default::default(),
        client_id: "broker-faults-test".into(),
        rejoin_when_unassigned: None,
        session_timeout: Duration::from_secs(10),
    };
    admin::ensure_topics(&settings, &[TOPIC], 3, 1).await.expect("topic");
    settings.extra.insert("message.timeout.ms".into(), "1500".into());
    let producer = Producer::new(&settings).expect("producer");

    let before = send_all(&producer, 0..50).await;
    assert!(before.iter().all(Result::is_ok), "acknowledged before the stall: {before:?}");

    // Records sent into a stalled broker time out in the producer.
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP the broker");
    let stalled = tokio::spawn({
        let producer = producer.clone();
        async move { send_all(&producer, 50..80).await }
    });
    // The stall lasts until every one of those sends has come back (timed out): no fixed pause.
    let stalled = tokio::time::timeout(Duration::from_secs(30), stalled)
        .await
        .expect("sends into a stopped broker time out within message.timeout.ms")
        .expect("join");
    kill(pid, Signal::SIGCONT).expect("SIGCONT the broker");
    assert!(stalled.iter().any(Result::is_err), "some records timed out in the stall: {stalled:?}");

    // The producer carries on under a bumped epoch; every record is acknowledged again.
    let mut acknowledged: Vec<usize> = before.into_iter().chain(stalled).filter_map(Result::ok).collect();
    let mut next = 80;
    until("the broker acknowledging records again", Duration::from_secs(30), || {
        let producer = producer.clone();
        let range = next..next + 10;
        next += 10;
        async move { send_all(&producer, range).await.iter().all(Result::is_ok) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", broker.process.log_tail(30)));
    let after = send_all(&producer, next..next + 50).await;
    assert!(after.iter().all(Result::is_ok), "acknowledged after the stall: {after:?}");
    assert!(!broker.process.logged_since(0, "panicked"), "{}", broker.process.log_tail(30));
    acknowledged.extend(after.into_iter().filter_map(Result::ok));
    drop(producer);

    let read =
        tokio::task::spawn_blocking(move || reader::read_to_end(&settings, TOPIC, Duration::from_secs(60)))
            .await
            .expect("join")
            .expect("read back");
    let seen: std::collections::BTreeSet<String> = read
        .iter()
        .map(|r| String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned())
        .collect();
    for i in acknowledged {
        assert!(seen.contains(&format!("record {i}")), "acknowledged record {i} was read back");
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&home);
}
