//! The DlqInspection controller: plan the window (offsets into status) → read it, summarising and
//! redriving → write the report → write status.
//!
//! The operator reads the DLQ itself instead of in a Job: the read is bounded (at most `maxRecords`
//! records, counted and dropped one at a time; memory holds the counters, at most
//! [`summary::MAX_DISTINCT_MESSAGES`] messages and [`summary::MAX_LISTED`] report lines), runs on a
//! blocking thread off the async runtime while other resources keep reconciling, and needs only the
//! Kafka and lake access the operator already has. It is idempotent across restarts: the window is
//! fixed as offsets in status before anything is read, so a rerun reads the same records, and a
//! redrive never produces a record twice (see [`redrive`]). An inspection holds nothing outside its
//! own object and the lake, so it needs no finalizer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::Recorder;
use rdkafka::producer::FutureProducer;
use serde_json::json;
use streamlake_core::kafka::{KafkaArgs, ProducerArgs, producer_config};
use streamlake_core::offsets::{OffsetClient, OffsetError};
use streamlake_core::rawzone::RawZoneStore;

use crate::conditions::Ending;
use crate::controller::{self, Finished, Reporting};
use crate::crd::dlq_inspection::DlqInspectionPhase;
use crate::crd::{DlqInspection, DlqInspectionStatus, PartitionOffset, PartitionRange};
use crate::error::CommonError;
use crate::metrics::Metrics;

mod error;
pub mod read;
pub mod redrive;
pub mod request;
pub mod summary;

pub use error::Error;
use redrive::Redriver;
use request::{DlqRequest, Window, resolve_ranges};
use summary::Summary;

pub const KIND: &str = "DlqInspection";
/// Records in flight between the reading thread and the redrive.
const CHANNEL: usize = 64;

/// What every DlqInspection reconcile shares.
pub struct DlqContext {
    pub client: kube::Client,
    /// Blocking calls: use from `spawn_blocking`.
    pub offsets: Arc<OffsetClient>,
    /// Connection settings for the reading consumer and the redrive producer.
    pub kafka: KafkaArgs,
    /// Time limit of each Kafka call; a read with no progress for 3× this fails and is retried.
    pub kafka_timeout: Duration,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// The lake (reports and the redrive ledger), or why the operator has none.
    pub store: Result<RawZoneStore, String>,
}

impl std::fmt::Debug for DlqContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DlqContext").finish_non_exhaustive()
    }
}

/// Runs the DlqInspection controller until `shutdown` resolves. `namespace`: watch one, or all.
pub async fn run(
    ctx: DlqContext,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let watch = controller::watch::<DlqInspection>(&ctx.client, namespace.as_deref());
    controller::run(watch, reconcile, Arc::new(ctx), shutdown).await;
}

async fn reconcile(
    guard: Arc<DeserializeGuard<DlqInspection>>,
    ctx: Arc<DlqContext>,
) -> Result<Requeue, Error> {
    let work = |inspection| inspect(inspection, &ctx);
    controller::run_to_completion(&ctx.client, ctx.reporting(), &guard, work).await
}

impl DlqContext {
    fn reporting(&self) -> Reporting<'_> {
        Reporting {
            metrics: &self.metrics,
            recorder: &self.recorder,
            kind: KIND,
            action: "Reconcile",
        }
    }
}

impl Finished for DlqInspection {
    fn finished(&self) -> bool {
        let phase = self.status.as_ref().and_then(|s| s.common.phase);
        matches!(
            phase,
            Some(DlqInspectionPhase::Succeeded | DlqInspectionPhase::Failed)
        )
    }
}

/// The window as offsets, and where a redrive starts in the raw topic; or why there is none.
struct Plan {
    ranges: Vec<PartitionRange>,
    redrive_start: Vec<PartitionOffset>,
}

async fn inspect(inspection: &DlqInspection, ctx: &DlqContext) -> Result<Requeue, Error> {
    let (namespace, name) = (inspection.namespace().unwrap_or_default(), inspection.name_any());
    let mut status = inspection.status.clone().unwrap_or_default();
    status.common.observed_generation = inspection.metadata.generation;
    let request = match DlqRequest::from_spec(&inspection.spec) {
        Ok(request) => request,
        Err(problem) => {
            return finish(ctx, inspection, status, Err(format!("invalid spec: {problem}"))).await;
        }
    };
    let store = match &ctx.store {
        Ok(store) => store,
        Err(problem) => return finish(ctx, inspection, status, Err(problem.clone())).await,
    };
    // Planned by an earlier reconcile that did not finish: read the same offsets, and look for what it
    // may have redriven already.
    let resumed = status.common.phase == Some(DlqInspectionPhase::Running) && status.topic.is_some();
    if !resumed {
        let plan = match plan(ctx, &request).await? {
            Ok(plan) => plan,
            Err(problem) => return finish(ctx, inspection, status, Err(problem)).await,
        };
        status.common.phase = Some(DlqInspectionPhase::Running);
        status.common.reason = Some("Reading".into());
        status.common.message = Some(format!(
            "reading {} record(s) of {}",
            window_size(&plan.ranges),
            request.topic
        ));
        status.common.started_at = Some(Time(Timestamp::now()));
        status.topic = Some(request.topic.clone());
        status.window_records = Some(window_size(&plan.ranges));
        status.ranges = plan.ranges;
        status.redrive_topic = request.redrive.as_ref().map(|r| r.topic.clone());
        status.redrive_start_offsets = plan.redrive_start;
        status.progress = Some("reading".into());
        controller::write_status(&ctx.client, inspection, &status).await?;
        ctx.metrics.entered(KIND, "Running");
    }

    let own_id = inspection.uid().unwrap_or_default();
    let found = if resumed && request.redrive.is_some() {
        scan_own_redriven(ctx, &request, &status, &own_id).await?
    } else {
        BTreeSet::new()
    };
    let (summary, redriver) = read_and_redrive(
        ctx,
        &request,
        &status.ranges,
        store,
        &own_id,
        &found,
        &namespace,
        &name,
    )
    .await?;

    let key = format!(
        "reports/dlq/topic={}/{namespace}.{name}.{own_id}.json",
        request.topic
    );
    let now = Timestamp::now();
    let report = json!({
        "kind": KIND, "namespace": namespace, "name": name, "uid": own_id,
        "topic": request.topic, "generatedAt": now.to_string(), "spec": inspection.spec,
        "ranges": status.ranges, "windowRecords": status.window_records, "total": summary.total,
        "byErrorType": summary.by_error_type, "byErrorStage": summary.by_error_stage,
        "firstTimestampMs": summary.first_timestamp_ms, "lastTimestampMs": summary.last_timestamp_ms,
        "messages": summary.top_messages(summary::MAX_DISTINCT_MESSAGES),
        "otherMessages": summary.other_messages, "samples": summary.samples,
        "records": summary.listed, "recordsListed": summary.listed.len(),
        "redrive": redriver.as_ref().map(|r| json!({
            "topic": request.redrive.as_ref().map(|r| &r.topic), "redriven": r.0, "skipped": r.1, "records": r.2,
        })),
    });
    let body = serde_json::to_vec_pretty(&report).unwrap_or_default();
    store
        .put_immutable(&key, body.into(), "application/json")
        .await
        .map_err(CommonError::WriteReport)?;

    status.report = Some(format!("{}/{key}", store.location()));
    status.total = Some(summary.total);
    status.by_error_type = summary.by_error_type.clone();
    status.by_error_stage = summary.by_error_stage.clone();
    status.first_timestamp = summary.first_timestamp_ms.and_then(time_of);
    status.last_timestamp = summary.last_timestamp_ms.and_then(time_of);
    status.top_messages = summary.top_messages(summary::TOP_MESSAGES);
    status.samples = summary.samples.clone();
    let mut message = format!("{} record(s) in {}", summary.total, request.topic);
    if !summary.by_error_type.is_empty() {
        let types: Vec<String> = summary
            .by_error_type
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        message.push_str(&format!(" ({})", types.join(", ")));
    }
    let window = status.window_records.unwrap_or(summary.total);
    if window > summary.total {
        message.push_str(&format!(
            "; maxRecords stopped the read at {} of {window}",
            summary.total
        ));
    }
    if let Some((redriven, skipped, _)) = redriver {
        let skipped_total: i64 = skipped.values().sum();
        message.push_str(&format!(
            "; redriven {redriven} to {}, skipped {skipped_total}",
            status.redrive_topic.as_deref().unwrap_or("?")
        ));
        status.redriven = Some(redriven);
        status.redrive_skipped = skipped;
    }
    status.progress = Some(format!("{}/{window}", summary.total));
    finish(ctx, inspection, status, Ok(message)).await
}

fn window_size(ranges: &[PartitionRange]) -> i64 {
    ranges.iter().map(|r| r.end - r.start).sum()
}

fn time_of(ms: i64) -> Option<Time> {
    Timestamp::from_millisecond(ms).ok().map(Time)
}

/// Fixes the window as offsets. `Ok(Err(..))`: a problem a retry will not fix (a missing topic).
async fn plan(ctx: &DlqContext, request: &DlqRequest) -> Result<Result<Plan, String>, Error> {
    let offsets = ctx.offsets.clone();
    let (topic, window) = (request.topic.clone(), request.window);
    let raw_topic = request.redrive.as_ref().map(|r| r.topic.clone());
    let looked_up = tokio::task::spawn_blocking(move || -> Result<_, OffsetError> {
        let marks = offsets.watermarks(&topic)?;
        let (since, until) = match window {
            Window::Time { since_ms, until_ms } => (
                offsets.offsets_for_timestamp(&topic, since_ms)?,
                match until_ms {
                    Some(u) => offsets.offsets_for_timestamp(&topic, u)?,
                    None => BTreeMap::new(),
                },
            ),
            Window::Last(_) => (BTreeMap::new(), BTreeMap::new()),
        };
        let raw = raw_topic.map(|t| offsets.watermarks(&t)).transpose()?;
        Ok((marks, since, until, raw))
    })
    .await
    .map_err(CommonError::KafkaTask)?;
    let (marks, since, until, raw) = match looked_up {
        Ok(found) => found,
        Err(OffsetError::UnknownTopic { topic }) => {
            return Ok(Err(format!("topic {topic} does not exist")));
        }
        Err(e) => return Err(CommonError::ReadKafka(e).into()),
    };
    Ok(Ok(Plan {
        ranges: resolve_ranges(window, &marks, &since, &until),
        redrive_start: raw
            .unwrap_or_default()
            .into_iter()
            .map(|(partition, w)| PartitionOffset {
                partition,
                offset: w.high,
            })
            .collect(),
    }))
}

/// The DLQ positions of records this inspection already redrove: the raw topic from the offsets saved
/// before its first produce to its end, filtered by the `redrive.id` header.
async fn scan_own_redriven(
    ctx: &DlqContext,
    request: &DlqRequest,
    status: &DlqInspectionStatus,
    own_id: &str,
) -> Result<BTreeSet<(i32, i64)>, Error> {
    let Some(rule) = &request.redrive else {
        return Ok(BTreeSet::new());
    };
    let offsets = ctx.offsets.clone();
    let raw_topic = rule.topic.clone();
    let marks = tokio::task::spawn_blocking(move || offsets.watermarks(&raw_topic))
        .await
        .map_err(CommonError::KafkaTask)?
        .map_err(CommonError::ReadKafka)?;
    let ranges: Vec<PartitionRange> = status
        .redrive_start_offsets
        .iter()
        .filter_map(|start| {
            let end = marks.get(&start.partition)?.high;
            (end > start.offset).then_some(PartitionRange {
                partition: start.partition,
                start: start.offset,
                end,
            })
        })
        .collect();
    let config = ctx.kafka.client_config().map_err(Error::ProducerConfig)?;
    let (raw_topic, dlq_topic, own_id) = (rule.topic.clone(), request.topic.clone(), own_id.to_owned());
    let idle = ctx.kafka_timeout * 3;
    tokio::task::spawn_blocking(move || {
        let mut found = BTreeSet::new();
        read::read_ranges(&config, &raw_topic, &ranges, u64::MAX, idle, |m| {
            found.extend(redrive::own_redriven(&m, &own_id, &dlq_topic));
            true
        })
        .map(|_| found)
    })
    .await
    .map_err(CommonError::KafkaTask)?
    .map_err(Error::ReadRecords)
}

/// What a redrive did: redriven, skipped by reason, and the per-record listing for the report.
type RedriveOutcome = (i64, BTreeMap<String, i64>, Vec<redrive::RedriveEntry>);

/// Reads the window on a blocking thread, summarising every record; the selected ones stream to the
/// redrive here, each acknowledged by the broker before the next.
#[allow(clippy::too_many_arguments)]
async fn read_and_redrive(
    ctx: &DlqContext,
    request: &DlqRequest,
    ranges: &[PartitionRange],
    store: &RawZoneStore,
    own_id: &str,
    found: &BTreeSet<(i32, i64)>,
    namespace: &str,
    name: &str,
) -> Result<(Summary, Option<RedriveOutcome>), Error> {
    let config = ctx.kafka.client_config().map_err(Error::ProducerConfig)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(CHANNEL);
    let sender = request.redrive.is_some().then_some(tx);
    let (topic, ranges, max, sample_size) = (
        request.topic.clone(),
        ranges.to_vec(),
        request.max_records,
        request.sample_size,
    );
    let idle = ctx.kafka_timeout * 3;
    let reader = tokio::task::spawn_blocking(move || {
        let mut summary = Summary::new(sample_size);
        read::read_ranges(&config, &topic, &ranges, max, idle, |message| {
            summary.add(&read::view(&message));
            // A closed channel means the redrive failed: stop reading, the reconcile is retried.
            sender.as_ref().is_none_or(|s| s.blocking_send(message).is_ok())
        })
        .map(|_| summary)
    });
    let outcome = match &request.redrive {
        None => None,
        Some(rule) => {
            let producer: FutureProducer = producer_config(&ctx.kafka, &ProducerArgs::default())
                .map_err(Error::ProducerConfig)?
                .create()
                .map_err(Error::CreateProducer)?;
            let inspection = format!("{namespace}/{name}");
            let mut redriver = Redriver {
                store,
                producer: &producer,
                rule,
                own_id,
                inspection: &inspection,
                dlq_topic: &request.topic,
                found,
                timeout: ctx.kafka_timeout,
                redriven: 0,
                skipped: BTreeMap::new(),
                listed: Vec::new(),
            };
            while let Some(message) = rx.recv().await {
                redriver.handle(&message).await?;
            }
            Some((redriver.redriven, redriver.skipped, redriver.listed))
        }
    };
    let summary = reader
        .await
        .map_err(CommonError::KafkaTask)?
        .map_err(Error::ReadRecords)?;
    Ok((summary, outcome))
}

/// Writes the final status and announces it.
async fn finish(
    ctx: &DlqContext,
    inspection: &DlqInspection,
    mut status: DlqInspectionStatus,
    outcome: Result<String, String>,
) -> Result<Requeue, Error> {
    let succeeded = (DlqInspectionPhase::Succeeded, "Succeeded");
    let ending = Ending::of(&outcome, succeeded, DlqInspectionPhase::Failed);
    let now = Timestamp::now();
    status.common.started_at = status.common.started_at.or(Some(Time(now)));
    let generation = inspection.metadata.generation;
    ending.record(&mut status.common, "Complete", generation, now);
    let reporting = Reporting {
        action: "Inspect",
        ..ctx.reporting()
    };
    Ok(controller::finish(
        &ctx.client,
        &reporting,
        inspection,
        &status,
        &ending,
        ending.reason,
    )
    .await?)
}
