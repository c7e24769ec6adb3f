use std::{sync::Arc, time::Duration};

use sqlx::{PgConnection, PgPool};
use studyspot_bus::{Headers, OutboundMessage, Producer};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    crash::{self, Point},
    runtime::Backoff,
};

/// A record waiting in the outbox: a follow-on event or a dead letter.
#[derive(Debug, Clone)]
pub(crate) struct OutboxRow {
    pub(crate) event_id: String,
    pub(crate) topic: String,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Option<Vec<u8>>,
    pub(crate) headers: Headers,
}

impl From<OutboundMessage> for OutboxRow {
    fn from(m: OutboundMessage) -> Self {
        let event_id = m.headers.get(studyspot_bus::headers::EVENT_ID).unwrap_or_default().to_owned();
        Self {
            event_id,
            topic: m.topic,
            key: Some(m.key.into_bytes()),
            payload: Some(m.payload),
            headers: m.headers,
        }
    }
}

/// Writes rows in one statement, in order (their ids give the publishing order).
pub(crate) async fn insert(tx: &mut PgConnection, rows: &[OutboxRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    let topics: Vec<&str> = rows.iter().map(|r| r.topic.as_str()).collect();
    let keys: Vec<Option<&[u8]>> = rows.iter().map(|r| r.key.as_deref()).collect();
    let payloads: Vec<Option<&[u8]>> = rows.iter().map(|r| r.payload.as_deref()).collect();
    let headers: Vec<serde_json::Value> =
        rows.iter().map(|r| serde_json::to_value(&r.headers).unwrap_or_default()).collect();
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, key, payload, headers) \
         SELECT e, t, k, p, h FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::jsonb[]) \
         WITH ORDINALITY AS r(e, t, k, p, h, n) ORDER BY n",
    )
    .bind(&ids)
    .bind(&topics)
    .bind(&keys)
    .bind(&payloads)
    .bind(&headers)
    .execute(tx)
    .await
    .map(drop)
}

/// Publishes committed outbox rows in id order and marks them. One publisher at a time per
/// schema (an advisory lock), so two instances of a consumer do not race each other's rows.
pub(crate) struct Publisher {
    pub(crate) name: String,
    pub(crate) pool: PgPool,
    pub(crate) producer: Producer,
    pub(crate) backoff: Backoff,
}

const PAGE: i64 = 1000;

impl Publisher {
    pub(crate) async fn run(self, wake: Arc<Notify>, shutdown: CancellationToken, done: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_cleanup = std::time::Instant::now();
        loop {
            tokio::select! {
                () = wake.notified() => {}
                _ = tick.tick() => {}
                () = done.cancelled() => break,
            }
            self.drain(&shutdown).await;
            if last_cleanup.elapsed() > Duration::from_secs(60) {
                last_cleanup = std::time::Instant::now();
                if let Err(e) =
                    sqlx::query("DELETE FROM outbox WHERE published_at < now() - interval '1 hour'")
                        .execute(&self.pool)
                        .await
                {
                    tracing::warn!(error = %e, "outbox cleanup failed");
                }
                // As long as the gateway keeps the commands whose status it answers for.
                if let Err(e) =
                    sqlx::query("DELETE FROM command_outcomes WHERE decided_at < now() - interval '7 days'")
                        .execute(&self.pool)
                        .await
                {
                    tracing::warn!(error = %e, "command outcome cleanup failed");
                }
            }
        }
        // Last words: whatever the lanes committed before stopping goes out now.
        self.drain(&CancellationToken::new()).await;
    }

    /// Publishes until nothing is left; transient failures back off and retry until `stop`.
    pub(crate) async fn drain(&self, stop: &CancellationToken) {
        let mut backoff = self.backoff.start();
        let mut failures = 0;
        loop {
            match self.publish_page().await {
                Ok(0) => return,
                Ok(_) => backoff = self.backoff.start(),
                Err(e) => {
                    failures += 1;
                    if stop.is_cancelled() || failures > 20 {
                        tracing::warn!(error = %e, "outbox not drained; rows stay for the next attempt");
                        return;
                    }
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "outbox publish failed");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn publish_page(&self) -> Result<usize, String> {
        let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.outbox'))")
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
        if !locked {
            return Ok(0);
        }
        type Row = (i64, String, Option<Vec<u8>>, Option<Vec<u8>>, serde_json::Value);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, topic, key, payload, headers FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(PAGE)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
        let backlog = rows.len();
        metrics::gauge!("studyspot_consumer_outbox_backlog", "consumer" => self.name.clone())
            .set(backlog as f64);
        if rows.is_empty() {
            return Ok(0);
        }
        let messages: Vec<OutboundMessage> = rows
            .iter()
            .map(|(_, topic, key, payload, headers)| OutboundMessage {
                topic: topic.clone(),
                key: String::from_utf8_lossy(key.as_deref().unwrap_or_default()).into_owned(),
                payload: payload.clone().unwrap_or_default(),
                headers: serde_json::from_value(headers.clone()).unwrap_or_default(),
            })
            .collect();
        // All sends are queued in row order before any is awaited; the idempotent producer keeps
        // that order per partition.
        let results = futures::future::join_all(messages.iter().map(|m| self.producer.send(m))).await;
        if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
            return Err(e.to_string());
        }
        crash::reached(Point::AfterPublish);
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        metrics::counter!("studyspot_consumer_outbox_published_total", "consumer" => self.name.clone())
            .increment(ids.len() as u64);
        Ok(ids.len())
    }
}
