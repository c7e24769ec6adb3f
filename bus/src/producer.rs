use std::time::Duration;

use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer as _},
};
use studyspot_schemas::Record;

use crate::{BusError, BusSettings, Codec, EncodedRecord, Headers, TraceContext, headers};

/// A record ready for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Headers,
}

impl OutboundMessage {
    /// The headers every StudySpot record carries: ids for dedupe and causality, type, trace.
    pub fn from_encoded(record: EncodedRecord, trace: &TraceContext) -> Self {
        let mut headers = Headers::default();
        headers.insert(headers::EVENT_ID, record.event_id);
        headers.insert(headers::CORRELATION_ID, record.correlation_id);
        if let Some(causation) = record.causation_id {
            headers.insert(headers::CAUSATION_ID, causation);
        }
        headers.insert(headers::RECORD_TYPE, record.full_name);
        headers.set_trace(trace);
        Self { topic: record.topic.to_owned(), key: record.key, payload: record.payload, headers }
    }
}

/// Where the broker stored a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// Idempotent producer: the broker drops the duplicates a retry would otherwise write, and
/// `max.in.flight` ≤ 5 with idempotence keeps order per partition across retries.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
}

impl Producer {
    pub fn new(settings: &BusSettings) -> Result<Self, BusError> {
        let mut config = settings.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Snappy batches cannot be fetched back from the embedded broker; lz4 works everywhere.
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            // Give up on one attempt after 30 s so callers (the outbox relay) retry visibly
            // instead of librdkafka queueing for its default five minutes.
            .set("message.timeout.ms", "30000");
        settings.apply_extra(&mut config);
        Ok(Self { inner: config.create()? })
    }

    /// Sends one record and waits for the broker's acknowledgement by all in-sync replicas.
    pub async fn send(&self, message: &OutboundMessage) -> Result<Delivery, BusError> {
        let mut headers = OwnedHeaders::new_with_capacity(message.headers.0.len());
        for (key, value) in &message.headers.0 {
            headers = headers.insert(Header { key, value: Some(value.as_bytes()) });
        }
        let record =
            FutureRecord::to(&message.topic).key(&message.key).payload(&message.payload).headers(headers);
        // A full local queue waits (backpressure) instead of failing.
        let delivery = self
            .inner
            .send(record, rdkafka::util::Timeout::Never)
            .await
            .map_err(|(e, _)| BusError::Kafka(e))?;
        metrics::counter!("studyspot_bus_records_produced_total", "topic" => message.topic.clone())
            .increment(1);
        Ok(Delivery { partition: delivery.partition, offset: delivery.offset })
    }

    /// Encodes `record` through the registry and sends it to its catalogue topic.
    pub async fn publish<R: Record>(
        &self,
        codec: &Codec,
        record: &R,
        trace: &TraceContext,
    ) -> Result<Delivery, BusError> {
        let encoded = codec.encode(record).await?;
        self.send(&OutboundMessage::from_encoded(encoded, trace)).await
    }

    /// Asks the cluster for its metadata: the broker is reachable and answers. Blocking.
    pub fn check_broker(&self, timeout: Duration) -> Result<(), BusError> {
        self.inner.client().fetch_metadata(None, timeout).map(drop).map_err(BusError::Kafka)
    }

    /// Waits until everything queued is acknowledged (call on shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        Ok(self.inner.flush(timeout)?)
    }
}

/// The broker answers a metadata request from this producer.
pub struct BrokerCheck(pub Producer);

impl studyspot_telemetry::ReadinessCheck for BrokerCheck {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn check(&self) -> studyspot_telemetry::CheckFuture {
        let producer = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || producer.check_broker(Duration::from_secs(2)))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        })
    }
}

/// The schema registry answers `GET /subjects`: producing needs it to register schemas, consuming
/// to look up writer schemas, so a process without it cannot do its work.
pub struct RegistryCheck {
    url: String,
    client: reqwest::Client,
}

impl RegistryCheck {
    pub fn new(registry_url: &str) -> Self {
        Self {
            url: format!("{}/subjects", registry_url.trim_end_matches('/')),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
        }
    }
}

impl studyspot_telemetry::ReadinessCheck for RegistryCheck {
    fn name(&self) -> &'static str {
        "schema_registry"
    }

    fn check(&self) -> studyspot_telemetry::CheckFuture {
        let (client, url) = (self.client.clone(), self.url.clone());
        Box::pin(async move {
            let response = client.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
            if response.status().is_success() { Ok(()) } else { Err(format!("{url}: {}", response.status())) }
        })
    }
}
