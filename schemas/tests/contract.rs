//! The `.avsc` files under `schemas/avro/` are the contract other teams read; the Rust types must
//! produce exactly those schemas. `STUDYSPOT_BLESS=1 cargo test -p studyspot-schemas` rewrites the
//! files from the types after a deliberate change (review the diff: it is a contract change).

use std::{collections::HashSet, path::PathBuf};

use apache_avro::{AvroSchema, Schema};
use studyspot_schemas::{EventMetadata, TopicKind, catalogue};

fn avro_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("avro")
}

fn check_or_bless(file: &str, derived: &Schema) {
    let path = avro_dir().join(file);
    let derived_json = serde_json::to_value(derived).expect("schemas serialize");
    if std::env::var_os("STUDYSPOT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("avro dir");
        let text = serde_json::to_string_pretty(&derived_json).expect("json") + "\n";
        std::fs::write(&path, text).expect("write avsc");
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parsed = Schema::parse_str(&text).unwrap_or_else(|e| panic!("{file} is not a valid schema: {e}"));
    let parsed_json = serde_json::to_value(&parsed).expect("schemas serialize");
    assert_eq!(parsed_json, derived_json, "{file} differs from the Rust type's schema");
}

#[test]
fn every_record_type_matches_its_avsc_file() {
    check_or_bless("EventMetadata.avsc", &EventMetadata::get_schema());
    for topic in catalogue() {
        for record in topic.records {
            check_or_bless(record.avsc_file, &(record.schema)());
        }
    }
}

#[test]
fn every_record_carries_the_metadata_and_its_topic_key() {
    let metadata = serde_json::to_value(EventMetadata::get_schema()).expect("json");
    for topic in catalogue() {
        for record in topic.records {
            let schema = serde_json::to_value((record.schema)()).expect("json");
            let fields = schema["fields"].as_array().expect("a record");
            assert_eq!(fields[0]["name"], "metadata", "{record:?} starts with metadata");
            assert_eq!(fields[0]["type"], metadata, "{record:?} carries EventMetadata as it is");
            let name = format!(
                "{}.{}",
                schema["namespace"].as_str().expect("namespaced"),
                schema["name"].as_str().expect("named")
            );
            assert_eq!(name, record.full_name);
            let has_key = fields.iter().any(|f| f["name"] == topic.key_field)
                || metadata["fields"]
                    .as_array()
                    .expect("record")
                    .iter()
                    .any(|f| f["name"] == topic.key_field);
            assert!(has_key, "{record:?} has no key field {}", topic.key_field);
        }
    }
}

#[test]
fn topic_names_follow_the_convention_and_are_unique() {
    let mut seen = HashSet::new();
    for topic in catalogue() {
        let kind = match topic.kind {
            TopicKind::Commands => "commands",
            TopicKind::Events => "events",
        };
        // studyspot.<owner>.<kind>.v1, or studyspot.<owner>.<stream>.<kind>.v1 for a second
        // stream of one domain keyed differently.
        let stream = topic.name.strip_prefix(&format!("studyspot.{}.", topic.owner)).unwrap_or_default();
        let stream = stream.strip_suffix(&format!("{kind}.v1")).unwrap_or("?");
        assert!(
            stream.is_empty()
                || (stream.ends_with('.')
                    && stream[..stream.len() - 1].bytes().all(|b| b.is_ascii_lowercase())),
            "{} does not follow studyspot.<owner>[.<stream>].<kind>.v1",
            topic.name
        );
        assert_eq!(topic.dead_letter, format!("{}.dlq", topic.name));
        assert!(seen.insert(topic.name) && seen.insert(topic.dead_letter), "{} repeats", topic.name);
        assert!(!topic.records.is_empty());
    }
}

#[test]
fn every_avsc_file_belongs_to_a_record() {
    let known: HashSet<String> = catalogue()
        .iter()
        .flat_map(|t| t.records.iter().map(|r| r.avsc_file.to_string()))
        .chain(["EventMetadata.avsc".to_string()])
        .collect();
    for domain in std::fs::read_dir(avro_dir()).expect("avro dir") {
        let domain = domain.expect("entry").path();
        let files: Vec<PathBuf> = if domain.is_dir() {
            std::fs::read_dir(&domain).expect("dir").map(|e| e.expect("entry").path()).collect()
        } else {
            vec![domain.clone()]
        };
        for file in files {
            let relative = file.strip_prefix(avro_dir()).expect("under avro").to_string_lossy().to_string();
            assert!(known.contains(&relative), "{relative} has no Rust type in the catalogue");
        }
    }
}
