//! What billing's end-to-end tests share: a world, consumers with a fake Stripe, and an API client.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use studyspot_gateway::auth::Role;
use studyspot_test_world::{Consumer, World, eventually};
use wiremock::MockServer;

pub async fn world() -> World {
    World::new("billing", env!("CARGO_BIN_EXE_studyspot-billing")).await
}

pub fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture json")
}

/// A billing consumer that looks for provider calls often, with `env` on top.
pub fn consumer(world: &World, env: &[(&str, &str)]) -> Consumer {
    let mut all = vec![
        ("STUDYSPOT_BILLING__PROVIDER__POLL_INTERVAL_MS", "50"),
        ("STUDYSPOT_BILLING__PROVIDER__RETRY_BASE_MS", "100"),
    ];
    all.extend_from_slice(env);
    world.spawn_consumer_with(None, &world.database_url, &all)
}

/// A billing consumer whose Stripe is the fake `stripe`, with `env` on top.
pub fn stripe_consumer(world: &World, stripe: &MockServer, env: &[(&str, &str)]) -> Consumer {
    // The Stripe client joins paths to its base URL: the trailing slash matters.
    let base = format!("{}/", stripe.uri());
    let mut all = vec![
        ("STUDYSPOT_BILLING__STRIPE__BASE_URL", base.as_str()),
        ("STUDYSPOT_BILLING__STRIPE__SECRET_KEY", "sk_test_e2e"),
    ];
    all.extend_from_slice(env);
    consumer(world, &all)
}

pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(world: &World, base: String, settings: &studyspot_config::Settings, role: Role) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        Self { client, base, token: world.token(settings, role, None) }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends a command and waits for billing's decision; returns (command id, status body).
    pub async fn command(&self, path: &str, body: Value) -> (String, Value) {
        let (status, accepted) = self.post(path, body).await;
        assert_eq!(status, 202, "{path}: {accepted}");
        let id = accepted["command_id"].as_str().expect("command id").to_owned();
        let (status, decided) = self.get(&format!("/api/commands/{id}?wait=30s")).await;
        assert_eq!(status, 200, "{decided}");
        (id, decided)
    }

    /// Polls a resource until `done` holds for it.
    pub async fn until(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        eventually(what, Duration::from_secs(60), || async {
            let (status, body) = self.get(path).await;
            (status == 200 && done(&body)).then_some(body)
        })
        .await
    }
}
