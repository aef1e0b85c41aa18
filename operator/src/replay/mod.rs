//! The Replay controller: read → decide (pure) → apply → write status, behind a finalizer that gives
//! the consumers back when an in-flight Replay is deleted.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use streamlake_core::offsets::OffsetClient;

use crate::context::Context;
use crate::controller::{self, Finished, Reporting};
use crate::crd::{Replay, ReplayPhase};
use crate::metrics::Metrics;

mod apply;
pub mod decide;
mod error;
pub mod observation;
mod read;
pub mod request;

pub use apply::PAUSED_BY;
pub use error::Error;
pub use read::KEDA_PAUSED_REPLICAS;

pub const KIND: &str = "Replay";
/// Held while a Replay may have consumers to give back.
pub const FINALIZER: &str = "streamlake.io/restore-consumers";
/// Shortest delay between two reconciles of one Replay, however soon `decide` asks.
const MIN_REQUEUE: Duration = Duration::from_millis(250);

/// Runs the Replay controller until `shutdown` resolves. `namespace`: watch one namespace, or all.
pub async fn run(
    client: kube::Client,
    offsets: Arc<OffsetClient>,
    metrics: Arc<Metrics>,
    reporter: Reporter,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let watch = controller::watch::<Replay>(&client, namespace.as_deref());
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        offsets,
        metrics,
        replays: watch.store(),
    });
    controller::run(watch, reconcile, ctx, shutdown).await;
}

async fn reconcile(guard: Arc<DeserializeGuard<Replay>>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = Instant::now();
    let namespace = guard.namespace().unwrap_or_default();
    let result = match &guard.0 {
        // A finished Replay holds nothing to give back: it needs no finalizer, and can be deleted
        // even when no operator runs.
        Ok(replay) if replay.finished() => release_finalizer(&ctx, &namespace, replay.meta())
            .await
            .map(|()| Requeue::await_change()),
        Ok(replay) => {
            let api: Api<Replay> = Api::namespaced(ctx.client.clone(), &namespace);
            finalizer(&api, FINALIZER, Arc::new(replay.clone()), |event| async {
                match event {
                    Finalizer::Apply(replay) => apply_replay(&replay, &ctx).await,
                    Finalizer::Cleanup(replay) => cleanup_replay(&replay, &ctx).await,
                }
            })
            .await
            .map_err(|e| Error::Finalizer(Box::new(e)))
        }
        Err(invalid) => report_malformed(invalid, &namespace, &ctx).await,
    };
    let reporting = Reporting {
        metrics: &ctx.metrics,
        recorder: &ctx.recorder,
        kind: KIND,
        action: "Reconcile",
    };
    reporting
        .reconciled(started, &guard.object_ref(&()), &result)
        .await;
    result
}

impl Finished for Replay {
    fn finished(&self) -> bool {
        let phase = self.status.as_ref().and_then(|s| s.common.phase);
        phase.is_some_and(ReplayPhase::is_terminal)
    }
}

async fn apply_replay(replay: &Replay, ctx: &Context) -> Result<Requeue, Error> {
    let observation = read::observe(ctx, replay, false).await?;
    let decision = decide::decide(&observation);
    apply::run(ctx, replay, &decision.actions).await?;
    if decision.status != observation.replay.status {
        apply::write_status(ctx, replay, &decision.status).await?;
    }
    if let Some(note) = &decision.event {
        let phase = decision.status.common.phase.map_or("Pending", |p| p.as_str());
        ctx.metrics.entered(KIND, phase);
        tracing::info!(replay = %observation.replay.key(), phase, message = %note.message, "transition");
        apply::publish(ctx, &replay.object_ref(&()), note).await;
    }
    Ok(match decision.requeue {
        Some(after) => Requeue::requeue(after.max(MIN_REQUEUE)),
        None => Requeue::await_change(),
    })
}

async fn cleanup_replay(replay: &Replay, ctx: &Context) -> Result<Requeue, Error> {
    let observation = read::observe(ctx, replay, true).await?;
    let decision = decide::cleanup(&observation);
    apply::run(ctx, replay, &decision.actions).await?;
    if let Some(note) = &decision.event {
        tracing::info!(replay = %observation.replay.key(), message = %note.message, "cleanup");
        apply::publish(ctx, &replay.object_ref(&()), note).await;
    }
    Ok(Requeue::await_change())
}

/// A Replay that does not deserialize: say so on its status and wait for a fix. If it is being
/// deleted, release it: it never got far enough to hold consumers (its spec never parsed).
async fn report_malformed(invalid: &InvalidObject, namespace: &str, ctx: &Context) -> Result<Requeue, Error> {
    let name = invalid.metadata.name.clone().unwrap_or_default();
    tracing::warn!(replay = %format!("{namespace}/{name}"), error = %invalid.error, "malformed Replay");
    if invalid.metadata.deletion_timestamp.is_some() {
        release_finalizer(ctx, namespace, &invalid.metadata).await?;
        return Ok(Requeue::await_change());
    }
    let message = format!(
        "this Replay cannot be read: {}; fix it or create a new one",
        invalid.error
    );
    controller::mark_malformed::<Replay>(&ctx.client, invalid, &message).await?;
    Ok(Requeue::await_change())
}

/// Removes this operator's finalizer, if present. The resourceVersion makes the patch fail, and the
/// reconcile retry, if the finalizers changed meanwhile.
async fn release_finalizer(
    ctx: &Context,
    namespace: &str,
    meta: &kube::api::ObjectMeta,
) -> Result<(), Error> {
    let finalizers = meta.finalizers.clone().unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let remaining: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
    let patch = json!({"metadata": {"finalizers": remaining, "resourceVersion": meta.resource_version}});
    let api: Api<DeserializeGuard<Replay>> = Api::namespaced(ctx.client.clone(), namespace);
    let name = meta.name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::ReleaseFinalizer)?;
    Ok(())
}
