//! Turning a run of records into the bytes of one data file and its metadata entry.
//!
//! Records are classified and written one at a time, so a parsed record lives only while it is encoded.
//! The bytes depend only on the records and the format settings: the same run always gives the same
//! file, the same digest, and the same name.

mod fields;
mod jsonl;
mod parquet;
mod pool;

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use streamlake_core::contract::Contract;
use streamlake_core::contract::fast::Member;
use streamlake_core::rawzone::{DataFileName, FileEntry, FileFormat, file_checksum};

use crate::classify::{Classifier, Rejection, ValidEvent};
use crate::record::SourceRecord;

pub use self::parquet::{ColumnKind, ParquetColumns, ParquetCompression};
use self::pool::BufferPool;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("writing JSON lines: {0}")]
    Jsonl(#[from] std::io::Error),
    #[error("writing Parquet: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    #[error("building Arrow columns: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error(transparent)]
    Fields(#[from] fields::NotAnObject),
    #[error("the contract cannot be mapped to Parquet columns: {0}")]
    Schema(String),
}

/// A file ready to upload.
#[derive(Debug, Clone)]
pub struct EncodedFile {
    pub name: DataFileName,
    pub data: Bytes,
    pub entry: FileEntry,
}

/// What came out of one run: the file of its valid records (if any) and the records rejected.
#[derive(Debug)]
pub struct EncodedRun {
    pub file: Option<EncodedFile>,
    /// (index into the run, why) of each poison pill.
    pub rejected: Vec<(usize, Rejection)>,
}

/// Encodes runs in one configured format.
#[derive(Debug, Clone)]
pub struct Encoder {
    format: FileFormat,
    columns: Option<ParquetColumns>,
    compression: ParquetCompression,
    writer_version: String,
    buffers: Arc<BufferPool>,
}

impl Encoder {
    /// For Parquet, the columns come from the dataset's newest contract and the pages are compressed
    /// with the default [`ParquetCompression`]. Up to `kept_buffer_bytes` of file buffers are kept
    /// between files.
    pub fn new(
        format: FileFormat,
        contract: &Contract,
        writer_version: String,
        kept_buffer_bytes: usize,
    ) -> Result<Self, EncodeError> {
        let columns = match format {
            FileFormat::Parquet => Some(ParquetColumns::from_contract(contract)?),
            _ => None,
        };
        Ok(Self {
            format,
            columns,
            compression: ParquetCompression::default(),
            writer_version,
            buffers: BufferPool::new(kept_buffer_bytes),
        })
    }

    /// The codec of Parquet pages; other formats have theirs in their [`FileFormat`].
    pub fn with_parquet_compression(self, compression: ParquetCompression) -> Self {
        Self { compression, ..self }
    }

    pub fn format(&self) -> FileFormat {
        self.format
    }

    pub fn encode_run(
        &self,
        partition: i32,
        records: &[&SourceRecord],
        classifier: &Classifier,
    ) -> Result<EncodedRun, EncodeError> {
        // The records' size plus the sink's columns: the size of plain JSON lines, more than the others.
        let expected: usize = records
            .iter()
            .map(|r| r.payload.as_ref().map_or(0, Bytes::len) + 160)
            .sum();
        let capacity = if self.format == FileFormat::Jsonl {
            expected
        } else {
            expected / 4
        };
        let (buffer, start) = self.buffers.take(capacity);
        let mut writer = match &self.columns {
            Some(columns) => FormatWriter::Parquet(Box::new(parquet::ParquetFileWriter::new(
                columns,
                self.compression,
                &self.writer_version,
                buffer,
            )?)),
            None => FormatWriter::Jsonl(jsonl::JsonlWriter::new(self.format, buffer)?),
        };
        let mut rejected = Vec::new();
        let mut stats: Option<RunStats> = None;
        // Parquet takes the event's fields from the contract check's own pass over it.
        let wants_members = matches!(writer, FormatWriter::Parquet(_));
        let mut members = Vec::new();
        for (index, record) in records.iter().copied().enumerate() {
            let classified = if wants_members {
                classifier.classify_with_members(record, &mut members)
            } else {
                classifier.classify(record)
            };
            let event = match classified {
                Ok(event) => event,
                Err(rejection) => {
                    rejected.push((index, rejection));
                    continue;
                }
            };
            let stats = stats.get_or_insert_with(|| RunStats::starting_at(record.offset, event.timestamp));
            stats.add(record.offset, event.timestamp, event.schema_version);
            let payload = record.payload.as_deref().unwrap_or_default();
            writer.push(partition, record.offset, &event, payload, &members)?;
        }
        let Some(stats) = stats else {
            return Ok(EncodedRun { file: None, rejected });
        };
        let data = match writer {
            FormatWriter::Jsonl(w) => w.finish()?,
            FormatWriter::Parquet(w) => w.finish()?,
        };
        Ok(EncodedRun {
            file: Some(self.describe(partition, stats, self.buffers.freeze(data, start))),
            rejected,
        })
    }

    fn describe(&self, partition: i32, stats: RunStats, data: Bytes) -> EncodedFile {
        let checksum = file_checksum(&data);
        let name = DataFileName::new(
            partition,
            stats.first_offset,
            stats.last_offset,
            &checksum,
            self.format,
        );
        let millis = |t: i64| DateTime::from_timestamp_millis(t).unwrap_or_default();
        let entry = FileEntry {
            path: name.to_string(),
            partition,
            first_offset: stats.first_offset,
            last_offset: stats.last_offset,
            record_count: stats.count,
            bytes: data.len() as u64,
            checksum,
            format: self.format,
            schema_versions: stats.schema_versions.into_iter().collect(),
            min_timestamp: millis(stats.min_timestamp),
            max_timestamp: millis(stats.max_timestamp),
            writer_version: self.writer_version.clone(),
            written_at: Utc::now(),
        };
        EncodedFile { name, data, entry }
    }
}

enum FormatWriter {
    Jsonl(jsonl::JsonlWriter),
    Parquet(Box<parquet::ParquetFileWriter>),
}

impl FormatWriter {
    fn push(
        &mut self,
        partition: i32,
        offset: i64,
        event: &ValidEvent,
        payload: &[u8],
        members: &[Member<'_>],
    ) -> Result<(), EncodeError> {
        match self {
            Self::Jsonl(w) => Ok(w.push(partition, offset, event, payload)?),
            Self::Parquet(w) => w.push(partition, offset, event, payload, members),
        }
    }
}

struct RunStats {
    first_offset: i64,
    last_offset: i64,
    count: u64,
    min_timestamp: i64,
    max_timestamp: i64,
    schema_versions: BTreeSet<u32>,
}

impl RunStats {
    fn starting_at(offset: i64, timestamp: i64) -> Self {
        Self {
            first_offset: offset,
            last_offset: offset,
            count: 0,
            min_timestamp: timestamp,
            max_timestamp: timestamp,
            schema_versions: BTreeSet::new(),
        }
    }

    fn add(&mut self, offset: i64, timestamp: i64, schema_version: u32) {
        self.last_offset = offset;
        self.count += 1;
        self.min_timestamp = self.min_timestamp.min(timestamp);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.schema_versions.insert(schema_version);
    }
}

/// RFC 3339 with milliseconds in UTC, the `_timestamp` of JSON lines.
pub fn format_timestamp(millis: i64) -> String {
    DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests;
