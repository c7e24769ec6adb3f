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
