//! What the four controllers share: the watch loop and its retry policy, the bookkeeping around each
//! reconcile (metrics, a Warning Event per failure), the terminal-phase and malformed-object handling,
//! status written with server-side apply, and Events.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryFuture};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::conditions::Ending;
use crate::context::FIELD_MANAGER;
use crate::error::CommonError;
use crate::metrics::Metrics;

/// Retry delay after a failed reconcile.
pub const RETRY: Duration = Duration::from_secs(5);
/// Longest Event note, in characters.
const MAX_NOTE: usize = 1000;

/// A reconcile error whose variant name is the `error` label of the failure metric and the reason of
/// the Warning Event.
pub trait ReconcileError: std::error::Error + Send + Sync + 'static {
    fn metric_label(&self) -> &'static str;
}

/// A kind whose object reaches a phase after which the operator has nothing left to do.
pub trait Finished {
    fn finished(&self) -> bool;
}

/// A custom resource of this operator: namespaced, with a static type.
pub trait Kind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}
impl<K> Kind for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// A controller of the objects in one namespace, or in all. Malformed objects reach the reconcile as
/// errors instead of breaking the watch.
pub fn watch<K: Kind>(client: &kube::Client, namespace: Option<&str>) -> Controller<DeserializeGuard<K>> {
    let api = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    Controller::new(api, watcher::Config::default().any_semantic())
}

/// Runs `controller` until `shutdown` resolves; a failed reconcile is retried after [`RETRY`].
pub async fn run<K, Ctx, Fut>(
    controller: Controller<DeserializeGuard<K>>,
    reconcile: impl FnMut(Arc<DeserializeGuard<K>>, Arc<Ctx>) -> Fut,
    ctx: Arc<Ctx>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) where
    K: Kind,
    Fut: TryFuture<Ok = Requeue> + Send + 'static,
    Fut::Error: ReconcileError,
{
    let kind = K::kind(&());
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, |_, _, _| Requeue::requeue(RETRY), ctx)
        .for_each(|result| {
            let kind = kind.clone();
            async move {
                match result {
                    Ok((object, _)) => tracing::debug!(%object, "{kind} reconciled"),
                    Err(e) => tracing::warn!(error = %e, "{kind} reconcile failed"),
                }
            }
        })
        .await;
}

/// Where a reconcile reports to, and the Event action of its failures.
pub struct Reporting<'a> {
    pub metrics: &'a Metrics,
    pub recorder: &'a Recorder,
    pub kind: &'static str,
    pub action: &'static str,
}

impl Debug for Reporting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporting")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Reporting<'_> {
    /// Counts a reconcile that began at `started`; a failure is counted by its error and published as
    /// a Warning Event.
    pub async fn reconciled<E: ReconcileError>(
        &self,
        started: Instant,
        reference: &ObjectReference,
        result: &Result<Requeue, E>,
    ) {
        self.metrics.reconciled(self.kind, started.elapsed());
        if let Err(e) = result {
            self.metrics.failed(self.kind, e.metric_label());
            self.event(reference, true, e.metric_label(), &e.to_string())
                .await;
        }
    }

    /// Publishes an Event with this controller's action.
    pub async fn event(&self, reference: &ObjectReference, warning: bool, reason: &str, note: &str) {
        publish(self.recorder, reference, self.action, warning, reason, note).await;
    }

    /// Counts the final phase `phase` entered, logs how the run ended and publishes it as an Event
    /// (a Warning unless it succeeded).
    pub async fn ended<P>(
        &self,
        object: &impl Resource<DynamicType = ()>,
        phase: &str,
        ending: &Ending<'_, P>,
    ) {
        self.metrics.entered(self.kind, phase);
        let key = format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any());
        let Ending { reason, message, .. } = ending;
        tracing::info!(kind = self.kind, object = %key, reason, %message, "finished");
        self.event(&object.object_ref(&()), !ending.succeeded, reason, message)
            .await;
    }
}

/// The reconcile of a kind that runs to completion and holds nothing outside its object: a finished
/// object waits for a change, a malformed one is marked Failed on its status, anything else is
/// handed to `work`; then the reconcile is reported.
pub async fn run_to_completion<'a, K, E, Fut>(
    client: &kube::Client,
    reporting: Reporting<'_>,
    guard: &'a DeserializeGuard<K>,
    work: impl FnOnce(&'a K) -> Fut,
) -> Result<Requeue, E>
where
    K: Kind + Finished,
    E: ReconcileError + From<CommonError>,
    Fut: Future<Output = Result<Requeue, E>>,
{
    let started = Instant::now();
    let result = match &guard.0 {
        Ok(object) if object.finished() => Ok(Requeue::await_change()),
        Ok(object) => work(object).await,
        Err(invalid) => {
            let message = format!("this {} cannot be read: {}", K::kind(&()), invalid.error);
            mark_malformed::<K>(client, invalid, &message)
                .await
                .map(|()| Requeue::await_change())
                .map_err(E::from)
        }
    };
    reporting
        .reconciled(started, &guard.object_ref(&()), &result)
        .await;
    result
}

/// Ends a run: writes `status`, which records `ending`, and announces it; the phase metric counts
/// `entered`. Nothing is left to do, so the object waits for a change.
pub async fn finish<K: Kind, P>(
    client: &kube::Client,
    reporting: &Reporting<'_>,
    object: &K,
    status: &impl Serialize,
    ending: &Ending<'_, P>,
    entered: &str,
) -> Result<Requeue, CommonError> {
    write_status(client, object, status).await?;
    reporting.ended(object, entered, ending).await;
    Ok(Requeue::await_change())
}

/// Writes `object`'s status (see [`patch_status`]).
pub async fn write_status<K: Kind>(
    client: &kube::Client,
    object: &K,
    status: &impl Serialize,
) -> Result<(), CommonError> {
    let namespace = object.namespace().unwrap_or_default();
    patch_status::<K>(client, &namespace, &object.name_any(), status).await
}

/// Marks an object that does not deserialize Failed (`MalformedObject`), saying why.
pub async fn mark_malformed<K: Kind>(
    client: &kube::Client,
    invalid: &InvalidObject,
    message: &str,
) -> Result<(), CommonError> {
    let namespace = invalid.metadata.namespace.clone().unwrap_or_default();
    let name = invalid.metadata.name.clone().unwrap_or_default();
    let status = json!({"phase": "Failed", "reason": "MalformedObject", "message": message});
    patch_status::<K>(client, &namespace, &name, &status).await
}

/// Writes `status` with server-side apply under the operator's field manager. The answer is read
/// through a guard, so that a malformed object's status can be written too.
pub async fn patch_status<K: Kind>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    status: &impl Serialize,
) -> Result<(), CommonError> {
    let api: Api<DeserializeGuard<K>> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(CommonError::write_status::<K>)?;
    Ok(())
}

/// Publishes an Event. A lost Event is logged, and does not fail the reconcile.
pub async fn publish(
    recorder: &Recorder,
    reference: &ObjectReference,
    action: &str,
    warning: bool,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(truncate(note, MAX_NOTE)),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, reference).await {
        tracing::warn!(%reason, error = %e, "could not publish an Event");
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_and_marked() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééééé", 3), "ééé…");
    }
}
