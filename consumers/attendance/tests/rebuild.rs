//! A rebuild of attendance's projection from history, run beside the live consumer process while
//! commands keep arriving, swaps in a projection equal to the live one, and the live process goes
//! on in it. The history holds accepted and rejected commands, a dead letter, a duplicate, a batch
//! retried after a crash, and a check-in written with an older version of its schema.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::{collections::HashSet, os::unix::process::ExitStatusExt, time::Duration};

use studyspot_bus::headers;
use studyspot_schemas::{EventMetadata, attendance, billing};
use support::{World, check_in, eventually, exited, stop, world};

const MEMBERS: usize = 30;
const TOPICS: [&str; 2] = [attendance::COMMANDS.name, billing::EVENTS.name];

fn check_out(world: &World, n: usize, venue: &str) -> attendance::CheckOut {
    attendance::CheckOut {
        metadata: EventMetadata {
            event_id: uuid::Uuid::now_v7().to_string(),
            occurred_at: 1_767_229_200_000 + n as i64 * 1000,
            correlation_id: format!("out-{n}"),
            causation_id: None,
            organization_id: world.organization_id(),
            actor: "user:test".into(),
        },
        member_id: format!("mem_{n}"),
        venue_id: venue.into(),
        session_id: None,
        reason: "manual".into(),
        effective_at: None,
    }
}

fn venue_of(n: usize) -> &'static str {
    if n.is_multiple_of(2) { "ven_a" } else { "ven_b" }
}

/// Distinct ids of the follow-on events in the log, and of the dead letters' source offsets.
fn published(world: &World) -> (HashSet<String>, HashSet<String>) {
    let events = world.read_all(attendance::EVENTS.name);
    let dead = world.read_all(attendance::COMMANDS.dead_letter);
    (
        events.iter().map(|e| e.headers.get(headers::EVENT_ID).unwrap_or_default().to_owned()).collect(),
        dead.iter().map(|d| source_of(&d.headers)).collect(),
    )
}

/// Where a dead letter came from: partition/offset.
fn source_of(h: &studyspot_bus::Headers) -> String {
    format!(
        "{}/{}",
        h.get(headers::DLQ_PARTITION).unwrap_or_default(),
        h.get(headers::DLQ_OFFSET).unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_equals_live_and_is_swapped_in_while_the_live_consumer_serves() {
    let world = world().await;
    support::seed(&world, MEMBERS).await;
    for n in 0..20 {
        world.send(&check_in(&world, n, venue_of(n))).await;
    }
    // Schema evolution: this check-in is written with CheckIn before `staff_assisted`.
    world.send_older(&check_in(&world, 20, venue_of(20)), &["staff_assisted"]).await;
    // Rejections: a member without a pass, a second open session, a check-out with none open.
    world.send(&check_in(&world, 500, "ven_a")).await;
    world.send(&check_in(&world, 3, venue_of(3))).await;
    world.send(&check_out(&world, 25, venue_of(25))).await;
    // A dead letter and a duplicate (one event id twice).
    world.send_raw(attendance::COMMANDS.name, "ven_a", b"not avro at all".to_vec()).await;
    let twice = check_in(&world, 21, venue_of(21));
    world.send(&twice).await;
    world.send(&twice).await;
    for n in 0..10 {
        world.send(&check_out(&world, n, venue_of(n))).await;
    }

    // A retried batch: the first process dies before committing its first batch.
    let mut doomed = world.spawn_consumer(Some("before_commit:1"));
    let status = exited(&mut doomed, Duration::from_secs(60)).await;
    assert_eq!(status.signal(), Some(9), "the consumer should have SIGKILLed itself:\n{}", doomed.log());
    let mut live = world.spawn_consumer(None);
    world.caught_up("attendance", &TOPICS).await;
    // Compared at rest: the live process's scheduler adds commands (automatic check-outs) at any
    // moment, and a rebuild follows wherever the live positions stand when it reads them.
    assert!(stop(&mut live).success(), "{}", live.log());

    // A rebuild beside the live projection equals it, column for column.
    let report = world.rebuild(&["--no-swap"], Duration::from_secs(180)).await;
    assert!(report.contains("into attendance_rebuild_1"), "unexpected report: {report}");
    let live_sum = world.checksum("attendance", &[]).await;
    assert_eq!(world.checksum("attendance_rebuild_1", &[]).await, live_sum, "rebuild vs live");
    assert!(live_sum.tables.iter().any(|t| t.table == "sessions" && t.rows == 22), "{live_sum:?}");
    let live = world.spawn_consumer(None);

    // The rebuild runs while commands keep arriving; the live process keeps applying them.
    let traffic = async {
        for n in 22..MEMBERS {
            world.send(&check_in(&world, n, venue_of(n))).await;
        }
        for n in 10..15 {
            world.send(&check_out(&world, n, venue_of(n))).await;
        }
    };
    let (report, ()) = tokio::join!(world.rebuild(&[], Duration::from_secs(180)), traffic);
    assert!(
        report.contains("rebuilt attendance") && report.contains("kept as attendance_old_2"),
        "unexpected report: {report}"
    );
    assert_eq!(
        world.schemas("attendance").await,
        vec!["attendance", "attendance_old_2", "attendance_rebuild_1"]
    );

    // The live process goes on in the swapped-in schema: commands sent after the swap are decided
    // there, and the old projection no longer moves.
    let mut after = Vec::new();
    for n in 15..20 {
        let command = check_out(&world, n, venue_of(n));
        after.push(command.metadata.event_id.clone());
        world.send(&command).await;
    }
    let mut live = live;
    world.caught_up("attendance", &TOPICS).await;
    assert!(stop(&mut live).success(), "{}", live.log());
    let pool = world.pool().await;
    let decided = |schema: &'static str| {
        let (pool, after) = (pool.clone(), after.clone());
        async move {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {schema}.command_outcomes WHERE command_id = ANY($1)"
            )))
            .bind(&after)
            .fetch_one(&pool)
            .await
            .expect("outcomes");
            n
        }
    };
    assert_eq!(decided("attendance").await, 5, "{}", live.log());
    assert_eq!(decided("attendance_old_2").await, 0);

    // A rebuild of the whole history again, not swapped in, equals the projection the swap left and
    // the live process continued.
    let report = world.rebuild(&["--no-swap"], Duration::from_secs(180)).await;
    assert!(report.contains("into attendance_rebuild_3"), "unexpected report: {report}");
    let rebuilt = world.checksum("attendance_rebuild_3", &[]).await;
    let swapped_in = world.checksum("attendance", &[]).await;
    assert_eq!(rebuilt, swapped_in, "a rebuild of the live projection differs from it");
    assert!(rebuilt.tables.iter().any(|t| t.table == "sessions" && t.rows == 30), "{rebuilt:?}");

    // Nothing was published twice or lost around the swap: the log's follow-on events are exactly
    // the outbox rows of the old and the swapped-in schema (the rebuilds publish nothing).
    eventually("the outbox published", Duration::from_secs(60), || async {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM attendance.outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap_or(1);
        (left == 0).then_some(())
    })
    .await;
    let rows: Vec<(String, String, serde_json::Value)> = sqlx::query_as(
        "SELECT event_id, topic, headers FROM attendance_old_2.outbox \
         UNION ALL SELECT event_id, topic, headers FROM attendance.outbox",
    )
    .fetch_all(&pool)
    .await
    .expect("outbox rows");
    let events_topic = world.topic(attendance::EVENTS.name);
    let expected_events: HashSet<String> =
        rows.iter().filter(|r| r.1 == events_topic).map(|r| r.0.clone()).collect();
    let dead_topic = world.topic(attendance::COMMANDS.dead_letter);
    let expected_dead: HashSet<String> = rows
        .iter()
        .filter(|r| r.1 == dead_topic)
        .map(|r| source_of(&serde_json::from_value(r.2.clone()).expect("headers")))
        .collect();
    let (events, dead) = published(&world);
    assert_eq!(events, expected_events, "follow-on events in the log vs the outboxes");
    assert_eq!(dead, expected_dead, "dead letters in the log vs the outboxes");
    assert!(!dead.is_empty());
    let rebuild_outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM attendance_rebuild_3.outbox")
        .fetch_one(&pool)
        .await
        .expect("rebuild outbox");
    assert_eq!(rebuild_outbox, 0, "a rebuild writes no outbox rows");

    // What the rebuilds left stays until dropped.
    let dropped = studyspot_consumer_runtime::drop_old(&pool, "attendance", None).await.expect("drop old");
    assert_eq!(dropped, vec!["attendance_old_2", "attendance_rebuild_1", "attendance_rebuild_3"]);
    assert_eq!(world.schemas("attendance").await, vec!["attendance"]);
    pool.close().await;
}
