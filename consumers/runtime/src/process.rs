use std::{net::SocketAddr, path::PathBuf, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    Handler, Migrator, RebuildOptions, Runtime, RuntimeConfig, RuntimeError, Sidecar, SidecarContext,
};

/// What distinguishes one consumer binary from another.
pub struct ConsumerSpec<H> {
    pub name: &'static str,
    pub topics: Vec<&'static str>,
    pub handler: H,
    pub migrator: &'static Migrator,
    /// Where `/metrics`, `/health` and `/ready` listen unless `STUDYSPOT_OPS_LISTEN` says otherwise.
    pub default_ops_port: u16,
    /// Work beside consuming (started once the schema is migrated), stopped with the process.
    pub sidecars: Vec<Sidecar>,
    /// The secrets this consumer signs or verifies with: the process refuses to start with a weak
    /// one outside development mode (see `studyspot_config::secrets`).
    pub secrets: &'static [studyspot_config::secrets::Secret],
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Config(#[from] studyspot_config::ConfigError),
    #[error(transparent)]
    Secrets(#[from] studyspot_config::secrets::InsecureSecrets),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot listen for SIGTERM / SIGINT: {0}")]
    Signals(std::io::Error),
    #[error("cannot serve the operational endpoints on {addr}: {source}")]
    Ops { addr: String, source: std::io::Error },
}

/// Every consumer binary's command line.
#[derive(clap::Parser)]
#[command(
    version,
    about = "A StudySpot domain consumer: applies its domain's commands to its projection and publishes events"
)]
struct Args {
    /// A settings file layered over the documented defaults (also STUDYSPOT_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(clap::Subcommand)]
enum Mode {
    /// Rebuilds the projection from the beginning of history into a fresh schema beside the live
    /// one (`<name>_rebuild_<n>`), without publishing, sidecars or schedulers, and swaps it in once
    /// caught up with the live consumer; the old projection stays as `<name>_old_<n>` until
    /// `studyspot projection drop-old <name>`.
    Rebuild {
        /// Leave the rebuild beside the live projection instead of swapping it in.
        #[arg(long)]
        no_swap: bool,
        /// Try the swap once at most this many records behind the live consumer.
        #[arg(long, default_value_t = 1000)]
        swap_gap: u64,
        /// The longest the live consumer is paused for the swap, in seconds.
        #[arg(long, default_value_t = 30)]
        swap_timeout_secs: u64,
    },
}

/// A token cancelled on SIGTERM or SIGINT, for [`run_consumer`]. A binary's `main` takes it
/// before anything else, so a stop during start-up is a clean stop too.
pub fn shutdown_on_signals() -> Result<CancellationToken, ProcessError> {
    studyspot_telemetry::shutdown_token().map_err(ProcessError::Signals)
}

/// The whole life of a consumer process: arguments, settings, logs, metrics, the runtime; it
/// stops once `shutdown` is cancelled (the batch in hand finished, sidecars and the operational
/// endpoints stopped).
pub async fn run_consumer<H: Handler>(
    spec: ConsumerSpec<H>,
    shutdown: CancellationToken,
) -> Result<(), ProcessError> {
    let args = <Args as clap::Parser>::parse();
    let mut settings = studyspot_config::Settings::load(args.config.as_deref())?;
    let _traces = studyspot_telemetry::init_logs(spec.name, &settings.telemetry.log_format);
    for warning in settings.secure(spec.secrets)? {
        tracing::warn!("development mode: {warning}");
    }
    if let Some(Mode::Rebuild { no_swap, swap_gap, swap_timeout_secs }) = args.mode {
        let options = RebuildOptions {
            swap: !no_swap,
            swap_gap,
            swap_timeout: Duration::from_secs(swap_timeout_secs.max(1)),
            ..RebuildOptions::default()
        };
        let config = RuntimeConfig::from_settings(&settings, spec.name, &spec.topics);
        let rebuilding = crate::rebuild(config, spec.handler, Some(spec.migrator), options);
        let report = tokio::select! {
            report = rebuilding => report?,
            () = shutdown.cancelled() => return Err(RuntimeError::Interrupted.into()),
        };
        // The one line a caller (`studyspot rebuild`) reads.
        println!(
            "rebuilt {} from {} records in {:.1} s ({:.0} records/s) into {}{}",
            spec.name,
            report.records,
            report.elapsed.as_secs_f64(),
            report.records as f64 / report.elapsed.as_secs_f64().max(1e-3),
            report.schema,
            report
                .old_schema
                .map(|old| format!("; the previous projection is kept as {old}"))
                .unwrap_or_default(),
        );
        return Ok(());
    }
    studyspot_telemetry::install_metrics();
    let ops_addr = std::env::var("STUDYSPOT_OPS_LISTEN")
        .unwrap_or_else(|_| format!("{}:{}", settings.telemetry.metrics_host, spec.default_ops_port));
    let ops_addr: SocketAddr = ops_addr
        .parse()
        .map_err(|e| ProcessError::Ops { addr: ops_addr.clone(), source: std::io::Error::other(e) })?;
    let listener = tokio::net::TcpListener::bind(ops_addr)
        .await
        .map_err(|source| ProcessError::Ops { addr: ops_addr.to_string(), source })?;

    let config = RuntimeConfig::from_settings(&settings, spec.name, &spec.topics);
    let runtime = Runtime::connect(config, spec.handler, Some(spec.migrator)).await?;
    let router = studyspot_telemetry::ops_router(spec.name, runtime.readiness());
    let settings = std::sync::Arc::new(settings);
    let sidecars: Vec<_> = spec
        .sidecars
        .into_iter()
        .map(|start| {
            tokio::spawn(start(SidecarContext {
                settings: settings.clone(),
                pool: runtime.database().pool.clone(),
                outbox: runtime.outbox(),
                shutdown: shutdown.clone(),
            }))
        })
        .collect();
    let ops = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        }
    });
    tracing::info!(ops = %ops_addr, "{} consumer started", spec.name);
    let result = runtime.run(shutdown.clone()).await;
    shutdown.cancel();
    for sidecar in sidecars {
        let _ = sidecar.await;
    }
    let _ = ops.await;
    Ok(result?)
}
