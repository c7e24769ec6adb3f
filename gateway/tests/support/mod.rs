//! A test's own gateway: a fresh database (ledger and projections), an in-process schema registry,
//! topics of its own (a unique prefix) on the real broker, and tokens signed with its settings.

use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use studyspot_bus::{
    BusSettings, Codec, InboundMessage, OutboundMessage, Producer, TraceContext, admin, reader,
};
use studyspot_config::Settings;
use studyspot_schemas::{EventMetadata, Record, attendance};
use studyspot_tokens::{Claims, Role, mint};

pub struct TestGateway {
    pub settings: Settings,
    pub base: String,
    pub client: reqwest::Client,
}

/// Polls `probe` until it returns `Some`, or fails the test at the deadline (the same rule as
/// test-world's `eventually`, which the gateway's own tests cannot depend on: it depends on them).
#[allow(dead_code)]
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    // The probe's cadence; the deadline is what bounds the wait.
    let mut cadence = tokio::time::interval(Duration::from_millis(100));
    loop {
        cadence.tick().await;
        if let Some(value) = probe().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
    }
}

impl TestGateway {
    /// A gateway on fresh infrastructure; `tweak` adjusts the settings first.
    pub async fn start(tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::start_wrapped(tweak, |app| app).await
    }

    /// [`TestGateway::start`] with the gateway's router passed through `wrap` before it serves
    /// (e.g. a layer that watches every response).
    pub async fn start_wrapped(
        tweak: impl FnOnce(&mut Settings),
        wrap: impl FnOnce(axum::Router) -> axum::Router,
    ) -> Self {
        let settings = Self::infrastructure(tweak).await;
        let base = Self::serve_wrapped(&settings, wrap).await;
        Self { settings, base, client: reqwest::Client::new() }
    }

    /// Fresh infrastructure and the settings of a gateway on it, without starting one (for a test
    /// that runs the gateway's binary); `tweak` adjusts the settings first.
    pub async fn infrastructure(tweak: impl FnOnce(&mut Settings)) -> Settings {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let url =
            studyspot_fresh_database::create(&studyspot_fresh_database::admin_url(), &format!("gw_{id}"))
                .await
                .expect("a database of its own on PostgreSQL for tests");
        let registry = studyspot_schema_registry::router(
            studyspot_schema_registry::connect(&url, 2).await.expect("pool"),
        )
        .await
        .expect("registry");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let registry_url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, registry).await });

        let mut settings = Settings::load(None).expect("defaults");
        studyspot_config::secrets::Secrets::random().apply(&mut settings);
        settings.kafka.bootstrap_servers =
            std::env::var("STUDYSPOT_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
        settings.kafka.topic_prefix = format!("t{id}.");
        settings.registry.url = registry_url;
        settings.postgres.url = url.clone().into();
        // A fresh database has no read-only role of its own; the owner reads in its place.
        settings.postgres.readonly_url = url.into();
        settings.postgres.max_connections = 4;
        tweak(&mut settings);
        let topics: Vec<String> = studyspot_schemas::catalogue()
            .iter()
            .map(|t| format!("{}{}", settings.kafka.topic_prefix, t.name))
            .collect();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        admin::ensure_topics(&BusSettings::from_settings(&settings, "gateway-test"), &refs, 1, 1)
            .await
            .expect("topics");
        settings
    }

    /// Another gateway process on the same infrastructure (as after a restart).
    pub async fn serve(settings: &Settings) -> String {
        Self::serve_wrapped(settings, |app| app).await
    }

    async fn serve_wrapped(settings: &Settings, wrap: impl FnOnce(axum::Router) -> axum::Router) -> String {
        // Never cancelled: the gateway lives as long as the test.
        let app = wrap(studyspot_gateway::app(settings, Default::default()).await.expect("app"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    pub fn token(&self, org: Option<&str>, roles: &[Role], member_id: Option<&str>) -> String {
        self.token_with(org, roles, member_id, 600)
    }

    pub fn token_with(&self, org: Option<&str>, roles: &[Role], member_id: Option<&str>, ttl: i64) -> String {
        self.token_scoped(org, roles, member_id, ttl, None)
    }

    /// A service token of `org` granted `scope` (space-separated scopes).
    pub fn service_token(&self, org: &str, scope: &str) -> String {
        self.token_scoped(Some(org), &[Role::Service], None, 600, Some(scope))
    }

    fn token_scoped(
        &self,
        org: Option<&str>,
        roles: &[Role],
        member_id: Option<&str>,
        ttl: i64,
        scope: Option<&str>,
    ) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: format!("user:{}", member_id.unwrap_or("ada")),
            org: org.map(str::to_owned),
            roles: roles.to_vec(),
            member_id: member_id.map(str::to_owned),
            iss: self.settings.auth.issuer.clone(),
            aud: self.settings.auth.audience.clone(),
            iat: now,
            exp: now.saturating_add_signed(ttl),
            nbf: None,
            scope: scope.map(str::to_owned),
        };
        mint(&self.settings.auth, &claims).expect("mint")
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// Sends and returns the status, the headers and the JSON body (Null when there is none).
    pub async fn send(request: RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json().await.unwrap_or(Value::Null))
    }

    /// A connection to `schema` of this gateway's database with that domain's projection migrated,
    /// standing in for the consumer that owns it.
    pub async fn projection(&self, schema: &str, migrations: &sqlx::migrate::Migrator) -> PgConnection {
        use secrecy::ExposeSecret;
        use sqlx::postgres::PgConnectOptions;
        let options: PgConnectOptions = self.settings.postgres.url.expose_secret().parse().expect("url");
        let mut db =
            PgConnection::connect_with(&options.options([("search_path", schema)])).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}")))
            .execute(&mut db)
            .await
            .expect("schema");
        migrations.run(&mut db).await.expect("migrations");
        db
    }

    /// A payment of org_1's `member` in the billing projection, as billing would have projected
    /// it (created 2026-01-01; `change` adjusts it first).
    pub async fn payment(
        &self,
        id: &str,
        member: &str,
        change: impl FnOnce(&mut studyspot_billing_projection::Payment),
    ) {
        use studyspot_billing_projection as billing;
        let mut db = self.projection("billing", &billing::MIGRATIONS).await;
        let at = chrono::DateTime::from_timestamp(1_767_225_600, 0).expect("time");
        let mut payment = billing::Payment {
            payment_id: id.into(),
            organization_id: "org_1".into(),
            member_id: member.into(),
            amount_minor: 2000,
            currency: "EUR".into(),
            method: "card".into(),
            status: "created".into(),
            created_at: at,
            updated_at: at,
            ..Default::default()
        };
        change(&mut payment);
        billing::insert_payment(&mut db, &payment).await.expect("insert");
    }

    pub fn read_all(&self, catalogue_topic: &str) -> Vec<InboundMessage> {
        let bus = BusSettings::from_settings(&self.settings, "gateway-test-reader");
        let topic = format!("{}{catalogue_topic}", self.settings.kafka.topic_prefix);
        reader::read_to_end(&bus, &topic, Duration::from_secs(30)).expect("read topic")
    }
}

/// Publishes follow-on events as a consumer would, for the live stream to carry.
pub struct Publisher {
    producer: Producer,
    codec: Codec,
    prefix: String,
}

impl Publisher {
    pub fn new(gw: &TestGateway) -> Self {
        let bus = BusSettings::from_settings(&gw.settings, "live-test");
        Self {
            producer: Producer::new(&bus).expect("producer"),
            codec: Codec::new(&gw.settings.registry.url).expect("codec"),
            prefix: gw.settings.kafka.topic_prefix.clone(),
        }
    }

    pub async fn checked_in(&self, org: &str, member: &str, session: &str) {
        let event = attendance::CheckedIn {
            metadata: EventMetadata {
                event_id: uuid::Uuid::now_v7().to_string(),
                occurred_at: 1_767_225_600_000,
                correlation_id: session.into(),
                causation_id: None,
                organization_id: org.into(),
                actor: "service:attendance".into(),
            },
            session_id: session.into(),
            member_id: member.into(),
            venue_id: "ven_1".into(),
            seat_id: None,
            occupancy: 1,
            zone_id: None,
            zone_occupancy: None,
            booking_id: None,
            subscription_id: None,
            pass_id: None,
            venue_name: None,
            seat_label: None,
        };
        let mut message = OutboundMessage::from_encoded(
            self.codec.encode(&event).await.expect("encode"),
            &TraceContext::root(),
        );
        message.topic = format!("{}{}", self.prefix, attendance::CheckedIn::topic().name);
        self.producer.send(&message).await.expect("produce");
    }
}
