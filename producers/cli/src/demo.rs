//! `studyspot demo`: one of each domain's first commands in, their follow-on events out.
//!
//! The commands go through the gateway's HTTP API, as an app would send them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::json;
use studyspot_bus::{BusSettings, Codec, headers, reader};
use studyspot_config::Settings;
use studyspot_gateway::auth::{Claims, Role, mint};
use studyspot_schemas::{alerts, attendance, billing, notifications};

/// Who a token is for and what it may do.
pub struct Grant {
    pub organization: Option<String>,
    pub roles: Vec<Role>,
    pub subject: String,
    pub member_id: Option<String>,
    pub scopes: Vec<String>,
}

/// A gateway token signed with the configured secret.
pub fn token(settings: &Settings, grant: Grant, ttl_seconds: u64) -> anyhow::Result<String> {
    let Grant { organization, roles, subject, member_id, scopes } = grant;
    anyhow::ensure!(
        ttl_seconds <= settings.auth.max_token_lifetime_secs,
        "--ttl-seconds {ttl_seconds} is longer than the gateway accepts (auth.max_token_lifetime_secs = {})",
        settings.auth.max_token_lifetime_secs
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: subject,
        org: organization,
        roles,
        member_id,
        iss: settings.auth.issuer.clone(),
        aud: settings.auth.audience.clone(),
        iat: now,
        exp: now + ttl_seconds,
        nbf: None,
        scope: (!scopes.is_empty()).then(|| scopes.join(" ")),
    };
    use secrecy::ExposeSecret;
    anyhow::ensure!(
        !settings.auth.hs256_secret.expose_secret().is_empty(),
        "auth.hs256_secret is not set, so HS256 is off and there is nothing to sign with: run \
         ./deploy/local/up (it writes $STUDYSPOT_HOME/secrets.toml), or name a secrets file with \
         STUDYSPOT_SECRETS_FILE"
    );
    Ok(mint(&settings.auth, &claims)?)
}

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let bus = BusSettings::from_settings(settings, "studyspot-demo");
    let codec = Codec::new(&settings.registry.url)?;
    let prefix = settings.kafka.topic_prefix.clone();
    let gateway = format!("http://{}", settings.gateway.http_listen);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let run = format!("{:x}", SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis());
    let org = format!("org_demo_{run}");
    let member = format!("mem_{run}");
    let staff = Grant {
        organization: Some(org.clone()),
        roles: vec![Role::Staff],
        subject: "user:demo".into(),
        member_id: None,
        scopes: Vec::new(),
    };
    let token = token(settings, staff, 600)?;
    println!("organization {org}, through the gateway at {gateway}");

    // Cash, so the demo needs no provider account: billing's provider worker sends it to the
    // manual connector, it waits for staff, and staff confirm it.
    let payment = format!("pay_{run}");
    let process = format!("/api/payments/{payment}/process");
    let confirm = format!("/api/payments/{payment}/confirm");
    let requests = [
        (
            "/api/payments",
            json!({ "payment_id": payment, "member_id": member, "amount_minor": 4900, "currency": "EUR",
                    "method": "cash", "description": "Premium plan, first month" }),
            billing::EVENTS.name,
        ),
        (process.as_str(), json!({}), billing::EVENTS.name),
        (confirm.as_str(), json!({ "reference": "front desk receipt" }), billing::EVENTS.name),
        (
            "/api/attendance/check-ins",
            json!({ "member_id": member, "venue_id": "ven_central_library", "seat_id": "seat_a12" }),
            attendance::EVENTS.name,
        ),
        (
            "/api/notifications",
            json!({ "recipient_id": member, "channel": "email", "category": "transactional",
                    "subject": "Welcome to StudySpot", "body": "Your seat is ready." }),
            notifications::EVENTS.name,
        ),
        (
            "/api/monitoring/metrics",
            json!({ "metric": "payment_failure_ratio", "labels": { "gateway": "stripe" }, "value": 0.02 }),
            alerts::EVENTS.name,
        ),
    ];
    let mut expected: Vec<(&'static str, String)> = Vec::new();
    for (path, body, events_topic) in requests {
        if path == confirm {
            wait_for_staff(&http, &gateway, &token, &payment).await?;
        }
        let correlation = format!("demo-{run}-{}", path.rsplit('/').next().unwrap_or(path));
        let response = http
            .post(format!("{gateway}{path}"))
            .bearer_auth(&token)
            .header("x-correlation-id", &correlation)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("is the gateway running at {gateway}?"))?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        anyhow::ensure!(status.as_u16() == 202, "POST {path}: {status} {answer}");
        let status_url = answer["status_url"].as_str().unwrap_or_default();
        let outcome: serde_json::Value = http
            .get(format!("{gateway}{status_url}?wait=10s"))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(15))
            .send()
            .await?
            .json()
            .await
            .unwrap_or_default();
        println!(
            "→ POST {path:<44} 202 command_id={}  status: {}",
            answer["command_id"].as_str().unwrap_or("?"),
            outcome["status"].as_str().unwrap_or("unknown")
        );
        expected.push((events_topic, correlation));
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut missing = expected;
    while !missing.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (topic, correlation) in missing {
            let kafka_topic = format!("{prefix}{topic}");
            let found = reader::read_to_end(&bus, &kafka_topic, Duration::from_secs(10))
                .with_context(|| format!("reading {kafka_topic}"))?
                .into_iter()
                .find(|r| r.headers.get(headers::CORRELATION_ID) == Some(correlation.as_str()));
            match found {
                Some(record) => {
                    let decoded = codec.decode(record.payload.as_deref().unwrap_or_default()).await?;
                    println!(
                        "← {:<34} {}[{}]@{}",
                        decoded.full_name.trim_start_matches("studyspot."),
                        kafka_topic,
                        record.partition,
                        record.offset
                    );
                    println!("    {}", summary(&decoded.value));
                }
                None => still.push((topic, correlation)),
            }
        }
        missing = still;
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    for (topic, correlation) in &missing {
        println!("✗ no follow-on event for {correlation} on {topic} within 30 s");
    }
    if missing.is_empty() { Ok(()) } else { anyhow::bail!("{} follow-on events missing", missing.len()) }
}

/// The record's fields other than the metadata, on one line.
fn summary(value: &apache_avro::types::Value) -> String {
    let apache_avro::types::Value::Record(fields) = value else { return format!("{value:?}") };
    fields
        .iter()
        .filter(|(name, _)| name != "metadata")
        .map(|(name, v)| format!("{name}={}", scalar(v)))
        .collect::<Vec<_>>()
        .join("  ")
}

fn scalar(value: &apache_avro::types::Value) -> String {
    use apache_avro::types::Value;
    match value {
        Value::String(s) => s.clone(),
        Value::Long(n) => n.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Double(n) => n.to_string(),
        Value::Union(_, inner) => scalar(inner),
        Value::Null => "null".into(),
        Value::Map(m) => {
            let mut pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{}", scalar(v))).collect();
            pairs.sort();
            format!("{{{}}}", pairs.join(","))
        }
        other => format!("{other:?}"),
    }
}

/// Polls the payment until the manual connector's answer (waiting for staff) is recorded.
async fn wait_for_staff(
    http: &reqwest::Client,
    gateway: &str,
    token: &str,
    payment: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body: serde_json::Value = http
            .get(format!("{gateway}/api/payments/{payment}"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await
            .unwrap_or_default();
        if body["status"] == "requires_action" {
            println!(
                "  payment {payment} waits for {} (connector {})",
                body["action_kind"].as_str().unwrap_or("?"),
                body["connector"].as_str().unwrap_or("?")
            );
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "payment {payment} did not reach requires_action: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
