//! `studyspot replay` against the real broker and an in-process registry: a known history of
//! several record types, one of them written with two schema versions (v1 registered and produced,
//! then evolved with a defaulted field), read back with today's readers into NDJSON, CSV and
//! Parquet (Parquet read back by pyarrow, an independent reader), filtered, and re-published.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    time::Duration,
};

use apache_avro::{AvroSchema, Schema, types::Value};
use serde_json::{Value as Json, json};
use studyspot_bus::{Headers, OutboundMessage, admin, headers, reader};
use studyspot_schemas::{EventMetadata, Record, attendance};
use studyspot_test_world::World;

const BIN: &str = env!("CARGO_BIN_EXE_studyspot");

fn metadata(organization: &str, n: i64) -> EventMetadata {
    EventMetadata {
        event_id: uuid::Uuid::now_v7().to_string(),
        occurred_at: 1_767_225_600_000 + n * 1000,
        correlation_id: format!("corr-{n}"),
        causation_id: None,
        organization_id: organization.to_owned(),
        actor: "user:test".into(),
    }
}

fn venue(organization: &str) -> attendance::DefineVenue {
    attendance::DefineVenue {
        metadata: metadata(organization, 0),
        venue_id: "ven_a".into(),
        name: "Venue A".into(),
        time_zone: "Europe/Berlin".into(),
        capacity: 40,
        zones: vec![attendance::Zone { zone_id: "zon_1".into(), name: "Silent".into(), capacity: 10 }],
        seats: Vec::new(),
        opening_hours: vec![attendance::OpeningHours {
            weekday: 1,
            opens: "08:00".into(),
            closes: "22:00".into(),
        }],
        limits: attendance::VenueLimits {
            max_bookings_per_member: 5,
            max_concurrent_bookings: 1,
            max_days_ahead: 30,
            min_booking_minutes: 30,
            max_booking_minutes: 480,
            no_show_grace_minutes: 15,
            max_stay_minutes: 720,
        },
        qr_required: false,
    }
}

fn check_in(organization: &str, n: i64, venue: &str, staff_assisted: bool) -> attendance::CheckIn {
    attendance::CheckIn {
        metadata: metadata(organization, n),
        session_id: format!("ses_{n}"),
        member_id: format!("mem_{n}"),
        venue_id: venue.into(),
        seat_id: None,
        zone_id: Some("zon_1".into()),
        qr_token: None,
        staff_assisted,
    }
}

/// CheckIn as it was before `staff_assisted` (v1): today's schema without that field.
fn check_in_v1_schema() -> Json {
    let mut schema = serde_json::to_value(attendance::CheckIn::get_schema()).expect("schema json");
    let fields = schema["fields"].as_array_mut().expect("fields");
    fields.retain(|f| f["name"] != "staff_assisted");
    schema
}

/// Registers v1 of CheckIn and produces `record` written with it (Confluent framing by hand).
async fn send_v1(world: &World, record: &attendance::CheckIn) {
    let registry = admin::RegistryAdmin::new(&world.registry_url).expect("registry");
    let subject = attendance::COMMANDS.subject(attendance::CheckIn::FULL_NAME);
    registry.set_compatibility(&subject, "BACKWARD_TRANSITIVE").await.expect("compatibility");
    let v1_json = check_in_v1_schema();
    let id = registry.register(&subject, &v1_json.to_string()).await.expect("register v1");
    let v1 = Schema::parse(&v1_json).expect("v1 parses");
    let Value::Record(mut fields) = apache_avro::to_value(record).expect("to value") else {
        panic!("a record")
    };
    fields.retain(|(name, _)| name != "staff_assisted");
    let body = apache_avro::writer::datum::GenericDatumWriter::builder(&v1)
        .build()
        .expect("v1 writer")
        .write_value_to_vec(Value::Record(fields))
        .expect("v1 datum");
    let mut payload = vec![0u8];
    payload.extend_from_slice(&id.to_be_bytes());
    payload.extend_from_slice(&body);
    let mut headers = Headers::default();
    headers.insert(headers::EVENT_ID, record.metadata.event_id.clone());
    headers.insert(headers::CORRELATION_ID, record.metadata.correlation_id.clone());
    headers.insert(headers::RECORD_TYPE, attendance::CheckIn::FULL_NAME);
    let message = OutboundMessage {
        topic: world.topic(attendance::COMMANDS.name),
        key: record.venue_id.clone(),
        payload,
        headers,
    };
    world.producer.send(&message).await.expect("produce v1");
}

/// The history every test reads: (event id → what it is), sent in this order.
struct History {
    organization: String,
    v1_check_in: String,
    v2_check_in: String,
    other_org_check_in: String,
    venue: String,
    pass: String,
    check_out: String,
    checked_in: String,
    rejected: String,
    /// Records in the commands topic / the events topic, poison included.
    commands: usize,
    events: usize,
}

async fn history(world: &World) -> History {
    let org = world.organization_id();
    let venue = venue(&org);
    world.send(&venue).await;
    let v1 = check_in(&org, 1, "ven_a", false);
    send_v1(world, &v1).await;
    let v2 = check_in(&org, 2, "ven_b", true);
    world.send(&v2).await;
    let other = check_in("org_other", 3, "ven_a", true);
    world.send(&other).await;
    let pass = attendance::GrantPass {
        metadata: metadata(&org, 4),
        pass_id: "pas_1".into(),
        member_id: "mem_1".into(),
        venue_id: "ven_a".into(),
        valid_from: 1_767_139_200_000,
        valid_until: 2_082_758_400_000,
    };
    world.send(&pass).await;
    let check_out = attendance::CheckOut {
        metadata: metadata(&org, 5),
        member_id: "mem_1".into(),
        venue_id: "ven_a".into(),
        session_id: Some("ses_1".into()),
        reason: "manual".into(),
        effective_at: Some(1_767_229_200_000),
    };
    world.send(&check_out).await;
    world.send_raw(attendance::COMMANDS.name, "ven_a", b"not avro".to_vec()).await;
    let checked_in = attendance::CheckedIn {
        metadata: metadata(&org, 6),
        session_id: "ses_2".into(),
        member_id: "mem_2".into(),
        venue_id: "ven_b".into(),
        seat_id: None,
        occupancy: 1,
        zone_id: Some("zon_1".into()),
        zone_occupancy: Some(1),
        booking_id: None,
        subscription_id: None,
        pass_id: Some("pas_2".into()),
        venue_name: None,
        seat_label: None,
    };
    world.send(&checked_in).await;
    let rejected = attendance::CommandRejected {
        metadata: metadata(&org, 7),
        command_id: other.metadata.event_id.clone(),
        command_type: "CheckIn".into(),
        venue_id: "ven_a".into(),
        code: "already_checked_in".into(),
        reason: "one open session per member".into(),
    };
    world.send(&rejected).await;
    History {
        organization: org,
        v1_check_in: v1.metadata.event_id,
        v2_check_in: v2.metadata.event_id,
        other_org_check_in: other.metadata.event_id,
        venue: venue.metadata.event_id,
        pass: pass.metadata.event_id,
        check_out: check_out.metadata.event_id,
        checked_in: checked_in.metadata.event_id,
        rejected: rejected.metadata.event_id,
        commands: 7,
        events: 2,
    }
}

/// Runs `studyspot replay` against the world, with a deadline; returns stderr.
async fn replay(world: &World, args: &[&str]) -> String {
    let output = replay_output(world, args).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "replay {args:?} failed: {stderr}");
    stderr
}

/// Runs `studyspot replay` against the world, with a deadline, whether it succeeds or not.
async fn replay_output(world: &World, args: &[&str]) -> std::process::Output {
    let mut command = tokio::process::Command::new(BIN);
    command
        .arg("replay")
        .args([
            "--topic",
            attendance::COMMANDS.name,
            "--topic",
            attendance::EVENTS.name,
            "--progress",
            "lines",
        ])
        .args(args)
        .env("STUDYSPOT_KAFKA__BOOTSTRAP_SERVERS", studyspot_test_world::kafka())
        .env("STUDYSPOT_KAFKA__TOPIC_PREFIX", &world.prefix)
        .env("STUDYSPOT_REGISTRY__URL", &world.registry_url)
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("replay finished within its deadline")
        .expect("replay ran")
}

fn scratch(world: &World, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("studyspot-replay-{}", world.id)).join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn read_ndjson(path: &Path) -> Vec<Json> {
    std::fs::read_to_string(path)
        .expect("ndjson file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn by_event_id(lines: &[Json]) -> HashMap<String, Json> {
    lines
        .iter()
        .filter_map(|l| Some((l["headers"][headers::EVENT_ID].as_str()?.to_owned(), l.clone())))
        .collect()
}

/// A record's JSON flattened the way CSV and Parquet columns are: nested objects to dotted names,
/// arrays to their JSON text.
fn flatten(prefix: &str, value: &Json, out: &mut BTreeMap<String, Json>) {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&name, v, out);
            }
        }
        Json::Array(_) => {
            out.insert(prefix.to_owned(), Json::String(value.to_string()));
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_a_known_history_to_ndjson_csv_and_parquet() {
    let world = World::new("attendance", BIN).await;
    let h = history(&world).await;

    // NDJSON: every record, coordinates and headers, decoded with today's readers.
    let dir = scratch(&world, "ndjson");
    let file = dir.join("all.ndjson");
    let stderr = replay(&world, &["--format", "ndjson", "--output", file.to_str().expect("utf8")]).await;
    let lines = read_ndjson(&file);
    assert_eq!(lines.len(), h.commands + h.events, "{stderr}");
    assert!(stderr.contains("1 undecodable"), "{stderr}");
    let records = by_event_id(&lines);
    let commands = world.topic(attendance::COMMANDS.name);
    let expected_types = [
        (&h.venue, "studyspot.attendance.DefineVenue"),
        (&h.v1_check_in, "studyspot.attendance.CheckIn"),
        (&h.v2_check_in, "studyspot.attendance.CheckIn"),
        (&h.other_org_check_in, "studyspot.attendance.CheckIn"),
        (&h.pass, "studyspot.attendance.GrantPass"),
        (&h.check_out, "studyspot.attendance.CheckOut"),
        (&h.checked_in, "studyspot.attendance.CheckedIn"),
        (&h.rejected, "studyspot.attendance.CommandRejected"),
    ];
    // The coordinates are the broker's: compare with an independent read of the topics.
    let mut broker: HashMap<String, (String, i32, i64, Option<i64>, String)> = HashMap::new();
    for topic in [attendance::COMMANDS.name, attendance::EVENTS.name] {
        for m in world.read_all(topic) {
            if let Some(id) = m.headers.get(headers::EVENT_ID) {
                let key = String::from_utf8(m.key.clone().unwrap_or_default()).expect("utf8 key");
                broker.insert(id.to_owned(), (topic.to_owned(), m.partition, m.offset, m.timestamp_ms, key));
            }
        }
    }
    for (id, record_type) in expected_types {
        let line = records.get(id.as_str()).unwrap_or_else(|| panic!("{record_type} {id} replayed"));
        let (topic, partition, offset, timestamp, key) = &broker[id.as_str()];
        assert_eq!(line["record_type"], *record_type);
        assert_eq!(line["topic"], json!(topic), "the catalogue name, without the prefix");
        assert_eq!(line["partition"], json!(partition));
        assert_eq!(line["offset"], json!(offset));
        assert_eq!(line["timestamp_ms"], json!(timestamp));
        assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
        assert_eq!(line["key"], json!(key));
        assert_eq!(line["headers"][headers::RECORD_TYPE], *record_type);
        assert_eq!(line["record"]["metadata"]["event_id"], json!(id));
        assert!(line.get("error").is_none());
    }
    assert!(commands.starts_with(&world.prefix));
    let v1 = &records[&h.v1_check_in]["record"];
    assert_eq!(v1["session_id"], "ses_1");
    assert_eq!(v1["zone_id"], "zon_1");
    assert_eq!(v1["seat_id"], Json::Null);
    assert_eq!(v1["staff_assisted"], false, "v1 knew no staff_assisted: today's default fills it");
    let v2 = &records[&h.v2_check_in]["record"];
    assert_eq!(v2["staff_assisted"], true);
    assert_eq!(v2["venue_id"], "ven_b");
    assert_eq!(records[&h.other_org_check_in]["record"]["metadata"]["organization_id"], "org_other");
    let venue = &records[&h.venue]["record"];
    assert_eq!(venue["zones"], json!([{"zone_id": "zon_1", "name": "Silent", "capacity": 10}]));
    assert_eq!(venue["limits"]["max_stay_minutes"], 720);
    assert_eq!(venue["qr_required"], false);
    let pass = &records[&h.pass]["record"];
    assert_eq!(
        (pass["valid_from"].as_i64(), pass["valid_until"].as_i64()),
        (Some(1_767_139_200_000), Some(2_082_758_400_000))
    );
    let out = &records[&h.check_out]["record"];
    assert_eq!(
        (out["reason"].as_str(), out["effective_at"].as_i64()),
        (Some("manual"), Some(1_767_229_200_000))
    );
    let checked_in = &records[&h.checked_in]["record"];
    assert_eq!((checked_in["occupancy"].as_i64(), checked_in["zone_occupancy"].as_i64()), (Some(1), Some(1)));
    let rejected = &records[&h.rejected]["record"];
    assert_eq!(rejected["code"], "already_checked_in");
    assert_eq!(rejected["command_id"], json!(h.other_org_check_in));
    let poison: Vec<&Json> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert_eq!(poison.len(), 1);
    assert_eq!(poison[0]["record"], Json::Null);
    assert_eq!(poison[0]["key"], "ven_a");
    // Order per partition: offsets ascend within each partition.
    let mut last: HashMap<(String, i64), i64> = HashMap::new();
    for l in &lines {
        let p = (l["topic"].as_str().expect("topic").to_owned(), l["partition"].as_i64().expect("partition"));
        let offset = l["offset"].as_i64().expect("offset");
        assert!(last.get(&p).is_none_or(|prev| *prev < offset), "order within {p:?}");
        last.insert(p, offset);
    }

    // Filters: type and organization; key.
    let filtered = dir.join("filtered.ndjson");
    replay(
        &world,
        &[
            "--type",
            "CheckIn",
            "--organization",
            &h.organization,
            "--output",
            filtered.to_str().expect("utf8"),
        ],
    )
    .await;
    let mut ids: Vec<String> = read_ndjson(&filtered)
        .iter()
        .map(|l| l["headers"][headers::EVENT_ID].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    let mut want = vec![h.v1_check_in.clone(), h.v2_check_in.clone()];
    want.sort();
    assert_eq!(ids, want, "this organization's check-ins only");
    let keyed = dir.join("keyed.ndjson");
    replay(&world, &["--key", "ven_b", "--output", keyed.to_str().expect("utf8")]).await;
    let mut ids: Vec<String> = read_ndjson(&keyed)
        .iter()
        .map(|l| l["headers"][headers::EVENT_ID].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    let mut want = vec![h.v2_check_in.clone(), h.checked_in.clone()];
    want.sort();
    assert_eq!(ids, want, "records keyed ven_b only");

    // A slice by offsets: only the first record of each partition.
    let first = dir.join("first.ndjson");
    replay(&world, &["--to", "offset:1", "--output", first.to_str().expect("utf8")]).await;
    let firsts = read_ndjson(&first);
    assert!(!firsts.is_empty() && firsts.iter().all(|l| l["offset"] == 0), "{firsts:?}");

    // A slice by time: from the newest record's timestamp on, and up to (excluding) it.
    let newest = lines.iter().filter_map(|l| l["timestamp_ms"].as_i64()).max().expect("timestamps");
    let late = dir.join("late.ndjson");
    replay(&world, &["--from", &format!("time:{newest}"), "--output", late.to_str().expect("utf8")]).await;
    let late = read_ndjson(&late);
    let want = lines.iter().filter(|l| l["timestamp_ms"].as_i64() >= Some(newest)).count();
    assert!(want > 0 && late.len() == want, "{} records at or after {newest}, {want} expected", late.len());
    let early = dir.join("early.ndjson");
    replay(&world, &["--to", &format!("time:{newest}"), "--output", early.to_str().expect("utf8")]).await;
    let early = read_ndjson(&early);
    assert_eq!(early.len() + late.len(), lines.len(), "the two slices partition the history");
    assert!(early.iter().all(|l| l["timestamp_ms"].as_i64() < Some(newest)));

    // CSV: one file per record type, every decodable record a row, every leaf a column.
    let csv_dir = scratch(&world, "csv");
    replay(&world, &["--format", "csv", "--output", csv_dir.to_str().expect("utf8")]).await;
    let mut record_types: Vec<&str> = expected_types.iter().map(|(_, t)| *t).collect();
    record_types.dedup();
    assert_eq!(record_types.len(), 6);
    let mut csv_rows = 0;
    for &record_type in &record_types {
        let path = csv_dir.join(format!("{record_type}.csv"));
        let mut reader = csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let names: Vec<String> = reader.headers().expect("header row").iter().map(str::to_owned).collect();
        for row in reader.records() {
            let row = row.expect("row");
            let cell = |name: &str| {
                row.get(names.iter().position(|n| n == name).expect(name)).expect(name).to_owned()
            };
            let line = &records[&cell("kafka.header.studyspot.event_id")];
            assert_eq!(cell("record_type"), record_type);
            assert_eq!(cell("kafka.topic"), line["topic"].as_str().expect("topic"));
            assert_eq!(cell("kafka.partition"), line["partition"].to_string());
            assert_eq!(cell("kafka.offset"), line["offset"].to_string());
            assert_eq!(cell("kafka.timestamp"), line["timestamp"].as_str().expect("timestamp"));
            assert_eq!(cell("kafka.key"), line["key"].as_str().expect("key"));
            let mut fields = BTreeMap::new();
            flatten("", &line["record"], &mut fields);
            for (name, value) in fields {
                let want = match value {
                    Json::Null => String::new(),
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                assert_eq!(cell(&name), want, "{record_type}.{name}");
            }
            csv_rows += 1;
        }
    }
    assert_eq!(csv_rows, h.commands + h.events - 1, "every record but the poison one");

    // Parquet, read back by pyarrow: the same rows, typed.
    let parquet_dir = scratch(&world, "parquet");
    replay(&world, &["--format", "parquet", "--output", parquet_dir.to_str().expect("utf8")]).await;
    let files: Vec<PathBuf> = record_types.iter().map(|t| parquet_dir.join(format!("{t}.parquet"))).collect();
    let tables = read_parquet(&files);
    let mut parquet_rows = 0;
    for (record_type, file) in record_types.iter().zip(&files) {
        let table = &tables[file.to_str().expect("utf8")];
        assert_eq!(table["types"]["kafka.timestamp"], "timestamp[ms, tz=UTC]");
        assert_eq!(table["types"]["kafka.partition"], "int32");
        assert_eq!(table["types"]["metadata.occurred_at"], "int64");
        for row in table["rows"].as_array().expect("rows") {
            let line = &records[row["kafka.header.studyspot.event_id"].as_str().expect("event id")];
            assert_eq!(row["record_type"], *record_type);
            assert_eq!(row["kafka.topic"], line["topic"]);
            assert_eq!(row["kafka.partition"], line["partition"]);
            assert_eq!(row["kafka.offset"], line["offset"]);
            assert_eq!(row["kafka.timestamp"], line["timestamp_ms"]);
            assert_eq!(row["kafka.key"], line["key"]);
            let mut fields = BTreeMap::new();
            flatten("", &line["record"], &mut fields);
            for (name, value) in fields {
                assert_eq!(row[&name], value, "{record_type}.{name}");
            }
            parquet_rows += 1;
        }
    }
    assert_eq!(parquet_rows, csv_rows);
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("studyspot-replay-{}", world.id)));
}

/// Each file's column types and rows (timestamps as epoch milliseconds), as pyarrow reads them.
fn read_parquet(files: &[PathBuf]) -> HashMap<String, Json> {
    let script = r#"
import json, sys
import pyarrow.parquet as pq
out = {}
for path in sys.argv[1:]:
    table = pq.read_table(path)
    rows = table.to_pylist()
    for row in rows:
        for k, v in row.items():
            if hasattr(v, "timestamp"):
                row[k] = round(v.timestamp() * 1000)
    out[path] = {"types": {f.name: str(f.type) for f in table.schema}, "rows": rows}
print(json.dumps(out))
"#;
    // deploy/local/test installs pyarrow into a virtual environment of its own and names its
    // interpreter here; run alone, the test needs a python3 with pyarrow on the PATH.
    let python = std::env::var("STUDYSPOT_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("{python} did not run ({e}): run the tests with deploy/local/test"));
    assert!(
        output.status.success(),
        "pyarrow could not read the files with {python} (deploy/local/test installs it and sets \
         STUDYSPOT_TEST_PYTHON): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("pyarrow's JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republishes_a_slice_preserving_keys_headers_and_order() {
    let world = World::new("attendance", BIN).await;
    let h = history(&world).await;
    let target = format!("{}copy.attendance", world.prefix);
    admin::ensure_topics(&world.bus, &[target.as_str()], 3, 1).await.expect("target topic");
    // The organization's records only, of both topics, into one.
    replay(&world, &["--organization", &h.organization, "--republish-to", &target]).await;

    let copied = reader::read_to_end(&world.bus, &target, Duration::from_secs(30)).expect("read copy");
    let mut source = Vec::new();
    for topic in [attendance::COMMANDS.name, attendance::EVENTS.name] {
        source.extend(world.read_all(topic));
    }
    let ours: Vec<_> = source
        .iter()
        .filter(|m| {
            m.headers.get(headers::EVENT_ID).is_some()
                && m.headers.get(headers::EVENT_ID) != Some(h.other_org_check_in.as_str())
        })
        .collect();
    assert_eq!(copied.len(), ours.len(), "every record of the organization, nothing else");
    let by_id: HashMap<&str, _> =
        ours.iter().map(|m| (m.headers.get(headers::EVENT_ID).expect("id"), *m)).collect();
    for m in &copied {
        let original = by_id[m.headers.get(headers::EVENT_ID).expect("id")];
        assert_eq!(m.key, original.key);
        assert_eq!(m.headers, original.headers);
        assert_eq!(m.payload, original.payload);
    }
    // Order per key: within each source partition, the copy keeps the sequence.
    let sequence = |messages: &[&studyspot_bus::InboundMessage],
                    topic: Option<&str>|
     -> BTreeMap<Vec<u8>, Vec<String>> {
        let mut per_key: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
        for m in messages.iter().filter(|m| topic.is_none_or(|t| m.topic == t)) {
            per_key
                .entry(m.key.clone().unwrap_or_default())
                .or_default()
                .push(m.headers.get(headers::EVENT_ID).expect("id").to_owned());
        }
        per_key
    };
    let copied_refs: Vec<&studyspot_bus::InboundMessage> = copied.iter().collect();
    let copy_order = sequence(&copied_refs, None);
    for topic in [attendance::COMMANDS.name, attendance::EVENTS.name] {
        let prefixed = world.topic(topic);
        for (key, ids) in sequence(&ours, Some(&prefixed)) {
            let in_copy: Vec<&String> = copy_order[&key].iter().filter(|id| ids.contains(id)).collect();
            assert_eq!(
                in_copy,
                ids.iter().collect::<Vec<_>>(),
                "order of key {:?}",
                String::from_utf8_lossy(&key)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republishing_to_a_missing_topic_fails_at_once_or_creates_it_when_asked() {
    let world = World::new("attendance", BIN).await;
    let h = history(&world).await;
    let target = format!("{}missing.copy", world.prefix);
    let started = std::time::Instant::now();
    let refused =
        replay_output(&world, &["--organization", &h.organization, "--republish-to", &target]).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a missing target is an error: {stderr}");
    assert!(
        stderr.contains(&format!("cannot republish to {target}")) && stderr.contains("--create-target"),
        "the error names the topic and the way out: {stderr}"
    );
    // Before anything is read: not after the producer's records time out (31 s before).
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());

    let args = ["--organization", &h.organization, "--republish-to", &target, "--create-target"];
    let stderr = replay(&world, &args).await;
    assert!(stderr.contains(&format!("created {target}")), "{stderr}");
    let copied = reader::read_to_end(&world.bus, &target, Duration::from_secs(30)).expect("read copy");
    let ours = [attendance::COMMANDS.name, attendance::EVENTS.name]
        .iter()
        .flat_map(|topic| world.read_all(topic))
        .filter(|m| {
            m.headers.get(headers::EVENT_ID).is_some()
                && m.headers.get(headers::EVENT_ID) != Some(h.other_org_check_in.as_str())
        })
        .count();
    assert_eq!(copied.len(), ours, "the organization's records went to the created topic");
    // Now it exists: no flag needed, and nothing is created again.
    let stderr = replay(&world, &["--organization", &h.organization, "--republish-to", &target]).await;
    assert!(!stderr.contains("created"), "{stderr}");
}
