//! `studyspot`: the operator's command line.

mod demo;
mod projection;
mod replay;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use studyspot_bus::{
    BusSettings,
    admin::{self, RegistryAdmin, TopicOutcome},
};
use studyspot_config::Settings;
use studyspot_schemas::catalogue;

#[derive(Parser)]
#[command(name = "studyspot", version, about = "StudySpot operator commands")]
struct Args {
    /// A settings file layered over the documented defaults (also STUDYSPOT_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Topics of the catalogue.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Schemas of the catalogue in the registry.
    Schemas {
        #[command(subcommand)]
        action: SchemasAction,
    },
    /// Shows every domain at work in a fresh organization, through the gateway's HTTP API: a
    /// venue, a member, a plan and subscription set up, a check-in and check-out with occupancy,
    /// the invoice paid and its receipt e-mail, an alert firing and resolving, and one command
    /// rejected on purpose; each command with its outcome and follow-on events. Exit 1 when any
    /// flow does not succeed.
    Demo {
        /// Where the local mail sink writes the e-mail it receives (default: STUDYSPOT_MAIL_DIR,
        /// else $STUDYSPOT_HOME/mail).
        #[arg(long)]
        mail_dir: Option<PathBuf>,
    },
    /// An SMTP server on loopback that writes each message it receives as an .eml file: the
    /// local stack's mail (`up` runs it as studyspot-mail-sink, the notifications consumer's
    /// e-mail channel pointed at it).
    MailSink {
        /// Where to accept SMTP (loopback only; default: where notifications.channels.email points
        /// by STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__HOST/__PORT, else 127.0.0.1:2525).
        #[arg(long)]
        listen: Option<String>,
        /// The directory of the .eml files (default: STUDYSPOT_MAIL_DIR, else $STUDYSPOT_HOME/mail).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// /health, /ready and /metrics.
        #[arg(long, default_value = "127.0.0.1:9105")]
        ops_listen: std::net::SocketAddr,
    },
    /// Reads a slice of the event history (decoded with today's schemas) into NDJSON, CSV or
    /// Parquet, or copies it into another topic.
    Replay(Box<replay::ReplayArgs>),
    /// Rebuilds a consumer's projection from the beginning of history into a fresh schema while the
    /// live one keeps serving, and swaps it in once caught up (the consumer binary's `rebuild`).
    Rebuild {
        /// billing, notifications, attendance or alerts.
        consumer: String,
        /// The consumer binary (default: STUDYSPOT_<CONSUMER>_BIN, then studyspot-<consumer>
        /// beside this program, then on PATH).
        #[arg(long)]
        bin: Option<PathBuf>,
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
    /// A consumer's projection (its PostgreSQL schema).
    Projection {
        #[command(subcommand)]
        action: ProjectionAction,
    },
    /// Random secrets for a new installation (tokens, tracking links, QR codes), written to a
    /// settings file of mode 0600 that every process reads when STUDYSPOT_SECRETS_FILE names it.
    Secrets {
        #[command(subcommand)]
        action: SecretsAction,
    },
    /// Mints a bearer token for the gateway, signed with auth.hs256_secret (for local use: the
    /// local stack's secrets file is read when STUDYSPOT_SECRETS_FILE is not set).
    Token {
        /// The organization the token acts for (omit only with --role platform-admin).
        #[arg(long)]
        organization: Option<String>,
        /// platform-admin, owner, staff, member or service; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<studyspot_tokens::Role>,
        /// Who acts, as recorded on the commands.
        #[arg(long, default_value = "user:local")]
        subject: String,
        /// For a member: the member id they may act for.
        #[arg(long)]
        member_id: Option<String>,
        /// How long the token is valid, in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_seconds: u64,
        /// A scope for a service token, e.g. billing:refund or billing:confirm; repeat for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SecretsAction {
    /// Writes FILE with fresh random secrets unless it exists (then it is kept as it is).
    Init { file: PathBuf },
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Creates every catalogue topic and its dead-letter topic that does not exist yet.
    Ensure,
    /// Prints the catalogue: topic, key, compatibility, record types.
    List,
}

#[derive(Subcommand)]
enum ProjectionAction {
    /// Prints each table's row count and an order-independent digest of the projection's contents
    /// (the runtime's bookkeeping tables left out): equal digests, equal projections.
    Checksum {
        /// The consumer (billing, notifications, attendance, alerts); its schema has its name.
        consumer: String,
        /// Another schema of the consumer's (a rebuild's) instead of the live one.
        #[arg(long)]
        schema: Option<String>,
        /// A table to leave out as well (repeat).
        #[arg(long = "exclude-table")]
        exclude_tables: Vec<String>,
        /// A column to leave out, `column` in every table or `table.column` (repeat): for
        /// wall-clock columns a rebuild cannot reproduce.
        #[arg(long = "exclude-column")]
        exclude_columns: Vec<String>,
    },
    /// Drops what rebuilds left: swapped-out projections (`<consumer>_old_<n>`) and rebuilds not
    /// swapped in (`<consumer>_rebuild_<n>`, unless one is still running).
    DropOld {
        consumer: String,
        /// Only this one (e.g. billing_old_2).
        #[arg(long)]
        schema: Option<String>,
    },
}

#[derive(Subcommand)]
enum SchemasAction {
    /// Sets each subject's compatibility rule and registers the current schema (idempotent).
    Register,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Before the settings: `up` names the file to make as STUDYSPOT_SECRETS_FILE, which the
    // settings would read, and on a first run it does not exist yet.
    if let Command::Secrets { action: SecretsAction::Init { file } } = &args.command {
        return init_secrets(file);
    }
    let settings = Settings::load_for_tools(args.config.as_deref())?;
    match args.command {
        Command::Secrets { action: SecretsAction::Init { .. } } => unreachable!("handled above"),
        Command::Topics { action: TopicsAction::Ensure } => ensure_topics(&settings).await,
        Command::Topics { action: TopicsAction::List } => {
            list_topics();
            Ok(())
        }
        Command::Schemas { action: SchemasAction::Register } => register_schemas(&settings).await,
        Command::Demo { mail_dir } => {
            demo::run(&settings, &mail_dir.unwrap_or_else(studyspot_mail_sink::default_dir)).await
        }
        Command::MailSink { listen, dir, ops_listen } => {
            let _logs = studyspot_telemetry::init_logs("mail-sink", "text");
            let shutdown = studyspot_telemetry::shutdown_token()?;
            let listen = listen.unwrap_or_else(studyspot_mail_sink::default_listen);
            let dir = dir.unwrap_or_else(studyspot_mail_sink::default_dir);
            println!("mail sink: SMTP on {listen}, each message into {} as an .eml file", dir.display());
            studyspot_mail_sink::run(&listen, &dir, ops_listen, async move { shutdown.cancelled().await })
                .await
                .map_err(anyhow::Error::msg)
        }
        Command::Replay(replay_args) => replay::run(&settings, *replay_args).await,
        Command::Rebuild { consumer, bin, no_swap, swap_gap, swap_timeout_secs } => {
            let mut forwarded =
                vec![format!("--swap-gap={swap_gap}"), format!("--swap-timeout-secs={swap_timeout_secs}")];
            if no_swap {
                forwarded.push("--no-swap".into());
            }
            projection::rebuild(&consumer, args.config.as_deref(), bin, &forwarded)
        }
        Command::Projection {
            action: ProjectionAction::Checksum { consumer, schema, exclude_tables, exclude_columns },
        } => {
            use secrecy::ExposeSecret;
            projection::print_checksum(
                settings.postgres.url.expose_secret(),
                &consumer,
                schema.as_deref(),
                &exclude_tables,
                &exclude_columns,
            )
            .await
        }
        Command::Projection { action: ProjectionAction::DropOld { consumer, schema } } => {
            use secrecy::ExposeSecret;
            projection::drop_old(settings.postgres.url.expose_secret(), &consumer, schema.as_deref()).await
        }
        Command::Token { organization, roles, subject, member_id, ttl_seconds, scopes } => {
            let grant = demo::Grant { organization, roles, subject, member_id, scopes };
            let token = demo::token(&settings, grant, ttl_seconds)?;
            println!("{token}");
            Ok(())
        }
    }
}

/// Writes a secrets file of mode 0600 once; an existing one (the installation's secrets) is kept.
fn init_secrets(file: &std::path::Path) -> anyhow::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file);
    match created {
        Ok(mut out) => {
            out.write_all(studyspot_config::secrets::Secrets::random().toml().as_bytes())
                .with_context(|| format!("cannot write {}", file.display()))?;
            println!("created {} with random secrets (mode 0600)", file.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            println!("kept {}", file.display());
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", file.display())),
    }
}

async fn ensure_topics(settings: &Settings) -> anyhow::Result<()> {
    let bus = BusSettings::from_settings(settings, "studyspot-cli");
    let prefix = &settings.kafka.topic_prefix;
    let names: Vec<String> = admin::topic_names_with_dead_letters(catalogue())
        .into_iter()
        .map(|name| format!("{prefix}{name}"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let outcomes =
        admin::ensure_topics(&bus, &refs, settings.kafka.partitions, settings.kafka.replication_factor)
            .await
            .with_context(|| format!("cannot create topics on {}", settings.kafka.bootstrap_servers))?;
    for (name, outcome) in outcomes {
        let word = match outcome {
            TopicOutcome::Created => "created",
            TopicOutcome::AlreadyExisted => "exists ",
        };
        println!("{word}  {name}");
    }
    Ok(())
}

fn list_topics() {
    for topic in catalogue() {
        println!(
            "{}  key={}  {}  dlq={}",
            topic.name,
            topic.key_field,
            topic.compatibility.as_registry_level(),
            topic.dead_letter
        );
        for record in topic.records {
            println!("    {}  ({})", record.full_name, record.avsc_file);
        }
    }
}

async fn register_schemas(settings: &Settings) -> anyhow::Result<()> {
    let registry = RegistryAdmin::new(&settings.registry.url)?;
    for topic in catalogue() {
        for record in topic.records {
            let subject = topic.subject(record.full_name);
            registry
                .set_compatibility(&subject, topic.compatibility.as_registry_level())
                .await
                .with_context(|| {
                    format!("cannot set compatibility of {subject} at {}", settings.registry.url)
                })?;
            let schema = serde_json::to_string(&(record.schema)())?;
            let id = registry
                .register(&subject, &schema)
                .await
                .with_context(|| format!("cannot register {subject}"))?;
            println!("id {id:>4}  {subject}  {}", topic.compatibility.as_registry_level());
        }
    }
    Ok(())
}
