//! Prometheus: `deploy/prometheus` passes `promtool check config`, `promtool check rules` and the
//! rules' own unit tests (`promtool test rules`); every metric the rules name is one our code
//! exports; and what the gateway and a consumer process serve on `/metrics` is valid exposition
//! (`promtool check metrics`). promtool comes from Debian's `prometheus` package, which
//! `deploy/local/test` installs (`ensure_promtool` in deploy/local/lib.sh).

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::json;
use studyspot_schemas::{attendance, billing, notifications};
use studyspot_test_world::{World, eventually};
use studyspot_tokens::Role;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn promtool() -> Command {
    let found = Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "promtool not found: run deploy/local/test (it installs Debian's `prometheus` package) or apt-get install prometheus"
    );
    let mut command = Command::new("promtool");
    command.current_dir(root().join("deploy/prometheus"));
    command
}

fn run(mut command: Command) -> String {
    let out = command.output().expect("promtool ran");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    text
}

/// promtool's findings on an exposition; it exits 1 for lint findings too, so they are returned
/// for the caller to judge, and only a failure to run is fatal here.
fn check_metrics(text: &str) -> String {
    let mut command = promtool();
    command.args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start promtool");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/prometheus/rules"))
        .expect("rules dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_scrape_config_and_the_rules_pass_promtool_and_their_unit_tests() {
    let mut config = promtool();
    config.args(["check", "config", "prometheus.yml"]);
    let checked = run(config);
    assert!(checked.contains(&format!("{} rule files found", rule_files().len())), "{checked}");
    let mut rules = promtool();
    rules.args(["check", "rules"]).args(rule_files());
    run(rules);
    let mut tests = promtool();
    tests.args(["test", "rules", "tests/rules_test.yml"]);
    run(tests);
}

/// Every `studyspot_…` name in the rules (histogram and summary suffixes removed).
fn metric_names_in_rules() -> Vec<String> {
    let pattern = regex::Regex::new(r"\bstudyspot_[a-z0-9_]+").expect("regex");
    let mut names: Vec<String> = rule_files()
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("rules");
            pattern.find_iter(&text).map(|m| m.as_str().to_owned()).collect::<Vec<_>>()
        })
        .map(|n| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| n.strip_suffix(s).map(str::to_owned))
                .unwrap_or(n)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn rust_sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && name != ".git" && name != "deploy" {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

#[test]
fn every_metric_the_rules_name_is_one_our_code_exports() {
    let mut sources = String::new();
    rust_sources(&root(), &mut sources);
    let names = metric_names_in_rules();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        let exported = regex::Regex::new(&format!(r#"(counter|gauge|histogram)!\(\s*"{name}""#))
            .expect("regex")
            .is_match(&sources);
        assert!(exported, "the rules name {name}, which no counter!/gauge!/histogram! in the code exports");
    }
}

async fn metrics_text(url: &str) -> Option<String> {
    let response = reqwest::get(url).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let content_type = response.headers().get("content-type")?.to_str().ok()?.to_owned();
    assert!(content_type.starts_with("text/plain"), "{url}: {content_type}");
    response.text().await.ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_and_a_consumer_serve_valid_prometheus_exposition() {
    let world = World::new("alerts", env!("CARGO_BIN_EXE_studyspot-alerts")).await;
    // Alerts reads these domains' events: the topics exist in every real deployment.
    world.create_topics(&[&billing::EVENTS, &attendance::EVENTS, &notifications::EVENTS]).await;
    let (base, settings) = world.gateway_with_settings().await;
    let token = world.token(&settings, Role::Staff, None);
    let ops = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        free.local_addr().expect("addr").to_string()
    };
    let gateway_ready = format!("{base}/ready");
    let consumer = world.spawn_consumer_with(
        None,
        &world.database_url,
        &[
            ("STUDYSPOT_OPS_LISTEN", ops.as_str()),
            ("STUDYSPOT_ALERTS__HEALTH__TICK_MS", "200"),
            ("STUDYSPOT_ALERTS__HEALTH__ORGANIZATION_ID", world.organization_id().leak()),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESS_INTERVAL_SECONDS", "1"),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__GATEWAY", gateway_ready.as_str()),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__BILLING", ""),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__NOTIFICATIONS", ""),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__ATTENDANCE", ""),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__ALERTS", ""),
        ],
    );
    // A command through the gateway: requests and a consumed batch show up in the metrics.
    let client = reqwest::Client::new();
    let accepted = client
        .post(format!("{base}/api/monitoring/metrics"))
        .bearer_auth(&token)
        .json(&json!({ "metric": "studyspot_test_temperature", "value": 21.5 }))
        .send()
        .await
        .expect("post a sample");
    assert_eq!(accepted.status().as_u16(), 202);

    let consumer_metrics =
        eventually("the consumer's metrics after a batch and a probe", Duration::from_secs(60), || async {
            let text = metrics_text(&format!("http://{ops}/metrics")).await?;
            (text.contains("studyspot_consumer_events_applied_total")
                && text.contains("studyspot_consumer_batch_seconds_bucket")
                && text.contains("studyspot_health_check_probe_success"))
            .then_some(text)
        })
        .await;
    let (ready_status, ready) = {
        let r = reqwest::get(format!("http://{ops}/ready")).await.expect("ready");
        (r.status().as_u16(), r.json::<serde_json::Value>().await.expect("json"))
    };
    assert_eq!(ready_status, 200, "{ready}");
    for check in ["postgres", "kafka", "schema_registry"] {
        assert_eq!(ready["checks"][check], "ok", "{ready}");
    }
    let gateway_metrics = eventually("the gateway's metrics", Duration::from_secs(10), || async {
        let text = metrics_text(&format!("{base}/metrics")).await?;
        text.contains("studyspot_gateway_request_seconds_count").then_some(text)
    })
    .await;

    for (who, text) in [("alerts consumer", &consumer_metrics), ("gateway", &gateway_metrics)] {
        let said = check_metrics(text);
        // Parse errors and every lint but one fail: metrics without HELP text are valid exposition
        // (the runtime's and the bus's metrics carry none yet; ours do).
        let findings: Vec<&str> =
            said.lines().filter(|l| !l.trim().is_empty() && !l.ends_with(" no help text")).collect();
        assert!(findings.is_empty(), "{who}: promtool check metrics found:\n{said}");
        assert!(!said.contains("studyspot_health_check_probe"), "{who}: {said}");
    }
    drop(consumer);
}
