//! `_metadata.json`: the index of one date partition, and the rules that keep it exactly-once.
//!
//! Only what the metadata lists is part of the dataset. Within one date partition and Kafka partition
//! the listed files have disjoint offset ranges, and a listed file holds every record of that date in
//! its range except those listed under `dlq` (sent to the dead-letter topic). So an offset is landed
//! exactly when [`DatePartitionMetadata::covers`] says so, and an update that would list an offset twice
//! is refused with a [`MergeConflict`] — the writer then re-plans against the fresh metadata.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::layout::{FileFormat, IngestionDate};
use crate::names::DatasetName;

/// Version of this document's shape; readers refuse versions they do not know.
pub const METADATA_FORMAT_VERSION: u32 = 1;

/// The `_metadata.json` of one `ingestion_date=` folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatePartitionMetadata {
    pub format_version: u32,
    pub dataset: DatasetName,
    pub ingestion_date: IngestionDate,
    /// Incremented by every successful update.
    pub revision: u64,
    pub updated_at: DateTime<Utc>,
    /// Sorted by (partition, first_offset).
    pub files: Vec<FileEntry>,
    /// Records of this date sent to the DLQ instead of a file; sorted by (partition, offset).
    #[serde(default)]
    pub dlq: Vec<DlqEntry>,
}

/// One data file of the date partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the date folder (see [`super::layout::DataFileName`]).
    pub path: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub record_count: u64,
    pub bytes: u64,
    /// `crc32c:<8 hex>` of the file's bytes (see [`file_checksum`]); `sha256:<64 hex>` in entries of earlier
    /// writers.
    pub checksum: String,
    pub format: FileFormat,
    /// Contract versions of the records in the file, ascending.
    pub schema_versions: Vec<u32>,
    pub min_timestamp: DateTime<Utc>,
    pub max_timestamp: DateTime<Utc>,
    /// Program and version that wrote the file, e.g. `streamlake-consumer/0.1.0`.
    pub writer_version: String,
    pub written_at: DateTime<Utc>,
}

/// A record of this date that went to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqEntry {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: DateTime<Utc>,
    /// The `error.type` header of the DLQ record.
    pub error_type: String,
}

/// What one writer wants to add in one atomic update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Landing {
    pub files: Vec<FileEntry>,
    pub dlq: Vec<DlqEntry>,
}

impl Landing {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dlq.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeConflict {
    #[error(
        "file {new} (partition {partition}, offsets {first_offset}..={last_offset}) overlaps the listed file \
         {existing}"
    )]
    FileOverlap {
        new: String,
        existing: String,
        partition: i32,
        first_offset: i64,
        last_offset: i64,
    },
    #[error("file {new} spans offset {offset} of partition {partition}, which is listed as sent to the DLQ")]
    FileSpansDlq {
        new: String,
        partition: i32,
        offset: i64,
    },
    #[error("offset {offset} of partition {partition} is already landed; it cannot also go to the DLQ")]
    DlqAlreadyCovered { partition: i32, offset: i64 },
    #[error("file entry {path} is inconsistent: {reason}")]
    InvalidEntry { path: String, reason: String },
}

/// The outcome of planning a writer's records against the metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LandingPlan {
    /// Indexes (into the planned offsets) of the records still to land, cut into runs. A run never spans
    /// a listed file or a listed DLQ offset, so a file written from a run can always be listed.
    pub runs: Vec<Vec<usize>>,
    /// Records skipped because the metadata already lists them.
    pub already_landed: usize,
}

impl DatePartitionMetadata {
    pub fn new(dataset: DatasetName, ingestion_date: IngestionDate, now: DateTime<Utc>) -> Self {
        Self {
            format_version: METADATA_FORMAT_VERSION,
            dataset,
            ingestion_date,
            revision: 0,
            updated_at: now,
            files: Vec::new(),
            dlq: Vec::new(),
        }
    }

    /// The files of one Kafka partition, in offset order.
    pub fn partition_files(&self, partition: i32) -> &[FileEntry] {
        let start = self.files.partition_point(|f| f.partition < partition);
        let end = self.files.partition_point(|f| f.partition <= partition);
        &self.files[start..end]
    }

    /// The listed file whose offset range contains `offset`, if any.
    pub fn file_containing(&self, partition: i32, offset: i64) -> Option<&FileEntry> {
        let files = self.partition_files(partition);
        let after = files.partition_point(|f| f.first_offset <= offset);
        after
            .checked_sub(1)
            .map(|i| &files[i])
            .filter(|f| f.last_offset >= offset)
    }

    /// The DLQ entries of one Kafka partition, by offset.
    fn partition_dlq(&self, partition: i32) -> &[DlqEntry] {
        let start = self.dlq.partition_point(|d| d.partition < partition);
        let end = self.dlq.partition_point(|d| d.partition <= partition);
        &self.dlq[start..end]
    }

    pub fn dlq_contains(&self, partition: i32, offset: i64) -> bool {
        self.dlq
            .binary_search_by(|d| (d.partition, d.offset).cmp(&(partition, offset)))
            .is_ok()
    }

    /// Whether the record at (`partition`, `offset`) of this date is already landed (file or DLQ).
    pub fn covers(&self, partition: i32, offset: i64) -> bool {
        self.file_containing(partition, offset).is_some() || self.dlq_contains(partition, offset)
    }

    /// Splits a writer's records of one Kafka partition into what still has to land.
    ///
    /// `offsets` are the ascending offsets of the records (bound for a file or the DLQ alike). Records
    /// already covered are skipped; the rest is cut wherever a run would span a listed file or DLQ offset.
    /// One pass: the offsets ascend, so the listed files and DLQ offsets are walked alongside them.
    pub fn plan(&self, partition: i32, offsets: &[i64]) -> LandingPlan {
        let files = self.partition_files(partition);
        let dlq = self.partition_dlq(partition);
        let mut plan = LandingPlan::default();
        let mut current: Vec<usize> = Vec::new();
        // Cursors: the first file not ending below the offset, the first file not starting below it, and
        // the first DLQ offset not below it. The files starting below and the DLQ offsets below are the
        // fences below the offset: a run may not contain one.
        let (mut file, mut started, mut sent) = (0, 0, 0);
        let mut run_below = 0;
        for (i, &offset) in offsets.iter().enumerate() {
            while files.get(file).is_some_and(|f| f.last_offset < offset) {
                file += 1;
            }
            while files.get(started).is_some_and(|f| f.first_offset < offset) {
                started += 1;
            }
            while dlq.get(sent).is_some_and(|d| d.offset < offset) {
                sent += 1;
            }
            // Files are sorted by first offset: if the first one not ending below does not start at or
            // below the offset, no later one does.
            let in_file = files.get(file).is_some_and(|f| f.first_offset <= offset);
            if in_file || dlq.get(sent).is_some_and(|d| d.offset == offset) {
                plan.already_landed += 1;
                continue;
            }
            let below = started + sent;
            if !current.is_empty() && below != run_below {
                plan.runs.push(std::mem::take(&mut current));
            }
            run_below = below;
            current.push(i);
        }
        if !current.is_empty() {
            plan.runs.push(current);
        }
        plan
    }

    /// Checks a landing against the listed entries without changing anything.
    pub fn check(&self, landing: &Landing) -> Result<(), MergeConflict> {
        for (i, file) in landing.files.iter().enumerate() {
            validate_entry(file)?;
            if self.files.iter().any(|f| f.path == file.path) {
                continue; // the same bytes are already listed
            }
            let overlapping = self
                .partition_files(file.partition)
                .iter()
                .chain(
                    landing.files[..i]
                        .iter()
                        .filter(|f| f.partition == file.partition),
                )
                .find(|f| f.first_offset <= file.last_offset && file.first_offset <= f.last_offset);
            if let Some(existing) = overlapping {
                return Err(MergeConflict::FileOverlap {
                    new: file.path.clone(),
                    existing: existing.path.clone(),
                    partition: file.partition,
                    first_offset: file.first_offset,
                    last_offset: file.last_offset,
                });
            }
            // A listed DLQ offset inside a new file could be in the file too: its writer saw other verdicts.
            let dlq_inside = self.dlq.iter().find(|d| {
                d.partition == file.partition && (file.first_offset..=file.last_offset).contains(&d.offset)
            });
            if let Some(d) = dlq_inside {
                return Err(MergeConflict::FileSpansDlq {
                    new: file.path.clone(),
                    partition: d.partition,
                    offset: d.offset,
                });
            }
        }
        for entry in &landing.dlq {
            if self.dlq_contains(entry.partition, entry.offset) {
                continue; // already listed as sent
            }
            if self.file_containing(entry.partition, entry.offset).is_some() {
                return Err(MergeConflict::DlqAlreadyCovered {
                    partition: entry.partition,
                    offset: entry.offset,
                });
            }
        }
        Ok(())
    }

    /// Adds a landing in one step, or changes nothing and says why. Entries already listed are kept once.
    pub fn apply(&mut self, landing: &Landing, now: DateTime<Utc>) -> Result<(), MergeConflict> {
        self.check(landing)?;
        for file in &landing.files {
            if !self.files.iter().any(|f| f.path == file.path) {
                self.files.push(file.clone());
            }
        }
        for entry in &landing.dlq {
            if !self.dlq_contains(entry.partition, entry.offset) {
                self.dlq.push(entry.clone());
            }
        }
        self.files.sort_by_key(|f| (f.partition, f.first_offset));
        self.dlq.sort_by_key(|d| (d.partition, d.offset));
        self.dlq.dedup_by_key(|d| (d.partition, d.offset));
        self.revision += 1;
        self.updated_at = now;
        Ok(())
    }

    /// Every broken invariant of this document; empty when it is sound. For checks and tests.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.format_version != METADATA_FORMAT_VERSION {
            problems.push(format!("unknown format_version {}", self.format_version));
        }
        for file in &self.files {
            if let Err(e) = validate_entry(file) {
                problems.push(e.to_string());
            }
        }
        for pair in self.files.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if (a.partition, a.first_offset) > (b.partition, b.first_offset) {
                problems.push(format!("files {} and {} are out of order", a.path, b.path));
            }
            if a.partition == b.partition && b.first_offset <= a.last_offset {
                problems.push(format!("files {} and {} overlap", a.path, b.path));
            }
        }
        for pair in self.dlq.windows(2) {
            if (pair[0].partition, pair[0].offset) >= (pair[1].partition, pair[1].offset) {
                problems.push(format!(
                    "dlq entries (partition {}, offset {}) are duplicated or out of order",
                    pair[1].partition, pair[1].offset
                ));
            }
        }
        problems
    }

    /// Records in files plus records sent to the DLQ, for one Kafka partition.
    pub fn landed_count(&self, partition: i32) -> u64 {
        let in_files: u64 = self
            .partition_files(partition)
            .iter()
            .map(|f| f.record_count)
            .sum();
        in_files + self.dlq.iter().filter(|d| d.partition == partition).count() as u64
    }
}

/// The `checksum` of a [`FileEntry`]: `crc32c:<8 hex>`, the CRC32C (Castagnoli) of the file's bytes,
/// big-endian — the checksum GCS keeps for every object, and ~7x cheaper than SHA-256 here (a pass of the
/// hash over every landed byte was 14% of the consumer's CPU for JSON lines).
pub fn file_checksum(data: &[u8]) -> String {
    let mut checksum = FileChecksum::default();
    checksum.update(data);
    checksum.finish()
}

/// [`file_checksum`] of a file whose bytes come in pieces, in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileChecksum(u32);

impl FileChecksum {
    pub fn update(&mut self, piece: &[u8]) {
        self.0 = crc32c::crc32c_append(self.0, piece);
    }

    pub fn finish(self) -> String {
        format!("{CRC32C_PREFIX}{:08x}", self.0)
    }
}

const CRC32C_PREFIX: &str = "crc32c:";
const SHA256_PREFIX: &str = "sha256:";

/// `data`'s checksum in the algorithm `listed` names, to compare with it: `crc32c:` as written now, or
/// `sha256:` as earlier writers wrote it. An unknown algorithm gets [`file_checksum`] (which then differs).
pub fn checksum_as_listed(listed: &str, data: &[u8]) -> String {
    if listed.starts_with(SHA256_PREFIX) {
        let hex: String = Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect();
        format!("{SHA256_PREFIX}{hex}")
    } else {
        file_checksum(data)
    }
}

fn validate_entry(file: &FileEntry) -> Result<(), MergeConflict> {
    let invalid = |reason: String| MergeConflict::InvalidEntry {
        path: file.path.clone(),
        reason,
    };
    if file.first_offset < 0 || file.last_offset < file.first_offset {
        return Err(invalid(format!(
            "offset range {}..={} is empty",
            file.first_offset, file.last_offset
        )));
    }
    let span = (file.last_offset - file.first_offset) as u64 + 1;
    if file.record_count == 0 || file.record_count > span {
        return Err(invalid(format!(
            "{} records cannot fill an offset span of {span}",
            file.record_count
        )));
    }
    if file.min_timestamp > file.max_timestamp {
        return Err(invalid("min_timestamp is after max_timestamp".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
