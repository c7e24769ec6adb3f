//! A whole stack of a test's own, as `./deploy/local/up` runs it: the gateway and the four
//! consumers as processes (the debug binaries beside `studyspot`, which `cargo test --workspace`
//! builds), a fresh database and a unique topic prefix on the tests' PostgreSQL and broker, free
//! loopback ports, and the mail sink (`studyspot mail-sink`) the notifications consumer mails to.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use secrecy::ExposeSecret;
use studyspot_loadgen::stack::{Infrastructure, Stack, StackOptions, free_port, until};

pub const BIN: &str = env!("CARGO_BIN_EXE_studyspot");

/// The binaries a stack runs, beside `studyspot`.
const SERVICES: [&str; 5] = [
    "studyspot-gateway",
    "studyspot-billing",
    "studyspot-notifications",
    "studyspot-attendance",
    "studyspot-alerts",
];

pub struct LocalStack {
    pub stack: Stack,
    pub home: PathBuf,
    pub mail_dir: PathBuf,
    mail_sink: Child,
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = self.mail_sink.kill();
        let _ = self.mail_sink.wait();
        self.stack.shutdown();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.home);
        }
    }
}

impl LocalStack {
    pub async fn start(name: &str) -> Self {
        let bin_dir = Path::new(BIN).parent().expect("the binary's directory").to_owned();
        for service in SERVICES {
            assert!(
                bin_dir.join(service).exists(),
                "{service} is not built in {}: `cargo test --workspace` (or `cargo build --bins`) builds it",
                bin_dir.display()
            );
        }
        let home = std::env::temp_dir().join(format!("studyspot-{name}-{}", uuid::Uuid::now_v7().simple()));
        let mail_dir = home.join("mail");
        std::fs::create_dir_all(&home).expect("home");
        let smtp = format!("127.0.0.1:{}", free_port().expect("port"));
        let ops = format!("127.0.0.1:{}", free_port().expect("port"));
        let log = std::fs::File::create(home.join("mail-sink.log")).expect("log");
        let mail_sink = Command::new(BIN)
            .args(["mail-sink", "--listen", &smtp, "--ops-listen", &ops])
            .arg("--dir")
            .arg(&mail_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start studyspot mail-sink");
        let client = reqwest::Client::new();
        until("the mail sink ready", Duration::from_secs(30), || {
            let request = client.get(format!("http://{ops}/ready")).send();
            async move { request.await.is_ok_and(|r| r.status().is_success()) }
        })
        .await
        .expect("mail sink");
        let port = smtp.rsplit_once(':').expect("port").1.to_owned();
        let stack = Stack::start(StackOptions {
            bin_dir,
            home: home.clone(),
            infrastructure: Infrastructure::Shared {
                admin_url: studyspot_test_world::admin_url(),
                kafka: studyspot_test_world::kafka(),
            },
            env: vec![
                // The local stack's mail goes to its sink (deploy/local/lib.sh sets the same).
                ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__PORT".into(), port),
                // The alerts scheduler evaluates every second instead of every 15: the same
                // steps, sooner.
                ("STUDYSPOT_ALERTS__EVALUATION_INTERVAL_SECS".into(), "1".into()),
            ],
            partitions: 3,
        })
        .await
        .expect("the stack");
        Self { stack, home, mail_dir, mail_sink }
    }

    /// The address of a consumer's `/metrics` and `/ready`.
    pub fn ops(&self, consumer: &str) -> &str {
        self.stack.ops_address(consumer).expect("a consumer of the stack")
    }

    /// The gateway's `host:port`.
    pub fn gateway_listen(&self) -> &str {
        self.stack.gateway_url.trim_start_matches("http://")
    }

    /// What `studyspot` needs to reach this stack, as `up` exports it to the local one.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        vec![
            ("STUDYSPOT_KAFKA__BOOTSTRAP_SERVERS".into(), self.stack.kafka.clone()),
            ("STUDYSPOT_KAFKA__TOPIC_PREFIX".into(), self.stack.prefix.clone()),
            ("STUDYSPOT_REGISTRY__URL".into(), self.stack.registry_url.clone()),
            ("STUDYSPOT_POSTGRES__URL".into(), self.stack.database_url.clone()),
            ("STUDYSPOT_GATEWAY__HTTP_LISTEN".into(), self.gateway_listen().to_owned()),
            (
                "STUDYSPOT_AUTH__HS256_SECRET".into(),
                self.stack.settings.auth.hs256_secret.expose_secret().to_owned(),
            ),
            (
                "STUDYSPOT_ATTENDANCE__QR__KEYS__K1".into(),
                self.stack
                    .settings
                    .attendance
                    .qr
                    .keys
                    .get("k1")
                    .expect("the QR key")
                    .expose_secret()
                    .to_owned(),
            ),
            (
                "STUDYSPOT_NOTIFICATIONS__TRACKING__SECRETS__K1".into(),
                self.stack
                    .settings
                    .notifications
                    .tracking
                    .secrets
                    .get("k1")
                    .expect("the tracking key")
                    .expose_secret()
                    .to_owned(),
            ),
            ("STUDYSPOT_MAIL_DIR".into(), self.mail_dir.display().to_string()),
            ("STUDYSPOT_HOME".into(), self.home.display().to_string()),
            // Nothing of the developer's own stack.
            ("STUDYSPOT_SECRETS_FILE".into(), String::new()),
            ("NO_COLOR".into(), "1".into()),
        ]
    }

    /// The logs of every process, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["gateway", "billing", "notifications", "attendance", "alerts"] {
            if let Some(p) = self.stack.services.get(name) {
                out.push_str(&p.log_tail(30));
                out.push('\n');
            }
        }
        out.push_str(&std::fs::read_to_string(self.home.join("mail-sink.log")).unwrap_or_default());
        out
    }
}
