//! The contract of the event backbone: every Avro record StudySpot writes, its Rust type, and the
//! topic catalogue that says which records travel on which topic under which key.
//!
//! No topic name appears anywhere else in the workspace: code asks the catalogue.

pub mod alerts;
pub mod attendance;
pub mod billing;
mod catalogue;
mod metadata;
pub mod notifications;
mod record;

/// The PostgreSQL NOTIFY channel on which consumers announce decided commands (payload: command
/// ids, comma-separated) and the gateway's command status listens. The rows are in each
/// consumer's `command_outcomes` table.
pub const COMMAND_OUTCOMES_CHANNEL: &str = "studyspot_command_outcomes";

pub use catalogue::{Compatibility, Topic, TopicKind, catalogue, topic_by_name};
pub use metadata::{EventMetadata, first_blank};
pub use record::{Record, RecordInfo, Rejection};
