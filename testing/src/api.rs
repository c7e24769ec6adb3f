//! The gateway's HTTP API as a test drives it: one bearer token, JSON in and out, and commands
//! awaited until their consumer decided them.

use std::time::Duration;

use serde_json::Value;
use studyspot_tokens::Role;

use crate::{World, eventually};

pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    /// A client of the gateway at `base` with a token of `world`'s organization and `role`.
    pub fn new(world: &World, base: String, settings: &studyspot_config::Settings, role: Role) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        Self { client, base, token: world.token(settings, role, None) }
    }

    /// A gateway serving `world` in this test process, and a staff client of it.
    #[cfg(feature = "gateway")]
    pub async fn staff(world: &World) -> Self {
        let (base, settings) = world.gateway_with_settings().await;
        Self::new(world, base, &settings, Role::Staff)
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
        self.get_query(path, &[]).await
    }

    /// A GET with query parameters (encoded by the client).
    pub async fn get_query(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A GET whose body is not JSON: (status, content type, body).
    pub async fn text(&self, path: &str) -> (u16, String, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (response.status().as_u16(), content_type, response.text().await.unwrap_or_default())
    }

    /// Sends a command and waits for its consumer's decision; returns the command's status body.
    pub async fn command(&self, path: &str, body: Value) -> Value {
        self.command_with_id(path, body).await.1
    }

    /// Sends a command and waits for its consumer's decision; returns (command id, status body).
    pub async fn command_with_id(&self, path: &str, body: Value) -> (String, Value) {
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
