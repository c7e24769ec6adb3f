//! A stop with clients connected: the gateway's process, sent SIGTERM while an SSE client and a
//! gRPC event stream are open, ends both streams, stops its background work and exits cleanly
//! within a deadline instead of waiting for a SIGKILL.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::{
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use reqwest::Method;
use studyspot_config::secrets::Secrets;
use studyspot_grpc_api::{StreamEventsRequest, gateway_client::GatewayClient};
use studyspot_tokens::Role;
use support::{TestGateway, eventually};
use tonic::{Request, transport::Channel};

/// How long a stop may take once SIGTERM is sent.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// A loopback port nothing listens on now (the gateway binds it right after).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The gateway's binary on `settings`' infrastructure, listening on `http` and `grpc`; its log
/// goes to `log`.
fn spawn_gateway(
    settings: &studyspot_config::Settings,
    secrets: &Secrets,
    http: u16,
    grpc: u16,
    log: &std::path::Path,
) -> Child {
    use secrecy::ExposeSecret;
    let file = std::fs::File::create(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_studyspot-gateway"))
        .env("STUDYSPOT_KAFKA__BOOTSTRAP_SERVERS", &settings.kafka.bootstrap_servers)
        .env("STUDYSPOT_KAFKA__TOPIC_PREFIX", &settings.kafka.topic_prefix)
        .env("STUDYSPOT_REGISTRY__URL", &settings.registry.url)
        .env("STUDYSPOT_POSTGRES__URL", settings.postgres.url.expose_secret())
        .env("STUDYSPOT_POSTGRES__READONLY_URL", settings.postgres.readonly_url.expose_secret())
        .env("STUDYSPOT_POSTGRES__MAX_CONNECTIONS", settings.postgres.max_connections.to_string())
        .env("STUDYSPOT_GATEWAY__HTTP_LISTEN", format!("127.0.0.1:{http}"))
        .env("STUDYSPOT_GATEWAY__GRPC_LISTEN", format!("127.0.0.1:{grpc}"))
        .env("RUST_LOG", "warn,studyspot=info")
        .env("NO_COLOR", "1")
        .envs(secrets.env())
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file handle"))
        .stderr(file)
        .spawn()
        .expect("start the gateway")
}

/// Waits for `child` to exit, at most until `deadline`.
async fn exit_within(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + deadline;
    let mut cadence = tokio::time::interval(Duration::from_millis(50));
    loop {
        cadence.tick().await;
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() >= until {
            return None;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_an_sse_client_and_a_grpc_stream_open_exits_cleanly_within_a_deadline() {
    let secrets = Secrets::random();
    let settings = TestGateway::infrastructure(|s| secrets.apply(s)).await;
    let (http, grpc) = (free_port(), free_port());
    let log = std::env::temp_dir().join(format!("studyspot-gateway-shutdown-{http}.log"));
    let mut child = spawn_gateway(&settings, &secrets, http, grpc, &log);
    let gw =
        TestGateway { settings, base: format!("http://127.0.0.1:{http}"), client: reqwest::Client::new() };
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();

    eventually("the gateway to answer /health", Duration::from_secs(60), || async {
        let response = gw.request(Method::GET, "/health", None).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;

    // An SSE client on the HTTP listener and a gRPC event stream on the gRPC one, both open.
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let mut sse = gw.request(Method::GET, "/api/events/stream", Some(&staff)).send().await.expect("sse");
    assert_eq!(sse.status(), 200);
    let channel = Channel::from_shared(format!("http://127.0.0.1:{grpc}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut request = Request::new(StreamEventsRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {staff}").parse().expect("metadata"));
    let mut events =
        GatewayClient::new(channel).stream_events(request).await.expect("grpc stream").into_inner();

    let pid = child.id().to_string();
    let signalled = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(signalled.success(), "SIGTERM could not be sent to {pid}");
    let Some(status) = exit_within(&mut child, STOP_DEADLINE).await else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the gateway was still running {STOP_DEADLINE:?} after SIGTERM:\n{}", logged());
    };
    assert!(status.success(), "the gateway exited with {status}:\n{}", logged());

    // Both streams ended as streams end, not cut off.
    let sse_end = tokio::time::timeout(Duration::from_secs(5), async {
        while sse.chunk().await.expect("the SSE body ends cleanly").is_some() {}
    });
    sse_end.await.expect("the SSE body has ended");
    let grpc_end = tokio::time::timeout(Duration::from_secs(5), async {
        while events.message().await.expect("the gRPC stream ends with OK").is_some() {}
    });
    grpc_end.await.expect("the gRPC stream has ended");
    let _ = std::fs::remove_file(&log);
}
