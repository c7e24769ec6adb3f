//! `studyspot replay`: any slice of the event history, decoded through the registry and resolved
//! against today's schemas, written as NDJSON, CSV or Parquet, or copied into another topic.
//!
//! Records stream: a reader thread pulls them from the broker (bounded prefetch) into a bounded
//! channel, and each is decoded, filtered and written before the next is taken, so memory stays
//! flat however long the history (Parquet holds one batch per record type).

mod output;
pub mod table;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::IsTerminal,
    path::PathBuf,
    str::FromStr,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use apache_avro::{Schema, types::Value};
use clap::{Args, ValueEnum};
use studyspot_bus::{
    BusSettings, Codec, InboundMessage, OutboundMessage, PartitionId, Producer, headers,
    history::{self, HistoryReader, Watermarks},
    tail::Positions,
};
use studyspot_config::Settings;
use studyspot_schemas::catalogue;

use output::{Csv, Item, Ndjson, Parquet, Sink};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Ndjson,
    Csv,
    Parquet,
}

/// Where a slice starts or ends, in every partition of the topics read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// The first record still stored.
    Beginning,
    /// The high watermark when the replay starts.
    Now,
    /// An offset for every partition (`offset:N`) or per partition (`offset:0=N,2=M`); partitions
    /// not named start at the beginning / end at now.
    Offsets { all: Option<i64>, partitions: BTreeMap<i32, i64> },
    /// The first record at or after an instant (`time:2026-11-01T00:00:00Z` or `time:<epoch ms>`).
    Time(i64),
}

impl FromStr for Position {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "beginning" | "earliest" => return Ok(Self::Beginning),
            "now" | "end" | "latest" => return Ok(Self::Now),
            _ => {}
        }
        if let Some(spec) = s.strip_prefix("offset:") {
            if let Ok(all) = spec.parse::<i64>() {
                return Ok(Self::Offsets { all: Some(all), partitions: BTreeMap::new() });
            }
            let mut partitions = BTreeMap::new();
            for part in spec.split(',') {
                let (p, o) =
                    part.split_once('=').ok_or_else(|| format!("`{part}` is not PARTITION=OFFSET"))?;
                let p = p.trim().parse::<i32>().map_err(|e| format!("partition `{p}`: {e}"))?;
                let o = o.trim().parse::<i64>().map_err(|e| format!("offset `{o}`: {e}"))?;
                partitions.insert(p, o);
            }
            return Ok(Self::Offsets { all: None, partitions });
        }
        if let Some(spec) = s.strip_prefix("time:") {
            if let Ok(ms) = spec.parse::<i64>() {
                return Ok(Self::Time(ms));
            }
            let t = chrono::DateTime::parse_from_rfc3339(spec)
                .map_err(|e| format!("`{spec}` is neither epoch milliseconds nor RFC 3339: {e}"))?;
            return Ok(Self::Time(t.timestamp_millis()));
        }
        Err(format!(
            "`{s}`: expected beginning, now, offset:N, offset:P=N[,P=N…], time:RFC3339 or time:EPOCH_MS"
        ))
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Catalogue topic to read (repeat; the configured kafka.topic_prefix is applied). Dead-letter
    /// topics (`….dlq`) too. Default: every catalogue topic.
    #[arg(long = "topic", short = 't')]
    pub topics: Vec<String>,
    /// Where to start: beginning, now, offset:N, offset:P=N[,P=N…], time:RFC3339, time:EPOCH_MS.
    #[arg(long, default_value = "beginning")]
    pub from: Position,
    /// Where to stop (exclusive): now (the high watermarks when the replay starts), offset:…, time:….
    #[arg(long, default_value = "now")]
    pub to: Position,
    /// Only this record type: its full name or its short name (repeat for several).
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// Only records of this organization (metadata.organization_id).
    #[arg(long)]
    pub organization: Option<String>,
    /// Only records with this key (repeat for several).
    #[arg(long = "key")]
    pub keys: Vec<String>,
    #[arg(long, value_enum, default_value = "ndjson")]
    pub format: Format,
    /// NDJSON: the file (default stdout). CSV and Parquet: the directory, one file per record type.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Copy the slice into this topic (its full name; no prefix is applied) instead of writing a
    /// file: keys, headers and payloads byte for byte, in order per partition (so per key).
    /// The target topic must exist (checked before reading anything) unless `--create-target`.
    #[arg(long)]
    pub republish_to: Option<String>,
    /// With `--republish-to`: create the target topic when it does not exist, with as many
    /// partitions as the most of the topics read (`kafka.replication_factor` replicas).
    #[arg(long, requires = "republish_to")]
    pub create_target: bool,
    /// Give up when the broker sends nothing for this long while records are still expected (the
    /// embedded broker can take tens of seconds for a first fetch of big batches).
    #[arg(long, default_value_t = 120)]
    pub idle_timeout_secs: u64,
    /// Progress: a bar on a terminal, plain lines otherwise, or none.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Progress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Bar,
    Lines,
    None,
}

/// What a replay did, for the last line and for tests.
#[derive(Debug, Default)]
struct Counts {
    read: u64,
    written: u64,
    filtered: u64,
    undecodable: u64,
    skipped: u64,
}

struct Filters {
    types: Vec<String>,
    organization: Option<String>,
    keys: HashSet<Vec<u8>>,
}

impl Filters {
    fn type_matches(&self, full_name: &str) -> bool {
        self.types.is_empty()
            || self
                .types
                .iter()
                .any(|t| full_name == t || full_name.rsplit_once('.').is_some_and(|(_, short)| short == t))
    }

    fn key_matches(&self, key: Option<&[u8]>) -> bool {
        self.keys.is_empty() || key.is_some_and(|k| self.keys.contains(k))
    }

    /// Whether the record must be decoded to decide (organization filter, or a type filter
    /// without the type header).
    fn needs_value(&self, message: &InboundMessage) -> bool {
        self.organization.is_some()
            || (!self.types.is_empty() && message.headers.get(headers::RECORD_TYPE).is_none())
    }
}

/// `metadata.organization_id` of a decoded record.
fn organization_of(value: &Value) -> Option<&str> {
    let Value::Record(fields) = value else { return None };
    let (_, Value::Record(metadata)) = fields.iter().find(|(n, _)| n == "metadata")? else { return None };
    match &metadata.iter().find(|(n, _)| n == "organization_id")?.1 {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// Catalogue name → the catalogue's own name (topics and their dead-letter topics).
fn catalogue_topic(name: &str) -> Option<&'static str> {
    catalogue().iter().find_map(|t| {
        if t.name == name {
            Some(t.name)
        } else if t.dead_letter == name {
            Some(t.dead_letter)
        } else {
            None
        }
    })
}

/// Today's reader schema of every record type of the catalogue.
fn reader_schemas() -> HashMap<&'static str, Schema> {
    catalogue().iter().flat_map(|t| t.records.iter()).map(|r| (r.full_name, (r.schema)())).collect()
}

fn resolve_positions(
    settings: &BusSettings,
    marks: &BTreeMap<PartitionId, Watermarks>,
    position: &Position,
    end: bool,
    timeout: Duration,
) -> anyhow::Result<Positions> {
    Ok(match position {
        Position::Beginning => marks.iter().map(|(p, m)| (p.clone(), m.low)).collect(),
        Position::Now => marks.iter().map(|(p, m)| (p.clone(), m.high)).collect(),
        Position::Offsets { all, partitions } => marks
            .iter()
            .map(|(p, m)| {
                let default = if end { m.high } else { m.low };
                let o = partitions.get(&p.partition).copied().or(*all).unwrap_or(default);
                (p.clone(), o.clamp(m.low, m.high))
            })
            .collect(),
        // The end by time is found on the records (see HistoryReader::with_time_bounds): read up
        // to now and stop each partition there.
        Position::Time(_) if end => marks.iter().map(|(p, m)| (p.clone(), m.high)).collect(),
        Position::Time(ms) => history::offsets_at(settings, marks, *ms, timeout)?,
    })
}

pub async fn run(settings: &Settings, args: ReplayArgs) -> anyhow::Result<()> {
    let bus = BusSettings::from_settings(settings, "studyspot-replay");
    let prefix = settings.kafka.topic_prefix.clone();
    let names: Vec<&'static str> = if args.topics.is_empty() {
        catalogue().iter().map(|t| t.name).collect()
    } else {
        args.topics
            .iter()
            .map(|n| {
                catalogue_topic(n).with_context(|| {
                    format!("{n} is not a catalogue topic (see `studyspot topics list`; no prefix here)")
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let prefixed: Vec<String> = names.iter().map(|n| format!("{prefix}{n}")).collect();
    let by_prefixed: HashMap<String, &'static str> =
        prefixed.iter().cloned().zip(names.iter().copied()).collect();

    let timeout = Duration::from_secs(10);
    let marks = {
        let (bus, prefixed) = (bus.clone(), prefixed.clone());
        tokio::task::spawn_blocking(move || history::watermarks(&bus, &prefixed, timeout)).await??
    };
    if let Some(target) = &args.republish_to {
        let partitions = marks.keys().map(|p| p.partition + 1).max().unwrap_or(1);
        let replication = settings.kafka.replication_factor;
        ensure_target(&bus, target, args.create_target, partitions, replication, timeout).await?;
    }
    let (from, until) = {
        let (bus, marks, from, to) = (bus.clone(), marks.clone(), args.from.clone(), args.to.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Positions, Positions)> {
            let from = resolve_positions(&bus, &marks, &from, false, timeout)?;
            let until = resolve_positions(&bus, &marks, &to, true, timeout)?;
            Ok((from, until))
        })
        .await??
    };
    let expected: u64 = until
        .iter()
        .map(|(p, end)| u64::try_from(end - from.get(p).copied().unwrap_or(0)).unwrap_or(0))
        .sum();

    let filters = Filters {
        types: args.types.clone(),
        organization: args.organization.clone(),
        keys: args.keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
    };
    let mut sink: Option<Box<dyn Sink>> = match (&args.republish_to, args.format) {
        (Some(_), _) => None,
        (None, Format::Ndjson) => Some(Box::new(Ndjson::new(args.output.as_deref())?)),
        (None, Format::Csv) => {
            Some(Box::new(Csv::new(args.output.as_deref().context("--output DIR is required for csv")?)?))
        }
        (None, Format::Parquet) => Some(Box::new(Parquet::new(
            args.output.as_deref().context("--output DIR is required for parquet")?,
        )?)),
    };
    let republish = match &args.republish_to {
        Some(target) => Some((Producer::new(&bus)?, target.clone())),
        None => None,
    };
    let codec = Codec::new(&settings.registry.url)?;
    let readers = reader_schemas();

    // The reader thread: the broker's records into a bounded channel, in order per partition.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<InboundMessage, String>>(1024);
    let idle = Duration::from_secs(args.idle_timeout_secs);
    let time_of = |p: &Position| if let Position::Time(ms) = p { Some(*ms) } else { None };
    let (from_ms, until_ms) = (time_of(&args.from), time_of(&args.to));
    let reader_thread = std::thread::Builder::new().name("replay-reader".into()).spawn({
        let bus = bus.clone();
        move || {
            let mut reader = match HistoryReader::open(&bus, &from, &until) {
                Ok(r) => r.with_time_bounds(from_ms, until_ms),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.to_string()));
                    return;
                }
            };
            loop {
                match reader.next(idle) {
                    Ok(Some(message)) => {
                        if tx.blocking_send(Ok(message)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e.to_string()));
                        return;
                    }
                }
            }
        }
    })?;

    let mode = match args.progress {
        Progress::Auto if std::io::stderr().is_terminal() => Progress::Bar,
        Progress::Auto => Progress::Lines,
        other => other,
    };
    let bar = (mode == Progress::Bar).then(|| {
        let bar = indicatif::ProgressBar::new(expected);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    if mode == Progress::Lines {
        eprintln!("replay: {} topics, up to {expected} records", prefixed.len());
    }
    let started = Instant::now();
    let mut last_line = Instant::now();
    let mut counts = Counts::default();

    while let Some(next) = rx.recv().await {
        let message = next.map_err(|e| anyhow::anyhow!("reading history: {e}"))?;
        counts.read += 1;
        if let Some(bar) = &bar {
            bar.inc(1);
        } else if mode == Progress::Lines && last_line.elapsed() >= Duration::from_secs(5) {
            last_line = Instant::now();
            let rate = counts.read as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "replay: {}/{expected} read, {} written, {rate:.0} records/s",
                counts.read, counts.written
            );
        }
        let topic = by_prefixed.get(&message.topic).copied().unwrap_or("");
        if !filters.key_matches(message.key.as_deref()) {
            counts.filtered += 1;
            continue;
        }
        if let Some(header_type) = message.headers.get(headers::RECORD_TYPE)
            && !filters.type_matches(header_type)
        {
            counts.filtered += 1;
            continue;
        }
        // Republishing copies bytes: it decodes only when a filter needs the value.
        if let Some((producer, target)) = &republish {
            if filters.needs_value(&message) {
                let keep = match decode(&codec, &readers, &message).await {
                    Ok((full_name, value, _)) => {
                        filters.type_matches(&full_name)
                            && filters
                                .organization
                                .as_deref()
                                .is_none_or(|o| organization_of(&value) == Some(o))
                    }
                    Err(_) => {
                        counts.undecodable += 1;
                        false
                    }
                };
                if !keep {
                    counts.filtered += 1;
                    continue;
                }
            }
            let Some(payload) = message.payload.clone() else {
                counts.skipped += 1;
                continue;
            };
            let out = OutboundMessage {
                topic: target.clone(),
                key: message
                    .key
                    .as_deref()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default(),
                payload,
                headers: message.headers.clone(),
            };
            producer.send(&out).await.with_context(|| format!("cannot publish to {target}"))?;
            counts.written += 1;
            continue;
        }
        let sink = sink.as_mut().expect("a sink when not republishing");
        match decode(&codec, &readers, &message).await {
            Ok((full_name, value, reader)) => {
                if !filters.type_matches(&full_name)
                    || filters.organization.as_deref().is_some_and(|o| organization_of(&value) != Some(o))
                {
                    counts.filtered += 1;
                    continue;
                }
                let item = Item {
                    message: &message,
                    topic,
                    record_type: Some(&full_name),
                    value: Some(&value),
                    reader,
                    error: None,
                };
                if sink.write(&item)? {
                    counts.written += 1;
                } else {
                    counts.skipped += 1;
                }
            }
            Err(error) => {
                counts.undecodable += 1;
                if filters.organization.is_some() {
                    counts.filtered += 1;
                    continue;
                }
                let item = Item {
                    message: &message,
                    topic,
                    record_type: message.headers.get(headers::RECORD_TYPE),
                    value: None,
                    reader: None,
                    error: Some(&error),
                };
                if sink.write(&item)? {
                    counts.written += 1;
                } else {
                    counts.skipped += 1;
                }
            }
        }
    }
    let _ = reader_thread.join();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let files = match sink {
        Some(sink) => sink.finish()?,
        None => Vec::new(),
    };
    if let Some((producer, _)) = &republish {
        producer.flush(Duration::from_secs(30))?;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "replay: {} read, {} written, {} filtered out, {} undecodable, {} skipped in {secs:.1}s ({:.0} records/s)",
        counts.read,
        counts.written,
        counts.filtered,
        counts.undecodable,
        counts.skipped,
        counts.read as f64 / secs.max(1e-9)
    );
    for file in files {
        eprintln!("replay: wrote {}", file.display());
    }
    if counts.read < expected && counts.read == 0 && expected > 0 {
        bail!("no record read of {expected} expected");
    }
    Ok(())
}

/// The topic a republish writes to exists, or is created when asked: found out before anything
/// is read, instead of the producer retrying an unknown topic until its records time out.
async fn ensure_target(
    bus: &BusSettings,
    target: &str,
    create: bool,
    partitions: i32,
    replication: i32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let found = {
        let (bus, names) = (bus.clone(), vec![target.to_owned()]);
        tokio::task::spawn_blocking(move || history::watermarks(&bus, &names, timeout)).await?
    };
    let Err(missing) = found else { return Ok(()) };
    if !create {
        bail!(
            "cannot republish to {target}: {missing}; create it first, or pass --create-target \
             to create it with {partitions} partitions"
        );
    }
    studyspot_bus::admin::ensure_topics(bus, &[target], partitions, replication)
        .await
        .with_context(|| format!("cannot create the target topic {target}"))?;
    eprintln!("replay: created {target} ({partitions} partitions)");
    Ok(())
}

/// Decodes with the writer's schema (by id, through the registry) and resolves the value against
/// today's reader schema of its type (defaults fill fields an older writer did not know). A type
/// the catalogue does not know keeps the writer's shape.
async fn decode<'r>(
    codec: &Codec,
    readers: &'r HashMap<&'static str, Schema>,
    message: &InboundMessage,
) -> Result<(String, Value, Option<&'r Schema>), String> {
    let payload = message.payload.as_deref().ok_or("a record without a value (tombstone)")?;
    let decoded = codec.decode(payload).await.map_err(|e| e.to_string())?;
    match readers.get(decoded.full_name.as_str()) {
        Some(reader) => {
            let value = decoded
                .value
                .resolve(reader)
                .map_err(|e| format!("{} does not resolve against today's schema: {e}", decoded.full_name))?;
            Ok((decoded.full_name, value, Some(reader)))
        }
        None => Ok((decoded.full_name, decoded.value, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse() {
        assert_eq!("beginning".parse::<Position>(), Ok(Position::Beginning));
        assert_eq!("now".parse::<Position>(), Ok(Position::Now));
        assert_eq!(
            "offset:42".parse::<Position>(),
            Ok(Position::Offsets { all: Some(42), partitions: BTreeMap::new() })
        );
        assert_eq!(
            "offset:0=5,2=9".parse::<Position>(),
            Ok(Position::Offsets { all: None, partitions: BTreeMap::from([(0, 5), (2, 9)]) })
        );
        assert_eq!("time:1700000000000".parse::<Position>(), Ok(Position::Time(1_700_000_000_000)));
        assert_eq!("time:2023-11-14T22:13:20Z".parse::<Position>(), Ok(Position::Time(1_700_000_000_000)));
        assert!("yesterday".parse::<Position>().is_err());
        assert!("offset:x".parse::<Position>().is_err());
    }

    #[test]
    fn type_filter_takes_full_and_short_names() {
        let filters = Filters {
            types: vec!["CheckIn".into(), "studyspot.billing.PaymentCreated".into()],
            organization: None,
            keys: HashSet::new(),
        };
        assert!(filters.type_matches("studyspot.attendance.CheckIn"));
        assert!(filters.type_matches("studyspot.billing.PaymentCreated"));
        assert!(!filters.type_matches("studyspot.attendance.CheckOut"));
    }

    #[test]
    fn every_catalogue_reader_schema_has_columns() {
        for (name, schema) in reader_schemas() {
            let columns = table::columns(&schema);
            assert!(columns.iter().any(|c| c.name == "metadata.organization_id"), "{name}");
        }
    }
}
