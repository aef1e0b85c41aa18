//! Reading and updating a date partition's `_metadata.json` with optimistic concurrency.
//!
//! Several writers (consumer replicas, a backfill Job) may land files in the same date partition at
//! once. Each update reads the document with its version, applies a [`Landing`] to a copy and writes it
//! back only if the version is unchanged; if another writer got there first, it re-reads and re-applies.
//! No update is lost, and none lists an offset twice: that shows up as a [`MergeConflict`] instead.

use bytes::Bytes;
use chrono::Utc;

use super::layout::{IngestionDate, RawZoneLayout};
use super::metadata::{DatePartitionMetadata, Landing, METADATA_FORMAT_VERSION, MergeConflict};
use super::store::{ObjectVersion, RawZoneStore, StoreError};

/// Compare-and-swap rounds lost in a row before an update gives up (and is retried later by the caller).
pub const MAX_COMMIT_ATTEMPTS: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{key} is not valid raw-zone metadata (left untouched): {source}")]
    Corrupt { key: String, source: serde_json::Error },
    #[error("{key} describes dataset {found} date {found_date}, not the partition it is stored in")]
    Misplaced {
        key: String,
        found: String,
        found_date: IngestionDate,
    },
    #[error("{key} has format_version {found}; this program understands {METADATA_FORMAT_VERSION}")]
    UnknownFormat { key: String, found: u32 },
    #[error("{key}: lost {MAX_COMMIT_ATTEMPTS} concurrent updates in a row")]
    Contended { key: String },
}

impl MetadataError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            // Someone may repair or roll back the document; the caller keeps its records until then.
            Self::Corrupt { .. } | Self::Misplaced { .. } | Self::UnknownFormat { .. } => true,
            Self::Contended { .. } => true,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Store(e) => e.kind(),
            Self::Corrupt { .. } => "metadata_corrupt",
            Self::Misplaced { .. } => "metadata_misplaced",
            Self::UnknownFormat { .. } => "metadata_format",
            Self::Contended { .. } => "metadata_contended",
        }
    }
}

/// A metadata document and the version it was read at (`None`: it did not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataSnapshot {
    pub doc: DatePartitionMetadata,
    pub version: Option<ObjectVersion>,
}

/// What became of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Listed; `lost_races` counts the compare-and-swaps another writer won first (each was re-applied).
    Committed { lost_races: u32 },
    /// The landing would list an offset twice against the current document (now in the snapshot).
    Conflict(MergeConflict),
}

/// Reads the metadata of a date partition; a missing document is an empty one.
pub async fn load_metadata(
    store: &RawZoneStore,
    layout: &RawZoneLayout,
    date: IngestionDate,
) -> Result<MetadataSnapshot, MetadataError> {
    let key = layout.metadata_key(date);
    let Some(current) = store.get(&key).await? else {
        return Ok(MetadataSnapshot {
            doc: DatePartitionMetadata::new(layout.dataset().clone(), date, Utc::now()),
            version: None,
        });
    };
    let doc = parse_metadata(&key, &current.data)?;
    if doc.dataset != *layout.dataset() || doc.ingestion_date != date {
        return Err(MetadataError::Misplaced {
            key,
            found: doc.dataset.to_string(),
            found_date: doc.ingestion_date,
        });
    }
    Ok(MetadataSnapshot {
        doc,
        version: Some(current.version),
    })
}

/// Parses a `_metadata.json`, refusing format versions this program does not know.
pub fn parse_metadata(key: &str, data: &[u8]) -> Result<DatePartitionMetadata, MetadataError> {
    let doc: DatePartitionMetadata =
        serde_json::from_slice(data).map_err(|source| MetadataError::Corrupt {
            key: key.to_owned(),
            source,
        })?;
    if doc.format_version != METADATA_FORMAT_VERSION {
        return Err(MetadataError::UnknownFormat {
            key: key.to_owned(),
            found: doc.format_version,
        });
    }
    Ok(doc)
}

/// Adds `landing` to the date partition's metadata with compare-and-swap; `snapshot` is kept current.
pub async fn commit_landing(
    store: &RawZoneStore,
    layout: &RawZoneLayout,
    snapshot: &mut MetadataSnapshot,
    landing: &Landing,
) -> Result<CommitOutcome, MetadataError> {
    let date = snapshot.doc.ingestion_date;
    let key = layout.metadata_key(date);
    for lost_races in 0..MAX_COMMIT_ATTEMPTS {
        let mut next = snapshot.doc.clone();
        if let Err(conflict) = next.apply(landing, Utc::now()) {
            return Ok(CommitOutcome::Conflict(conflict));
        }
        let body = serde_json::to_vec_pretty(&next).map_err(|source| MetadataError::Corrupt {
            key: key.clone(),
            source,
        })?;
        match store
            .put_if(&key, Bytes::from(body), snapshot.version.as_ref())
            .await
        {
            Ok(version) => {
                *snapshot = MetadataSnapshot {
                    doc: next,
                    version: Some(version),
                };
                return Ok(CommitOutcome::Committed { lost_races });
            }
            Err(StoreError::PreconditionFailed { .. }) => {
                *snapshot = load_metadata(store, layout, date).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(MetadataError::Contended { key })
}
