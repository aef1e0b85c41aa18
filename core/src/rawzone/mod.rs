//! The raw zone: where the consumer lands Kafka records, and what DqCheck and backfill read back.
//!
//! ```text
//! <store>/raw/dataset=<name>/ingestion_date=YYYY-MM-DD/
//!     _metadata.json                                               the index: only what it lists is data
//!     p00000-o00000000000000000000-o00000000000000000999-<digest>.jsonl.gz
//!     p00001-o00000000000000000000-o00000000000000000987-<digest>.parquet
//! ```
//!
//! - [`layout`]: folders and file names. The date is the UTC day of the Kafka record timestamp; a file name
//!   carries the Kafka partition, the first and last offset, and a digest of the file's bytes.
//! - [`metadata`]: `_metadata.json` — every file with its offset range, record count, bytes, checksum,
//!   schema versions, min/max record timestamps and writer version, plus the records sent to the DLQ.
//!   Within a (date, Kafka partition) listed files never overlap, so each offset is listed at most once.
//! - [`commit`]: updates of `_metadata.json` by compare-and-swap, safe with several writers at once.
//! - [`store`]: the `file://` and `gs://` backends.
//! - [`columns`]: the data files' columns (their Arrow schema with the feature `files`); `readback`
//!   (feature `files`): every format read back as JSON rows.

pub mod columns;
pub mod commit;
pub mod layout;
pub mod metadata;
#[cfg(feature = "files")]
pub mod readback;
pub mod store;

pub use commit::{
    CommitOutcome, MetadataError, MetadataSnapshot, commit_landing, load_metadata, parse_metadata,
};
pub use layout::{DataFileName, FileFormat, IngestionDate, LayoutError, RawZoneLayout};
pub use metadata::{
    DatePartitionMetadata, DlqEntry, FileChecksum, FileEntry, Landing, LandingPlan, MergeConflict,
    checksum_as_listed, file_checksum,
};
pub use store::{ObjectVersion, RawZoneStore, StoreError, StoreLocation};
