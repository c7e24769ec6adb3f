//! `studyspot projection checksum` on a fresh database: two projections with the same rows,
//! written in different orders and with different bookkeeping, have one digest; changing one row
//! changes it.

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection, PgPool};

const BIN: &str = env!("CARGO_BIN_EXE_studyspot");

struct Database {
    name: String,
    url: String,
}

async fn fresh_database() -> Database {
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    let url = studyspot_fresh_database::create(&studyspot_fresh_database::admin_url(), &name)
        .await
        .expect("a database of its own on PostgreSQL for tests");
    Database { name, url }
}

/// A projection in `schema`: a few typed tables, rows inserted in `order`, and bookkeeping that
/// differs with `bookkeeping_seed`.
async fn projection(pool: &PgPool, schema: &str, order: &[i32], bookkeeping_seed: i64) {
    let ddl = format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.sessions (
             session_id text PRIMARY KEY, member_id text NOT NULL, seat_id text,
             started_at timestamptz NOT NULL, minutes integer, details jsonb NOT NULL,
             refreshed_at timestamptz NOT NULL DEFAULT clock_timestamp());
         CREATE TABLE {schema}.venue_occupancy (venue_id text PRIMARY KEY, occupancy integer NOT NULL);
         CREATE TABLE {schema}.consumer_offsets (topic text, partition integer, next_offset bigint);
         CREATE TABLE {schema}.applied_events (event_id text PRIMARY KEY);
         CREATE TABLE {schema}.outbox (id bigserial PRIMARY KEY, event_id text NOT NULL);"
    );
    pool.execute(sqlx::AssertSqlSafe(ddl)).await.expect("ddl");
    for n in order {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {schema}.sessions (session_id, member_id, seat_id, started_at, minutes, details)
             VALUES ($1, $2, $3, to_timestamp($4), $5, $6)"
        )))
        .bind(format!("ses_{n}"))
        .bind(format!("mem_{n}"))
        .bind((n % 2 == 0).then(|| format!("seat_{n}")))
        .bind(1_767_225_600.0 + f64::from(*n) * 60.0)
        .bind((n % 3 != 0).then_some(n * 10))
        .bind(serde_json::json!({"zone": format!("zon_{}", n % 4), "tags": [n]}))
        .execute(pool)
        .await
        .expect("session");
    }
    for (venue, occupancy) in [("ven_b", 7), ("ven_a", 3)] {
        sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO {schema}.venue_occupancy VALUES ($1, $2)")))
            .bind(venue)
            .bind(occupancy)
            .execute(pool)
            .await
            .expect("occupancy");
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.applied_events SELECT 'e' || g FROM generate_series(1, $1::int) g"
    )))
    .bind(bookkeeping_seed)
    .execute(pool)
    .await
    .expect("applied events");
    sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO {schema}.consumer_offsets VALUES ('t', 0, $1)")))
        .bind(bookkeeping_seed)
        .execute(pool)
        .await
        .expect("offsets");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.outbox (event_id) SELECT 'e' || g FROM generate_series(1, $1::int) g"
    )))
    .bind(bookkeeping_seed)
    .execute(pool)
    .await
    .expect("outbox");
}

/// Runs the checksum command; returns (stdout, digest).
async fn checksum(db: &Database, consumer: &str, extra: &[&str]) -> (String, String) {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(["projection", "checksum", consumer])
        .args(extra)
        .env("STUDYSPOT_POSTGRES__URL", &db.url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("checksum within its deadline")
        .expect("checksum ran");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "checksum failed: {}", String::from_utf8_lossy(&output.stderr));
    let digest = stdout
        .lines()
        .last()
        .and_then(|l| l.split_once("digest "))
        .map(|(_, d)| d.trim().to_owned())
        .unwrap_or_else(|| panic!("a digest line in {stdout}"));
    assert_eq!(digest.len(), 64, "{stdout}");
    (stdout, digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_projections_have_one_digest_and_a_changed_row_changes_it() {
    let db = fresh_database().await;
    let pool = PgPool::connect(&db.url).await.expect("test db");
    projection(&pool, "live", &[1, 2, 3, 4, 5, 6, 7, 8], 3).await;
    projection(&pool, "rebuilt", &[8, 6, 4, 2, 7, 5, 3, 1], 11).await;

    // refreshed_at is wall-clock: the two differ until it is left out.
    let (_, live_all) = checksum(&db, "live", &[]).await;
    let (_, rebuilt_all) = checksum(&db, "rebuilt", &[]).await;
    assert_ne!(live_all, rebuilt_all, "a wall-clock column differs");

    let ignore = ["--exclude-column", "sessions.refreshed_at"];
    let (live_out, live) = checksum(&db, "live", &ignore).await;
    let (_, rebuilt) = checksum(&db, "attendance", &["--schema", "rebuilt", ignore[0], ignore[1]]).await;
    assert_eq!(live, rebuilt, "same rows in another order, other bookkeeping: one digest\n{live_out}");
    assert!(live_out.contains("sessions") && live_out.contains("8 rows"), "{live_out}");
    assert!(live_out.contains("venue_occupancy") && live_out.contains("2 rows"), "{live_out}");
    for bookkeeping in ["consumer_offsets", "applied_events", "outbox"] {
        assert!(!live_out.contains(bookkeeping), "{bookkeeping} is left out: {live_out}");
    }

    // One changed value, then a removed row, each change the digest; undoing them restores it.
    pool.execute("UPDATE rebuilt.sessions SET minutes = minutes + 1 WHERE session_id = 'ses_4'")
        .await
        .expect("update");
    let (_, changed) = checksum(&db, "rebuilt", &ignore).await;
    assert_ne!(changed, live);
    pool.execute("UPDATE rebuilt.sessions SET minutes = minutes - 1 WHERE session_id = 'ses_4'")
        .await
        .expect("undo");
    assert_eq!(checksum(&db, "rebuilt", &ignore).await.1, live);
    pool.execute("UPDATE rebuilt.sessions SET seat_id = NULL WHERE session_id = 'ses_2'")
        .await
        .expect("null");
    assert_ne!(checksum(&db, "rebuilt", &ignore).await.1, live, "a value becoming null counts");
    pool.execute("UPDATE rebuilt.sessions SET seat_id = 'seat_2' WHERE session_id = 'ses_2'")
        .await
        .expect("undo");
    pool.execute("DELETE FROM rebuilt.venue_occupancy WHERE venue_id = 'ven_a'").await.expect("delete");
    assert_ne!(checksum(&db, "rebuilt", &ignore).await.1, live);

    // A schema that does not exist is an error, not an empty digest.
    let output = tokio::process::Command::new(BIN)
        .args(["projection", "checksum", "nothing_here"])
        .env("STUDYSPOT_POSTGRES__URL", &db.url)
        .output()
        .await
        .expect("ran");
    assert!(!output.status.success());

    pool.close().await;
    let mut admin = PgConnection::connect(&studyspot_fresh_database::admin_url()).await.expect("admin");
    let _ = admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {} WITH (FORCE)", db.name))).await;
}
