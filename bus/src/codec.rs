use std::{
    any::TypeId,
    collections::HashMap,
    sync::{Arc, LazyLock, RwLock},
    time::Duration,
};

use apache_avro::{
    AvroSchema, Schema,
    schema::{Name, ResolvedSchema},
    types::Value,
};
use schema_registry_converter::{
    async_impl::{
        easy_avro::{EasyAvroDecoder, EasyAvroEncoder},
        schema_registry::SrSettings,
    },
    error::SRCError,
    schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema},
};
use studyspot_schemas::Record;

use crate::BusError;

/// Avro in the Confluent wire format (magic byte, schema id, body) through a registry.
///
/// Subjects follow TopicRecordNameStrategy (`{topic}-{record full name}`) so one topic carries
/// several record types. Schemas are cached by id on the way in and by subject on the way out.
#[derive(Clone)]
pub struct Codec {
    encoder: EasyAvroEncoder,
    decoder: EasyAvroDecoder,
    strategies: Arc<RwLock<HashMap<&'static str, SubjectNameStrategy>>>,
}

/// A record encoded for its topic, with what the bus needs to route and trace it.
#[derive(Debug, Clone)]
pub struct EncodedRecord {
    pub topic: &'static str,
    pub key: String,
    pub full_name: &'static str,
    pub event_id: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub payload: Vec<u8>,
}

/// A decoded record: its writer's full name and value, before it meets a reader schema.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub full_name: String,
    pub value: Value,
}

impl Decoded {
    /// The record as JSON, field for field as written (for APIs and tools that show records).
    pub fn to_json(&self) -> Result<serde_json::Value, BusError> {
        serde_json::Value::try_from(self.value.clone())
            .map_err(|e| BusError::Config(format!("{} has no JSON form: {e}", self.full_name)))
    }
}

impl Codec {
    pub fn new(registry_url: &str) -> Result<Self, BusError> {
        let settings = SrSettings::new_builder(registry_url.trim_end_matches('/').to_owned())
            .set_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| BusError::Config(format!("registry settings: {e}")))?;
        Ok(Self {
            encoder: EasyAvroEncoder::new(settings.clone()),
            decoder: EasyAvroDecoder::new(settings),
            strategies: Arc::default(),
        })
    }

    pub async fn encode<R: Record>(&self, record: &R) -> Result<EncodedRecord, BusError> {
        let strategy = self.strategy::<R>()?;
        let payload =
            self.encoder.encode_struct(record, &strategy).await.map_err(|e| match registry_error(e) {
                BusError::Registry(reason) => BusError::Unencodable { record: R::FULL_NAME.into(), reason },
                other => other,
            })?;
        let metadata = record.metadata();
        Ok(EncodedRecord {
            topic: R::topic().name,
            key: record.key().to_owned(),
            full_name: R::FULL_NAME,
            event_id: metadata.event_id.clone(),
            correlation_id: metadata.correlation_id.clone(),
            causation_id: metadata.causation_id.clone(),
            payload,
        })
    }

    /// Decodes a Confluent-framed payload with the writer's schema (fetched by id, then cached).
    pub async fn decode(&self, payload: &[u8]) -> Result<Decoded, BusError> {
        if payload.len() < 5 || payload[0] != 0 {
            return Err(BusError::Undecodable(
                "not in the Confluent wire format (magic byte 0 + schema id)".into(),
            ));
        }
        let decoded = self.decoder.decode(Some(payload)).await.map_err(|e| match registry_error(e) {
            BusError::Registry(reason) => BusError::Undecodable(reason),
            other => other,
        })?;
        let full_name = decoded
            .name
            .map(|n| n.fullname(None))
            .ok_or_else(|| BusError::Undecodable("writer schema is not a named record".into()))?;
        Ok(Decoded { full_name, value: decoded.value })
    }

    fn strategy<R: Record>(&self) -> Result<SubjectNameStrategy, BusError> {
        if let Some(found) = self.strategies.read().map_err(poisoned)?.get(R::FULL_NAME) {
            return Ok(found.clone());
        }
        let schema_json = serde_json::to_string(&R::get_schema())
            .map_err(|e| BusError::Unencodable { record: R::FULL_NAME.into(), reason: e.to_string() })?;
        let supplied = SuppliedSchema::new(Some(R::FULL_NAME.to_owned()), SchemaType::Avro, schema_json);
        let strategy =
            SubjectNameStrategy::TopicRecordNameStrategyWithSchema(R::topic().name.to_owned(), supplied);
        self.strategies.write().map_err(poisoned)?.insert(R::FULL_NAME, strategy.clone());
        Ok(strategy)
    }
}

impl Decoded {
    /// Reads the value as `R`, resolving the writer's schema against `R`'s (defaults fill fields
    /// an older writer did not know), so old records stay readable by new code.
    pub fn into_record<R: Record>(self) -> Result<R, BusError> {
        let incompatible = |reason: String| BusError::Incompatible { record: R::FULL_NAME.into(), reason };
        if self.full_name != R::FULL_NAME {
            return Err(incompatible(format!("the record is a {}", self.full_name)));
        }
        read_as::<R>(self.value).map_err(|e| incompatible(e.to_string()))
    }
}

/// Reads a value written with any compatible schema as `T`, resolving it against `T`'s schema.
pub fn read_as<T: AvroSchema + serde::de::DeserializeOwned + 'static>(
    value: Value,
) -> Result<T, apache_avro::Error> {
    let reader = reader_schema::<T>()?;
    let resolved = value.resolve_with_names(&reader.schema, &reader.names)?;
    apache_avro::from_value::<T>(&resolved)
}

/// A reader schema and the named schemas its references resolve to.
struct ReaderSchema {
    schema: Schema,
    names: HashMap<Name, Schema>,
}

/// `T`'s schema with the names its references resolve to, built once per type. The derive builds
/// a new `Schema` on every `get_schema()`, and `Value::resolve` collects its names again on every
/// call: done per record a consumer reads, that cost more than resolving the record itself.
fn reader_schema<T: AvroSchema + 'static>() -> Result<Arc<ReaderSchema>, apache_avro::Error> {
    static SCHEMAS: LazyLock<RwLock<HashMap<TypeId, Arc<ReaderSchema>>>> = LazyLock::new(RwLock::default);
    let key = TypeId::of::<T>();
    if let Some(found) = SCHEMAS.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(found.clone());
    }
    let schema = T::get_schema();
    let names = ResolvedSchema::try_from(&schema)?
        .get_names()
        .iter()
        .map(|(name, named)| (name.clone(), (*named).clone()))
        .collect();
    let built = Arc::new(ReaderSchema { schema, names });
    SCHEMAS.write().unwrap_or_else(|p| p.into_inner()).insert(key, built.clone());
    Ok(built)
}

fn registry_error(e: SRCError) -> BusError {
    let text = match &e.cause {
        Some(cause) => format!("{}: {cause}", e.error),
        None => e.error.clone(),
    };
    if e.retriable { BusError::RegistryUnavailable(text) } else { BusError::Registry(text) }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> BusError {
    BusError::Config("codec cache lock poisoned by a panic".into())
}
