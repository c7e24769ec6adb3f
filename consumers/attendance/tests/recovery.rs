//! The consumer runtime's promises, proven on a real attendance consumer process against the
//! real broker and PostgreSQL: a SIGKILL at any step neither loses nor doubles an effect.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::{collections::HashMap, os::unix::process::ExitStatusExt, time::Duration};

use studyspot_bus::headers;
use studyspot_schemas::attendance;
use support::{World, check_in, eventually, exited, stop, world};

const COMMANDS: usize = 120;

/// A consumer without its scheduler: the check-ins are dated 2026-01-01, so its first tick (at
/// start) would check them out after the venue's maximum stay and empty the occupancy these tests
/// count — sooner or later, depending on how busy the machine is.
fn spawn(world: &World, crash_at: Option<&str>) -> support::Consumer {
    world.spawn_consumer_with(
        crash_at,
        &world.database_url,
        &[("STUDYSPOT_ATTENDANCE__SCHEDULER_INTERVAL_SECS", "0")],
    )
}

async fn sessions(world: &World) -> i64 {
    let pool = world.pool().await;
    let n =
        sqlx::query_scalar("SELECT count(*) FROM attendance.sessions").fetch_one(&pool).await.unwrap_or(0);
    pool.close().await;
    n
}

/// Runs the whole scenario with the consumer killed at `point`, then checks exactly-once effects.
async fn survives_sigkill_at(point: &str) {
    let world = world().await;
    let seeded = support::seed(&world, COMMANDS).await;
    for n in 0..COMMANDS {
        world.send(&check_in(&world, n, if n % 2 == 0 { "ven_a" } else { "ven_b" })).await;
    }

    let mut doomed = spawn(&world, Some(point));
    let status = exited(&mut doomed, Duration::from_secs(60)).await;
    assert_eq!(status.signal(), Some(9), "the consumer should have SIGKILLed itself at {point}");

    let mut survivor = spawn(&world, None);
    let applied = eventually("every check-in applied", Duration::from_secs(60), || async {
        let n = sessions(&world).await;
        (n == COMMANDS as i64).then_some(n)
    })
    .await;
    assert_eq!(applied, COMMANDS as i64);

    let pool = world.pool().await;
    let occupancy: Vec<(String, i32)> =
        sqlx::query_as("SELECT venue_id, occupancy FROM attendance.venue_occupancy ORDER BY venue_id")
            .fetch_all(&pool)
            .await
            .expect("occupancy");
    assert_eq!(
        occupancy,
        vec![("ven_a".into(), 60), ("ven_b".into(), 60)],
        "each check-in counted exactly once"
    );

    // Every follow-on event is published (duplicates in the log are allowed, with one id each).
    let events = eventually("every follow-on event published", Duration::from_secs(60), || async {
        let unpublished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM attendance.outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap_or(1);
        if unpublished > 0 {
            return None;
        }
        let events = world.read_all(attendance::EVENTS.name);
        let mut by_id: HashMap<String, usize> = HashMap::new();
        for e in &events {
            *by_id.entry(e.headers.get(headers::EVENT_ID).unwrap_or_default().to_owned()).or_default() += 1;
        }
        (by_id.len() == COMMANDS + seeded).then_some(by_id)
    })
    .await;
    assert!(events.keys().all(|id| !id.is_empty()));
    let rejected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attendance.outbox WHERE headers::text LIKE '%CommandRejected%'",
    )
    .fetch_one(&pool)
    .await
    .expect("outbox");
    assert_eq!(
        rejected, 0,
        "a redelivered command must not be decided twice (it would be refused as a duplicate)"
    );
    let outcomes: Vec<(String, i32)> = sqlx::query_as(
        "SELECT outcome, count(*)::int FROM attendance.command_outcomes WHERE cardinality(events) = 1 GROUP BY outcome",
    )
    .fetch_all(&pool)
    .await
    .expect("outcomes");
    assert_eq!(
        outcomes,
        vec![("applied".into(), (COMMANDS + seeded) as i32)],
        "one outcome per command, naming its event"
    );
    stop(&mut survivor);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_poll_before_commit_loses_and_doubles_nothing() {
    survives_sigkill_at("before_commit:2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_commit_before_publish_loses_and_doubles_nothing() {
    survives_sigkill_at("after_commit:2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_publish_before_marking_loses_and_doubles_nothing() {
    survives_sigkill_at("after_publish:1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_is_dead_lettered_and_the_rest_applied() {
    let world = world().await;
    support::seed(&world, 3).await;
    world.send(&check_in(&world, 0, "ven_a")).await;
    world.send_raw(attendance::COMMANDS.name, "ven_a", b"not avro at all".to_vec()).await;
    let mut malformed = check_in(&world, 1, "ven_b");
    malformed.member_id = String::new();
    world.send(&malformed).await;
    world.send(&check_in(&world, 2, "ven_a")).await;

    let mut consumer = spawn(&world, None);
    eventually("the good check-ins applied", Duration::from_secs(60), || async {
        (sessions(&world).await == 2).then_some(())
    })
    .await;
    let dead = eventually("two dead letters", Duration::from_secs(60), || async {
        let dead = world.read_all(attendance::COMMANDS.dead_letter);
        (dead.len() == 2).then_some(dead)
    })
    .await;
    let reasons: Vec<&str> =
        dead.iter().map(|d| d.headers.get(headers::DLQ_REASON).unwrap_or_default()).collect();
    assert!(reasons.iter().any(|r| r.contains("Confluent wire format")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("member_id is empty")), "{reasons:?}");
    let pool = world.pool().await;
    let outcomes: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT command_type, outcome, reason FROM attendance.command_outcomes \
         WHERE command_type = 'studyspot.attendance.CheckIn' ORDER BY outcome, decided_at",
    )
    .fetch_all(&pool)
    .await
    .expect("outcomes");
    assert_eq!(outcomes.len(), 3, "the undecodable record has no command id: {outcomes:?}");
    assert_eq!(&outcomes[0].1, "applied");
    assert_eq!(&outcomes[1].1, "applied");
    assert_eq!(&outcomes[2].1, "dead_lettered");
    assert!(outcomes[2].2.as_deref().is_some_and(|r| r.contains("member_id is empty")), "{outcomes:?}");
    for d in &dead {
        assert_eq!(d.headers.get(headers::DLQ_TOPIC), Some(world.topic(attendance::COMMANDS.name).as_str()));
        assert!(d.headers.get(headers::DLQ_OFFSET).is_some());
        assert_eq!(d.headers.get(headers::DLQ_CONSUMER), Some("attendance"));
    }
    stop(&mut consumer);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_in_one_group_one_stopped_mid_stream() {
    let world = world().await;
    support::seed(&world, COMMANDS).await;
    let mut first = spawn(&world, None);
    let mut second = spawn(&world, None);
    for n in 0..COMMANDS / 2 {
        world.send(&check_in(&world, n, if n % 2 == 0 { "ven_a" } else { "ven_b" })).await;
    }
    eventually("some check-ins applied", Duration::from_secs(60), || async {
        (sessions(&world).await > 0).then_some(())
    })
    .await;
    // Stopped the way an orchestrator stops it (SIGTERM): it finishes its batch and leaves.
    let status = stop(&mut first);
    assert!(status.success(), "a stopped consumer exits cleanly, not {status}\n{}", first.log());
    for n in COMMANDS / 2..COMMANDS {
        world.send(&check_in(&world, n, if n % 2 == 0 { "ven_a" } else { "ven_b" })).await;
    }
    eventually("every check-in applied by the survivor", Duration::from_secs(90), || async {
        (sessions(&world).await == COMMANDS as i64).then_some(())
    })
    .await;
    let pool = world.pool().await;
    let total: i64 = sqlx::query_scalar("SELECT sum(occupancy)::bigint FROM attendance.venue_occupancy")
        .fetch_one(&pool)
        .await
        .expect("occupancy");
    assert_eq!(total, COMMANDS as i64);
    stop(&mut second);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_gone_for_ten_seconds_mid_stream_skips_nothing() {
    let world = world().await;
    support::seed(&world, COMMANDS).await;
    let proxy = studyspot_test_world::proxy::Proxy::start(world.database_host_port()).await;
    let mut consumer = world.spawn_consumer_with_database(None, &world.database_url_via(proxy.addr));
    for n in 0..COMMANDS / 2 {
        world.send(&check_in(&world, n, if n % 2 == 0 { "ven_a" } else { "ven_b" })).await;
    }
    eventually("some check-ins applied", Duration::from_secs(60), || async {
        (sessions(&world).await > 0).then_some(())
    })
    .await;
    proxy.down();
    for n in COMMANDS / 2..COMMANDS {
        world.send(&check_in(&world, n, if n % 2 == 0 { "ven_a" } else { "ven_b" })).await;
    }
    // The outage itself is the behaviour under test: ten seconds without a database.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        consumer.child.try_wait().expect("wait").is_none(),
        "the consumer waits out the outage instead of exiting"
    );
    proxy.up();
    eventually("every check-in applied after the outage", Duration::from_secs(90), || async {
        (sessions(&world).await == COMMANDS as i64).then_some(())
    })
    .await;
    let pool = world.pool().await;
    let occupancy: Vec<(String, i32)> =
        sqlx::query_as("SELECT venue_id, occupancy FROM attendance.venue_occupancy ORDER BY venue_id")
            .fetch_all(&pool)
            .await
            .expect("occupancy");
    assert_eq!(occupancy, vec![("ven_a".into(), 60), ("ven_b".into(), 60)]);
    stop(&mut consumer);
}
