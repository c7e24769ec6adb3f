use rdkafka::error::{KafkaError, RDKafkaErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("schema registry: {0}")]
    Registry(String),
    #[error("schema registry unreachable or failing: {0}")]
    RegistryUnavailable(String),
    #[error("cannot decode record: {0}")]
    Undecodable(String),
    #[error("record does not fit the reader schema {record}: {reason}")]
    Incompatible { record: String, reason: String },
    #[error("cannot encode {record}: {reason}")]
    Unencodable { record: String, reason: String },
    #[error("invalid bus configuration: {0}")]
    Config(String),
}

impl BusError {
    /// True when trying again later can succeed (broker or registry down, timeouts); false when
    /// the input itself is at fault and retrying would loop forever.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Kafka(e) => match e.rdkafka_error_code() {
                Some(code) => !matches!(
                    code,
                    RDKafkaErrorCode::MessageSizeTooLarge
                        | RDKafkaErrorCode::InvalidMessage
                        | RDKafkaErrorCode::UnknownTopicOrPartition
                        | RDKafkaErrorCode::TopicAuthorizationFailed
                        | RDKafkaErrorCode::InvalidRecord
                ),
                None => true,
            },
            Self::RegistryUnavailable(_) => true,
            Self::Registry(_)
            | Self::Undecodable(_)
            | Self::Incompatible { .. }
            | Self::Unencodable { .. }
            | Self::Config(_) => false,
        }
    }
}
