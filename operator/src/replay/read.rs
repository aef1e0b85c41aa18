//! The read step: everything `decide` needs, fetched according to the phase (see [`Needs`]).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Resource, ResourceExt};
use streamlake_core::offsets::{OffsetClient, OffsetError};

use super::error::Error;
use super::observation::{
    Autoscalers, Claim, DeploymentView, Needs, Observation, PlanInputs, ReplayView, ScaledObjectView,
};
use super::request::{self, DeploymentRef, End, ReplayRequest, Start};
use crate::context::Context;
use crate::crd::replay::ReplayPhase;
use crate::crd::{Replay, ReplayStatus};
use crate::error::CommonError;

/// KEDA's annotation that pins a ScaledObject's target at a replica count.
pub const KEDA_PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";

pub fn scaled_object_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    )
}

/// Observes `replay`; for a deletion only the Deployment is read (what cleanup may have to restore).
pub async fn observe(ctx: &Context, replay: &Replay, deleting: bool) -> Result<Observation, Error> {
    let status = replay.status.clone().unwrap_or_default();
    let namespace = replay.namespace().unwrap_or_default();
    let replay_view = ReplayView {
        namespace: namespace.clone(),
        name: replay.name_any(),
        generation: replay.meta().generation,
        created: replay.meta().creation_timestamp.as_ref().map(|t| t.0),
        spec: replay.spec.clone(),
        status: status.clone(),
    };
    let mut obs = Observation::of(replay_view, Timestamp::now());
    let needs = if deleting {
        Needs {
            deployment: true,
            ..Needs::default()
        }
    } else {
        Needs::of(&status, replay.spec.dry_run)
    };
    // A spec that does not parse is failed by `decide`; there is nothing to look up for it.
    let request = ReplayRequest::from_spec(&replay.spec).ok();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);

    if needs.candidates
        && let Some(request) = &request
    {
        let found = match &request.deployment {
            DeploymentRef::Named(name) => deployments.get_opt(name).await.map(|d| d.into_iter().collect()),
            DeploymentRef::Labelled(selector) => deployments
                .list(&ListParams::default().labels(selector))
                .await
                .map(|l| l.items),
        }
        .map_err(|source| Error::ReadDeployments {
            namespace: namespace.clone(),
            source,
        })?;
        obs.candidates = view_all(ctx, &namespace, found).await?;
    }
    if needs.deployment
        && let Some(target) = &status.target
    {
        let found =
            deployments
                .get_opt(&target.deployment)
                .await
                .map_err(|source| Error::ReadDeployments {
                    namespace: namespace.clone(),
                    source,
                })?;
        obs.deployment = found.map(|d| view(&d, Autoscalers::default()));
    }
    if needs.claims {
        obs.claims = claims(ctx, replay, &status);
    }
    let (topic, group) = match (&status.target, &request) {
        (Some(t), _) => (t.topic.clone(), t.consumer_group.clone()),
        (None, Some(r)) => (r.topic.clone(), r.group.clone()),
        (None, None) => return Ok(obs),
    };
    let offsets = ctx.offsets.clone();
    if needs.group {
        let group = group.clone();
        obs.group = Some(
            blocking(move || offsets.describe_group(&group))
                .await?
                .map_err(CommonError::ReadKafka)?,
        );
    }
    if needs.plan_inputs
        && let Some(request) = request
    {
        let (offsets, topic, group) = (ctx.offsets.clone(), topic.clone(), group.clone());
        obs.plan_inputs = Some(blocking(move || plan_inputs(&offsets, &group, &topic, &request)).await??);
    }
    if needs.committed {
        let offsets = ctx.offsets.clone();
        obs.committed = Some(match blocking(move || offsets.committed(&group, &topic)).await? {
            Err(OffsetError::UnknownTopic { topic }) => Err(format!("topic {topic} does not exist")),
            other => Ok(other.map_err(CommonError::ReadKafka)?),
        });
    }
    Ok(obs)
}

/// Watermarks, committed offsets and timestamp lookups; a missing topic is the Replay's failure, not
/// a retry.
fn plan_inputs(
    offsets: &OffsetClient,
    group: &str,
    topic: &str,
    request: &ReplayRequest,
) -> Result<Result<PlanInputs, String>, Error> {
    let partitions = match offsets.partition_offsets(group, topic) {
        Err(OffsetError::UnknownTopic { topic }) => return Ok(Err(format!("topic {topic} does not exist"))),
        other => other.map_err(CommonError::ReadKafka)?,
    };
    let lookup = |ms| {
        offsets
            .offsets_for_timestamp(topic, ms)
            .map_err(CommonError::ReadKafka)
    };
    let from_lookup = match request.from {
        Start::TimestampMs(ms) => Some(lookup(ms)?),
        _ => None,
    };
    let to_lookup = match request.to {
        End::TimestampMs(ms) => Some(lookup(ms)?),
        _ => None,
    };
    Ok(Ok(PlanInputs {
        partitions,
        from_lookup,
        to_lookup,
    }))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(CommonError::KafkaTask)?)
}

fn view(deployment: &Deployment, autoscalers: Autoscalers) -> DeploymentView {
    DeploymentView {
        name: deployment.name_any(),
        replicas: deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        autoscalers,
    }
}

/// Deployment views; the autoscalers are looked up only when there is exactly one candidate.
async fn view_all(
    ctx: &Context,
    namespace: &str,
    found: Vec<Deployment>,
) -> Result<Vec<DeploymentView>, Error> {
    match found.as_slice() {
        [one] => Ok(vec![view(
            one,
            autoscalers(ctx, namespace, &one.name_any()).await?,
        )]),
        many => Ok(many.iter().map(|d| view(d, Autoscalers::default())).collect()),
    }
}

/// HPAs and KEDA ScaledObjects whose target is the Deployment `name`. No KEDA installed: none.
async fn autoscalers(ctx: &Context, namespace: &str, name: &str) -> Result<Autoscalers, Error> {
    let err = |source| Error::ReadAutoscalers {
        namespace: namespace.to_owned(),
        source,
    };
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), namespace);
    let hpas = hpas
        .list(&ListParams::default())
        .await
        .map_err(err)?
        .items
        .into_iter()
        .filter(|h| h.spec.scale_target_ref.kind == "Deployment" && h.spec.scale_target_ref.name == name)
        .map(|h| h.name_any())
        .collect();
    let scaled: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), namespace, &scaled_object_resource());
    let scaled_objects = match scaled.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|so| {
                let target = &so.data["spec"]["scaleTargetRef"];
                target["name"] == name && target["kind"].as_str().is_none_or(|k| k == "Deployment")
            })
            .map(|so| ScaledObjectView {
                paused_replicas: so.annotations().get(KEDA_PAUSED_REPLICAS).cloned(),
                name: so.name_any(),
            })
            .collect(),
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(source) => return Err(err(source)),
    };
    Ok(Autoscalers { hpas, scaled_objects })
}

/// The other live, non-dry-run Replays on the same consumer group, from the controller's cache.
fn claims(ctx: &Context, replay: &Replay, status: &ReplayStatus) -> Vec<Claim> {
    let group_of = |r: &Replay| match r.status.as_ref().and_then(|s| s.target.as_ref()) {
        Some(target) => target.consumer_group.clone(),
        None => request::group_of(&r.spec),
    };
    let mine = status
        .target
        .as_ref()
        .map_or_else(|| request::group_of(&replay.spec), |t| t.consumer_group.clone());
    ctx.replays
        .state()
        .iter()
        .filter_map(|guard| guard.0.as_ref().ok())
        .filter(|other| other.uid() != replay.uid() && !other.spec.dry_run && group_of(other) == mine)
        .filter_map(|other| {
            let phase = other
                .status
                .as_ref()
                .and_then(|s| s.common.phase)
                .unwrap_or(ReplayPhase::Pending);
            (!phase.is_terminal()).then(|| Claim {
                key: format!("{}/{}", other.namespace().unwrap_or_default(), other.name_any()),
                created: other.meta().creation_timestamp.as_ref().map(|t| t.0),
                phase,
            })
        })
        .collect()
}
