//! The apply step: carry out `decide`'s actions, write the status, publish the Event.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DynamicObject;
use serde_json::{Value, json};

use super::decide::{Action, Note};
use super::error::Error;
use super::read::{KEDA_PAUSED_REPLICAS, scaled_object_resource};
use crate::context::Context;
use crate::controller;
use crate::crd::replay::SavedScale;
use crate::crd::{Replay, ReplayStatus};
use crate::error::CommonError;

/// Marks an autoscaler paused by a Replay (`namespace/name`), for whoever looks at it meanwhile.
pub const PAUSED_BY: &str = "streamlake.io/paused-by";

pub async fn run(ctx: &Context, replay: &Replay, actions: &[Action]) -> Result<(), Error> {
    let namespace = replay.namespace().unwrap_or_default();
    let key = format!("{namespace}/{}", replay.name_any());
    for action in actions {
        match action {
            Action::Scale { deployment, replicas } => scale(ctx, &namespace, deployment, *replicas).await?,
            Action::PauseAutoscalers { saved } => pause(ctx, &namespace, &key, saved).await?,
            Action::RestoreAutoscalers { saved } => restore(ctx, &namespace, saved).await?,
            Action::CommitOffsets {
                group,
                topic,
                offsets,
            } => {
                let (client, group, topic, offsets) =
                    (ctx.offsets.clone(), group.clone(), topic.clone(), offsets.clone());
                tokio::task::spawn_blocking(move || client.commit_as_group(&group, &topic, &offsets))
                    .await
                    .map_err(CommonError::KafkaTask)?
                    .map_err(Error::CommitOffsets)?;
            }
        }
        tracing::info!(replay = %key, ?action, "applied");
    }
    Ok(())
}

async fn scale(ctx: &Context, namespace: &str, name: &str, replicas: i32) -> Result<(), Error> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({"spec": {"replicas": replicas}});
    deployments
        .patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::ScaleDeployment {
            name: name.to_owned(),
            replicas,
            source,
        })?;
    Ok(())
}

async fn pause(ctx: &Context, namespace: &str, key: &str, saved: &SavedScale) -> Result<(), Error> {
    // An HPA stops scaling a Deployment held at zero replicas; the annotation says who holds it.
    for hpa in &saved.hpas {
        annotate(hpas(ctx, namespace), hpa, json!({PAUSED_BY: key})).await?;
    }
    // KEDA would scale the consumers up again on the lag a reset creates: pin it at zero.
    for so in &saved.scaled_objects {
        annotate(
            scaled_objects(ctx, namespace),
            &so.name,
            json!({KEDA_PAUSED_REPLICAS: "0", PAUSED_BY: key}),
        )
        .await?;
    }
    Ok(())
}

async fn restore(ctx: &Context, namespace: &str, saved: &SavedScale) -> Result<(), Error> {
    for hpa in &saved.hpas {
        annotate(hpas(ctx, namespace), hpa, json!({PAUSED_BY: null})).await?;
    }
    for so in &saved.scaled_objects {
        let annotations = json!({KEDA_PAUSED_REPLICAS: so.paused_replicas, PAUSED_BY: null});
        annotate(scaled_objects(ctx, namespace), &so.name, annotations).await?;
    }
    Ok(())
}

fn hpas(ctx: &Context, namespace: &str) -> Api<HorizontalPodAutoscaler> {
    Api::namespaced(ctx.client.clone(), namespace)
}

fn scaled_objects(ctx: &Context, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), namespace, &scaled_object_resource())
}

/// Merge-patches annotations (`null` removes one). An autoscaler deleted meanwhile needs nothing.
async fn annotate<K>(api: Api<K>, name: &str, annotations: Value) -> Result<(), Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {"annotations": annotations}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::PatchAutoscaler {
            name: name.to_owned(),
            source,
        }),
    }
}

/// Writes the whole status with server-side apply: fields left out are dropped, since this manager owns them.
pub async fn write_status(ctx: &Context, replay: &Replay, status: &ReplayStatus) -> Result<(), Error> {
    Ok(controller::write_status(&ctx.client, replay, status).await?)
}

/// Publishes an Event about the Replay. A lost Event is logged, and does not fail the reconcile.
pub async fn publish(ctx: &Context, reference: &k8s_openapi::api::core::v1::ObjectReference, note: &Note) {
    controller::publish(
        &ctx.recorder,
        reference,
        "Reconcile",
        note.warning,
        &note.reason,
        &note.message,
    )
    .await;
}
