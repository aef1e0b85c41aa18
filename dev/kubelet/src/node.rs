//! The Node: registered Ready with this host's capacity, kept alive by a Lease in kube-node-lease and
//! periodic status updates, so the node lifecycle controller never marks it NotReady while we run.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio_util::sync::CancellationToken;

pub const FIELD_MANAGER: &str = "process-kubelet";
const LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_SECONDS: i32 = 40;
const LEASE_RENEW: Duration = Duration::from_secs(10);
const STATUS_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot create Node {name}: {source}")]
    Create { name: String, source: kube::Error },
    #[error("cannot read Node {name}: {source}")]
    Get { name: String, source: kube::Error },
    #[error("cannot write the status of Node {name}: {source}")]
    Status { name: String, source: kube::Error },
    #[error("cannot renew Lease {LEASE_NAMESPACE}/{name}: {source}")]
    Lease { name: String, source: kube::Error },
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub max_pods: u32,
    pub kubelet_version: String,
    pub host_ip: String,
}

/// Facts about this machine that go into the Node's capacity and nodeInfo.
#[derive(Debug, Clone)]
struct HostFacts {
    cpus: usize,
    memory_kib: u64,
    kernel: String,
    os_image: String,
    machine_id: String,
    boot_id: String,
}

impl HostFacts {
    fn read() -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let meminfo = read("/proc/meminfo");
        let os_release = read("/etc/os-release");
        Self {
            cpus: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            memory_kib: meminfo_total_kib(&meminfo).unwrap_or(0),
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            os_image: pretty_name(&os_release).unwrap_or_else(|| "Linux".into()),
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    }
}

fn meminfo_total_kib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn pretty_name(os_release: &str) -> Option<String> {
    let line = os_release.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
    Some(line["PRETTY_NAME=".len()..].trim_matches('"').to_owned())
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn node_object(config: &NodeConfig) -> Node {
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", config.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", go_arch()),
        ("streamlake.io/process-kubelet", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(config.name.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

fn node_status(config: &NodeConfig, facts: &HostFacts, ready: bool, now: Timestamp) -> NodeStatus {
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", facts.cpus.to_string()),
        ("memory", format!("{}Ki", facts.memory_kib)),
        ("pods", config.max_pods.to_string()),
        ("ephemeral-storage", "100Gi".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Quantity(v)))
    .collect();
    let pressure = |type_: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: "False".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: None,
    };
    let ready_condition = NodeCondition {
        type_: "Ready".into(),
        status: if ready { "True" } else { "False" }.into(),
        reason: Some(if ready { "KubeletReady" } else { "KubeletNotReady" }.into()),
        message: Some(
            if ready {
                "kubelet is posting ready status"
            } else {
                "process-kubelet stopped"
            }
            .into(),
        ),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: None,
    };
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: config.host_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: config.name.clone(),
            },
        ]),
        conditions: Some(vec![
            pressure(
                "MemoryPressure",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            pressure(
                "DiskPressure",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            pressure(
                "PIDPressure",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            ready_condition,
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: 0 }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: go_arch().into(),
            boot_id: facts.boot_id.clone(),
            container_runtime_version: format!("process://{}", env!("CARGO_PKG_VERSION")),
            kernel_version: facts.kernel.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: config.kubelet_version.clone(),
            machine_id: facts.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: facts.os_image.clone(),
            system_uuid: facts.machine_id.clone(),
            swap: None,
        }),
        ..NodeStatus::default()
    }
}

/// A Node whose status we keep, with the transition times the API server already holds.
#[derive(Clone)]
pub struct NodeAgent {
    client: kube::Client,
    config: NodeConfig,
    facts: HostFacts,
}

impl std::fmt::Debug for NodeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAgent")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NodeAgent {
    pub fn new(client: kube::Client, config: NodeConfig) -> Self {
        Self {
            client,
            config,
            facts: HostFacts::read(),
        }
    }

    /// Creates the Node if it does not exist, then reports it Ready; returns its uid (the Lease's owner).
    pub async fn register(&self) -> Result<String, NodeError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let name = self.config.name.clone();
        let node = match nodes.get_opt(&name).await.map_err(|source| NodeError::Get {
            name: name.clone(),
            source,
        })? {
            Some(node) => node,
            None => match nodes
                .create(&PostParams::default(), &node_object(&self.config))
                .await
            {
                Ok(node) => node,
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    nodes.get(&name).await.map_err(|source| NodeError::Get {
                        name: name.clone(),
                        source,
                    })?
                }
                Err(source) => return Err(NodeError::Create { name, source }),
            },
        };
        self.write_status(true).await?;
        Ok(node.metadata.uid.unwrap_or_default())
    }

    pub async fn write_status(&self, ready: bool) -> Result<(), NodeError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut status = node_status(&self.config, &self.facts, ready, Timestamp::now());
        // Keep lastTransitionTime unless a condition's status changes.
        let current = nodes
            .get_status(&self.config.name)
            .await
            .ok()
            .and_then(|n| n.status);
        let now = Timestamp::now();
        for condition in status.conditions.iter_mut().flatten() {
            let previous = current
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.type_ == condition.type_ && c.status == condition.status)
                })
                .and_then(|c| c.last_transition_time.clone());
            condition.last_transition_time = Some(previous.unwrap_or(Time(now)));
        }
        let patch = serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": { "name": self.config.name },
            "status": status,
        });
        nodes
            .patch_status(
                &self.config.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|source| NodeError::Status {
                name: self.config.name.clone(),
                source,
            })?;
        Ok(())
    }

    pub async fn renew_lease(&self, node_uid: &str) -> Result<(), NodeError> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let name = self.config.name.clone();
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(LEASE_NAMESPACE.into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.clone(),
                    uid: node_uid.to_owned(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(name.clone()),
                lease_duration_seconds: Some(LEASE_SECONDS),
                renew_time: Some(MicroTime(Timestamp::now())),
                ..LeaseSpec::default()
            }),
        };
        let mut patch = serde_json::to_value(&lease).unwrap_or_default();
        patch["apiVersion"] = "coordination.k8s.io/v1".into();
        patch["kind"] = "Lease".into();
        leases
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|source| NodeError::Lease { name, source })?;
        Ok(())
    }

    /// Renews the Lease every 10 s and posts Ready every minute until cancelled.
    pub async fn heartbeat(self, node_uid: String, stop: CancellationToken) {
        let mut lease_tick = tokio::time::interval(LEASE_RENEW);
        let mut status_tick = tokio::time::interval(STATUS_EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = lease_tick.tick() => {
                    if let Err(e) = self.renew_lease(&node_uid).await {
                        tracing::warn!(error = %e, "lease renewal failed; retrying in 10s");
                    }
                }
                _ = status_tick.tick() => {
                    if let Err(e) = self.write_status(true).await {
                        tracing::warn!(error = %e, "node status update failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_memory_and_os_name() {
        assert_eq!(
            meminfo_total_kib("MemTotal:       24576000 kB\nMemFree: 1 kB"),
            Some(24_576_000)
        );
        assert_eq!(
            pretty_name("NAME=Debian\nPRETTY_NAME=\"Debian GNU/Linux 13\"\n").as_deref(),
            Some("Debian GNU/Linux 13")
        );
    }

    #[test]
    fn status_reports_ready_capacity_and_addresses() {
        let config = NodeConfig {
            name: "streamlake-dev".into(),
            max_pods: 110,
            kubelet_version: "v1.36.0".into(),
            host_ip: "127.0.0.1".into(),
        };
        let facts = HostFacts {
            cpus: 2,
            memory_kib: 1024,
            kernel: "6.1".into(),
            os_image: "Debian".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
        };
        let status = node_status(&config, &facts, true, Timestamp::from_second(1).expect("valid"));
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(ready.status, "True");
        let capacity = status.capacity.expect("capacity");
        assert_eq!(capacity.get("cpu"), Some(&Quantity("2".into())));
        assert_eq!(capacity.get("memory"), Some(&Quantity("1024Ki".into())));
        assert_eq!(capacity.get("pods"), Some(&Quantity("110".into())));
        let addresses = status.addresses.expect("addresses");
        assert_eq!(addresses[0].address, "127.0.0.1");
        assert_eq!(addresses[1].type_, "Hostname");
        let not_ready = node_status(&config, &facts, false, Timestamp::from_second(1).expect("valid"));
        let ready = not_ready
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(ready.status, "False");
    }
}
