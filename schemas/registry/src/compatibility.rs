use apache_avro::{
    Schema,
    schema_compatibility::{Compatibility, SchemaCompatibility},
};

use crate::RegistryError;

pub const LEVELS: [&str; 7] =
    ["NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"];

pub fn parse_level(level: &str) -> Result<&'static str, RegistryError> {
    let upper = level.to_ascii_uppercase();
    LEVELS.iter().copied().find(|l| *l == upper).ok_or(RegistryError::InvalidCompatibility)
}

/// Parses a schema and returns its normal form: compact JSON that keeps defaults, docs and
/// aliases (unlike Parsing Canonical Form, which would merge schemas that differ in defaults).
pub fn normalize(text: &str) -> Result<(Schema, String), RegistryError> {
    let schema = Schema::parse_str(text).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    let normal = serde_json::to_string(&schema).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    Ok((schema, normal))
}

/// Which earlier versions a new schema is checked against, under `level`: the latest only, or all
/// (transitive). Earlier versions are given oldest first.
pub fn check(level: &str, new: &Schema, earlier: &[Schema]) -> Vec<String> {
    let against: &[Schema] = match level {
        "NONE" => &[],
        l if l.ends_with("_TRANSITIVE") => earlier,
        _ => earlier.last().map(std::slice::from_ref).unwrap_or(&[]),
    };
    let mut problems = Vec::new();
    for (i, old) in against.iter().enumerate() {
        let backward = level.starts_with("BACKWARD") || level.starts_with("FULL");
        let forward = level.starts_with("FORWARD") || level.starts_with("FULL");
        if backward && let Some(problem) = readable("new schema cannot read data written with", old, new) {
            problems.push(format!("{problem} version index {i}"));
        }
        if forward
            && let Some(problem) =
                readable("old schema cannot read data written with the new one; version index", new, old)
        {
            problems.push(format!("{problem} {i}"));
        }
    }
    problems
}

/// `None` when `reader` reads everything `writer` writes; a partial match counts as a failure.
fn readable(what: &str, writer: &Schema, reader: &Schema) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => None,
        Ok(_) => Some(format!("{what} (only partially compatible)")),
        Err(e) => Some(format!("{what}: {e}")),
    }
}
