//! Helpers of the operator's tests against the local environment: the real API server (with the
//! controller manager and the process kubelet running pods), the real Kafka broker, and the operator
//! binary running with its ServiceAccount's token, not as admin.
#![allow(dead_code)] // each test binary uses a different subset

pub mod autoscalers;
pub mod dataset;
pub mod kafka;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace as K8sNamespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use streamlake_operator::controller::{Finished, Kind};
use streamlake_operator::crd::{self, CommonStatus, Replay, ReplayPhase, ReplayStatus};
use streamlake_testkit::{require_env, unique_name, wait_until};

pub const MANAGER: &str = "streamlake-tests";

pub async fn admin() -> Client {
    require_env("KUBECONFIG");
    Client::try_default()
        .await
        .expect("a client for the local API server (KUBECONFIG)")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The CRDs from the Rust types, applied and established.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crd::all() {
        let name = crd.name_any();
        api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&crd))
            .await
            .expect("CRD applied");
    }
    for crd in crd::all() {
        let name = crd.name_any();
        let api = api.clone();
        wait_until(
            &format!("CRD {name} is established"),
            Duration::from_secs(30),
            || {
                let (api, name) = (api.clone(), name.clone());
                async move {
                    api.get(&name)
                        .await
                        .ok()
                        .and_then(|c| c.status)
                        .and_then(|s| s.conditions)
                        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
                }
            },
        )
        .await;
    }
}

/// A namespace of its own for one test; deleted by [`TestNamespace::delete`] when the test passed.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let name = unique_name(prefix);
        let api: Api<K8sNamespace> = Api::all(client.clone());
        let ns: K8sNamespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        api.create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
        Self {
            name,
            client: client.clone(),
        }
    }

    pub async fn delete(self) {
        let api: Api<K8sNamespace> = Api::all(self.client.clone());
        let _ = api.delete(&self.name, &DeleteParams::default()).await;
        let bindings: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        let _ = bindings
            .delete(
                &format!("streamlake-operator-{}", self.name),
                &DeleteParams::default(),
            )
            .await;
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

/// Every document of kind `kind` in `examples/`, with the file it is in.
pub fn examples(kind: &str) -> Vec<(PathBuf, Value)> {
    let dir = repo().join("examples");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("example");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = <Value as serde::Deserialize>::deserialize(doc).expect("yaml");
            if value["kind"] == kind {
                found.push((path.clone(), value));
            }
        }
    }
    found
}

/// Creates the `K` named `name` with `spec`, waits until the operator has finished it, and returns it
/// as it ended.
pub async fn run_to_end<K>(ns: &TestNamespace, name: &str, spec: Value, timeout: Duration) -> K
where
    K: Kind + Finished + serde::Serialize,
{
    let kind = K::kind(&());
    let object: K = serde_json::from_value(json!({
        "apiVersion": K::api_version(&()), "kind": kind, "metadata": {"name": name}, "spec": spec
    }))
    .unwrap_or_else(|e| panic!("a {kind}: {e}"));
    let api: Api<K> = ns.api();
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("{kind} {name} created: {e}"));
    wait_finished(ns, name, timeout).await
}

/// Waits until the operator has finished the `K` named `name`, and returns it as it ended.
pub async fn wait_finished<K: Kind + Finished>(ns: &TestNamespace, name: &str, timeout: Duration) -> K {
    let kind = K::kind(&());
    let api: Api<K> = ns.api();
    wait_until(&format!("{kind} {name} finishes"), timeout, || async {
        api.get(name).await.ok().is_some_and(|o| o.finished())
    })
    .await;
    api.get(name)
        .await
        .unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
}

fn manifest<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = repo().join("deploy/base/operator").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The operator's ServiceAccount and RBAC from `deploy/base/operator/` in `ns`, and a kubeconfig that
/// authenticates as that ServiceAccount with a token minted by the TokenRequest API.
pub async fn operator_kubeconfig(client: &Client, ns: &str) -> PathBuf {
    let apply = PatchParams::apply(MANAGER).force();
    let mut account: ServiceAccount = manifest("serviceaccount.yaml");
    account.metadata.namespace = Some(ns.to_owned());
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    accounts
        .patch(&account.name_any(), &apply, &Patch::Apply(&account))
        .await
        .expect("ServiceAccount");

    let role: ClusterRole = manifest("clusterrole.yaml");
    let roles: Api<ClusterRole> = Api::all(client.clone());
    roles
        .patch(&role.name_any(), &apply, &Patch::Apply(&role))
        .await
        .expect("ClusterRole");
    let mut binding: ClusterRoleBinding = manifest("clusterrolebinding.yaml");
    binding.metadata.name = Some(format!("streamlake-operator-{ns}"));
    for subject in binding.subjects.iter_mut().flatten() {
        subject.namespace = Some(ns.to_owned());
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    bindings
        .patch(&binding.name_any(), &apply, &Patch::Apply(&binding))
        .await
        .expect("ClusterRoleBinding");

    let mut role: Role = manifest("role.yaml");
    role.metadata.namespace = Some(ns.to_owned());
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    roles
        .patch(&role.name_any(), &apply, &Patch::Apply(&role))
        .await
        .expect("Role");
    let mut binding: RoleBinding = manifest("rolebinding.yaml");
    binding.metadata.namespace = Some(ns.to_owned());
    for subject in binding.subjects.iter_mut().flatten() {
        subject.namespace = Some(ns.to_owned());
    }
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    bindings
        .patch(&binding.name_any(), &apply, &Patch::Apply(&binding))
        .await
        .expect("RoleBinding");

    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let issued: TokenRequest = accounts
        .create_subresource("token", &account.name_any(), &PostParams::default(), &request)
        .await
        .expect("token for the operator's ServiceAccount");
    let token = issued.status.expect("token status").token;

    let admin = kube::config::Kubeconfig::read_from(require_env("KUBECONFIG")).expect("admin kubeconfig");
    let cluster = admin.clusters[0].cluster.clone().expect("cluster entry");
    let mut entry = json!({"server": cluster.server});
    if let Some(ca) = cluster.certificate_authority_data {
        entry["certificate-authority-data"] = ca.into();
    }
    if let Some(ca) = cluster.certificate_authority {
        entry["certificate-authority"] = ca.into();
    }
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": entry}],
        "users": [{"name": "streamlake-operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "streamlake-operator", "namespace": ns}}],
        "current-context": "operator",
    });
    let dir = scratch_dir(ns);
    let path = dir.join("operator.kubeconfig");
    std::fs::write(&path, serde_json::to_vec_pretty(&kubeconfig).expect("json")).expect("kubeconfig written");
    path
}

pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("streamlake-operator-tests").join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub use streamlake_testkit::free_port;

/// The `operator` binary, watching one namespace, authenticated as its ServiceAccount.
pub struct Operator {
    child: Child,
    pub identity: String,
    pub metrics: SocketAddr,
    pub log: PathBuf,
}

impl Operator {
    pub fn start(kubeconfig: &Path, ns: &str, identity: &str) -> Self {
        Self::start_with_env(kubeconfig, ns, identity, &[])
    }

    /// [`Operator::start`] with extra environment, e.g. the raw zone and the contracts directory.
    pub fn start_with_env(kubeconfig: &Path, ns: &str, identity: &str, env: &[(&str, &Path)]) -> Self {
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = scratch_dir(ns).join(format!("operator-{identity}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_operator"))
            .args(["--namespace", ns, "--lease-namespace", ns, "--identity", identity])
            .args(["--lease-seconds", "6", "--metrics-addr", &metrics.to_string()])
            .env("KUBECONFIG", kubeconfig)
            .env("KAFKA_BOOTSTRAP_SERVERS", kafka::bootstrap())
            .env("RUST_LOG", "info,kube_runtime=warn,rdkafka=warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("start the operator binary");
        Self {
            child,
            identity: identity.to_owned(),
            metrics,
            log,
        }
    }

    /// SIGKILL: no cleanup, no Lease release; what a crash or an evicted pod looks like.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
        panic!(
            "the operator did not stop within 20 s of SIGTERM; log: {}",
            self.log.display()
        );
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub async fn metrics_text(&self) -> Option<String> {
        let response = reqwest::get(format!("http://{}/metrics", self.metrics))
            .await
            .ok()?;
        response.text().await.ok()
    }

    /// The value of a sample line, e.g. `streamlake_operator_leader`.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.metrics_text().await?;
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Labels of a dataset's consumer Deployment (DESIGN.md "Names").
pub fn consumer_labels(dataset: &str) -> Value {
    json!({"streamlake.io/dataset": dataset, "streamlake.io/component": "consumer"})
}

fn deployment(name: &str, dataset: &str, replicas: i32, grace_seconds: i64, container: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": consumer_labels(dataset)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": grace_seconds, "containers": [container]}
            }
        }
    }))
    .expect("deployment")
}

/// Pods that are not Kafka members at all: scaling and offsets alone are under test.
pub fn sleeper(name: &str, dataset: &str, replicas: i32) -> Deployment {
    deployment(
        name,
        dataset,
        replicas,
        10,
        json!({"name": "consumer", "image": "busybox", "command": ["sleep", "3600"]}),
    )
}

pub async fn create_deployment(ns: &TestNamespace, deployment: &Deployment) {
    ns.api::<Deployment>()
        .create(&PostParams::default(), deployment)
        .await
        .expect("Deployment created");
}

/// Waits until the Deployment wants `replicas` and has them all ready (and no more pods).
pub async fn wait_replicas(ns: &TestNamespace, name: &str, replicas: i32, timeout: Duration) {
    let api: Api<Deployment> = ns.api();
    let pods: Api<Pod> = ns.api();
    wait_until(
        &format!("Deployment {name} runs {replicas} ready replicas"),
        timeout,
        || {
            let (api, pods) = (api.clone(), pods.clone());
            async move {
                let Ok(d) = api.get(name).await else { return false };
                let wanted = d.spec.as_ref().and_then(|s| s.replicas) == Some(replicas);
                let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0) == replicas;
                let listed = pods
                    .list(&ListParams::default().labels(&format!("app={name}")))
                    .await;
                let count = listed.map(|l| l.items.len()).unwrap_or(usize::MAX);
                wanted && ready && count == usize::try_from(replicas).unwrap_or(0)
            }
        },
    )
    .await;
}

pub async fn spec_replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    ns.api::<Deployment>().get(name).await.ok()?.spec?.replicas
}

pub async fn pod_uids(ns: &TestNamespace, app: &str) -> Vec<String> {
    let pods: Api<Pod> = ns.api();
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("pods");
    list.items.iter().filter_map(|p| p.uid()).collect()
}

pub async fn create_replay(ns: &TestNamespace, name: &str, spec: Value) -> Replay {
    let replay: Replay = serde_json::from_value(json!({
        "apiVersion": "streamlake.io/v1alpha1", "kind": "Replay",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("replay");
    ns.api::<Replay>()
        .create(&PostParams::default(), &replay)
        .await
        .expect("Replay created")
}

/// Deletes every Replay of the namespace and waits until they are gone.
pub async fn remove_replays(ns: &TestNamespace) {
    let resource = kube::core::ApiResource::erase::<Replay>(&());
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(ns.client(), &ns.name, &resource);
    let _ = api
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    wait_until(
        "every Replay of the test is deleted",
        Duration::from_secs(60),
        || async {
            api.list(&ListParams::default())
                .await
                .is_ok_and(|l| l.items.is_empty())
        },
    )
    .await;
}

/// Creates a Replay from raw JSON, bypassing the Rust types (for objects they would refuse).
pub async fn create_unchecked_replay(ns: &TestNamespace, name: &str, spec: Value) {
    let resource = kube::core::ApiResource::erase::<Replay>(&());
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(ns.client(), &ns.name, &resource);
    let object: kube::core::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "streamlake.io/v1alpha1", "kind": "Replay",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("accepted by the API server");
}

/// Reads a Replay whatever its content, as JSON.
pub async fn raw_replay(ns: &TestNamespace, name: &str) -> Value {
    let resource = kube::core::ApiResource::erase::<Replay>(&());
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(ns.client(), &ns.name, &resource);
    serde_json::to_value(api.get(name).await.expect("replay")).expect("json")
}

/// Whether the status's message says `words`.
pub fn message_says<P>(status: &CommonStatus<P>, words: &str) -> bool {
    status.message.as_deref().is_some_and(|m| m.contains(words))
}

/// A Replay's plan as (partition, committed before, new offset, end offset) rows.
pub fn plan_rows(status: &ReplayStatus) -> Vec<(i32, Option<i64>, i64, i64)> {
    status
        .plan
        .iter()
        .map(|p| (p.partition, p.committed, p.new_offset, p.end_offset))
        .collect()
}

pub fn phase(replay: &Replay) -> Option<ReplayPhase> {
    replay.status.as_ref().and_then(|s| s.common.phase)
}

/// Waits until `check` holds for the Replay; returns it.
pub async fn wait_replay(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Replay) -> bool,
) -> Replay {
    let api: Api<Replay> = ns.api();
    let check = &check;
    wait_until(&format!("Replay {name}: {what}"), timeout, || {
        let api = api.clone();
        async move { api.get(name).await.is_ok_and(|r| check(&r)) }
    })
    .await;
    api.get(name).await.expect("replay")
}

pub async fn wait_phase(ns: &TestNamespace, name: &str, wanted: ReplayPhase, timeout: Duration) -> Replay {
    let api: Api<Replay> = ns.api();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let replay = api.get(name).await.expect("replay");
        if phase(&replay) == Some(wanted) {
            return replay;
        }
        let terminal = phase(&replay).is_some_and(ReplayPhase::is_terminal);
        if terminal || tokio::time::Instant::now() >= deadline {
            let status = serde_json::to_string_pretty(&replay.status).unwrap_or_default();
            panic!("Replay {name} did not reach {wanted} within {timeout:?}; status: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reasons of the Events about an object, oldest first.
pub async fn event_reasons(ns: &TestNamespace, name: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> = ns.api();
    let mut events: Vec<_> = api
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    events.into_iter().filter_map(|e| e.reason).collect()
}

/// `kubectl` against the admin kubeconfig; its stdout, or a panic with its stderr.
pub fn kubectl(args: &[&str]) -> String {
    let output = Command::new(kafka::tool("kubectl"))
        .args(args)
        .env("KUBECONFIG", require_env("KUBECONFIG"))
        .output()
        .expect("run kubectl");
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
