//! Parquet: one column per top-level property of the newest contract, plus the sink's columns, as
//! [`streamlake_core::rawzone::columns`] lays them out (and its `readback` reads them).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde_json::Value;
use streamlake_core::contract::fast::Member;
use streamlake_core::rawzone::columns::{ColumnKind, ParquetColumns};

use super::EncodeError;
use super::fields::{Fields, Shape, shape, string_value};
use crate::classify::ValidEvent;

/// Rows buffered in Arrow builders before they are handed to the Parquet writer: about 1 MiB of ~1 KiB
/// events, so a landing holds little more than its records and the file's compressed pages (the sink
/// charges a landing twice its records' bytes, `sink::FileMemory::AsLargeAsTheRecords`).
const BATCH_ROWS: usize = 1024;
/// `zstd` at its fastest positive level: the best ratio per CPU of zstd's levels here.
const ZSTD_LEVEL: i32 = 1;
/// Pages of 256 KiB (the crate's default is 1 MiB): a page's buffers then stay below glibc's mmap
/// threshold (2 MiB + 256 KiB, [`crate::malloc`]), so they are reused from the heap instead of mapped, faulted
/// in page by page and unmapped for every page.
const DATA_PAGE_BYTES: usize = 256 * 1024;
/// The sink's columns whose values (nearly) never repeat within a file, with no dictionary: it would
/// intern every value of the file only to hold them all again. Offsets and timestamps only grow, so they
/// are stored as deltas (a few bits each, before the codec); event ids as they are.
const UNIQUE_SINK_COLUMNS: [(&str, Encoding); 3] = [
    ("_offset", Encoding::DELTA_BINARY_PACKED),
    ("_timestamp", Encoding::DELTA_BINARY_PACKED),
    ("_event_id", Encoding::PLAIN),
];

/// The codec of a Parquet file's pages.
///
/// Snappy is the default, as in Spark and Delta Lake, and every Parquet reader has it. On ~1 KiB order
/// events (`consumer/examples/encode_cost.rs`, cachegrind) it costs ~31k instructions per record against
/// ~41k for zstd, for files ~1.9× zstd's (still ~3.5× smaller than the JSON); zstd suits a raw zone kept
/// long or read rarely. `lz4` is Parquet's `LZ4_RAW` (format 2.9): close to Snappy, not read everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ParquetCompression {
    #[default]
    Snappy,
    Zstd,
    Lz4,
    None,
}

impl ParquetCompression {
    fn codec(self) -> Result<Compression, EncodeError> {
        Ok(match self {
            Self::Snappy => Compression::SNAPPY,
            Self::Zstd => Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?),
            Self::Lz4 => Compression::LZ4_RAW,
            Self::None => Compression::UNCOMPRESSED,
        })
    }
}

enum ColumnBuilder {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
}

impl ColumnBuilder {
    fn new(kind: ColumnKind) -> Self {
        match kind {
            ColumnKind::Utf8 | ColumnKind::Json => Self::Utf8(StringBuilder::new()),
            ColumnKind::Int64 => Self::Int64(Int64Builder::new()),
            ColumnKind::Float64 => Self::Float64(Float64Builder::new()),
            ColumnKind::Boolean => Self::Boolean(BooleanBuilder::new()),
        }
    }

    /// Appends `value` (null when absent or null) if it fits the column; otherwise appends null and
    /// returns false, and the caller keeps the value in `_extra`.
    fn append(&mut self, kind: ColumnKind, value: Option<&str>) -> bool {
        let Some(value) = value.filter(|v| shape(v) != Shape::Null) else {
            self.append_null();
            return true;
        };
        let fits = match (&mut *self, kind, shape(value)) {
            (Self::Utf8(b), ColumnKind::Utf8, Shape::String) => {
                string_value(value).map(|text| b.append_value(text)).is_some()
            }
            (Self::Utf8(b), ColumnKind::Json, _) => {
                b.append_value(value);
                true
            }
            // Integers only: `1.0` or `1e3` is a float to JSON parsers, and does not fit an Int64 column.
            (Self::Int64(b), _, Shape::Number) => value.parse::<i64>().map(|n| b.append_value(n)).is_ok(),
            (Self::Float64(b), _, Shape::Number) => serde_json::from_str::<f64>(value)
                .map(|n| b.append_value(n))
                .is_ok(),
            (Self::Boolean(b), _, Shape::Bool(v)) => {
                b.append_value(v);
                true
            }
            _ => false,
        };
        if !fits {
            self.append_null();
        }
        fits
    }

    fn append_null(&mut self) {
        match self {
            Self::Utf8(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Boolean(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Utf8(b) => finish_strings(b),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Boolean(b) => Arc::new(b.finish()),
        }
    }
}

/// Finishes a batch of text and gives the builder room for as many bytes again (and a little more): a
/// builder starts empty after `finish`, and regrowing it by doubling copied most of each batch's text.
fn finish_strings(builder: &mut StringBuilder) -> ArrayRef {
    let bytes = builder.values_slice().len();
    let array = builder.finish();
    *builder = StringBuilder::with_capacity(BATCH_ROWS, bytes + bytes / 32);
    Arc::new(array)
}

/// A JSON object of raw values, keys in order.
fn object_text(fields: &BTreeMap<&str, &str>) -> String {
    let mut text = String::from("{");
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&Value::from(*name).to_string());
        text.push(':');
        text.push_str(value);
    }
    text.push('}');
    text
}

pub struct ParquetFileWriter {
    columns: ParquetColumns,
    writer: ArrowWriter<Vec<u8>>,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMillisecondBuilder,
    key: StringBuilder,
    event_id: StringBuilder,
    schema_version: Int32Builder,
    values: Vec<ColumnBuilder>,
    extra: StringBuilder,
    /// Per column, the index of the current row's member that fills it (reused between rows).
    filled_by: Vec<Option<usize>>,
    /// Per member position, the column the member at that position filled last row: events of one
    /// producer mostly list their fields in one order, so one comparison usually finds the column.
    column_guess: Vec<usize>,
}

impl ParquetFileWriter {
    /// Writes the file into `buffer` (empty).
    pub fn new(
        columns: &ParquetColumns,
        compression: ParquetCompression,
        writer_version: &str,
        buffer: Vec<u8>,
    ) -> Result<Self, EncodeError> {
        let mut properties = WriterProperties::builder()
            .set_compression(compression.codec()?)
            .set_data_page_size_limit(DATA_PAGE_BYTES)
            .set_created_by(writer_version.to_owned());
        // Nested values kept as JSON text are long and rarely repeat: a dictionary would hash every value
        // of the column only to be given up; the codec still compresses what does repeat.
        for (name, kind) in &columns.columns {
            if *kind == ColumnKind::Json {
                properties = properties.set_column_dictionary_enabled(ColumnPath::from(name.as_str()), false);
            }
        }
        for (name, encoding) in UNIQUE_SINK_COLUMNS {
            let column = ColumnPath::from(name);
            properties = properties
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_encoding(column, encoding);
        }
        let properties = properties.build();
        let writer = ArrowWriter::try_new(buffer, columns.schema(), Some(properties))?;
        Ok(Self {
            values: columns
                .columns
                .iter()
                .map(|(_, kind)| ColumnBuilder::new(*kind))
                .collect(),
            columns: columns.clone(),
            writer,
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            key: StringBuilder::new(),
            event_id: StringBuilder::new(),
            schema_version: Int32Builder::new(),
            extra: StringBuilder::new(),
            filled_by: Vec::with_capacity(columns.columns.len()),
            column_guess: Vec::new(),
        })
    }

    /// Adds one row from the event's JSON text (an object: classification checked it). `members` are its
    /// top-level fields if the contract check read them; otherwise (empty) the text is scanned here.
    pub fn push(
        &mut self,
        partition: i32,
        offset: i64,
        event: &ValidEvent,
        payload: &[u8],
        members: &[Member<'_>],
    ) -> Result<(), EncodeError> {
        let scanned;
        let members = if members.is_empty() {
            scanned = Fields::parse(payload)?;
            scanned.members()
        } else {
            members
        };
        self.partition.append_value(partition);
        self.offset.append_value(offset);
        self.timestamp.append_value(event.timestamp);
        self.key.append_option(event.key);
        self.event_id.append_option(event.event_id);
        self.schema_version
            .append_value(i32::try_from(event.schema_version).unwrap_or(i32::MAX));
        let columns = &self.columns.columns;
        // One pass over the event: each field to its column or to `_extra`; a repeated name keeps its last
        // value, as a parsed JSON object does.
        self.filled_by.clear();
        self.filled_by.resize(columns.len(), None);
        if self.column_guess.len() < members.len() {
            self.column_guess.resize(members.len(), 0);
        }
        let mut extra = BTreeMap::new();
        for (i, (name, value)) in members.iter().enumerate() {
            let guess = self.column_guess[i];
            let column = if columns.get(guess).is_some_and(|(column, _)| column == name) {
                Some(guess)
            } else {
                columns.iter().position(|(column, _)| column == name)
            };
            match column {
                Some(index) => {
                    self.filled_by[index] = Some(i);
                    self.column_guess[i] = index;
                }
                None => {
                    extra.insert(name.as_ref(), *value);
                }
            }
        }
        for (((name, kind), builder), filled_by) in columns.iter().zip(&mut self.values).zip(&self.filled_by)
        {
            let value = filled_by.map(|i| members[i].1);
            if !builder.append(*kind, value)
                && let Some(misfit) = value
            {
                extra.insert(name, misfit);
            }
        }
        if extra.is_empty() {
            self.extra.append_null();
        } else {
            self.extra.append_value(object_text(&extra));
        }
        if self.offset.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), EncodeError> {
        if self.offset.len() == 0 {
            return Ok(());
        }
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.timestamp.finish()),
            finish_strings(&mut self.key),
            finish_strings(&mut self.event_id),
            Arc::new(self.schema_version.finish()),
        ];
        arrays.extend(self.values.iter_mut().map(ColumnBuilder::finish));
        arrays.push(finish_strings(&mut self.extra));
        let batch = RecordBatch::try_new(self.columns.schema(), arrays)?;
        self.writer.write(&batch)?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<Vec<u8>, EncodeError> {
        self.flush()?;
        Ok(self.writer.into_inner()?)
    }
}
