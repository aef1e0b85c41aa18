//! The Backfill controller: resolve the range into per-partition offsets (kept in status), then
//! - mode `Isolated`: run the dataset's consumer once in bounded mode as a Job, and report its outcome;
//! - mode `Replay`: reset the live group through a child Replay bounded by the range ([`replay_mode`]).
//!
//! State machine in status: Pending → Running (ranges and Job or Replay name recorded) → Succeeded |
//! Failed, so a restarted operator resumes by looking at the Job or Replay again. Both carry an owner
//! reference to the Backfill, so deleting the Backfill deletes them: no finalizer is needed here (the
//! Replay's own finalizer gives the consumers back). A topic that does not exist ends the Backfill
//! Failed (`TopicNotFound`) at once, like a Replay: the spec is immutable, so no retry could fix it.
//! The consumer reads only the dataset's raw topic, so a `spec.topic` naming another one ends it Failed
//! (`TopicNotSupported`) instead of landing something else than asked.
//!
//! Counts (mode `Isolated`): the Job's exit code says only that it finished, and its metrics die with
//! its pod. So the Job's consumer gets `--bounded-summary <key>` and, once every range is landed, writes
//! a [`BoundedSummary`] (records written, already landed, files) at that key in the raw zone; the
//! operator, which opens the same raw zone, reads it when the Job completed. A missing summary is said
//! in the message and leaves the counts unset: nothing is inferred from the ranges.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::Recorder;
use kube::{Resource, ResourceExt};
use serde_json::json;
use streamlake_core::bounded_summary::{self, BoundedSummary};
use streamlake_core::names::DatasetName;
use streamlake_core::offsets::{OffsetClient, OffsetError};
use streamlake_core::rawzone::RawZoneStore;

use crate::conditions::Ending;
use crate::controller::{self, Finished, Reporting};
use crate::crd::backfill::{BackfillMode, BackfillPhase};
use crate::crd::{Backfill, BackfillStatus, PartitionRange};
use crate::error::CommonError;
use crate::metrics::Metrics;
use crate::replay::request::consumer_selector;

mod error;
pub mod plan;
pub mod replay_mode;

pub use error::Error;

pub const KIND: &str = "Backfill";
/// How often a running Job is looked at.
const POLL: Duration = Duration::from_secs(2);

pub struct BackfillContext {
    pub client: kube::Client,
    /// Blocking calls: use from `spawn_blocking`.
    pub offsets: Arc<OffsetClient>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Where Jobs leave their run summaries, or why the operator has no raw zone.
    pub store: Result<RawZoneStore, String>,
}

impl std::fmt::Debug for BackfillContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackfillContext").finish_non_exhaustive()
    }
}

/// Runs the Backfill controller until `shutdown` resolves. `namespace`: watch one namespace, or all.
pub async fn run(
    ctx: BackfillContext,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let watch = controller::watch::<Backfill>(&ctx.client, namespace.as_deref());
    controller::run(watch, reconcile, Arc::new(ctx), shutdown).await;
}

async fn reconcile(
    guard: Arc<DeserializeGuard<Backfill>>,
    ctx: Arc<BackfillContext>,
) -> Result<Requeue, Error> {
    let work = |backfill| step(backfill, &ctx);
    controller::run_to_completion(&ctx.client, ctx.reporting(), &guard, work).await
}

impl BackfillContext {
    fn reporting(&self) -> Reporting<'_> {
        Reporting {
            metrics: &self.metrics,
            recorder: &self.recorder,
            kind: KIND,
            action: "Backfill",
        }
    }
}

impl Finished for Backfill {
    fn finished(&self) -> bool {
        let phase = self.status.as_ref().and_then(|s| s.common.phase);
        matches!(phase, Some(BackfillPhase::Succeeded | BackfillPhase::Failed))
    }
}

/// A Backfill that is not finished: start it, or look at its Job or Replay.
async fn step(backfill: &Backfill, ctx: &BackfillContext) -> Result<Requeue, Error> {
    let status = backfill.status.clone().unwrap_or_default();
    match status.common.phase {
        Some(BackfillPhase::Running) if status.replay_name.is_some() => {
            replay_mode::watch(ctx, backfill, status).await
        }
        Some(BackfillPhase::Running) => watch_job(backfill, status, ctx).await,
        _ => start(backfill, status, ctx).await,
    }
}

/// Resolves the ranges, creates the Job and records both in status.
async fn start(
    backfill: &Backfill,
    mut status: BackfillStatus,
    ctx: &BackfillContext,
) -> Result<Requeue, Error> {
    let (namespace, name) = (backfill.namespace().unwrap_or_default(), backfill.name_any());
    let dataset = match DatasetName::new(backfill.spec.dataset.clone()) {
        Ok(d) => d,
        Err(e) => return finish(ctx, backfill, status, Err(("InvalidSpec", e.to_string()))).await,
    };
    let bounds = match plan::Bounds::from_spec(&backfill.spec) {
        Ok(b) => b,
        Err(e) => return finish(ctx, backfill, status, Err(("InvalidSpec", e))).await,
    };
    let topic = dataset.raw_topic();
    if let Some(asked) = backfill.spec.topic.as_deref().filter(|t| *t != topic) {
        let why = format!("spec.topic {asked}: the consumer reads only the dataset's raw topic {topic}");
        return finish(ctx, backfill, status, Err(("TopicNotSupported", why))).await;
    }
    let ranges = match resolve(ctx, &topic, bounds).await? {
        Some(ranges) => ranges,
        None => {
            let why = format!("topic {topic} does not exist: check spec.dataset");
            return finish(ctx, backfill, status, Err(("TopicNotFound", why))).await;
        }
    };
    if ranges.is_empty() {
        let why = format!("{topic} holds no records in the range: nothing to backfill");
        return finish(ctx, backfill, status, Err(("EmptyRange", why))).await;
    }
    if backfill.spec.mode == BackfillMode::Replay {
        return replay_mode::start(ctx, backfill, status, &dataset, &topic, ranges).await;
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = consumer_selector(&dataset);
    let found = deployments
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::ReadDeployments)?;
    let Some(template) = found
        .items
        .first()
        .and_then(|d| d.spec.as_ref())
        .map(|s| &s.template)
    else {
        let why = format!("no consumer Deployment labelled {selector}: the Job runs its pod template");
        return finish(ctx, backfill, status, Err(("NoConsumer", why))).await;
    };
    let owner = json!({
        "apiVersion": Backfill::api_version(&()), "kind": KIND, "name": name,
        "uid": backfill.uid(), "controller": true, "blockOwnerDeletion": true,
    });
    let job_name = plan::job_name(&name);
    let summary = summary_key(backfill);
    let job = match plan::job(
        &job_name,
        &name,
        dataset.as_str(),
        owner,
        template,
        &ranges,
        &summary,
    ) {
        Ok(job) => job,
        Err(why) => return finish(ctx, backfill, status, Err(("InvalidConsumer", why))).await,
    };
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    match jobs.create(&PostParams::default(), &job).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {} // created before a restart
        Err(e) => return Err(Error::CreateJob(e)),
    }
    let records: i64 = ranges.iter().map(|r| r.end - r.start).sum();
    status.common.phase = Some(BackfillPhase::Running);
    status.common.observed_generation = backfill.metadata.generation;
    status.common.started_at = Some(Time(Timestamp::now()));
    status.progress = Some(format!("{records} records in {} partitions", ranges.len()));
    status.common.message = Some(format!("Job {job_name} lands {records} records of {topic}"));
    status.ranges = ranges;
    status.job_name = Some(job_name);
    announce_running(ctx, backfill, &status).await?;
    Ok(Requeue::requeue(POLL))
}

/// The ranges of `bounds` on `topic`; `None` if the topic does not exist (a permanent problem, not a
/// retry).
async fn resolve(
    ctx: &BackfillContext,
    topic: &str,
    bounds: plan::Bounds,
) -> Result<Option<Vec<PartitionRange>>, Error> {
    let (offsets, topic) = (ctx.offsets.clone(), topic.to_owned());
    let resolved = tokio::task::spawn_blocking(move || {
        let watermarks = offsets.watermarks(&topic)?;
        match bounds {
            plan::Bounds::Offsets(ranges) => Ok(ranges),
            plan::Bounds::Window { start_ms, end_ms } => {
                let starts = offsets.offsets_for_timestamp(&topic, start_ms)?;
                let ends = offsets.offsets_for_timestamp(&topic, end_ms)?;
                Ok(plan::window_ranges(&watermarks, &starts, &ends))
            }
        }
    })
    .await
    .map_err(CommonError::KafkaTask)?;
    match resolved {
        Ok(ranges) => Ok(Some(ranges)),
        Err(OffsetError::UnknownTopic { .. }) => Ok(None),
        Err(e) => Err(CommonError::ReadKafka(e).into()),
    }
}

async fn watch_job(
    backfill: &Backfill,
    status: BackfillStatus,
    ctx: &BackfillContext,
) -> Result<Requeue, Error> {
    let namespace = backfill.namespace().unwrap_or_default();
    let job_name = status.job_name.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let outcome = match jobs.get_opt(&job_name).await.map_err(Error::ReadJob)? {
        None => Some(Err(format!("Job {job_name} is gone before it finished"))),
        Some(job) => plan::job_outcome(&job),
    };
    match outcome {
        None => Ok(Requeue::requeue(POLL)),
        Some(Ok(())) => {
            let mut status = status;
            let message = match read_summary(ctx, backfill).await? {
                Ok(summary) => {
                    let count = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
                    status.records_written = count(summary.records_written);
                    status.records_already_landed = count(summary.records_already_landed);
                    status.files_written = count(summary.files_written);
                    format!(
                        "Job {job_name} wrote {} records in {} files; {} were already landed",
                        summary.records_written, summary.files_written, summary.records_already_landed
                    )
                }
                Err(why) => {
                    format!("Job {job_name} completed, but records and files written are unknown: {why}")
                }
            };
            finish(ctx, backfill, status, Ok(message)).await
        }
        Some(Err(reason)) => {
            let why = format!("Job {job_name} failed: {reason}");
            finish(ctx, backfill, status, Err(("JobFailed", why))).await
        }
    }
}

/// The raw-zone key of this Backfill's run summary.
fn summary_key(backfill: &Backfill) -> String {
    let namespace = backfill.namespace().unwrap_or_default();
    bounded_summary::key(
        &namespace,
        &backfill.name_any(),
        &backfill.uid().unwrap_or_default(),
    )
}

/// The Job's run summary, or why there is none (a store error is retried: it may pass).
async fn read_summary(
    ctx: &BackfillContext,
    backfill: &Backfill,
) -> Result<Result<BoundedSummary, String>, Error> {
    let store = match &ctx.store {
        Ok(store) => store,
        Err(problem) => return Ok(Err(problem.clone())),
    };
    let key = summary_key(backfill);
    Ok(match store.get(&key).await.map_err(Error::ReadSummary)? {
        None => Err(format!("no run summary at {key} in {}", store.location())),
        Some(object) => serde_json::from_slice(&object.data)
            .map_err(|e| format!("the run summary at {key} is unreadable: {e}")),
    })
}

/// Writes the final phase. Mode `Replay` counts the records of the ranges as written (the live
/// consumers land or skip each, without telling which); mode `Isolated` set its counts from the summary.
async fn finish(
    ctx: &BackfillContext,
    backfill: &Backfill,
    mut status: BackfillStatus,
    outcome: Result<String, (&str, String)>,
) -> Result<Requeue, Error> {
    let now = Timestamp::now();
    let (phase, reason, message) = match outcome {
        Ok(message) => {
            if backfill.spec.mode == BackfillMode::Replay {
                status.records_written = Some(status.ranges.iter().map(|r| r.end - r.start).sum());
            }
            (BackfillPhase::Succeeded, "Succeeded", message)
        }
        Err((reason, message)) => (BackfillPhase::Failed, reason, message),
    };
    let ending = Ending {
        phase,
        succeeded: phase == BackfillPhase::Succeeded,
        reason,
        message: &message,
    };
    ending.record(&mut status.common, "Complete", backfill.metadata.generation, now);
    if let Some(Time(started)) = &status.common.started_at {
        status.duration_seconds = Some(now.duration_since(*started).as_secs());
    }
    // The reason says which failure; the phase metric counts only Succeeded and Failed.
    let entered = if ending.succeeded { "Succeeded" } else { "Failed" };
    let reporting = ctx.reporting();
    Ok(controller::finish(&ctx.client, &reporting, backfill, &status, &ending, entered).await?)
}

/// Records a Backfill that started (Running), and says so in an Event.
async fn announce_running(
    ctx: &BackfillContext,
    backfill: &Backfill,
    status: &BackfillStatus,
) -> Result<(), Error> {
    controller::write_status(&ctx.client, backfill, status).await?;
    let message = status.common.message.as_deref().unwrap_or_default();
    ctx.reporting()
        .event(&backfill.object_ref(&()), false, "Running", message)
        .await;
    Ok(())
}
