use std::{future::Future, pin::Pin};

use apache_avro::types::Value;
use sqlx::PgConnection;
use studyspot_bus::{BusError, Codec, Decoded, EncodedRecord, Headers};
use studyspot_schemas::{EventMetadata, Record, Rejection};

/// A domain consumer: applies one decoded record inside the batch's transaction.
///
/// Implementations load the state they need through `tx`, call their pure `decide`, write the
/// projection through `tx` and hand follow-on events to `effects`. They never commit, never talk
/// to Kafka and never read the wall clock: time comes from the records.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        tx: &mut PgConnection,
        message: &Inbound,
        effects: &mut Effects,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// Statements a rebuild's swap runs in its transaction — the last records applied, the live
    /// tables locked (sidecars' transactions finished, their next ones waiting) — to carry what
    /// the process's sidecars keep in the projection beside the log from the `live` schema into
    /// the `rebuild` one, which cannot reproduce it: a send leased or reported but its report not
    /// yet applied, attempts, back-offs. Without them the sidecar, going on in the swapped-in
    /// schema, would do again what it was in the middle of. None by default.
    fn carried_across_swap(&self, live: &str, rebuild: &str) -> Vec<String> {
        let _ = (live, rebuild);
        Vec::new()
    }
}

/// What the consumer loop does with a failed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Transient (database or broker down): roll back and try the same batch again, never skip.
    Retry,
    /// The message itself is at fault: it goes to the dead-letter topic, the rest goes on.
    DeadLetter,
    /// The consumer cannot go on (misconfiguration, a bug): stop without committing.
    Fatal,
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("malformed {record}: {reason}")]
    Malformed { record: String, reason: String },
    #[error("unexpected record type {0} on this topic")]
    UnknownRecord(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("{0}")]
    Fatal(String),
}

impl HandleError {
    pub fn malformed(record: &str, reason: impl Into<String>) -> Self {
        Self::Malformed { record: record.to_owned(), reason: reason.into() }
    }

    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Malformed { .. } | Self::UnknownRecord(_) => Disposition::DeadLetter,
            Self::Bus(e) if e.is_transient() => Disposition::Retry,
            Self::Bus(_) => Disposition::DeadLetter,
            Self::Database(e) => database_disposition(e),
            Self::Fatal(_) => Disposition::Fatal,
        }
    }
}

/// Integrity and data errors (SQLSTATE classes 22, 23) are about this message's content; anything
/// else (connection loss, serialization failure, timeouts) may pass.
pub(crate) fn database_disposition(e: &sqlx::Error) -> Disposition {
    match e {
        sqlx::Error::Database(db) => match db.code().as_deref().map(|c| &c[..2.min(c.len())]) {
            Some("22") | Some("23") => Disposition::DeadLetter,
            Some("42") => Disposition::Fatal,
            _ => Disposition::Retry,
        },
        sqlx::Error::Configuration(_) | sqlx::Error::Migrate(_) => Disposition::Fatal,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::TypeNotFound { .. } => {
            Disposition::Fatal
        }
        _ => Disposition::Retry,
    }
}

/// One record handed to a [`Handler`], decoded with its writer's schema.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub headers: Headers,
    pub timestamp_ms: Option<i64>,
    pub record_type: String,
    pub metadata: EventMetadata,
    pub(crate) value: Value,
}

impl Inbound {
    pub(crate) fn new(
        topic: String,
        partition: i32,
        offset: i64,
        headers: Headers,
        timestamp_ms: Option<i64>,
        decoded: Decoded,
    ) -> Result<Self, String> {
        let metadata = match &decoded.value {
            Value::Record(fields) => fields
                .iter()
                .find(|(name, _)| name == "metadata")
                .ok_or("record has no metadata field")
                .and_then(|(_, v)| {
                    v.clone()
                        .resolve(&<EventMetadata as apache_avro::AvroSchema>::get_schema())
                        .map_err(|_| "metadata does not fit EventMetadata")
                })
                .and_then(|v| {
                    apache_avro::from_value::<EventMetadata>(&v).map_err(|_| "unreadable metadata")
                })?,
            _ => return Err("not a record".into()),
        };
        Ok(Self {
            topic,
            partition,
            offset,
            headers,
            timestamp_ms,
            record_type: decoded.full_name,
            metadata,
            value: decoded.value,
        })
    }

    /// The record as `R`, read with `R`'s schema (older writers' records get defaults).
    pub fn record<R: Record>(&self) -> Result<R, HandleError> {
        Decoded { full_name: self.record_type.clone(), value: self.value.clone() }
            .into_record::<R>()
            .map_err(|e| HandleError::malformed(&self.record_type, e.to_string()))
    }

    /// When the record says it happened: the only clock a handler may read.
    pub fn occurred_at(&self) -> Result<chrono::DateTime<chrono::Utc>, HandleError> {
        let millis = self.metadata.occurred_at;
        chrono::DateTime::from_timestamp_millis(millis).ok_or_else(|| {
            HandleError::malformed("metadata.occurred_at", format!("{millis} is not a valid time"))
        })
    }

    pub fn is<R: Record>(&self) -> bool {
        self.record_type == R::FULL_NAME
    }

    /// Metadata for the `index`-th record this one causes. The id is derived from this record's id,
    /// so re-applying the same input (a retry, a rebuild) produces the same follow-on ids, and the
    /// time is this record's time: replay rebuilds the same history.
    pub fn follow_on(&self, index: u32, actor: &str) -> EventMetadata {
        let name = format!("{}/{index}", self.metadata.event_id);
        EventMetadata {
            event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string(),
            occurred_at: self.metadata.occurred_at,
            correlation_id: self.metadata.correlation_id.clone(),
            causation_id: Some(self.metadata.event_id.clone()),
            organization_id: self.metadata.organization_id.clone(),
            actor: actor.to_owned(),
        }
    }
}

type EncodeFuture = Pin<Box<dyn Future<Output = Result<EncodedRecord, BusError>> + Send>>;

/// Follow-on events a handler emits; they reach the outbox in the same transaction.
#[derive(Default)]
pub struct Effects {
    pub(crate) pending: Vec<Box<dyn FnOnce(Codec) -> EncodeFuture + Send>>,
    pub(crate) rejected: u64,
    /// The code and reason of the refusal, when the command was refused.
    pub(crate) rejection: Option<(String, String)>,
}

impl Effects {
    pub fn emit<R: Record>(&mut self, record: R) {
        self.pending.push(Box::new(move |codec: Codec| Box::pin(async move { codec.encode(&record).await })));
    }

    /// Emits the domain's refusal of a well-formed command (a `…Rejected` event); counted apart,
    /// and its code and reason become the command's outcome.
    pub fn reject<R: Rejection>(&mut self, rejection: R) {
        self.rejected += 1;
        self.rejection = Some((rejection.code().to_owned(), rejection.reason().to_owned()));
        self.emit(rejection);
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}
