//! What billing's end-to-end tests share: a world, consumers with a fake Stripe, and an API client.

#![allow(dead_code)]

use serde_json::Value;
pub use studyspot_test_world::Api;
use studyspot_test_world::{Consumer, World};
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
