//! The whole system for one test: a fresh database and topics of its own (the shared test world),
//! the gateway in this process, and billing, attendance, notifications and alerts consuming in
//! this process too — the same handlers, migrations and topics as their binaries, so a command the
//! gateway accepts is decided exactly as in production.
//!
//! The consumers run in-process because a test crate can only run binaries of its own package;
//! their schedulers and probers are left out (they only tell the time, and a tick in the middle of
//! the suite would change the records it compares before and after). Billing's provider worker
//! runs (a cash payment waits for staff only after the worker has asked the manual connector), and
//! so does the delivery worker (an in-app message reaches the inbox when it is delivered).

use std::{sync::Arc, time::Duration};

use serde_json::Value;
use studyspot_config::Settings;
use studyspot_consumer_runtime::{Handler, Migrator, Runtime, RuntimeConfig, Sidecar, SidecarContext};
use studyspot_schemas::{alerts, attendance, billing, notifications};
use studyspot_test_world::World;
use studyspot_tokens::{Claims, Role, mint};
use tokio_util::sync::CancellationToken;

use crate::reply::HttpReply;

pub struct Stack {
    pub world: World,
    /// The gateway's settings: tokens are minted with its secrets.
    pub settings: Settings,
    pub base: String,
    pub http: reqwest::Client,
    /// Organization A: the world's own, holding the records every case aims at.
    pub org_a: String,
    /// Organization B: the outsider.
    pub org_b: String,
    shutdown: CancellationToken,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Stack {
    pub async fn start() -> Self {
        // The binary is never started here (see the module's documentation); the world only needs
        // a name for it.
        let world = World::new("billing", "studyspot-billing").await;
        world.create_topics(studyspot_schemas::catalogue()).await;
        let (base, settings) = world
            .gateway_configured(|s| {
                // Every case of the suite comes from a handful of tokens, many at once.
                s.gateway.rate_limit_per_second = 100_000;
                s.gateway.rate_limit_burst = 100_000;
                // The providers' signing secrets: the public routes they sign are then refused for
                // a bad signature, not for want of a secret.
                s.billing.stripe.webhook_secret = "whsec_tenancy_suite_stripe_secret".to_owned().into();
                s.billing.razorpay.webhook_secret = "tenancy_suite_razorpay_secret".to_owned().into();
                s.notifications.tracking.twilio_auth_token = "tenancy_suite_twilio_token".to_owned().into();
            })
            .await;
        let shutdown = CancellationToken::new();
        let mut consumer_settings = settings.clone();
        consumer_settings.postgres.max_connections = 4;
        consumer_settings.billing.provider.poll_interval_ms = 50;
        start_consumers(&consumer_settings, &shutdown).await;
        let org_a = world.organization_id();
        // Not A's id with something appended: an answer naming B must not seem to name A.
        let org_b = format!("org_beta_{}", world.id);
        Self {
            world,
            settings,
            base,
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
            org_a,
            org_b,
            shutdown,
        }
    }

    /// A token of `organization` with `role` (members name their member id).
    pub fn token(&self, organization: &str, role: Role, member_id: Option<&str>) -> String {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        let claims = Claims {
            sub: format!("user:{}:{}", role.as_str(), member_id.unwrap_or("operator")),
            org: Some(organization.to_owned()),
            roles: vec![role],
            member_id: member_id.map(str::to_owned),
            iss: self.settings.auth.issuer.clone(),
            aud: self.settings.auth.audience.clone(),
            iat: now,
            exp: now + 3600,
            nbf: None,
            scope: None,
        };
        mint(&self.settings.auth, &claims).expect("token")
    }

    /// One HTTP request with `token` (none for the public routes) and a body, if any: JSON, or a
    /// form when it is a string.
    pub async fn http(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> HttpReply {
        self.http_with(method, path, token, &[], body).await
    }

    /// As [`Stack::http`], with more headers (a provider's signature).
    pub async fn http_with(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> HttpReply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            // A string is a form (providers' callbacks), anything else JSON.
            Some(Value::String(form)) => request
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form.clone()),
            Some(json) => request.json(json),
            None => request,
        };
        HttpReply::read(request.send().await.expect("request")).await
    }

    /// What the consumer decided about a command, as `token` sees it (`GET /api/commands/{id}`).
    pub async fn decision(&self, command_id: &str, token: &str) -> Value {
        let path = format!("/api/commands/{command_id}?wait=30s");
        let reply = self.http(reqwest::Method::GET, &path, Some(token), None).await;
        assert_eq!(reply.status, 200, "the status of command {command_id}: {}", reply.text);
        assert!(
            reply.body["status"] != "accepted",
            "command {command_id} undecided after 30 s: {}",
            reply.text
        );
        reply.body
    }

    /// A gRPC channel to the gateway (it serves gRPC on the same listener).
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(self.base.clone())
            .expect("uri")
            .connect()
            .await
            .expect("connect over gRPC")
    }
}

/// Billing, attendance, notifications and alerts, each on the topics its binary reads.
async fn start_consumers(settings: &Settings, shutdown: &CancellationToken) {
    // How subscriptions are billed does not bear on tenancy: billing's own defaults.
    let policy = studyspot_billing::decide::subscriptions::Policy::default();
    consume(
        settings,
        shutdown,
        studyspot_billing::NAME,
        &[billing::COMMANDS.name, billing::CATALOG_COMMANDS.name, attendance::EVENTS.name],
        studyspot_billing::BillingHandler::new(policy),
        &studyspot_billing_projection::MIGRATIONS,
        vec![studyspot_billing::provider::sidecar()],
    )
    .await;
    let keys = studyspot_attendance::keys(settings).expect("the world's QR keys");
    consume(
        settings,
        shutdown,
        studyspot_attendance::NAME,
        &[attendance::COMMANDS.name, billing::EVENTS.name],
        studyspot_attendance::AttendanceHandler::new(Some(keys)),
        &studyspot_attendance_projection::MIGRATIONS,
        Vec::new(),
    )
    .await;
    consume(
        settings,
        shutdown,
        studyspot_notifications::NAME,
        &[
            notifications::COMMANDS.name,
            notifications::CATALOG_COMMANDS.name,
            billing::EVENTS.name,
            attendance::EVENTS.name,
            alerts::EVENTS.name,
        ],
        studyspot_notifications::NotificationsHandler,
        &studyspot_notifications_projection::MIGRATIONS,
        vec![studyspot_notifications::delivery::sidecar()],
    )
    .await;
    consume(
        settings,
        shutdown,
        studyspot_alerts::NAME,
        &[alerts::COMMANDS.name, billing::EVENTS.name, attendance::EVENTS.name, notifications::EVENTS.name],
        studyspot_alerts::AlertsHandler,
        &studyspot_alerts_projection::MIGRATIONS,
        Vec::new(),
    )
    .await;
}

/// One consumer in this process, as `run_consumer` runs it in its own: migrated, consuming, with
/// its sidecars, until `shutdown`.
async fn consume<H: Handler>(
    settings: &Settings,
    shutdown: &CancellationToken,
    name: &str,
    topics: &[&str],
    handler: H,
    migrator: &'static Migrator,
    sidecars: Vec<Sidecar>,
) {
    let config = RuntimeConfig::from_settings(settings, name, topics);
    let runtime = Runtime::connect(config, handler, Some(migrator)).await.expect("a consumer connects");
    let shared = Arc::new(settings.clone());
    for start in sidecars {
        tokio::spawn(start(SidecarContext {
            settings: shared.clone(),
            pool: runtime.database().pool.clone(),
            outbox: runtime.outbox(),
            shutdown: shutdown.clone(),
        }));
    }
    let shutdown = shutdown.clone();
    let name = name.to_owned();
    tokio::spawn(async move {
        if let Err(e) = runtime.run(shutdown).await {
            panic!("the {name} consumer stopped: {e}");
        }
    });
}
