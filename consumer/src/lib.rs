//! The StreamLake consumer: lands `streamlake.<dataset>.raw` in the raw zone, exactly once.
//!
//! # How a record lands
//! 1. The poll thread reads records (group `streamlake-<dataset>-sink`, cooperative-sticky, no automatic
//!    commits or offset stores) and appends each to the open buffer of its (Kafka partition, ingestion
//!    date). A buffer is sealed into a *unit* by record count, bytes or age ([`buffer`]).
//! 2. A landing task ([`landing`]) plans the unit against the date partition's `_metadata.json`, classifies
//!    and encodes the records ([`classify`], [`encode`]), sends poison pills to `streamlake.<dataset>.dlq`
//!    and waits for the broker's acknowledgement, uploads the data files (JSON lines to a `file://` raw
//!    zone are streamed to a hidden temporary file while they are encoded, then renamed into place), and
//!    lists files and DLQ'd offsets in the metadata with one compare-and-swap. It retries with capped, jittered backoff until
//!    it succeeds.
//! 3. Only then is the unit durable. Offsets are committed per partition up to the first record whose
//!    unit is not durable ([`tracker`]), so a later success never moves the offset past an earlier
//!    failure. Every `--commit-interval` the positions that moved are committed asynchronously (the poll
//!    loop never waits for the coordinator), and all of them again every 10 s; revokes and SIGTERM drain
//!    held records with a deadline, then a revoke commits synchronously and SIGTERM commits and waits up to
//!    5 s for the broker to confirm it (a broker that is away must not hold the exit past a pod's grace).
//!
//! # Exactly once in the raw zone
//! Re-reading is normal: after a crash, a rebalance, a replay or a backfill, records that already landed
//! arrive again. Three rules keep every (partition, offset) in the raw zone or the DLQ exactly once:
//!
//! - **The metadata is the commit point.** A data file is part of the dataset only once
//!   `_metadata.json` lists it; a file uploaded by a writer that died before listing it is ignored by
//!   readers (and rewritten under the same name by the re-read, see below). Within a date partition and
//!   Kafka partition, listed files have disjoint offset ranges, and a listed file holds every record of
//!   its date in its range except the offsets listed as sent to the DLQ.
//! - **Re-reads are planned against the metadata.** Before encoding, a unit drops the records whose
//!   offsets the metadata already covers, and cuts the rest into runs that never span a listed file or
//!   DLQ offset ([`streamlake_core::rawzone::DatePartitionMetadata::plan`]). So a re-read lands only what
//!   is missing, and every planned file can be listed.
//! - **Listing is a compare-and-swap that refuses doubles.** The metadata is replaced only if it is
//!   still the version that was read (a GCS generation precondition; a `flock`ed compare-and-swap on a
//!   local disk). If another writer — a second replica, a backfill Job, a zombie that lost its partition
//!   — listed some of the same offsets meanwhile, the update is refused as a conflict, the unit is
//!   re-planned against the fresh document and only the remainder lands. Uploaded files that ended up
//!   unlisted are removed (best effort; they are never read).
//!
//! File names carry the partition, the first and last offset, and a digest of the bytes (their CRC32C).
//! Encoding is deterministic and file boundaries are counted from the committed offset, so reprocessing
//! after a crash produces the same objects under the same names; an existing name is overwritten with
//! different bytes only if two files of the same offsets share a CRC32C (1 in 2^32, and only writers
//! racing on unlisted offsets can meet it). Under memory pressure buffers are sealed early, so boundaries
//! may differ on a re-read; the planning rule above still lands each offset once.
//!
//! One window remains for the DLQ *topic*: if the process dies after the broker acknowledged a DLQ record
//! but before the metadata listed it, the re-read sends it again. The metadata lists it once, and each
//! DLQ record carries `source.partition`/`source.offset`, so DLQ readers can drop the copy.
//!
//! # Memory and failures
//! Records held in open buffers and in-flight landings (counted with their encoded files, or a streamed
//! file's buffer of at most [`encode::STREAMED_FILE_MEMORY`]) are bounded by `--max-buffered-bytes`. At
//! the budget the poll loop stops taking records, so librdkafka's bounded queue fills and it stops
//! fetching; while memory is short every idle landing slot takes the largest open buffer, since open
//! buffers (one per partition and date) may hold the whole budget below the size that seals them. A
//! hold that lasts, or any failing landing (storage or DLQ unavailable), pauses the assigned partitions
//! instead ([`backpressure`]). `/readyz` reports a failing landing; it
//! resumes by itself when storage returns. Records that name a contract version newer than every one
//! the consumer has are held the same way for up to `--newer-contract-wait` (a contract rollout in
//! progress) before they are dead-lettered ([`newer`]).
//!
//! # Bounded mode
//! With `--bounded` the consumer assigns the requested partitions itself (no group membership, no
//! commits), reads each from its start to its end offset (or times), lands them with the same rules, and
//! exits 0 once every range is durable.

pub mod backoff;
pub mod backpressure;
pub mod bounded;
pub mod buffer;
pub mod classify;
pub mod config;
pub mod context;
pub mod dlq;
pub mod encode;
pub mod health;
pub mod http;
pub mod landing;
pub mod malloc;
pub mod membership;
pub mod metacache;
pub mod metrics;
pub mod newer;
pub mod record;
pub mod run;
pub mod sink;
pub mod tracker;
