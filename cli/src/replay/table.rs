//! Records as rows: the columns of one record type, derived from its reader schema, and the cells
//! of one record. Nested records flatten into dotted names (`metadata.event_id`); an optional
//! value (`["null", T]`) is a nullable column of T; arrays, maps and other unions are one column
//! holding their JSON text. CSV and Parquet share this model, so their columns agree.

use apache_avro::{Schema, types::Value};
use studyspot_bus::{InboundMessage, headers};

/// The headers StudySpot writes, each a column of its own; any other header lands in
/// `kafka.headers_other` (a JSON object).
pub const HEADER_COLUMNS: [&str; 11] = [
    headers::EVENT_ID,
    headers::CORRELATION_ID,
    headers::CAUSATION_ID,
    headers::RECORD_TYPE,
    headers::TRACEPARENT,
    headers::TRACESTATE,
    headers::DLQ_REASON,
    headers::DLQ_TOPIC,
    headers::DLQ_PARTITION,
    headers::DLQ_OFFSET,
    headers::DLQ_CONSUMER,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Long,
    Float,
    Double,
    Text,
    /// Epoch milliseconds (the Kafka timestamp).
    Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    pub nullable: bool,
    /// Where the value is in the record; empty for the Kafka columns.
    path: Vec<String>,
    /// The value's JSON text rather than the value (arrays, maps, unions of several types).
    json: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Text(String),
}

impl Cell {
    /// The cell as CSV text: empty for null, decimal for numbers.
    pub fn to_csv(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Long(l) => l.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Double(d) => d.to_string(),
            Cell::Text(s) => s.clone(),
        }
    }
}

fn kafka(name: &str, kind: Kind, nullable: bool) -> Column {
    Column { name: name.to_owned(), kind, nullable, path: Vec::new(), json: false }
}

/// Every column of a record type: the Kafka coordinates, the headers, then the record's fields.
pub fn columns(reader: &Schema) -> Vec<Column> {
    let mut out = vec![
        kafka("kafka.topic", Kind::Text, false),
        kafka("kafka.partition", Kind::Int, false),
        kafka("kafka.offset", Kind::Long, false),
        kafka("kafka.timestamp", Kind::Timestamp, true),
        kafka("kafka.key", Kind::Text, true),
        kafka("record_type", Kind::Text, false),
    ];
    for h in HEADER_COLUMNS {
        out.push(kafka(&format!("kafka.header.{h}"), Kind::Text, true));
    }
    out.push(kafka("kafka.headers_other", Kind::Text, true));
    walk(reader, &mut Vec::new(), false, &mut out);
    out
}

fn walk(schema: &Schema, path: &mut Vec<String>, nullable: bool, out: &mut Vec<Column>) {
    let leaf = |kind: Kind, json: bool, out: &mut Vec<Column>, path: &[String]| {
        out.push(Column { name: path.join("."), kind, nullable, path: path.to_vec(), json });
    };
    match schema {
        Schema::Record(record) => {
            for field in &record.fields {
                path.push(field.name.clone());
                walk(&field.schema, path, nullable, out);
                path.pop();
            }
        }
        Schema::Union(union) => {
            let variants = union.variants();
            let non_null: Vec<&Schema> = variants.iter().filter(|s| **s != Schema::Null).collect();
            if non_null.len() == 1 && variants.len() == 2 {
                walk(non_null[0], path, true, out);
            } else {
                out.push(Column {
                    name: path.join("."),
                    kind: Kind::Text,
                    nullable: true,
                    path: path.clone(),
                    json: true,
                });
            }
        }
        Schema::Boolean => leaf(Kind::Bool, false, out, path),
        Schema::Int | Schema::Date | Schema::TimeMillis => leaf(Kind::Int, false, out, path),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => leaf(Kind::Long, false, out, path),
        Schema::Float => leaf(Kind::Float, false, out, path),
        Schema::Double => leaf(Kind::Double, false, out, path),
        Schema::String | Schema::Uuid(_) | Schema::Enum(_) => leaf(Kind::Text, false, out, path),
        _ => leaf(Kind::Text, true, out, path),
    }
}

/// The cells of one record, in the order of `columns`. `value` is resolved against the schema the
/// columns came from.
pub fn row(
    columns: &[Column],
    message: &InboundMessage,
    topic: &str,
    record_type: &str,
    value: &Value,
) -> Vec<Cell> {
    let text = |s: Option<String>| s.map_or(Cell::Null, Cell::Text);
    let mut other = serde_json::Map::new();
    for (k, v) in &message.headers.0 {
        if !HEADER_COLUMNS.contains(&k.as_str()) {
            other.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
    }
    let mut cells = vec![
        Cell::Text(topic.to_owned()),
        Cell::Int(message.partition),
        Cell::Long(message.offset),
        message.timestamp_ms.map_or(Cell::Null, Cell::Long),
        text(message.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned())),
        Cell::Text(record_type.to_owned()),
    ];
    for h in HEADER_COLUMNS {
        cells.push(text(message.headers.get(h).map(str::to_owned)));
    }
    cells.push(if other.is_empty() {
        Cell::Null
    } else {
        Cell::Text(serde_json::Value::Object(other).to_string())
    });
    for column in columns.iter().skip(cells.len()) {
        cells.push(cell(column, value));
    }
    cells
}

fn cell(column: &Column, value: &Value) -> Cell {
    let mut at = value;
    for name in &column.path {
        at = unwrap_union(at);
        match at {
            Value::Record(fields) => match fields.iter().find(|(n, _)| n == name) {
                Some((_, v)) => at = v,
                None => return Cell::Null,
            },
            _ => return Cell::Null,
        }
    }
    let at = unwrap_union(at);
    if matches!(at, Value::Null) {
        return Cell::Null;
    }
    if column.json {
        return serde_json::Value::try_from(at.clone()).map_or(Cell::Null, |j| Cell::Text(j.to_string()));
    }
    match (column.kind, at) {
        (Kind::Bool, Value::Boolean(b)) => Cell::Bool(*b),
        (Kind::Int, Value::Int(i) | Value::Date(i) | Value::TimeMillis(i)) => Cell::Int(*i),
        (
            Kind::Long,
            Value::Long(l)
            | Value::TimeMicros(l)
            | Value::TimestampMillis(l)
            | Value::TimestampMicros(l)
            | Value::TimestampNanos(l)
            | Value::LocalTimestampMillis(l)
            | Value::LocalTimestampMicros(l)
            | Value::LocalTimestampNanos(l),
        ) => Cell::Long(*l),
        (Kind::Long, Value::Int(i)) => Cell::Long(i64::from(*i)),
        (Kind::Float, Value::Float(f)) => Cell::Float(*f),
        (Kind::Double, Value::Double(d)) => Cell::Double(*d),
        (Kind::Double, Value::Float(f)) => Cell::Double(f64::from(*f)),
        (Kind::Text, Value::String(s) | Value::Enum(_, s)) => Cell::Text(s.clone()),
        (Kind::Text, Value::Uuid(u)) => Cell::Text(u.to_string()),
        (_, other) => {
            serde_json::Value::try_from(other.clone()).map_or(Cell::Null, |j| Cell::Text(j.to_string()))
        }
    }
}

fn unwrap_union(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => unwrap_union(inner),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::parse_str(
            r#"{"type":"record","name":"T","namespace":"t","fields":[
                {"name":"metadata","type":{"type":"record","name":"M","fields":[{"name":"event_id","type":"string"}]}},
                {"name":"count","type":"int"},
                {"name":"amount","type":["null","long"],"default":null},
                {"name":"ratio","type":"double"},
                {"name":"tags","type":{"type":"array","items":"string"},"default":[]},
                {"name":"limits","type":["null",{"type":"record","name":"L","fields":[{"name":"max","type":"int"}]}],"default":null},
                {"name":"ok","type":"boolean","default":false}
            ]}"#,
        )
        .expect("schema")
    }

    #[test]
    fn nested_records_flatten_and_collections_become_json() {
        let names: Vec<String> = columns(&schema()).into_iter().map(|c| c.name).collect();
        let fields: Vec<&str> = names.iter().map(String::as_str).skip(6 + HEADER_COLUMNS.len() + 1).collect();
        assert_eq!(fields, ["metadata.event_id", "count", "amount", "ratio", "tags", "limits.max", "ok"]);
        let cols = columns(&schema());
        let amount = cols.iter().find(|c| c.name == "amount").expect("amount");
        assert!(amount.nullable && amount.kind == Kind::Long);
        let max = cols.iter().find(|c| c.name == "limits.max").expect("limits.max");
        assert!(max.nullable && max.kind == Kind::Int);
    }

    #[test]
    fn cells_follow_the_columns() {
        let value = Value::Record(vec![
            ("metadata".into(), Value::Record(vec![("event_id".into(), Value::String("e1".into()))])),
            ("count".into(), Value::Int(3)),
            ("amount".into(), Value::Union(1, Box::new(Value::Long(1250)))),
            ("ratio".into(), Value::Double(0.5)),
            ("tags".into(), Value::Array(vec![Value::String("a".into()), Value::String("b".into())])),
            ("limits".into(), Value::Union(0, Box::new(Value::Null))),
            ("ok".into(), Value::Boolean(true)),
        ]);
        let message = InboundMessage {
            topic: "p.t".into(),
            partition: 2,
            offset: 7,
            key: Some(b"k1".to_vec()),
            payload: None,
            headers: studyspot_bus::Headers(vec![
                (headers::EVENT_ID.into(), "e1".into()),
                ("x-custom".into(), "v".into()),
            ]),
            timestamp_ms: Some(1_700_000_000_000),
        };
        let cols = columns(&schema());
        let cells = row(&cols, &message, "t", "t.T", &value);
        assert_eq!(cells.len(), cols.len());
        let at = |name: &str| cells[cols.iter().position(|c| c.name == name).expect(name)].clone();
        assert_eq!(at("kafka.topic"), Cell::Text("t".into()));
        assert_eq!(at("kafka.partition"), Cell::Int(2));
        assert_eq!(at("kafka.offset"), Cell::Long(7));
        assert_eq!(at("kafka.timestamp"), Cell::Long(1_700_000_000_000));
        assert_eq!(at("kafka.key"), Cell::Text("k1".into()));
        assert_eq!(at("kafka.header.studyspot.event_id"), Cell::Text("e1".into()));
        assert_eq!(at("kafka.header.traceparent"), Cell::Null);
        assert_eq!(at("kafka.headers_other"), Cell::Text(r#"{"x-custom":"v"}"#.into()));
        assert_eq!(at("metadata.event_id"), Cell::Text("e1".into()));
        assert_eq!(at("count"), Cell::Int(3));
        assert_eq!(at("amount"), Cell::Long(1250));
        assert_eq!(at("ratio"), Cell::Double(0.5));
        assert_eq!(at("tags"), Cell::Text(r#"["a","b"]"#.into()));
        assert_eq!(at("limits.max"), Cell::Null);
        assert_eq!(at("ok"), Cell::Bool(true));
    }
}
