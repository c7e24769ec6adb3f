use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

/// Carried by every command and event: who caused what, when, and in which causal chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot")]
pub struct EventMetadata {
    /// Unique id of this record (UUIDv7 text); consumers drop an id they have already applied.
    pub event_id: String,
    /// When it happened, milliseconds since the Unix epoch (UTC). Domain time, never the wall clock of a consumer.
    pub occurred_at: i64,
    /// Id shared by every record caused by one request from outside.
    pub correlation_id: String,
    /// Id of the record that caused this one; absent for commands that came from outside.
    #[avro(default = "null")]
    pub causation_id: Option<String>,
    /// The tenant; no record crosses organizations.
    pub organization_id: String,
    /// Who acted, as `kind:id` (e.g. `user:usr_…`, `service:billing`, `scheduler`).
    pub actor: String,
}

#[cfg(any(test, feature = "fixtures"))]
impl EventMetadata {
    /// Metadata for tests: fixed ids and time in organization `org_1`.
    pub fn example() -> Self {
        Self {
            event_id: "e1".into(),
            occurred_at: 1_700_000_000_000,
            correlation_id: "c1".into(),
            causation_id: None,
            organization_id: "org_1".into(),
            actor: "user:usr_1".into(),
        }
    }
}

/// The first of `fields` (name, value) whose value is blank: required text the contract cannot
/// express, since Avro strings may be empty.
pub fn first_blank<'a>(fields: &[(&'a str, &str)]) -> Option<&'a str> {
    fields.iter().find(|(_, value)| value.trim().is_empty()).map(|(name, _)| *name)
}
