//! Making the cluster and the registry match the catalogue: topics (and their dead-letter
//! topics) exist, every subject has its compatibility rule and its current schema.

use std::time::Duration;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
};
use serde_json::json;
use studyspot_schemas::Topic;

use crate::{BusError, BusSettings};

/// What `ensure_topics` did to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    AlreadyExisted,
}

/// Creates each named topic that does not exist yet. Existing topics are left as they are.
pub async fn ensure_topics(
    settings: &BusSettings,
    names: &[&str],
    partitions: i32,
    replication: i32,
) -> Result<Vec<(String, TopicOutcome)>, BusError> {
    let admin: AdminClient<DefaultClientContext> = settings.client_config().create()?;
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(replication)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&new_topics, &options).await?;
    results
        .into_iter()
        .map(|result| match result {
            Ok(name) => Ok((name, TopicOutcome::Created)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => Ok((name, TopicOutcome::AlreadyExisted)),
            Err((name, code)) => Err(BusError::Config(format!("cannot create topic {name}: {code}"))),
        })
        .collect()
}

/// Every topic of `topics` and its dead-letter topic.
pub fn topic_names_with_dead_letters(topics: &[&'static Topic]) -> Vec<&'static str> {
    topics.iter().flat_map(|t| [t.name, t.dead_letter]).collect()
}

/// The slice of the Confluent registry API that operators' tooling needs beyond encode/decode.
#[derive(Clone)]
pub struct RegistryAdmin {
    http: reqwest::Client,
    base: String,
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

impl RegistryAdmin {
    pub fn new(url: &str) -> Result<Self, BusError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| BusError::Config(format!("http client: {e}")))?;
        Ok(Self { http, base: url.trim_end_matches('/').to_owned() })
    }

    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), BusError> {
        self.call(
            reqwest::Method::PUT,
            &format!("/config/{}", encode(subject)),
            json!({ "compatibility": level }),
        )
        .await
        .map(drop)
    }

    /// Registers `schema` under `subject`; the same schema again returns the same id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, BusError> {
        let body = self
            .call(
                reqwest::Method::POST,
                &format!("/subjects/{}/versions", encode(subject)),
                json!({ "schema": schema, "schemaType": "AVRO" }),
            )
            .await?;
        body["id"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| BusError::Registry(format!("registry answered without an id: {body}")))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, BusError> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", CONTENT_TYPE)
            .header("accept", CONTENT_TYPE)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| BusError::RegistryUnavailable(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| BusError::RegistryUnavailable(e.to_string()))?;
        if status.is_server_error() {
            return Err(BusError::RegistryUnavailable(format!("{status}: {text}")));
        }
        if !status.is_success() {
            return Err(BusError::Registry(format!("{path}: {status}: {text}")));
        }
        serde_json::from_str(&text).map_err(|e| BusError::Registry(format!("{path}: unreadable answer: {e}")))
    }
}

fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
