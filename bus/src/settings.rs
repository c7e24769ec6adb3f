use std::collections::BTreeMap;

use rdkafka::ClientConfig;

/// What a producer or consumer needs to reach the cluster and the registry.
#[derive(Debug, Clone)]
pub struct BusSettings {
    pub bootstrap_servers: String,
    pub registry_url: String,
    /// Extra librdkafka properties (security, tuning) applied last, so operators can override ours.
    pub extra: BTreeMap<String, String>,
    /// Names this process in broker logs and metrics.
    pub client_id: String,
    /// Rejoin the group after this long without partitions. Off for real Kafka (a member may
    /// legitimately hold none); on for the embedded broker, whose coordinator can leave a
    /// survivor unassigned after another member dies (see docs/broker.md).
    pub rejoin_when_unassigned: Option<std::time::Duration>,
    /// How long the group coordinator waits for a consumer's heartbeat before evicting it.
    pub session_timeout: std::time::Duration,
}

impl BusSettings {
    pub fn from_settings(settings: &studyspot_config::Settings, client_id: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: settings.kafka.bootstrap_servers.clone(),
            registry_url: settings.registry.url.clone(),
            extra: settings.kafka.extra.clone(),
            client_id: client_id.into(),
            rejoin_when_unassigned: match settings.kafka.rejoin_when_unassigned_ms {
                0 => None,
                ms => Some(std::time::Duration::from_millis(ms)),
            },
            session_timeout: std::time::Duration::from_millis(settings.kafka.session_timeout_ms),
        }
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers).set("client.id", &self.client_id);
        config
    }

    pub(crate) fn apply_extra(&self, config: &mut ClientConfig) {
        for (key, value) in &self.extra {
            config.set(key, value);
        }
    }
}
