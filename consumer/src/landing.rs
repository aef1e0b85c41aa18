//! Landing one sealed unit: plan against `_metadata.json`, send poison pills to the DLQ, upload the
//! files (or stream them to a `file://` store while they are encoded), and list everything in the
//! metadata with one compare-and-swap. Retried with capped, jittered backoff until it succeeds; the
//! unit's offsets are released for commit only after that. A retry encodes again, so a streamed file is
//! written again (the same bytes under the same name). A record of a contract version newer than the
//! consumer's fails the landing the same way for a while ([`crate::newer`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use chrono::DateTime;
use rdkafka::error::KafkaError;
use streamlake_core::rawzone::{
    CommitOutcome, DlqEntry, Landing, MetadataError, RawZoneLayout, RawZoneStore, StoreError,
};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::buffer::SealedUnit;
use crate::classify::Classifier;
use crate::dlq::DlqWriter;
use crate::encode::{EncodeError, EncodedFile, EncodedRun, Encoder, FileSink};
use crate::health::Health;
use crate::metacache::MetadataCache;
use crate::metrics::{ErrorTypeLabel, FailureLabel, Metrics};
use crate::newer::{Held, NewerContracts};
use crate::tracker::UnitId;

/// Everything a landing needs; shared by all landing tasks.
#[derive(Debug)]
pub struct LandingContext {
    pub store: RawZoneStore,
    pub layout: RawZoneLayout,
    pub classifier: Classifier,
    pub encoder: Encoder,
    pub dlq: DlqWriter,
    pub metadata: MetadataCache,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub backoff: Backoff,
    pub newer_contracts: NewerContracts,
}

#[derive(Debug, thiserror::Error)]
pub enum LandingError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("uploading {key}: {source}")]
    Upload { key: String, source: StoreError },
    #[error("sending offset {offset} to {topic}: {source}")]
    Dlq {
        topic: String,
        offset: i64,
        source: KafkaError,
    },
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("encoding task failed: {0}")]
    Task(String),
    #[error(
        "records of contract {dataset} v{version} arrived (the first at offset {offset}); this consumer has versions \
         up to v{newest}: holding them for a consumer that has v{version} (a rollout), {waited}s of {wait}s so far, \
         then they go to the DLQ",
        waited = .held.waited.as_secs(), wait = .held.wait.as_secs(), version = .held.version
    )]
    NewerContract {
        dataset: String,
        newest: u32,
        offset: i64,
        held: Held,
    },
}

impl LandingError {
    fn label(&self) -> FailureLabel {
        match self {
            Self::Metadata(e) => FailureLabel {
                stage: "metadata",
                kind: e.kind(),
            },
            Self::Upload { source, .. } => FailureLabel {
                stage: "upload",
                kind: source.kind(),
            },
            Self::Dlq { .. } => FailureLabel {
                stage: "dlq",
                kind: "kafka",
            },
            // A streamed file failed to write: a storage failure, like an upload's.
            Self::Encode(EncodeError::Store(source)) => FailureLabel {
                stage: "upload",
                kind: source.kind(),
            },
            Self::Encode(_) => FailureLabel {
                stage: "encode",
                kind: "encode",
            },
            Self::Task(_) => FailureLabel {
                stage: "encode",
                kind: "task",
            },
            Self::NewerContract { .. } => FailureLabel {
                stage: "classify",
                kind: "newer_contract",
            },
        }
    }
}

/// A unit whose records are all durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    pub unit: UnitId,
    pub partition: i32,
    pub bytes: usize,
    pub files: usize,
    pub records: u64,
    pub dlq: usize,
    pub already_landed: usize,
}

/// What survives between attempts, so a retry neither re-sends a DLQ record nor re-uploads a file.
#[derive(Debug, Default)]
struct Progress {
    dlq_sent: BTreeSet<i64>,
    uploaded: BTreeSet<String>,
}

/// Lands `unit`, retrying until it succeeds.
pub async fn land(ctx: Arc<LandingContext>, unit: SealedUnit) -> Landed {
    let unit = Arc::new(unit);
    let mut progress = Progress::default();
    let mut attempt = 0u32;
    loop {
        match land_once(&ctx, &unit, &mut progress, attempt > 0).await {
            Ok(landed) => {
                ctx.health.landing_done(unit.id);
                return landed;
            }
            Err(error) => {
                let delay = ctx.backoff.next_delay(attempt);
                warn!(
                    partition = unit.partition, date = %unit.date, attempt, retry_in_ms = delay.as_millis() as u64,
                    "landing failed: {error}"
                );
                ctx.metrics.landing_failures.get_or_create(&error.label()).inc();
                ctx.health.landing_failed(unit.id, error.to_string());
                tokio::time::sleep(delay).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

async fn land_once(
    ctx: &Arc<LandingContext>,
    unit: &Arc<SealedUnit>,
    progress: &mut Progress,
    mut refresh: bool,
) -> Result<Landed, LandingError> {
    let started = Instant::now();
    let offsets: Vec<i64> = unit.records.iter().map(|r| r.offset).collect();
    loop {
        let plan = ctx
            .metadata
            .plan(unit.date, unit.partition, &offsets, refresh)
            .await?;
        refresh = false;
        let runs = encode_runs(ctx, unit, plan.runs).await?;
        hold_newer_contracts(ctx, unit, &runs)?;

        let mut landing = Landing::default();
        let mut files: Vec<&EncodedFile> = Vec::new();
        for (run, encoded) in &runs {
            for (index, rejection) in &encoded.rejected {
                let record = &unit.records[run[*index]];
                if !progress.dlq_sent.contains(&record.offset) {
                    ctx.dlq
                        .send(record, rejection)
                        .await
                        .map_err(|source| LandingError::Dlq {
                            topic: ctx.dlq.topic().to_owned(),
                            offset: record.offset,
                            source,
                        })?;
                    progress.dlq_sent.insert(record.offset);
                    let label = ErrorTypeLabel {
                        error_type: rejection.error_type.to_owned(),
                    };
                    ctx.metrics.dlq_records.get_or_create(&label).inc();
                }
                landing.dlq.push(DlqEntry {
                    partition: unit.partition,
                    offset: record.offset,
                    timestamp: DateTime::from_timestamp_millis(record.timestamp.unwrap_or(0))
                        .unwrap_or_default(),
                    error_type: rejection.error_type.to_owned(),
                });
            }
            if let Some(file) = &encoded.file {
                let name = file.name.to_string();
                match &file.data {
                    _ if progress.uploaded.contains(&name) => {}
                    Some(data) => {
                        let key = ctx.layout.data_file_key(unit.date, &name);
                        ctx.store
                            .put_immutable(&key, data.clone(), file.name.format.content_type())
                            .await
                            .map_err(|source| LandingError::Upload { key, source })?;
                        progress.uploaded.insert(name);
                    }
                    // Streamed: in place already.
                    None => {
                        progress.uploaded.insert(name);
                    }
                }
                landing.files.push(file.entry.clone());
                files.push(file);
            }
        }

        let landed = Landed {
            unit: unit.id,
            partition: unit.partition,
            bytes: unit.bytes,
            files: landing.files.len(),
            records: landing.files.iter().map(|f| f.record_count).sum(),
            dlq: landing.dlq.len(),
            already_landed: plan.already_landed,
        };
        if landing.is_empty() {
            ctx.metrics
                .records_already_landed
                .inc_by(plan.already_landed as u64);
            return Ok(landed);
        }
        let uploaded: Vec<String> = progress.uploaded.iter().cloned().collect();
        let (outcome, listed) = ctx.metadata.commit(unit.date, &landing, &uploaded).await?;
        if let CommitOutcome::Committed { lost_races } = outcome {
            ctx.metrics.metadata_races.inc_by(u64::from(lost_races));
        }
        if let CommitOutcome::Conflict(conflict) = outcome {
            info!(partition = unit.partition, date = %unit.date, "another writer landed some of these records; re-planning: {conflict}");
            continue;
        }
        remove_unlisted(ctx, unit, &uploaded, &listed).await;
        ctx.metrics
            .records_already_landed
            .inc_by(plan.already_landed as u64);
        ctx.metrics.files_written.inc_by(files.len() as u64);
        ctx.metrics.records_written.inc_by(landed.records);
        ctx.metrics
            .bytes_written
            .inc_by(files.iter().map(|f| f.entry.bytes).sum());
        ctx.metrics.write_seconds.observe(started.elapsed().as_secs_f64());
        debug!(partition = unit.partition, date = %unit.date, files = landed.files, records = landed.records, dlq = landed.dlq, "landed");
        return Ok(landed);
    }
}

/// Fails the landing, before anything is dead-lettered or listed, while one of its rejected records names
/// a contract version newer than this consumer's that is still held ([`crate::newer`]).
fn hold_newer_contracts(
    ctx: &LandingContext,
    unit: &SealedUnit,
    runs: &[(Vec<usize>, EncodedRun)],
) -> Result<(), LandingError> {
    let now = Instant::now();
    for (run, encoded) in runs {
        for (index, rejection) in &encoded.rejected {
            let Some(version) = rejection.newer_version else {
                continue;
            };
            if let Some(held) = ctx.newer_contracts.hold(version, now) {
                let newest = ctx.classifier.latest_contract();
                return Err(LandingError::NewerContract {
                    dataset: newest.dataset().to_string(),
                    newest: newest.version(),
                    offset: unit.records[run[*index]].offset,
                    held,
                });
            }
        }
    }
    Ok(())
}

/// Encodes every run on the blocking pool: classification and compression are CPU work, and a streamed
/// file's writes block.
async fn encode_runs(
    ctx: &Arc<LandingContext>,
    unit: &Arc<SealedUnit>,
    runs: Vec<Vec<usize>>,
) -> Result<Vec<(Vec<usize>, EncodedRun)>, LandingError> {
    let (ctx, unit) = (ctx.clone(), unit.clone());
    tokio::task::spawn_blocking(move || {
        let dir_key = ctx.layout.date_prefix(unit.date);
        // The encoder streams only the formats it can (JSON lines); the others it builds in memory.
        let sink = match ctx.store.as_local() {
            Some(store) => FileSink::Local {
                store,
                dir_key: &dir_key,
            },
            None => FileSink::Memory,
        };
        runs.into_iter()
            .map(|run| {
                let records: Vec<_> = run.iter().map(|i| &unit.records[*i]).collect();
                let encoded = ctx
                    .encoder
                    .encode_run_into(unit.partition, &records, &ctx.classifier, sink)?;
                Ok((run, encoded))
            })
            .collect::<Result<Vec<_>, LandingError>>()
    })
    .await
    .map_err(|e| LandingError::Task(e.to_string()))?
}

/// Files uploaded by an earlier plan of this landing that ended up not listed: their records are listed
/// in other files now, so these names can never be listed. Removing them is best effort.
async fn remove_unlisted(ctx: &LandingContext, unit: &SealedUnit, uploaded: &[String], listed: &[bool]) {
    for (name, _) in uploaded.iter().zip(listed).filter(|(_, listed)| !**listed) {
        let key = ctx.layout.data_file_key(unit.date, name);
        if let Err(e) = ctx.store.delete(&key).await {
            warn!("could not remove the unlisted file {key} (harmless: readers only read listed files): {e}");
        }
    }
}
