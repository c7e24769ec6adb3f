use apache_avro::{AvroSchema, Schema};
use serde::{Serialize, de::DeserializeOwned};

use crate::{EventMetadata, Topic};

/// A record type that travels on exactly one topic of the catalogue.
pub trait Record: AvroSchema + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The Avro full name (`namespace.Name`); with TopicRecordNameStrategy it names the subject.
    const FULL_NAME: &'static str;
    /// The file under `schemas/avro/` that holds this record's schema.
    const AVSC: &'static str;

    fn topic() -> &'static Topic;

    /// The partition key: the value of the topic's key field in this record.
    fn key(&self) -> &str;

    fn metadata(&self) -> &EventMetadata;
}

/// What the catalogue knows of a record type without naming its Rust type.
#[derive(Clone, Copy)]
pub struct RecordInfo {
    pub full_name: &'static str,
    pub avsc_file: &'static str,
    pub schema: fn() -> Schema,
}

impl RecordInfo {
    pub const fn of<R: Record>() -> Self {
        Self { full_name: R::FULL_NAME, avsc_file: R::AVSC, schema: R::get_schema }
    }
}

impl std::fmt::Debug for RecordInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.full_name)
    }
}

/// Implements [`Record`] for a type whose partition key is one of its fields (or the organization).
/// A domain's refusal of a well-formed command: the runtime records its code and reason as the
/// command's outcome, which the gateway's command status shows.
pub trait Rejection: Record {
    /// The refused command's event id.
    fn command_id(&self) -> &str;
    /// Machine-readable, e.g. `capacity_reached`.
    fn code(&self) -> &str;
    /// For people.
    fn reason(&self) -> &str;
}

/// Implements [`Rejection`] for a `CommandRejected` record (fields `command_id`, `code`, `reason`).
macro_rules! rejection {
    ($ty:ty) => {
        impl $crate::Rejection for $ty {
            fn command_id(&self) -> &str {
                &self.command_id
            }
            fn code(&self) -> &str {
                &self.code
            }
            fn reason(&self) -> &str {
                &self.reason
            }
        }
    };
}
pub(crate) use rejection;

macro_rules! record {
    ($ty:ty, $full_name:expr, $avsc:expr, $topic:expr, key = |$r:ident| $key:expr) => {
        impl $crate::Record for $ty {
            const FULL_NAME: &'static str = $full_name;
            const AVSC: &'static str = $avsc;

            fn topic() -> &'static $crate::Topic {
                &$topic
            }

            fn key(&self) -> &str {
                let $r = self;
                $key
            }

            fn metadata(&self) -> &$crate::EventMetadata {
                &self.metadata
            }
        }
    };
}
pub(crate) use record;
