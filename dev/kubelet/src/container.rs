//! One container of a pod: its record for the status, its backoff, and the process that runs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backoff::CrashBackoff;
use crate::command;
use crate::context::{KubeletContext, PodDir};
use crate::credentials::api_message;
use crate::env::{self, EnvSources, PodNetwork};
use crate::image_map::ImageEntry;
use crate::probe::{ProbeSpec, ProbeTarget};
use crate::process::{ProcessId, SpawnSpec};
use crate::status::ContainerRecord;

/// A live process of a container.
#[derive(Debug)]
pub struct Running {
    pub id: ProcessId,
    pub since: Instant,
    pub started_at: k8s_openapi::jiff::Timestamp,
    pub probes: Option<JoinHandle<()>>,
}

impl Running {
    pub fn stop_probes(&mut self) {
        if let Some(task) = self.probes.take() {
            task.abort();
        }
    }
}

#[derive(Debug)]
pub struct Slot {
    pub spec: Container,
    pub init: bool,
    pub record: ContainerRecord,
    pub backoff: CrashBackoff,
    /// The container has run before, so its next start counts as a restart.
    pub ran_before: bool,
    /// When the container may (re)start; None: it is not to be started again.
    pub start_at: Option<Instant>,
    pub run: Option<Running>,
    /// Bumped at every start, so reports about an earlier process are recognised and dropped.
    pub instance: u64,
    /// After SIGTERM: when to send SIGKILL.
    pub kill_deadline: Option<Instant>,
    /// Stopped because a liveness or startup probe failed: restarted unless the policy is Never.
    pub killed_for_health: bool,
}

impl Slot {
    pub fn due(&self, now: Instant) -> bool {
        self.run.is_none() && self.start_at.is_some_and(|at| at <= now)
    }
}

/// Why a container could not be started; `reason` is the waiting reason the status shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchError {
    pub reason: &'static str,
    pub message: String,
}

impl LaunchError {
    fn config(message: String) -> Self {
        Self {
            reason: "CreateContainerConfigError",
            message,
        }
    }
}

/// The ConfigMaps and Secrets the container refers to, read one by one (a node may only `get` those).
pub async fn fetch_sources(
    client: &kube::Client,
    pod: &Pod,
    container: &Container,
) -> Result<EnvSources, LaunchError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (config_map_names, secret_names) = env::referenced_sources(container);
    let mut sources = EnvSources::default();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for name in config_map_names {
        let found = config_maps.get_opt(&name).await.map_err(|e| {
            LaunchError::config(format!("cannot read configmap {name:?}: {}", api_message(&e)))
        })?;
        sources
            .config_maps
            .insert(name, found.map(|cm| cm.data.unwrap_or_default()));
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for name in secret_names {
        let found = secrets
            .get_opt(&name)
            .await
            .map_err(|e| LaunchError::config(format!("cannot read secret {name:?}: {}", api_message(&e))))?;
        let data = found.map(|secret| {
            let mut data: BTreeMap<String, String> = secret.string_data.unwrap_or_default();
            for (key, value) in secret.data.unwrap_or_default() {
                data.insert(key, String::from_utf8_lossy(&value.0).into_owned());
            }
            data
        });
        sources.secrets.insert(name, data);
    }
    Ok(sources)
}

/// Variables every container gets before its own env: allowed host ones, the image's, and the cluster's.
pub fn base_env(
    ctx: &KubeletContext,
    pod: &Pod,
    entry: &ImageEntry,
    kubeconfig: Option<&Path>,
) -> BTreeMap<String, String> {
    let mut env = ctx.host_env.clone();
    env.extend(entry.env.clone());
    env.insert("HOSTNAME".into(), pod.metadata.name.clone().unwrap_or_default());
    env.insert("KUBERNETES_SERVICE_HOST".into(), ctx.cluster.service_host.clone());
    env.insert("KUBERNETES_SERVICE_PORT".into(), ctx.cluster.service_port.clone());
    env.insert(
        "KUBERNETES_SERVICE_PORT_HTTPS".into(),
        ctx.cluster.service_port.clone(),
    );
    if let Some(path) = kubeconfig {
        env.insert("KUBECONFIG".into(), path.to_string_lossy().into_owned());
    }
    env
}

/// Everything needed to start the container, or why it cannot start.
#[derive(Debug)]
pub struct LaunchPlan {
    pub spawn: SpawnSpec,
    pub probe_target: ProbeTarget,
    pub startup: Option<ProbeSpec>,
    pub readiness: Option<ProbeSpec>,
    pub liveness: Option<ProbeSpec>,
}

impl LaunchPlan {
    pub fn has_probes(&self) -> bool {
        self.startup.is_some() || self.readiness.is_some() || self.liveness.is_some()
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn plan_launch(
    ctx: &KubeletContext,
    pod: &Pod,
    spec: &Container,
    dir: &PodDir,
    pod_ip: &str,
    kubeconfig: Option<&Path>,
    token_needed_but_missing: Option<&str>,
) -> Result<LaunchPlan, LaunchError> {
    let image = spec.image.clone().unwrap_or_default();
    let entry = ctx.images.resolve(&image).ok_or_else(|| LaunchError {
        reason: "ErrImagePull",
        message: format!(
            "image {image:?} is not in the process kubelet's image map (dev/kubelet/images.yaml): \
             map its repository to a program or to `host: true`"
        ),
    })?;
    if let Some(problem) = token_needed_but_missing {
        return Err(LaunchError::config(format!(
            "no ServiceAccount token for the pod yet: {problem}"
        )));
    }
    let sources = fetch_sources(&ctx.client, pod, spec).await?;
    let network = PodNetwork {
        pod_ip: pod_ip.to_owned(),
        host_ip: ctx.host_ip.clone(),
    };
    let base = base_env(ctx, pod, entry, kubeconfig);
    let env =
        env::resolve(pod, spec, &base, &sources, &network).map_err(|e| LaunchError::config(e.to_string()))?;
    let invocation = command::invocation(
        &image,
        entry,
        spec.command.as_deref().unwrap_or_default(),
        spec.args.as_deref().unwrap_or_default(),
        &env,
    )
    .map_err(|e| LaunchError {
        reason: "RunContainerError",
        message: e.to_string(),
    })?;
    let working_dir = spec
        .working_dir
        .as_ref()
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| dir.workdir());
    let probe =
        |p: &Option<k8s_openapi::api::core::v1::Probe>| p.as_ref().map(|p| ProbeSpec::from_k8s(p, spec));
    Ok(LaunchPlan {
        probe_target: ProbeTarget {
            pod_ip: pod_ip.to_owned(),
            env: env.clone(),
            working_dir: working_dir.clone(),
        },
        spawn: SpawnSpec {
            program: invocation.program,
            args: invocation.args,
            env,
            working_dir,
            log_path: dir.log(&spec.name),
        },
        startup: probe(&spec.startup_probe),
        readiness: probe(&spec.readiness_probe),
        liveness: probe(&spec.liveness_probe),
    })
}
