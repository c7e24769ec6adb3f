//! The whole system as processes this run owns: the gateway and the four consumers (release or
//! debug binaries of the workspace), and — for the soak — a PostgreSQL cluster and a broker of its
//! own (own data directories and ports), so any of them can be SIGKILLed and started again without
//! touching the developer's stack or the tests'. The schema registry and the fake providers run
//! in this process: they are not what the soak is about.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;
use nix::{sys::signal::Signal, unistd::Pid};
use sqlx::Connection;
use studyspot_bus::{BusSettings, admin};

use crate::fakes::{FakeStripe, Mailroom};

/// The consumers, in the order they start.
pub const CONSUMERS: [&str; 4] = ["billing", "notifications", "attendance", "alerts"];

/// A free TCP port on 127.0.0.1 (bound, then released for the process that will listen on it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One process of the system, started again with the same command after a kill.
pub struct Process {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
    /// Run as this user and group (PostgreSQL refuses root).
    user: Option<(u32, u32)>,
    log: PathBuf,
    child: Option<Child>,
    /// Peak resident set (VmHWM) of every life of this process, in KiB.
    pub peak_rss_kib: u64,
    pub starts: u32,
}

impl Process {
    pub fn new(name: &str, program: impl Into<PathBuf>, dir: &Path, log_dir: &Path) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: dir.to_owned(),
            user: None,
            log: log_dir.join(format!("{name}.log")),
            child: None,
            peak_rss_kib: 0,
            starts: 0,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn envs(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env.extend(vars);
        self
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt as _;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a kill takes the children (PostgreSQL's backends) too.
            .process_group(0);
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        self.child = Some(command.spawn().with_context(|| format!("start {}", self.program.display()))?);
        self.starts += 1;
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it died by itself (not killed by us).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Reads the process's peak RSS so far into `peak_rss_kib`.
    pub fn sample_rss(&mut self) {
        if let Some(kib) = self.pid().and_then(|pid| status_kib(pid, "VmHWM")) {
            self.peak_rss_kib = self.peak_rss_kib.max(kib);
        }
    }

    /// SIGKILL to the whole process group, then reaps it.
    pub fn kill(&mut self) {
        self.sample_rss();
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// SIGTERM and up to `grace` for a clean exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        self.sample_rss();
        if let Some(child) = self.child.as_mut() {
            let _ = nix::sys::signal::kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill();
    }

    /// Waits until its `/ready` at `address` answers 200; fails when it exits first or `timeout`
    /// passes.
    pub async fn wait_ready(&mut self, address: &str, timeout: Duration) -> anyhow::Result<()> {
        let url = format!("http://{address}/ready");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let deadline = Instant::now() + timeout;
        let name = self.name.clone();
        loop {
            if let Some(status) = self.exited() {
                anyhow::bail!("{name} exited ({status}) before it was ready\n{}", self.log_tail(30));
            }
            if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("{name} not ready after {timeout:?}\n{}", self.log_tail(30));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How far its log has grown: a mark to look for lines written after it.
    pub fn log_mark(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// Whether its log holds `needle` after `mark`.
    pub fn logged_since(&self, mark: u64, needle: &str) -> bool {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let after = text.get(usize::try_from(mark).unwrap_or(usize::MAX)..).unwrap_or_default();
        String::from_utf8_lossy(after).contains(needle)
    }

    /// The last lines of its log, for an error message.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        format!("--- {} ---\n{}", self.log.display(), tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `/proc/<pid>/status` field in KiB (VmRSS, VmHWM).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

/// Polls `probe` every 100 ms until it is true or `timeout` passes.
pub async fn until<F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    let mut cadence = tokio::time::interval(Duration::from_millis(100));
    loop {
        cadence.tick().await;
        if probe().await {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: not after {timeout:?}");
    }
}

/// A PostgreSQL cluster of this run: `initdb` into its own directory, its own port, trust
/// authentication on 127.0.0.1, superuser `studyspot`.
pub struct OwnPostgres {
    pub process: Process,
    pub port: u16,
}

impl OwnPostgres {
    pub async fn create(dir: &Path, log_dir: &Path) -> anyhow::Result<Self> {
        let bin = postgres_bin_dir().context("no PostgreSQL server under /usr/lib/postgresql/*/bin")?;
        let data = dir.join("pgdata");
        std::fs::create_dir_all(&data)?;
        let user = if nix::unistd::geteuid().is_root() {
            let postgres = nix::unistd::User::from_name("postgres")?
                .context("running as root, and there is no postgres user to run PostgreSQL as")?;
            nix::unistd::chown(&data, Some(postgres.uid), Some(postgres.gid))?;
            nix::unistd::chown(dir, Some(postgres.uid), Some(postgres.gid))?;
            Some((postgres.uid.as_raw(), postgres.gid.as_raw()))
        } else {
            None
        };
        let mut initdb = Process::new("initdb", bin.join("initdb"), dir, log_dir)
            .arg("-D")
            .arg(data.display().to_string())
            .arg("-U")
            .arg("studyspot")
            .arg("--auth=trust")
            .arg("-E")
            .arg("UTF8");
        initdb.user = user;
        initdb.start()?;
        let status = initdb.child.take().context("initdb")?.wait()?;
        anyhow::ensure!(status.success(), "initdb failed: {}", initdb.log_tail(20));
        let port = free_port()?;
        let mut process = Process::new("postgres", bin.join("postgres"), dir, log_dir)
            .arg("-D")
            .arg(data.display().to_string())
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir.display().to_string())
            .arg("-c")
            .arg("listen_addresses=127.0.0.1")
            .arg("-c")
            .arg("max_connections=300");
        process.user = user;
        let mut own = Self { process, port };
        own.start().await?;
        studyspot_fresh_database::create(&format!("{}/postgres", own.base_url()), "studyspot").await?;
        Ok(own)
    }

    pub fn base_url(&self) -> String {
        format!("postgres://studyspot@127.0.0.1:{}", self.port)
    }

    /// Starts the postmaster and waits until it accepts connections (crash recovery included).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.process.start()?;
        let url = format!("{}/postgres", self.base_url());
        until("PostgreSQL accepting connections", Duration::from_secs(60), || {
            let url = url.clone();
            async move { sqlx::PgConnection::connect(&url).await.is_ok() }
        })
        .await
        .with_context(|| self.process.log_tail(20))
    }
}

fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A Tansu broker of this run: its own port and SQLite store.
pub struct OwnBroker {
    pub process: Process,
    pub addr: String,
    /// Where its log stood when it last started.
    started_at: u64,
}

impl OwnBroker {
    pub async fn create(tansu: &Path, dir: &Path, log_dir: &Path) -> anyhow::Result<Self> {
        let dir = dir.join("broker");
        std::fs::create_dir_all(&dir)?;
        let addr = format!("127.0.0.1:{}", free_port()?);
        let url = format!("tcp://{addr}");
        // Tansu resolves sqlite://NAME against its working directory.
        let process = Process::new("broker", tansu, &dir, log_dir)
            .arg("broker")
            .arg("--listener-url")
            .arg(url.clone())
            .arg("--advertised-listener-url")
            .arg(url)
            .arg("--storage-engine")
            .arg("sqlite://tansu.db");
        let mut own = Self { process, addr, started_at: 0 };
        own.start().await?;
        Ok(own)
    }

    /// Whether its storage task has ended: Tansu then keeps listening while failing every request
    /// with `UnableToSend` — alive, but of no use. Unpatched Tansu 0.6.0 got there by panicking on
    /// an idempotent producer's own epoch bump; the patched build (deploy/local/tansu) fails a
    /// bad request alone, so a logged panic no longer means a broken broker.
    pub fn broken(&self) -> bool {
        self.process.logged_since(self.started_at, "UnableToSend")
    }

    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.started_at = self.process.log_mark();
        self.process.start()?;
        let addr = self.addr.clone();
        until("the broker listening", Duration::from_secs(30), || {
            let addr = addr.clone();
            async move { tokio::net::TcpStream::connect(&addr).await.is_ok() }
        })
        .await
        .with_context(|| self.process.log_tail(20))
    }
}

/// Where the stack's PostgreSQL and broker come from.
pub enum Infrastructure {
    /// Already running (the developer's or the test PostgreSQL and broker): a fresh database and
    /// a unique topic prefix keep this run apart. Nothing of them can be killed.
    Shared { admin_url: String, kafka: String },
    /// Started by this run, in its home directory, with the broker binary at this path.
    Owned { tansu: PathBuf },
}

pub struct StackOptions {
    pub bin_dir: PathBuf,
    pub home: PathBuf,
    pub infrastructure: Infrastructure,
    /// Extra environment for every service (e.g. the billing scheduler's interval), over what the
    /// stack gives each (e.g. another SMTP server for the notifications consumer).
    pub env: Vec<(String, String)>,
    pub partitions: i32,
}

/// The running system.
pub struct Stack {
    pub home: PathBuf,
    pub database_url: String,
    pub kafka: String,
    pub prefix: String,
    pub registry_url: String,
    pub gateway_url: String,
    /// The gateway's settings (auth), to mint tokens the way apps get them.
    pub settings: studyspot_config::Settings,
    pub bus: BusSettings,
    pub stripe: FakeStripe,
    pub mailroom: Mailroom,
    pub services: BTreeMap<String, Process>,
    /// Each service's `/ready` address.
    ready: BTreeMap<String, String>,
    pub postgres: Option<OwnPostgres>,
    pub broker: Option<OwnBroker>,
}

impl Stack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let run = uuid::Uuid::now_v7().simple().to_string();
        let logs = options.home.join("logs");
        std::fs::create_dir_all(&logs)?;
        let (postgres, broker, admin_url, kafka) = match &options.infrastructure {
            Infrastructure::Shared { admin_url, kafka } => (None, None, admin_url.clone(), kafka.clone()),
            Infrastructure::Owned { tansu } => {
                let postgres = OwnPostgres::create(&options.home, &logs).await?;
                let broker = OwnBroker::create(tansu, &options.home, &logs).await?;
                let (admin, kafka) = (format!("{}/studyspot", postgres.base_url()), broker.addr.clone());
                (Some(postgres), Some(broker), admin, kafka)
            }
        };
        let database_url = match options.infrastructure {
            Infrastructure::Shared { .. } => {
                studyspot_fresh_database::create(&admin_url, &format!("system_{run}"))
                    .await
                    .context("PostgreSQL")?
            }
            Infrastructure::Owned { .. } => admin_url,
        };
        let registry_pool = studyspot_schema_registry::connect(&database_url, 4).await?;
        let registry_url =
            crate::fakes::serve(studyspot_schema_registry::router(registry_pool).await?).await?;
        let prefix = format!("s{}.", &run[run.len() - 12..]);
        let mut settings = studyspot_config::Settings::load(None).context("the default settings")?;
        // Random secrets of this run, shared by its processes and the tokens the load mints.
        let secrets = studyspot_config::secrets::Secrets::random();
        secrets.apply(&mut settings);
        settings.kafka.bootstrap_servers = kafka.clone();
        settings.kafka.topic_prefix = prefix.clone();
        settings.registry.url = registry_url.clone();
        let bus = BusSettings::from_settings(&settings, "studyspot-loadgen");
        let topics: Vec<String> = admin::topic_names_with_dead_letters(studyspot_schemas::catalogue())
            .into_iter()
            .map(|n| format!("{prefix}{n}"))
            .collect();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        admin::ensure_topics(&bus, &refs, options.partitions, 1).await.context("the topics")?;

        let stripe = FakeStripe::start().await?;
        let mailroom = Mailroom::start().await?;
        let mut services = BTreeMap::new();
        let mut ready = BTreeMap::new();
        let common = |process: Process, ops: &str| {
            process
                .env("STUDYSPOT_KAFKA__BOOTSTRAP_SERVERS", &kafka)
                .env("STUDYSPOT_KAFKA__TOPIC_PREFIX", &prefix)
                // A killed member's partitions move on after this (the default 45 s only slows
                // recovery). Not shorter: Tansu serves group heartbeats from the same storage queue
                // as produce requests, and after a fault the load's backlog delayed them by 10 s,
                // evicting live members of every group; some groups then never formed again.
                .env("STUDYSPOT_KAFKA__SESSION_TIMEOUT_MS", "30000")
                .env("STUDYSPOT_REGISTRY__URL", &registry_url)
                .env("STUDYSPOT_POSTGRES__URL", &database_url)
                // One database: the owner reads in the read-only role's place.
                .env("STUDYSPOT_POSTGRES__READONLY_URL", &database_url)
                .env("STUDYSPOT_CONSUMER__RETRY_MAX_MS", "1000")
                .env("STUDYSPOT_OPS_LISTEN", ops)
                // The soak's fake receivers listen on loopback: allowed, nothing else special.
                .env("STUDYSPOT_OUTBOUND__ALLOW", r#"["127.0.0.0/8", "::1/128"]"#)
                .envs(secrets.env())
                // STUDYSPOT_STACK_LOG overrides the services' log filter when a run needs a
                // closer look (e.g. `warn,studyspot=info,studyspot_notifications::delivery=debug`).
                .env(
                    "RUST_LOG",
                    std::env::var("STUDYSPOT_STACK_LOG").unwrap_or_else(|_| "warn,studyspot=info".to_owned()),
                )
                .env("NO_COLOR", "1")
        };
        // The caller's environment comes last: it overrides what this stack gives each service.
        let extra = |mut process: Process| {
            for (k, v) in &options.env {
                process = process.env(k, v.clone());
            }
            process
        };
        for name in CONSUMERS {
            let ops = format!("127.0.0.1:{}", free_port()?);
            let program = options.bin_dir.join(format!("studyspot-{name}"));
            anyhow::ensure!(program.exists(), "{} is not built", program.display());
            let mut process = common(Process::new(name, program, &options.home, &logs), &ops);
            process = match name {
                "billing" => process
                    .env("STUDYSPOT_BILLING__STRIPE__BASE_URL", &stripe.url)
                    .env("STUDYSPOT_BILLING__STRIPE__SECRET_KEY", "sk_test_soak")
                    .env("STUDYSPOT_BILLING__PROVIDER__POLL_INTERVAL_MS", "100")
                    // A call leased by a killed worker is taken again after this.
                    .env("STUDYSPOT_BILLING__PROVIDER__LEASE_SECS", "5")
                    .env("STUDYSPOT_BILLING__PROVIDER__RETRY_BASE_MS", "200")
                    .env("STUDYSPOT_BILLING__PROVIDER__RETRY_MAX_MS", "2000"),
                "notifications" => process
                    .env("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__HOST", "127.0.0.1")
                    .env("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__PORT", mailroom.smtp.port().to_string())
                    .env("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__TLS", "none")
                    .env(
                        "STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__FROM",
                        "StudySpot <no-reply@studyspot.test>",
                    )
                    .env("STUDYSPOT_NOTIFICATIONS__DELIVERY__POLL_INTERVAL_MS", "100")
                    .env("STUDYSPOT_NOTIFICATIONS__DELIVERY__LEASE_SECS", "5")
                    .env(
                        "STUDYSPOT_NOTIFICATIONS__DELIVERY__RETRY_SCHEDULE_SECS",
                        "[0, 1, 2, 5, 10, 20, 30, 60]",
                    )
                    .env("STUDYSPOT_NOTIFICATIONS__DELIVERY__WEBHOOK_RATE_PER_SECOND", "10000")
                    .env("STUDYSPOT_NOTIFICATIONS__DELIVERY__WEBHOOK_RATE_BURST", "10000"),
                _ => process,
            };
            let process = extra(process);
            ready.insert(name.to_owned(), ops);
            services.insert(name.to_owned(), process);
        }
        let http = format!("127.0.0.1:{}", free_port()?);
        let gateway = common(
            Process::new("gateway", options.bin_dir.join("studyspot-gateway"), &options.home, &logs),
            "127.0.0.1:0",
        )
        .env("STUDYSPOT_GATEWAY__HTTP_LISTEN", &http)
        .env("STUDYSPOT_GATEWAY__GRPC_LISTEN", format!("127.0.0.1:{}", free_port()?))
        .env("STUDYSPOT_GATEWAY__RATE_LIMIT_PER_SECOND", "1000000")
        .env("STUDYSPOT_GATEWAY__RATE_LIMIT_BURST", "1000000")
        .env("STUDYSPOT_POSTGRES__MAX_CONNECTIONS", "16");
        let gateway = extra(gateway);
        ready.insert("gateway".into(), http.clone());
        services.insert("gateway".into(), gateway);
        settings.postgres.url = database_url.clone().into();

        let mut stack = Self {
            home: options.home,
            database_url,
            kafka,
            prefix,
            registry_url,
            gateway_url: format!("http://{http}"),
            settings,
            bus,
            stripe,
            mailroom,
            services,
            ready,
            postgres,
            broker,
        };
        // The consumers first: they create the schemas the gateway reads.
        for name in CONSUMERS {
            stack.start_service(name).await?;
        }
        stack.start_service("gateway").await?;
        Ok(stack)
    }

    /// The address of a service's `/metrics`, `/health` and `/ready`.
    pub fn ops_address(&self, name: &str) -> Option<&str> {
        self.ready.get(name).map(String::as_str)
    }

    /// Starts one service and waits until its `/ready` answers 200.
    pub async fn start_service(&mut self, name: &str) -> anyhow::Result<()> {
        let process = self.services.get_mut(name).with_context(|| format!("no service {name}"))?;
        process.start()?;
        self.wait_ready(name, Duration::from_secs(120)).await
    }

    /// Waits until consumer `name` logged an assignment of some partitions after `mark`: a
    /// restarted consumer is back at work only then (a killed member's partitions stay with it
    /// until the broker gives up on it).
    pub async fn wait_assigned(&mut self, name: &str, mark: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let process = self.services.get(name).with_context(|| format!("no service {name}"))?;
            let text = std::fs::read(&process.log).unwrap_or_default();
            let after = String::from_utf8_lossy(
                text.get(usize::try_from(mark).unwrap_or(usize::MAX)..).unwrap_or_default(),
            )
            .into_owned();
            if after.lines().any(|l| l.contains("partitions assigned count=") && !l.contains("count=0")) {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{name} got no partitions within {timeout:?} of its restart\n{}",
                    process.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_ready(&mut self, name: &str, timeout: Duration) -> anyhow::Result<()> {
        let address = self.ready.get(name).with_context(|| format!("no service {name}"))?.clone();
        let process = self.services.get_mut(name).with_context(|| format!("no service {name}"))?;
        process.wait_ready(&address, timeout).await
    }

    /// Samples every process's peak RSS (call it now and then; a kill samples too).
    pub fn sample_rss(&mut self) {
        for process in self.services.values_mut() {
            process.sample_rss();
        }
        if let Some(p) = self.postgres.as_mut() {
            p.process.sample_rss();
        }
        if let Some(b) = self.broker.as_mut() {
            b.process.sample_rss();
        }
    }

    /// Peak RSS per process in KiB (this process as `loadgen`).
    pub fn peak_rss(&mut self) -> BTreeMap<String, u64> {
        self.sample_rss();
        let mut peaks: BTreeMap<String, u64> =
            self.services.iter().map(|(name, p)| (name.clone(), p.peak_rss_kib)).collect();
        if let Some(p) = &self.postgres {
            peaks.insert("postgres (postmaster)".into(), p.process.peak_rss_kib);
        }
        if let Some(b) = &self.broker {
            peaks.insert("broker".into(), b.process.peak_rss_kib);
        }
        if let Some(kib) = status_kib(std::process::id(), "VmHWM") {
            peaks.insert("loadgen (this process)".into(), kib);
        }
        peaks
    }

    /// The processes of the system by name, for CPU accounting: each service, the broker (the
    /// one of this run, or the shared one listening on `kafka`), every PostgreSQL process (the
    /// shared server's serve other databases too) and this process as `loadgen`. Also the
    /// broker's pid, whose threads are worth telling apart.
    pub fn processes(&self) -> (Vec<(String, Vec<u32>)>, Option<u32>) {
        let mut groups: Vec<(String, Vec<u32>)> =
            self.services.iter().map(|(name, p)| (name.clone(), p.pid().into_iter().collect())).collect();
        let broker = match &self.broker {
            Some(b) => b.process.pid(),
            None => crate::cpu::pids_of("tansu", Some(&self.kafka)).first().copied(),
        };
        groups.push(("broker".into(), broker.into_iter().collect()));
        groups.push(("postgres".into(), crate::cpu::pids_of("postgres", None)));
        groups.push(("loadgen".into(), vec![std::process::id()]));
        (groups, broker)
    }

    /// A service that died by itself, with its log.
    pub fn crashed(&mut self) -> Option<String> {
        self.services.iter_mut().find_map(|(name, p)| {
            p.exited().map(|status| format!("{name} exited by itself ({status})\n{}", p.log_tail(40)))
        })
    }

    /// Stops everything (services with SIGTERM, then the infrastructure).
    pub fn shutdown(&mut self) {
        for process in self.services.values_mut() {
            process.stop(Duration::from_secs(10));
        }
        if let Some(b) = self.broker.as_mut() {
            b.process.stop(Duration::from_secs(10));
        }
        if let Some(p) = self.postgres.as_mut() {
            p.process.stop(Duration::from_secs(10));
        }
    }
}
