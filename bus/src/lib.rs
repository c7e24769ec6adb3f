//! The bus: everything that talks to Kafka or the schema registry lives here, so domain code and
//! the consumer runtime never import rdkafka.
//!
//! - [`Producer`]: idempotent (`enable.idempotence`, `acks=all`), records in the Confluent wire
//!   format, trace context and event ids in headers.
//! - [`Source`]: a consumer-group member whose partition positions come from the caller (the
//!   consumer runtime keeps them in PostgreSQL), polled on its own thread.
//! - [`Codec`]: Avro through a Confluent-compatible registry (TopicRecordNameStrategy).
//! - [`admin`]: topics from the catalogue and subject compatibility levels.
//! - [`tail`]: following topics outside any group, from given positions (live views).
//! - [`history`]: reading a slice of history between positions or instants (replay, rebuild).
//! - [`lag`]: a consumer group's committed offsets (its lag against the high watermarks).

pub mod admin;
mod codec;
mod error;
pub mod headers;
pub mod history;
pub mod lag;
mod producer;
pub mod reader;
mod settings;
mod source;
pub mod tail;
mod trace;

pub use codec::{Codec, Decoded, EncodedRecord, read_as};
pub use error::BusError;
pub use headers::Headers;
pub use producer::{BrokerCheck, Delivery, OutboundMessage, Producer, RegistryCheck};
pub use settings::BusSettings;
pub use source::{InboundMessage, PartitionId, PositionKeeper, Source};
pub use trace::TraceContext;
