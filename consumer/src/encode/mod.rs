//! Turning a run of records into the bytes of one data file and its metadata entry.
//!
//! Records are classified and written one at a time, so a parsed record lives only while it is encoded.
//! The bytes depend only on the records and the format settings: the same run always gives the same
//! file, the same digest, and the same name.
//!
//! A file is built in memory and uploaded after, or — JSON lines to the `file://` store — streamed to
//! the store while it is built and put in place under its name at the end ([`FileSink`]): a landing
//! then holds its records and [`STREAMED_FILE_MEMORY`] instead of the whole file as well.

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
use streamlake_core::rawzone::columns::{ColumnsError, ParquetColumns};
use streamlake_core::rawzone::store::local::LocalStore;
use streamlake_core::rawzone::{
    DataFileName, FileEntry, FileFormat, RawZoneStore, StoreError, file_checksum,
};

use crate::classify::{Classifier, Rejection, ValidEvent};
use crate::record::SourceRecord;

pub use self::parquet::ParquetCompression;
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
    Schema(#[from] ColumnsError),
    /// Writing a streamed file to the store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Memory a landing holds for a file it streams: the buffer of `jsonl::SPILL_BYTES` and room for a
/// line that overflows it (a record of up to 1 MiB, the default size limit) without regrowing.
pub const STREAMED_FILE_MEMORY: usize = 2 * jsonl::SPILL_BYTES + 64 * 1024;

/// Where an encoded file goes.
#[derive(Debug, Clone, Copy)]
pub enum FileSink<'a> {
    /// Built whole in memory, to be uploaded after ([`EncodedFile::data`]).
    Memory,
    /// Streamed to this store's directory `dir_key` while it is built (JSON lines only; other formats
    /// are built in memory).
    Local { store: &'a LocalStore, dir_key: &'a str },
}

/// A file ready to upload, or already in place.
#[derive(Debug, Clone)]
pub struct EncodedFile {
    pub name: DataFileName,
    /// The file's bytes; `None` when it was streamed to the store ([`FileSink::Local`]) and is in place
    /// under its name already.
    pub data: Option<Bytes>,
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

    /// Whether files for `store` are streamed to it as they are built ([`FileSink::Local`]).
    pub fn streams_to(&self, store: &RawZoneStore) -> bool {
        self.columns.is_none() && store.as_local().is_some()
    }

    /// Encodes a run into a file built in memory.
    pub fn encode_run(
        &self,
        partition: i32,
        records: &[&SourceRecord],
        classifier: &Classifier,
    ) -> Result<EncodedRun, EncodeError> {
        self.encode_run_into(partition, records, classifier, FileSink::Memory)
    }

    /// Encodes a run into a file that goes to `sink`. A streamed file is in place under its name when
    /// this returns; on an error, nothing of it is left.
    pub fn encode_run_into(
        &self,
        partition: i32,
        records: &[&SourceRecord],
        classifier: &Classifier,
        sink: FileSink<'_>,
    ) -> Result<EncodedRun, EncodeError> {
        let streamed = match sink {
            FileSink::Local { store, dir_key } if self.columns.is_none() => {
                Some(store.create_streamed(dir_key)?)
            }
            _ => None,
        };
        // The records' size plus the sink's columns: the size of plain JSON lines, more than the others.
        let expected: usize = records
            .iter()
            .map(|r| r.payload.as_ref().map_or(0, Bytes::len) + 160)
            .sum();
        let capacity = if streamed.is_some() {
            expected.min(STREAMED_FILE_MEMORY)
        } else if self.format == FileFormat::Jsonl {
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
            None => FormatWriter::Jsonl(Box::new(jsonl::JsonlWriter::new(
                self.format,
                buffer,
                start,
                streamed,
            )?)),
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
            // Nothing valid: no file (a streamed one is dropped with the writer, leaving nothing).
            return Ok(EncodedRun { file: None, rejected });
        };
        let finished = match writer {
            FormatWriter::Jsonl(w) => w.finish()?,
            FormatWriter::Parquet(w) => jsonl::Finished::Memory {
                buffer: w.finish()?,
                start,
            },
        };
        let file = match finished {
            jsonl::Finished::Memory { buffer, start } => {
                let data = self.buffers.freeze(buffer, start);
                let (checksum, bytes) = (file_checksum(&data), data.len() as u64);
                let (name, entry) = self.describe(partition, stats, checksum, bytes);
                EncodedFile {
                    name,
                    data: Some(data),
                    entry,
                }
            }
            jsonl::Finished::Streamed {
                file,
                buffer,
                start,
                checksum,
                bytes,
            } => {
                let (name, entry) = self.describe(partition, stats, checksum.finish(), bytes);
                let placed = file.finish(&buffer[start..], &entry.path);
                self.buffers.give_back(buffer);
                placed?;
                EncodedFile {
                    name,
                    data: None,
                    entry,
                }
            }
        };
        Ok(EncodedRun {
            file: Some(file),
            rejected,
        })
    }

    fn describe(
        &self,
        partition: i32,
        stats: RunStats,
        checksum: String,
        bytes: u64,
    ) -> (DataFileName, FileEntry) {
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
            bytes,
            checksum,
            format: self.format,
            schema_versions: stats.schema_versions.into_iter().collect(),
            min_timestamp: millis(stats.min_timestamp),
            max_timestamp: millis(stats.max_timestamp),
            writer_version: self.writer_version.clone(),
            written_at: Utc::now(),
        };
        (name, entry)
    }
}

enum FormatWriter {
    Jsonl(Box<jsonl::JsonlWriter>),
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
            Self::Jsonl(w) => w.push(partition, offset, event, payload),
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

#[cfg(test)]
mod tests;
