//! Where replayed records go: NDJSON (one object per record), CSV (one file per record type) or
//! Parquet (one file per record type). Each writer holds at most one batch per record type.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::Context;
use apache_avro::{Schema, types::Value};
use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, SchemaRef, TimeUnit};
use parquet::{arrow::ArrowWriter, basic::Compression, file::properties::WriterProperties};
use studyspot_bus::InboundMessage;

use super::table::{self, Cell, Column, Kind};

/// One record on its way out.
pub struct Item<'a> {
    pub message: &'a InboundMessage,
    /// The catalogue name of the topic (without the environment's prefix).
    pub topic: &'a str,
    /// The writer's full name, or the `studyspot.record_type` header of an undecodable record.
    pub record_type: Option<&'a str>,
    /// The record resolved against today's reader schema (`None`: undecodable).
    pub value: Option<&'a Value>,
    /// Today's reader schema of the record type, when the catalogue knows it.
    pub reader: Option<&'a Schema>,
    /// Why the record could not be decoded.
    pub error: Option<&'a str>,
}

pub trait Sink {
    /// Writes one record; `Ok(false)` when this format cannot hold it (it is counted as skipped).
    fn write(&mut self, item: &Item<'_>) -> anyhow::Result<bool>;
    /// Flushes and closes; returns the files written.
    fn finish(self: Box<Self>) -> anyhow::Result<Vec<PathBuf>>;
}

/// One JSON object per line: topic, partition, offset, timestamp, key, headers, record_type, record.
pub struct Ndjson {
    out: BufWriter<Box<dyn Write>>,
    path: Option<PathBuf>,
}

impl Ndjson {
    pub fn new(path: Option<&Path>) -> anyhow::Result<Self> {
        let out: Box<dyn Write> = match path {
            Some(p) => Box::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?),
            None => Box::new(std::io::stdout()),
        };
        Ok(Self { out: BufWriter::with_capacity(1 << 16, out), path: path.map(Path::to_path_buf) })
    }
}

pub fn json_line(item: &Item<'_>) -> anyhow::Result<serde_json::Value> {
    let m = item.message;
    let mut headers = serde_json::Map::new();
    for (k, v) in &m.headers.0 {
        headers.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    let record = match item.value {
        Some(v) => serde_json::Value::try_from(v.clone())
            .map_err(|e| anyhow::anyhow!("a record without a JSON form: {e}"))?,
        None => serde_json::Value::Null,
    };
    let mut line = serde_json::json!({
        "topic": item.topic,
        "partition": m.partition,
        "offset": m.offset,
        "timestamp": m.timestamp_ms.and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "timestamp_ms": m.timestamp_ms,
        "key": m.key.as_deref().map(String::from_utf8_lossy),
        "headers": headers,
        "record_type": item.record_type,
        "record": record,
    });
    if let Some(error) = item.error {
        line["error"] = serde_json::Value::String(error.to_owned());
    }
    Ok(line)
}

impl Sink for Ndjson {
    fn write(&mut self, item: &Item<'_>) -> anyhow::Result<bool> {
        serde_json::to_writer(&mut self.out, &json_line(item)?)?;
        self.out.write_all(b"\n")?;
        Ok(true)
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<Vec<PathBuf>> {
        self.out.flush()?;
        Ok(self.path.into_iter().collect())
    }
}

fn file_for(dir: &Path, record_type: &str, extension: &str) -> PathBuf {
    dir.join(format!("{record_type}.{extension}"))
}

/// One CSV file per record type (`<dir>/<full name>.csv`), flattened (see [`table`]).
pub struct Csv {
    dir: PathBuf,
    files: HashMap<String, (csv::Writer<File>, Vec<Column>)>,
}

impl Csv {
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self { dir: dir.to_path_buf(), files: HashMap::new() })
    }
}

impl Sink for Csv {
    fn write(&mut self, item: &Item<'_>) -> anyhow::Result<bool> {
        let (Some(record_type), Some(value), Some(reader)) = (item.record_type, item.value, item.reader)
        else {
            return Ok(false);
        };
        if !self.files.contains_key(record_type) {
            let path = file_for(&self.dir, record_type, "csv");
            let mut writer =
                csv::Writer::from_path(&path).with_context(|| format!("cannot create {}", path.display()))?;
            let columns = table::columns(reader);
            writer.write_record(columns.iter().map(|c| c.name.as_str()))?;
            self.files.insert(record_type.to_owned(), (writer, columns));
        }
        let (writer, columns) = self.files.get_mut(record_type).expect("inserted above");
        let cells = table::row(columns, item.message, item.topic, record_type, value);
        writer.write_record(cells.iter().zip(columns.iter()).map(|(cell, column)| {
            match (cell, column.kind) {
                (Cell::Long(ms), Kind::Timestamp) => chrono::DateTime::from_timestamp_millis(*ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_default(),
                _ => cell.to_csv(),
            }
        }))?;
        Ok(true)
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Vec<PathBuf>> {
        let mut paths = Vec::new();
        for (record_type, (mut writer, _)) in self.files {
            writer.flush()?;
            paths.push(file_for(&self.dir, &record_type, "csv"));
        }
        paths.sort();
        Ok(paths)
    }
}

/// Rows per Arrow batch handed to the Parquet writer, and the most rows and encoded bytes of a row
/// group: what one record type's file holds in memory at most (the bytes bound wins for wide rows).
const BATCH_ROWS: usize = 4096;
const ROW_GROUP_ROWS: usize = 65536;
const ROW_GROUP_BYTES: usize = 8 << 20;

struct ParquetTable {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

impl ParquetTable {
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| array(column.kind, self.rows.iter().map(|r| &r[i])))
            .collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        self.writer.write(&batch)?;
        self.rows.clear();
        Ok(())
    }
}

fn array<'a>(kind: Kind, cells: impl Iterator<Item = &'a Cell>) -> ArrayRef {
    match kind {
        Kind::Bool => Arc::new(
            cells.map(|c| if let Cell::Bool(b) = c { Some(*b) } else { None }).collect::<BooleanArray>(),
        ),
        Kind::Int => Arc::new(
            cells.map(|c| if let Cell::Int(i) = c { Some(*i) } else { None }).collect::<Int32Array>(),
        ),
        Kind::Long => Arc::new(
            cells.map(|c| if let Cell::Long(l) = c { Some(*l) } else { None }).collect::<Int64Array>(),
        ),
        Kind::Float => Arc::new(
            cells.map(|c| if let Cell::Float(f) = c { Some(*f) } else { None }).collect::<Float32Array>(),
        ),
        Kind::Double => Arc::new(
            cells.map(|c| if let Cell::Double(d) = c { Some(*d) } else { None }).collect::<Float64Array>(),
        ),
        Kind::Text => Arc::new(
            cells
                .map(|c| if let Cell::Text(s) = c { Some(s.as_str()) } else { None })
                .collect::<StringArray>(),
        ),
        Kind::Timestamp => Arc::new(
            cells
                .map(|c| if let Cell::Long(l) = c { Some(*l) } else { None })
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        ),
    }
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Bool => DataType::Boolean,
        Kind::Int => DataType::Int32,
        Kind::Long => DataType::Int64,
        Kind::Float => DataType::Float32,
        Kind::Double => DataType::Float64,
        Kind::Text => DataType::Utf8,
        Kind::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
    }
}

/// One Parquet file per record type (`<dir>/<full name>.parquet`), snappy, the same columns as CSV.
pub struct Parquet {
    dir: PathBuf,
    tables: HashMap<String, ParquetTable>,
}

impl Parquet {
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self { dir: dir.to_path_buf(), tables: HashMap::new() })
    }
}

impl Sink for Parquet {
    fn write(&mut self, item: &Item<'_>) -> anyhow::Result<bool> {
        let (Some(record_type), Some(value), Some(reader)) = (item.record_type, item.value, item.reader)
        else {
            return Ok(false);
        };
        if !self.tables.contains_key(record_type) {
            let path = file_for(&self.dir, record_type, "parquet");
            let columns = table::columns(reader);
            let schema: SchemaRef = Arc::new(arrow_schema::Schema::new(
                columns
                    .iter()
                    .map(|c| Field::new(&c.name, data_type(c.kind), c.nullable))
                    .collect::<Vec<_>>(),
            ));
            let properties = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
                .build();
            let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))?;
            self.tables.insert(
                record_type.to_owned(),
                ParquetTable { writer, schema, columns, rows: Vec::with_capacity(BATCH_ROWS) },
            );
        }
        let table = self.tables.get_mut(record_type).expect("inserted above");
        table.rows.push(table::row(&table.columns, item.message, item.topic, record_type, value));
        if table.rows.len() >= BATCH_ROWS {
            table.flush()?;
        }
        Ok(true)
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Vec<PathBuf>> {
        let mut paths = Vec::new();
        for (record_type, mut table) in self.tables {
            table.flush()?;
            table.writer.close()?;
            paths.push(file_for(&self.dir, &record_type, "parquet"));
        }
        paths.sort();
        Ok(paths)
    }
}
