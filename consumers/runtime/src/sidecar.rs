//! Work a consumer process does beside consuming — e.g. billing's calls to payment providers —
//! that reports back through the consumer's own outbox, so a report is published exactly when the
//! transaction recording it commits.

use std::{future::Future, pin::Pin, sync::Arc};

use sqlx::{PgConnection, PgPool};
use studyspot_bus::{Codec, OutboundMessage, TraceContext};
use studyspot_schemas::Record;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{HandleError, outbox, runtime::Topics};

/// Puts records into the consumer's outbox from outside a batch.
#[derive(Clone)]
pub struct OutboxWriter {
    pub(crate) codec: Codec,
    pub(crate) topics: Topics,
    pub(crate) published: Arc<Notify>,
}

impl OutboxWriter {
    /// Adds `record` to the outbox inside the caller's transaction; it is published after the
    /// transaction commits and [`OutboxWriter::wake`] is called (or within a second).
    pub async fn enqueue<R: Record>(
        &self,
        tx: &mut PgConnection,
        record: &R,
        trace: &TraceContext,
    ) -> Result<(), HandleError> {
        let encoded = self.codec.encode(record).await?;
        let mut message = OutboundMessage::from_encoded(encoded, trace);
        message.topic = self.topics.kafka_name(&message.topic);
        outbox::insert(tx, &[outbox::OutboxRow::from(message)]).await?;
        Ok(())
    }

    /// Tells the publisher that committed rows are waiting.
    pub fn wake(&self) {
        self.published.notify_one();
    }
}

/// What a sidecar gets: the process's settings, the consumer's own schema, its outbox, and the
/// signal to stop.
pub struct SidecarContext {
    pub settings: Arc<studyspot_config::Settings>,
    pub pool: PgPool,
    pub outbox: OutboxWriter,
    pub shutdown: CancellationToken,
}

pub type Sidecar = Box<dyn FnOnce(SidecarContext) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;
