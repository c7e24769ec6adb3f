//! `studyspot-bench hop`: how long one record takes from our producer to an idle consumer, and
//! what the broker's CPU costs while consumers wait, per `fetch.wait.max.ms`.
//!
//! Uses the broker named by STUDYSPOT_TEST_KAFKA and starts nothing. For each wait setting:
//! - a fresh one-partition topic; a consumer ([`tail::Tail`], no group) follows it; records are
//!   sent one at a time with `linger.ms=0`, each after the previous one arrived, so the consumer
//!   is always waiting in a fetch when the next one is produced. Latency runs from the send to the
//!   consumer's delivery (it includes the produce acknowledgement, reported on its own too). Each
//!   record carries the headers every StudySpot record does;
//! - idle: `--idle-consumers` consumers follow a fresh six-partition topic nobody writes to, and
//!   the broker's CPU over `--idle-seconds` is reported as a share of one core.
//!
//! - backlog: `--backlog` records with those headers produced at once (our producer's settings)
//!   and read back from the start: records/s each way, and the broker's CPU per record.
//!
//! The broker's CPU time comes from /proc/<pid>/stat of the process listening on the broker's
//! port (so only a broker on this machine is measured).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use studyspot_bus::{
    BusSettings, Headers, InboundMessage, OutboundMessage, Producer, TraceContext, admin, headers, tail,
};
use tokio::sync::mpsc;

use crate::Env;

pub(crate) struct Options {
    pub(crate) hops: usize,
    pub(crate) waits: Vec<u64>,
    pub(crate) idle_consumers: usize,
    pub(crate) idle_seconds: u64,
    pub(crate) backlog: usize,
}

pub(crate) async fn run(env: &Env, options: Options) -> anyhow::Result<()> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let broker = broker_pid(&env.kafka);
    println!(
        "hop benchmark: broker {} (pid {}), {} hops per setting, {} idle consumers for {} s",
        env.kafka,
        broker.map_or("not found".into(), |pid| pid.to_string()),
        options.hops,
        options.idle_consumers,
        options.idle_seconds,
    );
    println!(
        "{:>10} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12}",
        "wait ms", "p50 ms", "p99 ms", "max ms", "ack p50", "CPU ms/hop", "idle % core"
    );
    for &wait in &options.waits {
        let settings = |client: &str, extra: &[(&str, String)]| BusSettings {
            bootstrap_servers: env.kafka.clone(),
            registry_url: "http://127.0.0.1:1".into(),
            extra: extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            client_id: client.into(),
            rejoin_when_unassigned: None,
            session_timeout: Duration::from_secs(45),
        };
        let consumer = settings("studyspot-bench-hop", &[("fetch.wait.max.ms", wait.to_string())]);
        let producer = Producer::new(&settings("studyspot-bench-hop", &[("linger.ms", "0".into())]))?;

        let topic = format!("bench{run}.hop{wait}");
        admin::ensure_topics(&consumer, &[topic.as_str()], 1, 1).await?;
        let (tx, mut rx) = mpsc::unbounded_channel::<InboundMessage>();
        let follower = follow(&consumer, &topic, move |m| drop(tx.send(m))).await?;
        let timeout = Duration::from_millis(wait) + Duration::from_secs(30);
        // The first record only shows the consumer is fetching.
        hop(&producer, &topic, "warm-up", &mut rx, timeout).await?;

        let (mut latency, mut ack) = (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?);
        let cpu_before = broker.and_then(cpu_seconds);
        for i in 0..options.hops {
            // A pause of 0–19 ms, so records do not always land at the same point of a fetch.
            tokio::time::sleep(Duration::from_millis((i as u64 * 7) % 20)).await;
            let (total, acked) = hop(&producer, &topic, &format!("hop {i}"), &mut rx, timeout).await?;
            latency.record(total.as_micros() as u64)?;
            ack.record(acked.as_micros() as u64)?;
        }
        let cpu = cpu_before.zip(broker.and_then(cpu_seconds)).map(|(a, b)| b - a);
        drop(follower);

        let idle = idle_cpu(&consumer, &format!("bench{run}.idle{wait}"), broker, &options).await?;
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{:>10} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>12} {:>12}",
            wait,
            ms(&latency, 0.5),
            ms(&latency, 0.99),
            latency.max() as f64 / 1000.0,
            ms(&ack, 0.5),
            cpu.map_or("n/a".into(), |s| format!("{:.2}", s * 1000.0 / options.hops as f64)),
            idle.map_or("n/a".into(), |share| format!("{:.1}", share * 100.0)),
        );
    }
    if options.backlog > 0 {
        backlog(env, &format!("bench{run}.backlog"), options.backlog, broker).await?;
    }
    Ok(())
}

/// `count` records produced at once, then read back from the start.
async fn backlog(env: &Env, topic: &str, count: usize, broker: Option<u32>) -> anyhow::Result<()> {
    let settings = BusSettings {
        bootstrap_servers: env.kafka.clone(),
        registry_url: "http://127.0.0.1:1".into(),
        extra: Default::default(),
        client_id: "studyspot-bench-hop".into(),
        rejoin_when_unassigned: None,
        session_timeout: Duration::from_secs(45),
    };
    admin::ensure_topics(&settings, &[topic], 6, 1).await?;
    let producer = Producer::new(&settings)?;
    let (started, cpu_before) = (Instant::now(), broker.and_then(cpu_seconds));
    let sends = (0..count).map(|i| {
        let message = record(topic, &format!("k{}", i % 100), &format!("backlog {i}"));
        let producer = producer.clone();
        async move { producer.send(&message).await }
    });
    for sent in futures::future::join_all(sends).await {
        sent?;
    }
    let (produced, cpu_produce) = (started.elapsed(), broker.and_then(cpu_seconds));
    let started = Instant::now();
    let read = tokio::task::spawn_blocking({
        let (settings, topic) = (settings.clone(), topic.to_owned());
        move || studyspot_bus::reader::read_to_end(&settings, &topic, Duration::from_secs(600))
    })
    .await??;
    anyhow::ensure!(read.len() == count, "read {} of {count}", read.len());
    let (consumed, cpu_read) = (started.elapsed(), broker.and_then(cpu_seconds));
    let per_record = |a: Option<f64>, b: Option<f64>| {
        a.zip(b).map_or("n/a".into(), |(a, b)| format!("{:.0} µs", (b - a) * 1e6 / count as f64))
    };
    println!(
        "backlog of {count} records: produced {:.0}/s (broker CPU {} per record), read back {:.0}/s ({})",
        count as f64 / produced.as_secs_f64(),
        per_record(cpu_before, cpu_produce),
        count as f64 / consumed.as_secs_f64(),
        per_record(cpu_produce, cpu_read),
    );
    Ok(())
}

/// A record as StudySpot writes them: the headers every record carries (ids, type, trace context).
fn record(topic: &str, key: &str, payload: &str) -> OutboundMessage {
    let mut headers = Headers::default();
    headers.insert(headers::EVENT_ID, uuid::Uuid::now_v7().to_string());
    headers.insert(headers::CORRELATION_ID, payload);
    headers.insert(headers::RECORD_TYPE, "studyspot.bench.Hop");
    headers.set_trace(&TraceContext::root());
    OutboundMessage {
        topic: topic.to_owned(),
        key: key.into(),
        payload: payload.as_bytes().to_vec(),
        headers,
    }
}

/// Sends one record and waits for the consumer to hand it over: (send → delivery, send → ack).
async fn hop(
    producer: &Producer,
    topic: &str,
    payload: &str,
    rx: &mut mpsc::UnboundedReceiver<InboundMessage>,
    timeout: Duration,
) -> anyhow::Result<(Duration, Duration)> {
    let message = record(topic, "hop", payload);
    let started = Instant::now();
    producer.send(&message).await?;
    let acked = started.elapsed();
    let deadline = started + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let received = tokio::time::timeout(left, rx.recv())
            .await
            .with_context(|| format!("{payload:?} did not arrive within {timeout:?}"))?
            .context("the consumer stopped")?;
        if received.payload.as_deref() == Some(payload.as_bytes()) {
            return Ok((started.elapsed(), acked));
        }
    }
}

/// Follows `topic` from its end on a thread of its own until dropped.
async fn follow(
    settings: &BusSettings,
    topic: &str,
    sink: impl Fn(InboundMessage) + Send + 'static,
) -> anyhow::Result<tail::Tail> {
    let (settings, topics) = (settings.clone(), vec![topic.to_owned()]);
    Ok(tokio::task::spawn_blocking(move || tail::Tail::start(&settings, &topics, sink)).await??.0)
}

/// The broker's CPU (share of one core) while `idle_consumers` consumers wait on a topic nobody
/// writes to.
async fn idle_cpu(
    settings: &BusSettings,
    topic: &str,
    broker: Option<u32>,
    options: &Options,
) -> anyhow::Result<Option<f64>> {
    let Some(pid) = broker else { return Ok(None) };
    admin::ensure_topics(settings, &[topic], 6, 1).await?;
    let mut followers = Vec::new();
    for _ in 0..options.idle_consumers {
        followers.push(follow(settings, topic, drop).await?);
    }
    // Let every consumer reach its steady fetch loop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (started, before) = (Instant::now(), cpu_seconds(pid));
    tokio::time::sleep(Duration::from_secs(options.idle_seconds)).await;
    let used = before.zip(cpu_seconds(pid)).map(|(a, b)| (b - a) / started.elapsed().as_secs_f64());
    drop(followers);
    Ok(used)
}

/// utime + stime of `pid` in seconds (/proc reports clock ticks of USER_HZ, 100 on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The process listening on the first bootstrap server's port, found through /proc/net/tcp{,6}
/// and the processes' socket descriptors.
fn broker_pid(bootstrap: &str) -> Option<u32> {
    let port: u16 = bootstrap.split(',').next()?.rsplit_once(':')?.1.parse().ok()?;
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(3) == Some(&"0A");
            let local_port = fields.get(1).and_then(|a| a.rsplit_once(':')).map(|(_, p)| p);
            if listening && local_port.and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port) {
                inodes.extend(fields.get(9).map(|inode| format!("socket:[{inode}]")));
            }
        }
    }
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let fds = std::fs::read_dir(entry.path().join("fd")).ok()?;
        fds.flatten()
            .any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| inodes.iter().any(|inode| target.as_os_str() == inode.as_str()))
            })
            .then_some(pid)
    })
}
