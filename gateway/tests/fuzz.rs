//! Every operation of the gateway's OpenAPI document fuzzed by schemathesis (an implementation
//! independent of ours, from the document alone) against a real gateway with a valid token: no
//! request may get a 5xx, no handler may panic, and the gateway may connect to nothing outside
//! loopback while it answers.
//!
//! deploy/local/test installs schemathesis into the tests' virtual environment
//! (deploy/local/test-requirements.txt) and names its interpreter in STUDYSPOT_TEST_PYTHON.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use studyspot_tokens::Role;
use support::TestGateway;

/// The same cases every run, so a failure reproduces.
const SEED: u32 = 21;

/// One schemathesis run: whose token, which phases, and how many Hypothesis examples per
/// operation in the phases that draw them. The owner may do everything, so every phase runs for
/// them; most of a member's requests end at the same 403, so fewer examples reach what differs
/// (their own records). Both runs together take a little over two minutes on a shared two-core
/// machine.
struct Pass {
    who: &'static str,
    role: Role,
    member_id: Option<&'static str>,
    phases: &'static str,
    max_examples: u32,
}

const PASSES: [Pass; 2] = [
    Pass {
        who: "owner",
        role: Role::Owner,
        member_id: None,
        phases: "examples,coverage,fuzzing,stateful",
        max_examples: 20,
    },
    Pass {
        who: "member",
        role: Role::Member,
        member_id: Some("mem_1"),
        phases: "examples,fuzzing",
        max_examples: 10,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_fuzzed_by_schemathesis_gets_no_server_error_and_no_panic() {
    let panics = record_panics();
    let watch = PeerWatch::start();
    let server_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let gw = TestGateway::start_wrapped(loopback_only, {
        let server_errors = server_errors.clone();
        move |app| {
            app.layer(axum::middleware::from_fn(move |request, next| {
                record_server_errors(server_errors.clone(), request, next)
            }))
        }
    })
    .await;
    // The queries read real (empty) projections, as when every consumer has started once.
    for (schema, migrations) in [
        ("billing", &studyspot_billing_projection::MIGRATIONS),
        ("notifications", &studyspot_notifications_projection::MIGRATIONS),
        ("attendance", &studyspot_attendance_projection::MIGRATIONS),
        ("alerts", &studyspot_alerts_projection::MIGRATIONS),
    ] {
        gw.projection(schema, migrations).await;
    }

    let operations = documented_operations();
    let mut reports = Vec::new();
    for pass in PASSES {
        let who = pass.who;
        let token = gw.token(Some("org_1"), std::slice::from_ref(&pass.role), pass.member_id);
        let run = schemathesis(&gw.base, &token, &pass).await;
        assert!(
            run.success,
            "schemathesis found failures with the {who} token (seed {SEED}):\n{}",
            run.report
        );
        let tested = run.operations_tested();
        assert_eq!(
            tested,
            Some(operations),
            "schemathesis tested every documented operation with the {who} token:\n{}",
            run.report
        );
        reports.push(format!("{who}: {}", run.summary()));
    }
    let peers = watch.stop();
    let server_errors = server_errors.lock().expect("lock").clone();
    assert!(server_errors.is_empty(), "the gateway answered 5xx: {server_errors:#?}");
    let panics = panics.lock().expect("lock").clone();
    assert!(panics.is_empty(), "the gateway panicked: {panics:#?}");
    assert!(peers.is_empty(), "the gateway connected outside loopback: {peers:?}");
    println!("{}", reports.join("\n"));
}

/// Settings that name nothing outside loopback: the outbound policy allows loopback only, and
/// every provider's and channel's address is the discard port of 127.0.0.1 (the gateway calls no
/// provider itself, the consumers do; should that change, it still reaches only loopback). Rate
/// limits are out of the way (schemathesis sends as fast as the gateway answers) and a status
/// wait is short.
fn loopback_only(settings: &mut studyspot_config::Settings) {
    settings.outbound.allow = vec!["127.0.0.0/8".into(), "::1/128".into()];
    let nowhere = "http://127.0.0.1:9";
    settings.billing.stripe.base_url = format!("{nowhere}/");
    settings.billing.stripe.webhook_secret = "whsec_fuzz_stripe_signing_secret_of_32_bytes".to_owned().into();
    settings.billing.paypal.base_url = nowhere.into();
    settings.billing.razorpay.base_url = nowhere.into();
    settings.billing.razorpay.webhook_secret =
        "a razorpay webhook secret of 32 bytes or more".to_owned().into();
    settings.notifications.channels = serde_json::json!({
        "webhook": true,
        "email": { "host": "127.0.0.1", "port": 9, "tls": "none", "from": "StudySpot <no-reply@example.org>" },
        "sms": { "base_url": nowhere, "account_sid": "ACfuzz", "auth_token": "fuzz", "from": "+15005550006" },
        "whatsapp": { "base_url": nowhere, "account_sid": "ACfuzz", "auth_token": "fuzz", "from": "+15005550006" },
        "push": { "project_id": "fuzz", "client_email": "fuzz@example.org", "private_key": "",
                  "token_uri": format!("{nowhere}/token"), "base_url": nowhere },
    });
    settings.notifications.tracking.public_base_url = nowhere.into();
    settings.notifications.tracking.twilio_auth_token =
        "a twilio auth token for the fuzz run".to_owned().into();
    settings.gateway.rate_limit_per_second = 100_000;
    settings.gateway.rate_limit_burst = 100_000;
    settings.gateway.max_status_wait_ms = 200;
}

/// How many operations the committed document has (what schemathesis must test).
fn documented_operations() -> usize {
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(document_path()).expect("openapi.json")).expect("json");
    document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().expect("item").len())
        .sum()
}

fn document_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

struct Run {
    success: bool,
    report: String,
}

impl Run {
    /// `Tested: N` of schemathesis's summary of API operations.
    fn operations_tested(&self) -> Option<usize> {
        let section = self.report.split("API Operations:").nth(1)?;
        let line = section.lines().find(|l| l.trim_start().starts_with("Tested:"))?;
        line.trim_start().trim_start_matches("Tested:").split_whitespace().next()?.parse().ok()
    }

    /// The summary's figures: operations tested, test cases and the time taken.
    fn summary(&self) -> String {
        let lines: Vec<&str> = self.report.lines().map(str::trim).collect();
        let after =
            |label: &str| lines.iter().position(|l| *l == label).and_then(|i| lines.get(i + 1)).copied();
        let tested = lines.iter().find(|l| l.starts_with("Tested:")).copied().unwrap_or_default();
        let took = lines
            .iter()
            .rev()
            .find(|l| l.contains(" in ") && l.starts_with('='))
            .copied()
            .unwrap_or_default();
        format!(
            "{tested}; test cases: {}; {}",
            after("Test cases:").unwrap_or_default(),
            took.trim_matches('=')
        )
    }
}

/// Runs schemathesis over the whole document against `base` with `token`, checking that no
/// response is a server error and that every response matches the document.
async fn schemathesis(base: &str, token: &str, pass: &Pass) -> Run {
    // deploy/local/test installs schemathesis into a virtual environment of its own and names its
    // interpreter here; run alone, the test needs a python3 with schemathesis on the PATH.
    let python = std::env::var("STUDYSPOT_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut command = Command::new(&python);
    command
        .args(["-m", "schemathesis.cli", "run"])
        .arg(document_path())
        .args(["--url", base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--phases", pass.phases])
        .args(["--max-examples", &pass.max_examples.to_string()])
        .args(["--seed", &SEED.to_string()])
        // No database of earlier failures replayed first: the same seed, the same cases.
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "10"])
        .args(["--no-color"])
        // gateway/tests/schemathesis_hooks.py: URLs we would connect to on loopback, event streams.
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", &hooks)
        // Whatever schemathesis writes stays out of the checkout.
        .current_dir(std::env::temp_dir());
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{python} did not run ({e}): run the tests with deploy/local/test"));
    let report = format!(
        "{}{}\n(took {:.0?})",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        started.elapsed()
    );
    Run { success: output.status.success(), report }
}

/// Every panic in this process from now on (the gateway runs in it), with where it happened.
fn record_panics() -> Arc<Mutex<Vec<String>>> {
    let panics = Arc::new(Mutex::new(Vec::new()));
    let previous = std::panic::take_hook();
    let recorded = panics.clone();
    std::panic::set_hook(Box::new(move |info| {
        recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(info.to_string());
        previous(info);
    }));
    panics
}

/// Notes every 5xx the gateway answers, with its request, whatever the client makes of it.
async fn record_server_errors(
    errors: Arc<Mutex<Vec<String>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let what = format!("{} {}", request.method(), request.uri());
    let response = next.run(request).await;
    if response.status().is_server_error() {
        errors.lock().expect("lock").push(format!("{what} -> {}", response.status()));
    }
    response
}

/// Watches this process's sockets (the gateway, its registry and its clients run in it) for a
/// peer outside loopback, sampling every 20 ms until stopped. A sample can miss a connection
/// shorter than that, so this is a tripwire beside the settings above, not a proof.
struct PeerWatch {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Vec<IpAddr>>,
}

impl PeerWatch {
    fn start() -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            // A sample every 20 ms, until told to stop (or the sender is gone).
            loop {
                for peer in foreign_peers() {
                    if !seen.contains(&peer) {
                        seen.push(peer);
                    }
                }
                match stopped.recv_timeout(Duration::from_millis(20)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            seen
        });
        Self { stop, thread }
    }

    fn stop(self) -> Vec<IpAddr> {
        let _ = self.stop.send(());
        self.thread.join().expect("watch")
    }
}

/// The remote addresses outside loopback of this process's TCP and UDP sockets.
fn foreign_peers() -> Vec<IpAddr> {
    let ours: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut foreign = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/self/net/{table}")) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(inode)) = (fields.get(2), fields.get(9)) else { continue };
            if !ours.iter().any(|o| o == inode) {
                continue;
            }
            if let Some(address) = remote.split(':').next().and_then(proc_address)
                && !address.is_unspecified()
                && !is_loopback(address)
            {
                foreign.push(address);
            }
        }
    }
    foreign
}

/// An address as /proc/net writes it: hex, each 32-bit word in the host's byte order.
fn proc_address(hex: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

fn is_loopback(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[test]
fn proc_addresses_read_as_the_kernel_writes_them() {
    assert_eq!(proc_address("0100007F"), Some("127.0.0.1".parse().expect("ip")));
    assert_eq!(proc_address("0200007F"), Some("127.0.0.2".parse().expect("ip")));
    assert_eq!(proc_address("00000000000000000000000001000000"), Some("::1".parse().expect("ip")));
    assert_eq!(
        proc_address("0000000000000000FFFF00000100007F"),
        Some("::ffff:127.0.0.1".parse().expect("ip"))
    );
    assert!(is_loopback(proc_address("0000000000000000FFFF00000100007F").expect("ip")));
    // A documentation address (TEST-NET-3), read only: it is outside loopback.
    assert_eq!(proc_address("077100CB"), Some("203.0.113.7".parse().expect("ip")));
    assert!(!is_loopback(proc_address("077100CB").expect("ip")));
}
