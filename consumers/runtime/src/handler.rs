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
                    studyspot_bus::read_as::<EventMetadata>(v.clone())
                        .map_err(|_| "metadata does not fit EventMetadata")
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

    /// The first field (`metadata.organization_id`, `variables.name`, `items[2].label`) whose
    /// text holds a NUL character. PostgreSQL's text cannot store one (SQLSTATE 22021, 22P05 in
    /// jsonb), so such a record is dead-lettered before a handler sees it: whatever the handler
    /// or the runtime would write from it would fail, and the runtime's own writes (outcomes,
    /// applied ids) would retry for ever. The gateway refuses these; other producers may not.
    pub(crate) fn nul_field(&self) -> Option<String> {
        let mut path = String::new();
        nul_in(&self.value, &mut path).then_some(path)
    }
}

fn nul_in(value: &Value, path: &mut String) -> bool {
    let within = |path: &mut String, step: String, value: &Value| {
        let len = path.len();
        path.push_str(&step);
        let found = nul_in(value, path);
        if !found {
            path.truncate(len);
        }
        found
    };
    let dot = |path: &String, name: &str| {
        let name = name.replace('\0', "\\u0000");
        if path.is_empty() { name } else { format!(".{name}") }
    };
    match value {
        Value::String(s) | Value::Enum(_, s) => s.contains('\0'),
        Value::Union(_, inner) => nul_in(inner, path),
        Value::Array(items) => items.iter().enumerate().any(|(i, v)| within(path, format!("[{i}]"), v)),
        Value::Map(entries) => entries.iter().any(|(k, v)| {
            let step = dot(path, k);
            if k.contains('\0') {
                path.push_str(&step);
                return true;
            }
            within(path, step, v)
        }),
        Value::Record(fields) => fields.iter().any(|(k, v)| {
            let step = dot(path, k);
            within(path, step, v)
        }),
        _ => false,
    }
}

impl Inbound {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn path(value: &Value) -> Option<String> {
        let mut path = String::new();
        nul_in(value, &mut path).then_some(path)
    }

    #[test]
    fn a_nul_anywhere_in_a_record_is_found_by_its_field() {
        let text = |s: &str| Value::String(s.into());
        let record = |fields: Vec<(&str, Value)>| {
            Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        };
        let metadata = record(vec![("event_id", text("e1")), ("organization_id", text("org_1"))]);
        let clean = record(vec![("metadata", metadata.clone()), ("body", text("Hi"))]);
        assert_eq!(path(&clean), None);
        let in_metadata = record(vec![
            ("metadata", record(vec![("event_id", text("e1")), ("organization_id", text("org\0"))])),
            ("body", text("Hi")),
        ]);
        assert_eq!(path(&in_metadata).as_deref(), Some("metadata.organization_id"));
        let in_union =
            record(vec![("metadata", metadata.clone()), ("subject", Value::Union(1, Box::new(text("a\0"))))]);
        assert_eq!(path(&in_union).as_deref(), Some("subject"));
        let in_map = record(vec![
            ("metadata", metadata.clone()),
            ("variables", Value::Map([("name".to_owned(), text("x\0"))].into_iter().collect())),
        ]);
        assert_eq!(path(&in_map).as_deref(), Some("variables.name"));
        let in_key =
            record(vec![("caps", Value::Map([("a\0".to_owned(), Value::Int(1))].into_iter().collect()))]);
        assert_eq!(path(&in_key).as_deref(), Some("caps.a\\u0000"));
        let in_array =
            record(vec![("items", Value::Array(vec![text("ok"), record(vec![("label", text("\0"))])]))]);
        assert_eq!(path(&in_array).as_deref(), Some("items[1].label"));
    }

    /// A PostgreSQL error with only its SQLSTATE.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn a_nul_in_text_or_jsonb_is_dead_lettered_not_retried() {
        // 22021 character_not_in_repertoire (a NUL in text), 22P05 untranslatable_character
        // (`\u0000` in jsonb): the message's content, never worth a retry.
        let disposition =
            |code| HandleError::Database(sqlx::Error::Database(Box::new(Sqlstate(code)))).disposition();
        assert_eq!(disposition("22021"), Disposition::DeadLetter);
        assert_eq!(disposition("22P05"), Disposition::DeadLetter);
        assert_eq!(disposition("40001"), Disposition::Retry);
    }
}
