//! What the delivery worker is in the middle of, met by the log and by a rebuild's swap: the real
//! broker and PostgreSQL, a notifications process with its delivery worker, and a webhook
//! endpoint that holds requests until the test lets them go (the worker mid-send).
//!
//! - A digest is sealed by a record before it goes out: a message arriving while the worker is
//!   sending it opens the next digest instead of being marked `digested` into one already on its
//!   way (and lost), a cancel no longer takes a message out of it, and a rebuild agrees.
//! - A swap while a worker is sending carries its lease into the new projection: another
//!   process's worker does not send the message a second time from it.
//! - The statements that carry the worker's state across a swap, case by case.
//! - A database gone while the worker sends: the outcome is recorded once the database is back,
//!   and the message is not sent again when the lease runs out — however long the outage.

#[path = "rebuild/held.rs"]
mod held;

use std::{collections::HashMap, time::Duration};

use held::HeldEndpoint;
use sqlx::PgPool;
use studyspot_consumer_runtime::Handler as _;
use studyspot_notifications::NotificationsHandler;
use studyspot_schemas::{
    alerts, attendance, billing,
    notifications::{CancelNotifications, ReleaseNotification, SendNotification, SetPreferences},
};
use studyspot_test_world::{Consumer, World, eventually, proxy::Proxy, stop};

/// The delivery worker's own bookkeeping, which a rebuild does not reproduce (see `rebuild.rs`).
const EXCLUDED: [&str; 3] = ["deliveries.attempts", "deliveries.next_attempt_at", "deliveries.last_error"];

async fn world() -> World {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    // Notifications reads these domains' events: the topics exist in every real deployment.
    let names: Vec<String> = [&billing::EVENTS, &attendance::EVENTS, &alerts::EVENTS]
        .iter()
        .flat_map(|t| [world.topic(t.name), world.topic(t.dead_letter)])
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    studyspot_bus::admin::ensure_topics(&world.bus, &refs, 3, 1).await.expect("other domains' topics");
    world
}

fn consumer(world: &World) -> Consumer {
    // A send held for the whole test is still the worker's (not a crashed worker's).
    consumer_with_lease(world, &world.database_url, "600")
}

fn consumer_with_lease(world: &World, database_url: &str, lease_secs: &str) -> Consumer {
    world.spawn_consumer_with(
        None,
        database_url,
        &[
            // One try per attempt, and long enough for the held endpoint to answer.
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__RETRY__MAX_ATTEMPTS", "1"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__RETRY__TIMEOUT_MS", "120000"),
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__LEASE_SECS", lease_secs),
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__POLL_INTERVAL_MS", "50"),
        ],
    )
}

fn preferences(world: &World, recipient: &str, webhook: &str) -> SetPreferences {
    SetPreferences {
        metadata: world.metadata("user:test"),
        recipient_id: recipient.into(),
        email: None,
        phone: None,
        whatsapp: None,
        push_token: None,
        webhook_url: Some(webhook.into()),
        webhook_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        time_zone: "Europe/Berlin".into(),
        quiet_start: None,
        quiet_end: None,
        opted_out_channels: Vec::new(),
        opted_out_categories: Vec::new(),
        category_caps: Default::default(),
        daily_cap: None,
    }
}

fn message(world: &World, id: &str, recipient: &str, channel: &str) -> SendNotification {
    SendNotification {
        metadata: world.metadata("user:test"),
        notification_id: id.into(),
        recipient_id: recipient.into(),
        channel: channel.into(),
        category: "operational".into(),
        subject: Some(format!("About {id}")),
        body: format!("Body of {id}."),
        template_id: None,
        variables: HashMap::new(),
        locale: None,
        critical: false,
        transaction_id: None,
        send_at: None,
        campaign_id: None,
        digest_key: None,
        digest_window_secs: None,
        digest_at_local: None,
    }
}

/// A webhook message of the `seats` digest (an hour's window), in transaction `tx_<id>`.
fn digested(world: &World, id: &str) -> SendNotification {
    SendNotification {
        transaction_id: Some(format!("tx_{id}")),
        digest_key: Some("seats".into()),
        digest_window_secs: Some(3600),
        ..message(world, id, "mem_hook", "webhook")
    }
}

async fn scalar<T>(pool: &PgPool, sql: &str) -> Option<T>
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_optional(pool).await.ok().flatten()
}

/// Waits until notification `id` in `schema` is `want`; returns the digest it is in, if any.
async fn reaches(pool: &PgPool, schema: &str, id: &str, want: &str) -> Option<String> {
    let sql = format!(
        "SELECT coalesce(digest_id, '') FROM {schema}.notifications WHERE notification_id = '{id}' AND status = '{want}'"
    );
    let digest: String =
        eventually(&format!("{id} {want}"), Duration::from_secs(60), || scalar(pool, &sql)).await;
    (!digest.is_empty()).then_some(digest)
}

/// Waits until the live consumer has decided the command `event_id`.
async fn decided(pool: &PgPool, event_id: &str) {
    let sql = format!("SELECT outcome FROM notifications.command_outcomes WHERE command_id = '{event_id}'");
    eventually(&format!("command {event_id} decided"), Duration::from_secs(60), || {
        scalar::<String>(pool, &sql)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_arriving_while_its_digest_is_sent_opens_the_next_one_and_a_rebuild_agrees() {
    let world = world().await;
    let pool = world.pool().await;
    let hook = HeldEndpoint::start().await;
    let mut live = consumer(&world);
    world.send(&preferences(&world, "mem_hook", &hook.url)).await;
    eventually("the preferences", Duration::from_secs(60), || async {
        scalar::<i64>(&pool, "SELECT count(*) FROM notifications.preferences").await.filter(|n| *n == 1)
    })
    .await;

    // Two messages collected into one digest, its window open for an hour.
    world.send(&digested(&world, "ntf_d1")).await;
    let first = reaches(&pool, "notifications", "ntf_d1", "digested").await.expect("in a digest");
    world.send(&digested(&world, "ntf_d2")).await;
    assert_eq!(reaches(&pool, "notifications", "ntf_d2", "digested").await.as_deref(), Some(first.as_str()));
    assert_eq!(hook.arrived(), 0, "the digest waits for its window\n{}", live.log());

    // The window closes for the worker (its clock, not the log's): it asks for the seal, the
    // handler seals the digest, the worker sends it — and the endpoint holds the request.
    sqlx::query("UPDATE notifications.deliveries SET next_attempt_at = now() WHERE notification_id = $1")
        .bind(&first)
        .execute(&pool)
        .await
        .expect("the window closed for the worker");
    eventually("the digest at the endpoint", Duration::from_secs(60), || async {
        (hook.arrived() == 1).then_some(())
    })
    .await;
    let sealed = format!(
        "SELECT count(*) FROM notifications.digests WHERE digest_id = '{first}' AND sealed_at IS NOT NULL"
    );
    assert_eq!(scalar::<i64>(&pool, &sealed).await, Some(1), "sealed before it was sent\n{}", live.log());

    // Mid-send, inside the digest's window by the log's clock: a third message opens the next
    // digest (joined to the first, it would be marked digested and never go out), and a cancel
    // of the second's transaction no longer takes it out of what is on its way.
    world.send(&digested(&world, "ntf_d3")).await;
    let next = reaches(&pool, "notifications", "ntf_d3", "digested").await.expect("in a digest");
    assert_ne!(next, first, "a message after the seal opens the next digest\n{}", live.log());
    let cancel = CancelNotifications {
        metadata: world.metadata("user:test"),
        recipient_id: "mem_hook".into(),
        transaction_id: "tx_ntf_d2".into(),
    };
    world.send(&cancel).await;
    decided(&pool, &cancel.metadata.event_id).await;
    let status = "SELECT status FROM notifications.notifications WHERE notification_id = 'ntf_d2'";
    assert_eq!(scalar::<String>(&pool, status).await.as_deref(), Some("digested"));
    let body = format!("SELECT body FROM notifications.notifications WHERE notification_id = '{first}'");
    let sent_body: String = scalar(&pool, &body).await.expect("the first digest");
    assert!(
        sent_body.contains("Body of ntf_d1.")
            && sent_body.contains("Body of ntf_d2.")
            && !sent_body.contains("ntf_d3"),
        "the first digest is what was sealed: {sent_body}"
    );

    // The endpoint answers: the first digest is sent. "Send now" of the third sends the next.
    hook.release();
    reaches(&pool, "notifications", &first, "sent").await;
    let release = ReleaseNotification {
        metadata: world.metadata("user:test"),
        notification_id: "ntf_d3".into(),
        recipient_id: "mem_hook".into(),
    };
    world.send(&release).await;
    reaches(&pool, "notifications", &next, "sent").await;
    assert_eq!(hook.arrived(), 2, "each digest once, every message in one of them\n{}", live.log());
    eventually("every report applied and the outbox empty", Duration::from_secs(60), || async {
        scalar::<i64>(
            &pool,
            "SELECT (SELECT count(*) FROM notifications.deliveries WHERE status IN ('pending', 'reported')) \
             + (SELECT count(*) FROM notifications.outbox WHERE published_at IS NULL)",
        )
        .await
        .filter(|n| *n == 0)
    })
    .await;
    assert!(stop(&mut live).success(), "{}", live.log());

    // A rebuild meets the worker's ask for the seal in the log where the live process did.
    let report = world.rebuild(&["--no-swap"], Duration::from_secs(180)).await;
    assert!(report.contains("into notifications_rebuild_1"), "unexpected report: {report}");
    let live_sum = world.checksum("notifications", &EXCLUDED).await;
    assert_eq!(world.checksum("notifications_rebuild_1", &EXCLUDED).await, live_sum, "rebuild vs live");
    assert!(live_sum.tables.iter().any(|t| t.table == "digests" && t.rows == 2), "{live_sum:?}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_swap_while_the_worker_is_sending_does_not_send_the_message_again() {
    let world = world().await;
    let pool = world.pool().await;
    let hook = HeldEndpoint::start().await;
    // Two processes of the consumer, as a deployment scaled out runs them: their workers share
    // the deliveries (a lease keeps each to one of them). While one waits for the endpoint (its
    // round waits with it), the other works on.
    let mut live = consumer(&world);
    let mut replica = consumer(&world);
    world.send(&preferences(&world, "mem_hook", &hook.url)).await;
    eventually("the preferences", Duration::from_secs(60), || async {
        scalar::<i64>(&pool, "SELECT count(*) FROM notifications.preferences").await.filter(|n| *n == 1)
    })
    .await;
    world.send(&message(&world, "ntf_held", "mem_hook", "webhook")).await;
    eventually("the webhook at the endpoint", Duration::from_secs(60), || async {
        (hook.arrived() == 1).then_some(())
    })
    .await;

    // Swapped in while the worker waits for the endpoint: the rebuild's delivery is pending, as
    // the log says, and carries the worker's lease.
    let report = world.rebuild(&[], Duration::from_secs(180)).await;
    assert!(report.contains("kept as notifications_old_1"), "unexpected report: {report}");
    let lease = "SELECT count(*) FROM notifications.deliveries n JOIN notifications_old_1.deliveries o \
                   USING (notification_id) \
                 WHERE notification_id = 'ntf_held' AND n.status = 'pending' AND n.leased_until = o.leased_until";
    assert_eq!(
        scalar::<i64>(&pool, lease).await,
        Some(1),
        "the lease went across\n{}\n{}",
        live.log(),
        replica.log()
    );
    // The free worker goes on in the new projection: a later message goes out (the held one, due
    // earlier, would have been leased again in that round or before it) ...
    world.send(&message(&world, "ntf_probe", "mem_ada", "in_app")).await;
    let probe = "SELECT count(*) FROM notifications.notifications WHERE notification_id = 'ntf_probe' AND status = 'sent'";
    eventually("ntf_probe sent", Duration::from_secs(60), || async {
        assert_eq!(hook.arrived(), 1, "the held message was sent again\n{}\n{}", live.log(), replica.log());
        scalar::<i64>(&pool, probe).await.filter(|n| *n == 1)
    })
    .await;
    assert_eq!(hook.arrived(), 1, "the held message was not sent again\n{}\n{}", live.log(), replica.log());
    // ... and the held one is sent once, its report applied in the new projection.
    hook.release();
    reaches(&pool, "notifications", "ntf_held", "sent").await;
    assert_eq!(hook.arrived(), 1, "{}\n{}", live.log(), replica.log());
    assert!(stop(&mut replica).success(), "{}", replica.log());
    assert!(stop(&mut live).success(), "{}", live.log());
    pool.close().await;
}

/// One delivery as the live worker left it, and as the rebuild's handler decided it.
struct Case {
    id: &'static str,
    live: &'static str,
    attempts: i32,
    leased: bool,
    retry_in_minutes: i32,
    error: Option<&'static str>,
    rebuilt: &'static str,
}

/// A delivery of the swapped-in schema after the carry: (status, attempts, leased, due later
/// than a minute from now, last error).
#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct Carried {
    status: String,
    attempts: i32,
    leased: bool,
    later: bool,
    last_error: Option<String>,
}

fn carried(status: &str, attempts: i32, leased: bool, later: bool, last_error: Option<&str>) -> Carried {
    Carried { status: status.into(), attempts, leased, later, last_error: last_error.map(Into::into) }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swap_carries_what_the_worker_did_beside_the_log_and_keeps_what_the_handler_decided() {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    for schema in ["notifications", "notifications_rebuild_1"] {
        let db = studyspot_consumer_runtime::connect_schema(
            &world.database_url,
            schema,
            2,
            Some(&studyspot_notifications_projection::MIGRATIONS),
        )
        .await
        .expect("schema");
        db.pool.close().await;
    }
    let pool = world.pool().await;
    let case = |id, live, attempts, leased, retry_in_minutes, error, rebuilt| Case {
        id,
        live,
        attempts,
        leased,
        retry_in_minutes,
        error,
        rebuilt,
    };
    let cases = [
        // Reported, the report not yet applied (in the outbox or the log past the swap).
        case("ntf_reported", "reported", 1, false, 0, None, "pending"),
        // Being sent: leased.
        case("ntf_sending", "pending", 0, true, 0, None, "pending"),
        // Tried twice, waiting out its back-off.
        case("ntf_backoff", "pending", 2, false, 5, Some("timeout"), "pending"),
        // Due, never tried.
        case("ntf_due", "pending", 0, false, 0, None, "pending"),
        // Cancelled by the log (the handler's decision), reported by the worker meanwhile.
        case("ntf_cancelled", "reported", 1, false, 0, None, "cancelled"),
        // Settled live, left pending by a rebuild whose handler changed: it went out.
        case("ntf_changed", "settled", 1, false, 0, None, "pending"),
    ];
    for c in &cases {
        let rebuilt =
            Case { live: c.rebuilt, attempts: 0, leased: false, retry_in_minutes: 0, error: None, ..*c };
        for (schema, d) in [("notifications", c), ("notifications_rebuild_1", &rebuilt)] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {schema}.notifications (notification_id, organization_id, recipient_id, channel, \
                   category, body, status, created_at) \
                 VALUES ($1, 'org_1', 'mem_1', 'email', 'operational', 'Hello', 'queued', now())"
            )))
            .bind(d.id)
            .execute(&pool)
            .await
            .expect("notification");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {schema}.deliveries (notification_id, organization_id, recipient_id, channel, status, \
                   attempts, next_attempt_at, leased_until, last_error, created_at) \
                 VALUES ($1, 'org_1', 'mem_1', 'email', $2, $3, now() + make_interval(mins => $4::int), \
                   CASE WHEN $5::boolean THEN now() + interval '10 minutes' END, $6, now())"
            )))
            .bind(d.id)
            .bind(d.live)
            .bind(d.attempts)
            .bind(d.retry_in_minutes)
            .bind(d.leased)
            .bind(d.error)
            .execute(&pool)
            .await
            .expect("delivery");
        }
    }
    sqlx::query(
        "INSERT INTO notifications.webhook_endpoints (organization_id, url, recipient_id, failing_since, last_error) \
         VALUES ('org_1', 'https://hooks.example.org/a', 'mem_1', now() - interval '1 hour', 'timeout')",
    )
    .execute(&pool)
    .await
    .expect("endpoint");

    let mut tx = pool.begin().await.expect("tx");
    for statement in NotificationsHandler.carried_across_swap("notifications", "notifications_rebuild_1") {
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut *tx).await.expect("carried across");
    }
    tx.commit().await.expect("commit");

    let after = |id: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, Carried>(
                "SELECT status, attempts, leased_until IS NOT NULL AS leased, \
                   next_attempt_at > now() + interval '1 minute' AS later, last_error \
                 FROM notifications_rebuild_1.deliveries WHERE notification_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect(id)
        }
    };
    assert_eq!(after("ntf_reported").await, carried("reported", 1, false, false, None), "never sent again");
    assert_eq!(after("ntf_sending").await, carried("pending", 0, true, false, None), "still the worker's");
    assert_eq!(
        after("ntf_backoff").await,
        carried("pending", 2, false, true, Some("timeout")),
        "its back-off"
    );
    assert_eq!(after("ntf_due").await, carried("pending", 0, false, false, None));
    assert_eq!(after("ntf_cancelled").await, carried("cancelled", 1, false, false, None), "the log's word");
    assert_eq!(after("ntf_changed").await, carried("reported", 1, false, false, None), "it went out");
    let endpoints: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications_rebuild_1.webhook_endpoints WHERE failing_since IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .expect("endpoints");
    assert_eq!(endpoints, 1, "the endpoint's failing streak goes on");
    pool.close().await;
}

/// A webhook message sent while the database is cut for `outage` (a consumer with a lease of
/// `lease_secs`): it must reach the endpoint once and be recorded `sent` once the database is back.
async fn sent_once_across(outage: Duration, lease_secs: &str) {
    let world = world().await;
    let pool = world.pool().await;
    let hook = HeldEndpoint::start().await;
    // The consumer reaches its database through a proxy the test cuts.
    let database = Proxy::start(world.database_host_port()).await;
    let mut live = consumer_with_lease(&world, &world.database_url_via(database.addr), lease_secs);
    world.send(&preferences(&world, "mem_hook", &hook.url)).await;
    eventually("the preferences", Duration::from_secs(60), || async {
        scalar::<i64>(&pool, "SELECT count(*) FROM notifications.preferences").await.filter(|n| *n == 1)
    })
    .await;
    world.send(&message(&world, "ntf_outage", "mem_hook", "webhook")).await;
    eventually("the webhook at the endpoint", Duration::from_secs(60), || async {
        (hook.arrived() == 1).then_some(())
    })
    .await;

    // Mid-send the database goes away; then the endpoint takes the message. The outage is the
    // behaviour under test.
    database.down();
    hook.release();
    tokio::time::sleep(outage).await;
    database.up();

    // Once it is `sent`, its delivery is settled: no later round can lease it again.
    reaches(&pool, "notifications", "ntf_outage", "sent").await;
    let settled = "SELECT status FROM notifications.deliveries WHERE notification_id = 'ntf_outage'";
    assert_eq!(scalar::<String>(&pool, settled).await.as_deref(), Some("settled"));
    assert_eq!(hook.arrived(), 1, "sent once, its outcome recorded after the outage\n{}", live.log());
    let attempts = "SELECT attempts FROM notifications.deliveries WHERE notification_id = 'ntf_outage'";
    assert_eq!(scalar::<i32>(&pool, attempts).await, Some(1), "{}", live.log());
    assert!(stop(&mut live).success(), "{}", live.log());
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_gone_between_a_send_and_its_record_sends_nothing_twice() {
    // Shorter than the lease: the worker waits for the database to record the outcome.
    sent_once_across(Duration::from_secs(2), "10").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_gone_for_longer_than_the_lease_sends_nothing_twice() {
    // Longer than the lease: the worker keeps the outcome and records it when it leases the
    // delivery again, instead of sending again.
    sent_once_across(Duration::from_secs(6), "3").await;
}
