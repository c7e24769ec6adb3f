//! Settings every StudySpot process shares, loaded in layers.
//!
//! The defaults live in `studyspot.toml` beside this crate, which is embedded at compile time so
//! the documented value and the effective default can never disagree. No secret ships in them:
//! see [`secrets`].

pub mod secrets;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use secrecy::SecretString;
use serde::Deserialize;

/// The documented defaults, byte for byte what `config/studyspot.toml` says.
pub const DEFAULTS: &str = include_str!("../studyspot.toml");

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Development mode: weak and missing secrets are accepted (see [`secrets`]). Never in
    /// production.
    pub development: bool,
    pub kafka: Kafka,
    pub registry: Registry,
    pub postgres: Postgres,
    pub consumer: Consumer,
    pub gateway: Gateway,
    pub auth: Auth,
    pub telemetry: Telemetry,
    pub billing: Billing,
    pub notifications: Notifications,
    pub attendance: Attendance,
    pub alerts: Alerts,
    pub outbound: Outbound,
}

/// Where URLs that tenants name (webhooks, health checks) may connect, beside public addresses.
#[derive(Debug, Clone, Deserialize)]
pub struct Outbound {
    /// CIDR ranges or addresses of special ranges (loopback, private, link-local, …) allowed
    /// anyway; empty in production. `studyspot-outbound` reads them.
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Kafka {
    pub bootstrap_servers: String,
    pub extra: BTreeMap<String, String>,
    pub partitions: i32,
    pub replication_factor: i32,
    pub topic_prefix: String,
    pub rejoin_when_unassigned_ms: u64,
    pub session_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Registry {
    pub url: String,
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Postgres {
    pub url: SecretString,
    pub readonly_url: SecretString,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Consumer {
    pub max_batch: usize,
    pub max_wait_ms: u64,
    pub lanes: usize,
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Gateway {
    pub http_listen: String,
    pub grpc_listen: String,
    pub ledger_retention_hours: u32,
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    pub max_status_wait_ms: u64,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// gRPC server reflection (lists every service and message to anyone who asks).
    pub grpc_reflection: bool,
    /// The most records a reconnecting event stream may replay (`Last-Event-ID`).
    pub event_stream_resume_window: u64,
    /// Event streams one organization may hold open at once.
    pub event_streams_per_organization: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Auth {
    pub hs256_secret: SecretString,
    pub jwks_file: String,
    pub issuer: String,
    pub audience: String,
    /// The longest a token may live (`exp - iat`); longer ones are refused.
    pub max_token_lifetime_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Telemetry {
    pub log_format: String,
    pub metrics_host: String,
}

/// Billing's payment providers: which one charges what, what each costs, where each lives.
#[derive(Debug, Clone, Deserialize)]
pub struct Billing {
    /// Payment method → connector (stripe, paypal, razorpay, manual).
    pub routing: BTreeMap<String, String>,
    /// Organization id → (payment method → connector), over `routing`.
    #[serde(default)]
    pub organization_routing: BTreeMap<String, BTreeMap<String, String>>,
    /// Connector → its fee.
    pub fees: BTreeMap<String, Fee>,
    /// Payment method → its processing fee.
    pub processing_fees: BTreeMap<String, Fee>,
    pub provider: ProviderWorker,
    pub subscriptions: Subscriptions,
    pub stripe: Stripe,
    pub paypal: PayPal,
    pub razorpay: Razorpay,
}

/// `percent_bps` of the amount (basis points, rounded half up) plus `fixed_minor`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct Fee {
    pub percent_bps: u32,
    pub fixed_minor: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProviderWorker {
    pub poll_interval_ms: u64,
    pub concurrency: usize,
    pub lease_secs: u64,
    pub timeout_ms: u64,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub awaiting_poll_secs: u64,
    pub stale_after_secs: u64,
}

/// The notifications process: its delivery worker and its channels.
#[derive(Debug, Clone, Deserialize)]
pub struct Notifications {
    pub delivery: DeliveryWorker,
    /// The channels' clients, as `studyspot-notification-channels`' `ChannelsConfig` reads them
    /// (email, sms, whatsapp, push, webhook, retry); kept as data so this crate knows no client.
    #[serde(default)]
    pub channels: serde_json::Value,
    pub tracking: Tracking,
}

/// Delivery tracking: signed open-pixel, click-redirect and status-callback links on the gateway.
/// The notifications process signs them, the gateway verifies them; both read this section.
#[derive(Debug, Clone, Deserialize)]
pub struct Tracking {
    /// Open pixel and click redirects in HTML e-mails; Twilio status callbacks per message.
    pub enabled: bool,
    /// The gateway as recipients and providers reach it, e.g. https://api.example.org.
    pub public_base_url: String,
    /// The key id new links are signed with; must be one of `secrets`.
    pub signing_key_id: String,
    /// Key id → HMAC-SHA256 secret. Every key verifies, so a key rotates by adding one.
    pub secrets: BTreeMap<String, SecretString>,
    /// Open and click links expire this long after sending (0: never).
    pub link_ttl_days: u64,
    /// Twilio's auth token for its status callbacks' signatures; empty: the SMS channel's.
    pub twilio_auth_token: SecretString,
    /// Opens or clicks recorded per link and hour (a burst of as many); more still get their
    /// pixel or redirect, but nothing is recorded.
    pub events_per_link_per_hour: u32,
    /// Opens, clicks and status callbacks recorded per organization and second (a burst of ten
    /// times as many).
    pub events_per_organization_per_second: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryWorker {
    pub poll_interval_ms: u64,
    pub concurrency: usize,
    pub lease_secs: u64,
    /// Waits before each retry of a message whose provider was unreachable; then it fails.
    pub retry_schedule_secs: Vec<u64>,
    /// Each wait varies by up to this percentage, so retries of one outage spread out.
    pub jitter_percent: u32,
    /// Requests per second to one webhook endpoint, with room for a burst.
    pub webhook_rate_per_second: u32,
    pub webhook_rate_burst: u32,
    /// A webhook endpoint failing this long without a success is disabled and its owner told.
    pub webhook_disable_after_secs: u64,
}

/// The attendance process: its scheduler and the QR tokens the gateway mints and it verifies.
#[derive(Debug, Clone, Deserialize)]
pub struct Attendance {
    pub scheduler_interval_secs: u64,
    pub qr: QrTokens,
}

/// The alerts process: how often its scheduler asks for rule evaluation.
#[derive(Debug, Clone, Deserialize)]
pub struct Alerts {
    pub evaluation_interval_secs: u64,
    /// Samples older than this many days are dropped.
    pub sample_retention_days: u32,
    /// How often the scheduler asks for report runs and sample retention (0: never).
    pub insights_interval_secs: u64,
    /// How often dead-letter counts and consumer lag are sampled from the broker (0: never).
    pub broker_sample_interval_secs: u64,
    /// The consumers (group `studyspot.<name>`) whose lag is sampled.
    pub lag_consumers: Vec<String>,
    pub health: AlertsHealth,
    pub logs: AlertsLogs,
}

/// The alerts process's prober: StudySpot's own processes it checks by default, and how.
#[derive(Debug, Clone, Deserialize)]
pub struct AlertsHealth {
    /// Probing on or off (the checks stay defined).
    pub enabled: bool,
    /// How often the prober looks for due checks.
    pub tick_ms: u64,
    /// The organization that owns the process checks: its routes tell operators.
    pub organization_id: String,
    /// Process name → the URL of its `/ready`; an empty URL leaves the process out.
    pub processes: BTreeMap<String, String>,
    pub process_interval_seconds: i64,
    pub process_timeout_ms: i64,
    pub process_failure_threshold: i32,
    pub process_severity: String,
}

/// Structured logs: how long they are kept, and how often old ones are dropped.
#[derive(Debug, Clone, Deserialize)]
pub struct AlertsLogs {
    pub retention_days: i32,
    pub retention_interval_secs: u64,
}

/// HMAC-SHA256 keys by id; `signing_key_id` signs new tokens, every key listed verifies.
#[derive(Debug, Clone, Deserialize)]
pub struct QrTokens {
    pub signing_key_id: String,
    pub keys: BTreeMap<String, SecretString>,
    pub ttl_secs: u64,
    pub seat_code_ttl_days: u64,
}

/// How subscriptions are billed, and how often the scheduler asks for due billing.
#[derive(Debug, Clone, Deserialize)]
pub struct Subscriptions {
    pub trial_notice_days: i64,
    pub dunning_retry_days: Vec<i64>,
    pub dunning_final_action: String,
    pub invoice_due_days: i64,
    pub manual_invoice_due_days: i64,
    pub scheduler_interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Stripe {
    pub base_url: String,
    pub secret_key: SecretString,
    pub webhook_secret: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PayPal {
    pub base_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Razorpay {
    pub base_url: String,
    pub key_id: String,
    pub key_secret: SecretString,
    pub webhook_secret: SecretString,
}

impl Settings {
    /// Defaults → `file` (or the file named by `STUDYSPOT_CONFIG`) → the secrets file named by
    /// `STUDYSPOT_SECRETS_FILE` → `STUDYSPOT_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::figment(file).extract().map_err(|e| ConfigError(Box::new(e)))
    }

    /// What the operator tools (`studyspot`, the load generator) load: [`Settings::load`], and
    /// when `STUDYSPOT_SECRETS_FILE` is not set, the local stack's secrets file if there is one
    /// (`$STUDYSPOT_HOME/secrets.toml`, by default `~/.local/share/studyspot/secrets.toml`, which
    /// `./deploy/local/up` writes), so a token they mint verifies at the local gateway.
    pub fn load_for_tools(file: Option<&Path>) -> Result<Self, ConfigError> {
        let local = secrets_file().is_none().then(local_secrets_file).flatten().filter(|p| p.is_file());
        Self::figment_with(file, secrets_file().or(local)).extract().map_err(|e| ConfigError(Box::new(e)))
    }

    pub fn figment(file: Option<&Path>) -> Figment {
        Self::figment_with(file, secrets_file())
    }

    fn figment_with(file: Option<&Path>, secrets: Option<PathBuf>) -> Figment {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        let named =
            file.map(Path::to_path_buf).or_else(|| std::env::var_os("STUDYSPOT_CONFIG").map(Into::into));
        if let Some(path) = named {
            figment = figment.merge(Toml::file_exact(path));
        }
        if let Some(path) = secrets {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment.merge(Env::prefixed("STUDYSPOT_").split("__").ignore(&["config", "secrets_file"]))
    }
}

/// The secrets file named by `STUDYSPOT_SECRETS_FILE`.
fn secrets_file() -> Option<PathBuf> {
    std::env::var_os("STUDYSPOT_SECRETS_FILE").filter(|p| !p.is_empty()).map(Into::into)
}

/// Where `./deploy/local/up` keeps the local stack's secrets.
pub fn local_secrets_file() -> Option<PathBuf> {
    let home = std::env::var_os("STUDYSPOT_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/studyspot")))?;
    Some(home.join("secrets.toml"))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail fixes the closure's error type
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn defaults_parse_and_environment_overrides_them() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            let settings = Settings::load(None).expect("defaults load");
            assert_eq!(settings.kafka.bootstrap_servers, "127.0.0.1:9092");
            assert_eq!(settings.consumer.lanes, 4);

            jail.set_env("STUDYSPOT_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092");
            jail.set_env("STUDYSPOT_CONSUMER__MAX_BATCH", "7");
            let settings = Settings::load(None).expect("env overrides load");
            assert_eq!(settings.kafka.bootstrap_servers, "kafka-1:9092,kafka-2:9092");
            assert_eq!(settings.consumer.max_batch, 7);
            assert!(settings.outbound.allow.is_empty(), "nothing private is reachable by default");

            jail.set_env("STUDYSPOT_OUTBOUND__ALLOW", r#"["127.0.0.0/8", "::1/128"]"#);
            let settings = Settings::load(None).expect("an allowlist from the environment loads");
            assert_eq!(settings.outbound.allow, ["127.0.0.0/8", "::1/128"]);
            Ok(())
        });
    }

    #[test]
    fn a_named_file_overrides_defaults_and_secrets_do_not_print() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("site.toml", "[postgres]\nurl = \"postgres://u:hunter2@db/x\"\n")?;
            let settings = Settings::load(Some(Path::new("site.toml"))).expect("file loads");
            assert_eq!(settings.postgres.url.expose_secret(), "postgres://u:hunter2@db/x");
            assert!(!format!("{settings:?}").contains("hunter2"));
            Ok(())
        });
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        figment::Jail::expect_with(|_| {
            assert!(Settings::load(Some(Path::new("nowhere.toml"))).is_err());
            Ok(())
        });
    }
}
