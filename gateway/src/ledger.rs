//! The ledger of accepted commands, in the gateway's own schema: command status answers from it,
//! and an `Idempotency-Key` makes a retry return the first answer instead of a second command.

use std::{str::FromStr, time::Duration};

use sqlx::{
    Executor, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    types::Json,
};
use studyspot_bus::{Headers, OutboundMessage};
use uuid::Uuid;

static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

const SCHEMA: &str = "gateway";

/// A request that carried an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    /// SHA-256 of the method, path and body: the same key with another request is refused.
    pub request_hash: Vec<u8>,
}

/// One accepted command, as the ledger keeps it.
pub struct Entry<'a> {
    pub command_id: Uuid,
    pub organization_id: &'a str,
    pub actor: &'a str,
    pub member_id: Option<&'a str>,
    pub domain: &'static str,
    pub command_type: &'static str,
    pub response: &'a serde_json::Value,
    pub idempotency: Option<&'a Idempotency>,
    pub message: &'a OutboundMessage,
}

/// What [`Ledger::begin`] found.
pub enum Begun {
    /// A new command: produce it, then [`Ledger::produced`].
    New,
    /// The key was used before for the same request and that command reached the broker.
    Replay(serde_json::Value),
    /// The key's first request never confirmed its record reached the broker (it failed, or the
    /// gateway died): produce this stored record again (same event id), then mark it.
    Resend { command_id: Uuid, response: serde_json::Value, message: OutboundMessage },
    /// The key was used for a different request.
    Reused,
    /// The key's first request is still in flight.
    InFlight,
}

/// A command as the status endpoint shows it.
#[derive(Debug, sqlx::FromRow)]
pub struct Accepted {
    pub member_id: Option<String>,
    pub domain: String,
    pub command_type: String,
    pub response: Json<serde_json::Value>,
    pub accepted_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone)]
pub struct Ledger {
    pool: PgPool,
    /// The same database with `synchronous_commit = off`, for marking a keyed command produced:
    /// a mark lost to a database crash only makes a retry re-send the same record after
    /// `presumed_dead_after` (same event id, which consumers apply once), so waiting for its WAL
    /// flush would cost every command a second disk sync for nothing.
    marks: PgPool,
    /// A first request this old without confirmation from the broker is taken for dead: longer
    /// than the producer's delivery timeout, so it cannot still be sending.
    presumed_dead_after: Duration,
}

impl Ledger {
    /// Connects to `url` with the `gateway` schema, creating and migrating it when needed.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?.options([("search_path", SCHEMA)]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        let marks = PgPoolOptions::new()
            .max_connections(max_connections.div_ceil(2))
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options.options([("synchronous_commit", "off")]));
        {
            // Gateways starting together take turns creating the schema (it races otherwise).
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('studyspot.create_schema.gateway'))")
                .execute(&mut *tx)
                .await?;
            tx.execute("CREATE SCHEMA IF NOT EXISTS gateway").await?;
            tx.commit().await?;
        }
        MIGRATIONS.run(&pool).await?;
        Ok(Self { pool, marks, presumed_dead_after: Duration::from_secs(35) })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Records a command about to be produced, or finds what a retried key already did. Only a
    /// keyed command keeps its record (payload and headers) until it is marked produced: nothing
    /// re-sends a command without a key, so its row is its status and nothing more.
    pub async fn begin(&self, entry: &Entry<'_>) -> Result<Begun, sqlx::Error> {
        let kept = entry.idempotency.is_some();
        let headers = kept.then(|| serde_json::to_value(&entry.message.headers).unwrap_or_default());
        let inserted = sqlx::query(
            "INSERT INTO commands (command_id, organization_id, actor, member_id, domain, command_type, response, \
                                   idempotency_key, request_hash, topic, record_key, payload, headers) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (organization_id, actor, idempotency_key) DO NOTHING",
        )
        .bind(entry.command_id)
        .bind(entry.organization_id)
        .bind(entry.actor)
        .bind(entry.member_id)
        .bind(entry.domain)
        .bind(entry.command_type)
        .bind(Json(entry.response))
        .bind(entry.idempotency.map(|i| i.key.as_str()))
        .bind(entry.idempotency.map(|i| i.request_hash.as_slice()))
        .bind(&entry.message.topic)
        .bind(&entry.message.key)
        .bind(kept.then_some(&entry.message.payload))
        .bind(headers.as_ref().map(Json))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Begun::New);
        }
        let Some(idempotency) = entry.idempotency else {
            // Without a key only a command id collision conflicts, and ids are fresh UUIDv7s.
            return Err(sqlx::Error::Protocol("command id collision".into()));
        };
        let first: Option<FirstRequest> = sqlx::query_as(
            "SELECT command_id, response, request_hash, produced_at IS NOT NULL AS produced, \
                    (produce_failed_at IS NOT NULL OR accepted_at < now() - make_interval(secs => $4)) AS presumed_dead, \
                    topic, record_key, payload, headers \
             FROM commands WHERE organization_id = $1 AND actor = $2 AND idempotency_key = $3",
        )
        .bind(entry.organization_id)
        .bind(entry.actor)
        .bind(&idempotency.key)
        .bind(self.presumed_dead_after.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        // Deleted between the two statements (retention): take it as new next time.
        let Some(first) = first else { return Ok(Begun::InFlight) };
        if first.request_hash.as_deref() != Some(idempotency.request_hash.as_slice()) {
            return Ok(Begun::Reused);
        }
        if first.produced {
            return Ok(Begun::Replay(first.response.0));
        }
        if !first.presumed_dead {
            return Ok(Begun::InFlight);
        }
        match (first.topic, first.record_key, first.payload, first.headers) {
            (Some(topic), Some(key), Some(payload), Some(Json(headers))) => Ok(Begun::Resend {
                command_id: first.command_id,
                response: first.response.0,
                message: OutboundMessage {
                    topic,
                    key,
                    payload,
                    headers: serde_json::from_value::<Headers>(headers).unwrap_or_default(),
                },
            }),
            _ => Ok(Begun::InFlight),
        }
    }

    /// The broker has a keyed command: the stored record is no longer needed, and a retry gets
    /// the first answer. Committed without waiting for the disk (see `marks`).
    pub async fn produced(&self, command_id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE commands SET produced_at = now(), produce_failed_at = NULL, payload = NULL, headers = NULL \
             WHERE command_id = $1",
        )
        .bind(command_id)
        .execute(&self.marks)
        .await?;
        Ok(())
    }

    /// Producing failed. Without a key the caller was told so and the command is forgotten; with a
    /// key it stays, so the retry the caller was invited to make re-sends this very record.
    pub async fn produce_failed(&self, command_id: Uuid, keep: bool) -> Result<(), sqlx::Error> {
        let statement = if keep {
            "UPDATE commands SET produce_failed_at = now() WHERE command_id = $1"
        } else {
            "DELETE FROM commands WHERE command_id = $1"
        };
        sqlx::query(statement).bind(command_id).execute(&self.pool).await?;
        Ok(())
    }

    /// The command with this id accepted for `organization_id`, if any.
    pub async fn find(
        &self,
        organization_id: &str,
        command_id: Uuid,
    ) -> Result<Option<Accepted>, sqlx::Error> {
        sqlx::query_as(
            "SELECT member_id, domain, command_type, response, accepted_at \
             FROM commands WHERE command_id = $1 AND organization_id = $2",
        )
        .bind(command_id)
        .bind(organization_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Forgets commands older than the retention; keys are honoured for at least that long.
    pub async fn expire(&self, retention: Duration) -> Result<u64, sqlx::Error> {
        let deleted =
            sqlx::query("DELETE FROM commands WHERE accepted_at < now() - make_interval(secs => $1)")
                .bind(retention.as_secs_f64())
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(deleted)
    }
}

#[derive(sqlx::FromRow)]
struct FirstRequest {
    command_id: Uuid,
    response: Json<serde_json::Value>,
    request_hash: Option<Vec<u8>>,
    produced: bool,
    presumed_dead: bool,
    topic: Option<String>,
    record_key: Option<String>,
    payload: Option<Vec<u8>>,
    headers: Option<Json<serde_json::Value>>,
}
