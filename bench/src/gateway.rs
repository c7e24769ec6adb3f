//! `studyspot-bench gateway`: commands accepted per second and their latency over keep-alive HTTP
//! at a fixed concurrency, beside an empty axum handler measured in the same run. The gateway is
//! its own binary (STUDYSPOT_BIN_DIR, default beside this one), run as a process.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{Json, http::StatusCode, routing::post};
use serde_json::json;
use studyspot_bus::{BusSettings, admin};
use studyspot_config::Settings;
use studyspot_loadgen::stack::{Process, free_port};
use studyspot_tokens::{Claims, Role, mint};

use crate::{Env, start_registry};

pub(crate) struct Figures {
    pub(crate) per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// `requests` POSTs of `body` to `url` from `concurrency` workers sharing one keep-alive client.
pub(crate) async fn drive(
    url: &str,
    token: Option<&str>,
    body: serde_json::Value,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<Figures> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (client, next, url, body) = (client.clone(), next.clone(), url.to_owned(), body.clone());
        let token = token.map(str::to_owned);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                let mut request = client.post(&url).json(&body);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let sent = Instant::now();
                let response = request.send().await?;
                anyhow::ensure!(response.status() == StatusCode::ACCEPTED, "{url}: {}", response.status());
                let _ = response.bytes().await?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        })
    });
    let mut latencies = Vec::with_capacity(requests);
    for worker in futures::future::join_all(workers).await {
        latencies.extend(worker??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(Figures { per_second: latencies.len() as f64 / elapsed.as_secs_f64(), p50: at(0.50), p99: at(0.99) })
}

async fn serve(app: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

pub async fn run(env: &Env, requests: usize, concurrency: usize) -> anyhow::Result<()> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let database_url = studyspot_fresh_database::create(&env.admin_url, &format!("bench_{run}")).await?;
    let mut settings = Settings::load(None).context("defaults")?;
    let secrets = studyspot_config::secrets::Secrets::random();
    secrets.apply(&mut settings);
    settings.kafka.bootstrap_servers = env.kafka.clone();
    settings.kafka.topic_prefix = format!("bench{run}.");
    settings.registry.url = start_registry(&database_url).await?;
    let topics: Vec<String> = studyspot_schemas::catalogue()
        .iter()
        .map(|t| format!("{}{}", settings.kafka.topic_prefix, t.name))
        .collect();
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    admin::ensure_topics(&BusSettings::from_settings(&settings, "bench"), &refs, 6, 1).await?;
    // The gateway's own binary, as it runs in production, on this run's database, topics and
    // registry.
    let home = std::env::temp_dir().join(format!("studyspot-bench-gateway-{run}"));
    std::fs::create_dir_all(&home)?;
    let program = crate::bin_dir()?.join("studyspot-gateway");
    anyhow::ensure!(program.exists(), "{} is not built", program.display());
    let http = format!("127.0.0.1:{}", free_port()?);
    let mut process = Process::new("gateway", program, &home, &home)
        .env("STUDYSPOT_KAFKA__BOOTSTRAP_SERVERS", &settings.kafka.bootstrap_servers)
        .env("STUDYSPOT_KAFKA__TOPIC_PREFIX", &settings.kafka.topic_prefix)
        .env("STUDYSPOT_REGISTRY__URL", &settings.registry.url)
        .env("STUDYSPOT_POSTGRES__URL", &database_url)
        // One database: the owner reads in the read-only role's place.
        .env("STUDYSPOT_POSTGRES__READONLY_URL", &database_url)
        .env("STUDYSPOT_GATEWAY__HTTP_LISTEN", &http)
        .env("STUDYSPOT_GATEWAY__GRPC_LISTEN", format!("127.0.0.1:{}", free_port()?))
        .env("STUDYSPOT_OPS_LISTEN", "127.0.0.1:0")
        // The bench measures throughput, not the limiter.
        .env("STUDYSPOT_GATEWAY__RATE_LIMIT_PER_SECOND", "1000000")
        .env("STUDYSPOT_GATEWAY__RATE_LIMIT_BURST", "1000000")
        .envs(secrets.env())
        .env("RUST_LOG", "warn,studyspot=info")
        .env("NO_COLOR", "1");
    process.start()?;
    process.wait_ready(&http, Duration::from_secs(60)).await?;
    let gateway = format!("http://{http}");
    let empty = serve(axum::Router::new().route(
        "/empty",
        post(|| async { (StatusCode::ACCEPTED, Json(json!({ "command_id": "x", "status_url": "/x" }))) }),
    ))
    .await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let token = mint(
        &settings.auth,
        &Claims {
            sub: "svc:bench".into(),
            org: Some("org_bench".into()),
            roles: vec![Role::Service],
            member_id: None,
            iss: settings.auth.issuer.clone(),
            aud: settings.auth.audience.clone(),
            iat: now,
            exp: now + 3600,
            nbf: None,
            scope: None,
        },
    )?;
    let body = json!({ "member_id": "mem_bench", "venue_id": "ven_bench" });
    println!(
        "gateway benchmark: {requests} requests, {concurrency} at a time over keep-alive HTTP to the gateway's process, broker {}",
        env.kafka
    );
    // Warm both up (connections, schema registration, the ledger's first rows).
    drive(&format!("{empty}/empty"), None, body.clone(), 200, concurrency).await?;
    drive(&format!("{gateway}/api/attendance/check-ins"), Some(&token), body.clone(), 200, concurrency)
        .await?;
    let limit = drive(&format!("{empty}/empty"), None, body.clone(), requests, concurrency).await?;
    let ours =
        drive(&format!("{gateway}/api/attendance/check-ins"), Some(&token), body, requests, concurrency)
            .await?;
    for (name, f) in [("empty axum handler", &limit), ("gateway: POST /api/attendance/check-ins", &ours)] {
        println!(
            "{name:<44} {:>10.0} req/s   p50 {:>8.2} ms   p99 {:>8.2} ms",
            f.per_second,
            f.p50.as_secs_f64() * 1000.0,
            f.p99.as_secs_f64() * 1000.0
        );
    }
    println!("{:<44} {:>10.1} %", "gateway / empty handler", 100.0 * ours.per_second / limit.per_second);
    process.stop(Duration::from_secs(10));
    Ok(())
}
