//! kubectl, the rendered overlays as JSON, and small lookups for deploy_manifests.rs and deploy_rbac.rs.
// Each test file uses a part of it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use serde_json::Value;
use streamlake_testkit::require_env;

pub const OVERLAYS: [&str; 3] = ["dev", "kind", "gke"];
pub const NAMESPACE: &str = "streamlake";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the kubectl dev/k8s built (the cluster's version, with its kustomize) from the repository root.
pub fn kubectl(args: &[&str]) -> Ran {
    kubectl_with_stdin(args, None)
}

pub fn kubectl_with_stdin(args: &[&str], stdin: Option<&str>) -> Ran {
    let state = require_env("STREAMLAKE_STATE");
    require_env("KUBECONFIG");
    let mut child = Command::new(Path::new(&state).join("bin/kubectl"))
        .args(args)
        .current_dir(repo_root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl starts (dev/up builds it into $STREAMLAKE_STATE/bin)");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes()).expect("kubectl reads stdin");
    }
    let out = child.wait_with_output().expect("kubectl finishes");
    Ran {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The objects an overlay renders to, as JSON (kustomize's YAML, converted by kubectl without the server).
#[derive(Debug)]
pub struct Manifests {
    objects: Vec<Value>,
}

impl Manifests {
    pub fn render(overlay: &str) -> Self {
        let rendered = kubectl(&["kustomize", &format!("deploy/overlays/{overlay}")]);
        assert!(
            rendered.status.success(),
            "{overlay}: kubectl kustomize failed: {}",
            rendered.stderr
        );
        let converted = kubectl_with_stdin(
            &[
                "create",
                "--dry-run=client",
                "--validate=false",
                "-o",
                "json",
                "-f",
                "-",
            ],
            Some(&rendered.stdout),
        );
        assert!(
            converted.status.success(),
            "{overlay}: YAML to JSON failed: {}",
            converted.stderr
        );
        let objects = serde_json::Deserializer::from_str(&converted.stdout)
            .into_iter::<Value>()
            .collect::<Result<Vec<_>, _>>()
            .expect("kubectl prints JSON objects");
        Self { objects }
    }

    pub fn of_kinds(&self, kinds: &[&str]) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|o| kinds.iter().any(|k| o["kind"] == *k))
            .collect()
    }

    pub fn named(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the rendered overlay"))
    }

    /// The data of a generated ConfigMap, found by its name without kustomize's hash suffix.
    pub fn config_map(&self, name: &str) -> &Value {
        let prefix = format!("{name}-");
        let found = self.objects.iter().find(|o| {
            o["kind"] == "ConfigMap"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&prefix))
        });
        &found.unwrap_or_else(|| panic!("no ConfigMap {name}"))["data"]
    }

    /// The Deployments of StreamLake itself (not the kind overlay's Kafka and emulator).
    pub fn platform_deployments(&self) -> Vec<&Value> {
        self.of_kinds(&["Deployment"])
            .into_iter()
            .filter(|d| d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "streamlake")
            .collect()
    }
}

/// Every container of a pod spec, with whether it is an init container.
pub fn containers(pod: &Value) -> Vec<(&Value, bool)> {
    let list = |key: &str, init: bool| {
        pod[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(move |c| (c, init))
            .collect::<Vec<_>>()
    };
    let mut all = list("initContainers", true);
    all.extend(list("containers", false));
    all
}

pub fn env_value(container: &Value, name: &str) -> Option<String> {
    container["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"]
        .as_str()
        .map(str::to_owned)
}

/// True if every label of the selector is on the object.
pub fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}

/// `kubectl auth can-i` as a ServiceAccount of the streamlake namespace, with the groups its token carries.
/// `resource` may carry flags (`deployments.apps --subresource=scale`); `namespace` "*" means all
/// namespaces and "-" a cluster-scoped resource.
pub fn can_i(account: &str, verb: &str, resource: &str, namespace: &str) -> bool {
    let user = format!("--as=system:serviceaccount:{NAMESPACE}:{account}");
    let own_group = format!("--as-group=system:serviceaccounts:{NAMESPACE}");
    let mut args = vec!["auth", "can-i", verb];
    args.extend(resource.split_whitespace());
    args.extend([
        user.as_str(),
        "--as-group=system:serviceaccounts",
        own_group.as_str(),
    ]);
    match namespace {
        "*" => args.push("--all-namespaces"),
        "-" => {}
        ns => args.extend(["-n", ns]),
    }
    let out = kubectl(&args);
    match out.stdout.trim() {
        "yes" => true,
        "no" => false,
        other => panic!(
            "kubectl {}: unexpected answer {other:?} ({})",
            args.join(" "),
            out.stderr
        ),
    }
}

/// The RBAC under test is what dev/platform/up applied from deploy/overlays/dev.
pub fn require_deployed_rbac() {
    let out = kubectl(&[
        "get",
        "clusterrolebinding/streamlake-operator",
        "-n",
        NAMESPACE,
        "serviceaccount/streamlake-operator",
        "serviceaccount/streamlake-ingest-api",
        "serviceaccount/streamlake-consumer",
    ]);
    assert!(
        out.status.success(),
        "the platform's ServiceAccounts and RBAC are not deployed: run `dev/up` (dev/platform/up applies \
         deploy/overlays/dev) and `source .streamlake/env`: {}",
        out.stderr
    );
}
