//! A test's own world: a fresh database, its own topics (a unique prefix), an in-process schema
//! registry, a gateway in the test process (feature `gateway`), and real consumer processes it can
//! start, stop and SIGKILL. Every integration test of a consumer stands on it, so tests run in
//! parallel and in any order on one broker and one PostgreSQL.

mod api;
mod history;
pub mod proxy;
/// The SMTP sink the notifications tests mail to (`studyspot-mail-sink`).
pub use studyspot_mail_sink as smtp;

use std::{
    process::{Child, Command},
    time::{Duration, Instant},
};

use sqlx::PgPool;
use studyspot_bus::{
    BusSettings, Codec, InboundMessage, OutboundMessage, Producer, TraceContext, admin, reader,
};
use studyspot_schemas::{Record, Topic};

pub use crate::api::Api;

/// The PostgreSQL server a world makes its database on (`STUDYSPOT_TEST_DATABASE_URL`).
pub use studyspot_fresh_database::admin_url;

pub fn kafka() -> String {
    std::env::var("STUDYSPOT_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub struct World {
    pub id: String,
    /// The domain whose topics this world creates and whose consumer it runs.
    pub domain: &'static str,
    /// The consumer binary (`env!("CARGO_BIN_EXE_studyspot-<domain>")` of the test crate).
    pub binary: &'static str,
    pub database_url: String,
    pub prefix: String,
    pub registry_url: String,
    pub bus: BusSettings,
    pub codec: Codec,
    pub producer: Producer,
    /// The secrets of this world's processes, random: its gateway, its consumers and the tokens
    /// its tests mint share them, and no default is ever used.
    pub secrets: studyspot_config::secrets::Secrets,
}

impl World {
    /// A world for `domain`'s consumer, whose binary is at `binary`.
    pub async fn new(domain: &'static str, binary: &'static str) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let database_url = studyspot_fresh_database::create(&admin_url(), &format!("t_{id}"))
            .await
            .expect("a database of its own on PostgreSQL for tests");

        let registry_pool = studyspot_schema_registry::connect(&database_url, 4).await.expect("registry db");
        let app = studyspot_schema_registry::router(registry_pool).await.expect("registry app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let registry_url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum_serve(listener, app).await });

        let prefix = format!("t{id}.");
        let bus = BusSettings {
            bootstrap_servers: kafka(),
            registry_url: registry_url.clone(),
            extra: Default::default(),
            client_id: format!("test-{id}"),
            rejoin_when_unassigned: None,
            session_timeout: Duration::from_secs(10),
        };
        let names: Vec<String> = admin::topic_names_with_dead_letters(studyspot_schemas::catalogue())
            .into_iter()
            .filter(|n| n.contains(&format!(".{domain}.")))
            .map(|n| format!("{prefix}{n}"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        admin::ensure_topics(&bus, &refs, 3, 1).await.expect("topics");
        let codec = Codec::new(&registry_url).expect("codec");
        let producer = Producer::new(&bus).expect("producer");
        let secrets = studyspot_config::secrets::Secrets::random();
        Self { id, domain, binary, database_url, prefix, registry_url, bus, codec, producer, secrets }
    }

    /// The documented defaults with this world's secrets: what its processes sign and verify with.
    pub fn settings(&self) -> studyspot_config::Settings {
        let mut settings = studyspot_config::Settings::load(None).expect("defaults");
        self.secrets.apply(&mut settings);
        settings
    }

    pub fn topic(&self, catalogue_name: &str) -> String {
        format!("{}{catalogue_name}", self.prefix)
    }

    /// Creates other domains' `topics` (and their dead letters) in this world: a consumer reads
    /// them, and in every real deployment they exist.
    pub async fn create_topics(&self, topics: &[&Topic]) {
        let names: Vec<String> =
            topics.iter().flat_map(|t| [self.topic(t.name), self.topic(t.dead_letter)]).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        admin::ensure_topics(&self.bus, &refs, 3, 1).await.expect("other domains' topics");
    }

    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.database_url).await.expect("test db")
    }

    /// Produces a record to its (prefixed) topic and waits for the broker's acknowledgement.
    pub async fn send<R: Record>(&self, record: &R) {
        let encoded = self.codec.encode(record).await.expect("encode");
        let mut message = OutboundMessage::from_encoded(encoded, &TraceContext::root());
        message.topic = self.topic(&message.topic);
        self.producer.send(&message).await.expect("produce");
    }

    /// Produces raw bytes (for poison messages).
    pub async fn send_raw(&self, catalogue_topic: &str, key: &str, payload: Vec<u8>) {
        let message = OutboundMessage {
            topic: self.topic(catalogue_topic),
            key: key.into(),
            payload,
            headers: Default::default(),
        };
        self.producer.send(&message).await.expect("produce raw");
    }

    pub fn read_all(&self, catalogue_topic: &str) -> Vec<InboundMessage> {
        reader::read_to_end(&self.bus, &self.topic(catalogue_topic), Duration::from_secs(30))
            .expect("read topic")
    }

    /// A gateway serving this world (in this test process), and a staff token for it.
    #[cfg(feature = "gateway")]
    pub async fn gateway(&self) -> (String, String) {
        let (base, settings) = self.gateway_with_settings().await;
        let token = self.token(&settings, studyspot_tokens::Role::Staff, None);
        (base, token)
    }

    /// A gateway serving this world, and the settings tokens for it are minted with.
    #[cfg(feature = "gateway")]
    pub async fn gateway_with_settings(&self) -> (String, studyspot_config::Settings) {
        self.gateway_configured(|_| {}).await
    }

    /// A gateway serving this world with `configure` applied to its settings.
    #[cfg(feature = "gateway")]
    pub async fn gateway_configured(
        &self,
        configure: impl FnOnce(&mut studyspot_config::Settings),
    ) -> (String, studyspot_config::Settings) {
        let mut settings = self.settings();
        configure(&mut settings);
        settings.kafka.bootstrap_servers = kafka();
        settings.kafka.topic_prefix = self.prefix.clone();
        settings.registry.url = self.registry_url.clone();
        settings.postgres.url = self.database_url.clone().into();
        // A fresh database has no read-only role of its own; the owner reads in its place.
        settings.postgres.readonly_url = self.database_url.clone().into();
        settings.postgres.max_connections = 4;
        let app = studyspot_gateway::app(&settings, Default::default()).await.expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, settings)
    }

    /// A token of this world's organization with one role (and member id, for members).
    pub fn token(
        &self,
        settings: &studyspot_config::Settings,
        role: studyspot_tokens::Role,
        member_id: Option<&str>,
    ) -> String {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        let claims = studyspot_tokens::Claims {
            sub: format!("user:{role:?}").to_lowercase(),
            org: Some(self.organization_id()),
            roles: vec![role],
            member_id: member_id.map(str::to_owned),
            iss: settings.auth.issuer.clone(),
            aud: settings.auth.audience.clone(),
            iat: now,
            exp: now + 3600,
            nbf: None,
            scope: None,
        };
        studyspot_tokens::mint(&settings.auth, &claims).expect("token")
    }

    /// The organization this world's records and tokens belong to.
    pub fn organization_id(&self) -> String {
        format!("org_{}", self.id)
    }

    /// Fresh metadata of this world's organization, written now by `actor`: a new event id that
    /// is also the correlation id.
    pub fn metadata(&self, actor: &str) -> studyspot_schemas::EventMetadata {
        let id = uuid::Uuid::now_v7().to_string();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
        studyspot_schemas::EventMetadata {
            event_id: id.clone(),
            occurred_at: i64::try_from(now.as_millis()).expect("millis fit"),
            correlation_id: id,
            causation_id: None,
            organization_id: self.organization_id(),
            actor: actor.into(),
        }
    }

    /// Metadata of this world's organization, written now by `user:test`, whose event id is named:
    /// the same `name` gives the same id (a resend is the same command), another name another.
    pub fn named_metadata(&self, name: &str) -> studyspot_schemas::EventMetadata {
        let named = format!("{}/{name}", self.id);
        studyspot_schemas::EventMetadata {
            event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, named.as_bytes()).to_string(),
            correlation_id: format!("test-{name}"),
            actor: "user:test".into(),
            ..self.metadata("user:test")
        }
    }

    /// Billing's clock moved by hand: a `RunBilling` of this world's organization up to `up_to`
    /// (RFC 3339), written to the log as billing's own scheduler writes it (the gateway refuses a
    /// run ahead of now, and these tests live in the future), and its outcome once billing decided
    /// it (`applied`, `rejected`, `dead_lettered`).
    pub async fn run_billing(&self, up_to: &str) -> String {
        let up_to =
            chrono::DateTime::parse_from_rfc3339(up_to).expect("an RFC 3339 instant").timestamp_millis();
        let run =
            studyspot_schemas::billing::RunBilling { metadata: self.metadata("user:test-clock"), up_to };
        self.send(&run).await;
        let id = run.metadata.event_id;
        eventually(&format!("billing run {id} decided"), Duration::from_secs(60), || async {
            let pool = self.pool().await;
            let outcome: Option<String> =
                sqlx::query_scalar("SELECT outcome FROM billing.command_outcomes WHERE command_id = $1")
                    .bind(&id)
                    .fetch_optional(&pool)
                    .await
                    .unwrap_or(None);
            pool.close().await;
            outcome
        })
        .await
    }

    /// Starts a real consumer process of this world's domain.
    pub fn spawn_consumer(&self, crash_at: Option<&str>) -> Consumer {
        self.spawn_consumer_with_database(crash_at, &self.database_url)
    }

    /// The database URL with its host and port replaced by `addr` (a proxy in front of PostgreSQL).
    pub fn database_url_via(&self, addr: std::net::SocketAddr) -> String {
        let (scheme_auth, rest) = self.database_url.split_once('@').expect("url has credentials");
        let (_, path) = rest.split_once('/').expect("url has a database");
        format!("{scheme_auth}@{addr}/{path}")
    }

    pub fn database_host_port(&self) -> String {
        let rest = self.database_url.split_once('@').expect("url has credentials").1;
        rest.split_once('/').expect("url has a database").0.to_owned()
    }

    pub fn spawn_consumer_with_database(&self, crash_at: Option<&str>, database_url: &str) -> Consumer {
        self.spawn_consumer_with(crash_at, database_url, &[])
    }

    /// This world's consumer binary with the environment its processes run with (add arguments,
    /// e.g. `rebuild`, and run it).
    pub fn consumer_command(&self, database_url: &str) -> Command {
        let mut command = Command::new(self.binary);
        command
            .env("STUDYSPOT_KAFKA__BOOTSTRAP_SERVERS", kafka())
            .env("STUDYSPOT_KAFKA__TOPIC_PREFIX", &self.prefix)
            .env("STUDYSPOT_REGISTRY__URL", &self.registry_url)
            .env("STUDYSPOT_POSTGRES__URL", database_url)
            .env("STUDYSPOT_CONSUMER__MAX_BATCH", "50")
            .env("STUDYSPOT_CONSUMER__RETRY_MAX_MS", "1000")
            // A SIGKILLed member's partitions move on after this; the default 45 s would only slow tests.
            .env("STUDYSPOT_KAFKA__SESSION_TIMEOUT_MS", "10000")
            .env("STUDYSPOT_OPS_LISTEN", "127.0.0.1:0")
            // The tests' webhook receivers and health targets listen on loopback: allowed, and
            // nothing else special (the processes never connect outside the loopback range).
            .env("STUDYSPOT_OUTBOUND__ALLOW", OUTBOUND_ALLOW)
            .env("RUST_LOG", "warn,studyspot=info")
            .envs(self.secrets.env());
        command
    }

    /// The notifications consumer sending e-mail to a local SMTP sink on `smtp_port` (no TLS),
    /// looking for due deliveries every 50 ms; `env` comes after and overrides.
    pub fn spawn_mailing_consumer(&self, smtp_port: u16, env: &[(&str, &str)]) -> Consumer {
        let port = smtp_port.to_string();
        let mut all = vec![
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__HOST", "127.0.0.1"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__PORT", port.as_str()),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__TLS", "none"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__FROM", "StudySpot <no-reply@studyspot.test>"),
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__POLL_INTERVAL_MS", "50"),
        ];
        all.extend_from_slice(env);
        self.spawn_consumer_with(None, &self.database_url, &all)
    }

    /// A consumer process with `env` added to its environment.
    pub fn spawn_consumer_with(
        &self,
        crash_at: Option<&str>,
        database_url: &str,
        env: &[(&str, &str)],
    ) -> Consumer {
        let mut command = self.consumer_command(database_url);
        // The caller's environment last, so it can override the defaults above.
        command.envs(env.iter().copied());
        // Each process logs to a file of its own, shown when a test finds it exited badly.
        let log = std::env::temp_dir().join(format!(
            "{}-{}-{}.log",
            self.domain,
            self.id,
            uuid::Uuid::now_v7().simple()
        ));
        let file = std::fs::File::create(&log).expect("consumer log file");
        command.stdout(file.try_clone().expect("log file handle")).stderr(file).env("NO_COLOR", "1");
        if let Some(point) = crash_at {
            command.env("STUDYSPOT_CRASH_AT", point);
        }
        Consumer { child: command.spawn().expect("start the consumer"), log }
    }
}

/// A consumer process that is killed when the test ends, passed or failed.
pub struct Consumer {
    pub child: Child,
    log: std::path::PathBuf,
}

impl Consumer {
    /// The process's log, to put in an assertion message.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("--- {} (last 60 lines) ---\n{}", self.log.display(), tail.join("\n"))
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test keeps the log to read; a passing one leaves nothing behind.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) {
    let _ = axum::serve(listener, app).await;
}

/// Polls `probe` until it returns `Some`, or fails the test at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    // The probe's cadence; the deadline is what bounds the wait.
    let mut cadence = tokio::time::interval(Duration::from_millis(100));
    loop {
        cadence.tick().await;
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

/// Waits for a process to end by itself (a crash point) within `timeout`.
pub async fn exited(child: &mut Consumer, timeout: Duration) -> std::process::ExitStatus {
    eventually("the consumer process to exit", timeout, || {
        let status = child.child.try_wait().expect("wait");
        async move { status }
    })
    .await
}

/// SIGTERM, then waits: the consumer finishes its batch and leaves the group.
pub fn stop(child: &mut Consumer) -> std::process::ExitStatus {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    child.child.wait().expect("wait")
}

/// `outbound.allow` of the processes tests start: loopback only, where their fakes listen.
pub const OUTBOUND_ALLOW: &str = r#"["127.0.0.0/8", "::1/128"]"#;
