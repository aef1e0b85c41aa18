//! The operator as it ships: `deploy/base/operator` applied with kustomize (through an overlay that
//! names its own namespace), two replicas as pods on the process kubelet, each with its
//! ServiceAccount's credentials. One leads; it runs a Replay; when its pod is deleted, another leads.

mod common;

use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;
use streamlake_core::names;
use streamlake_operator::crd::ReplayPhase;
use streamlake_testkit::{require_env, unique_name, wait_until};

use common::kafka;
use common::*;

/// `to` relative to `from` (kustomize wants relative paths to its bases).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let (from, to): (Vec<Component>, Vec<Component>) =
        (from.components().collect(), to.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path: PathBuf = std::iter::repeat_n(Component::ParentDir, from.len() - common).collect();
    path.extend(&to[common..]);
    path
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("streamlake-operator")
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_manifests_run_two_replicas_that_elect_a_leader_and_reconcile() {
    let client = admin().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "deploy").await;
    let suffix = format!("-{}", ns.name);

    let overlay = scratch_dir(&ns.name).join("overlay");
    std::fs::create_dir_all(&overlay).expect("overlay dir");
    let base = std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/operator"))
        .expect("deploy/base/operator");
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {ns}\nnameSuffix: {suffix}\n\
         resources:\n  - {base}\nconfigMapGenerator:\n  - name: streamlake-kafka\n    literals:\n      \
         - KAFKA_BOOTSTRAP_SERVERS={kafka}\n      - STREAMLAKE_WATCH_NAMESPACE={ns}\n",
        ns = ns.name,
        base = relative(&overlay, &base).display(),
        kafka = kafka::bootstrap(),
    );
    std::fs::write(overlay.join("kustomization.yaml"), kustomization).expect("kustomization written");
    let applied = Command::new(kafka::tool("kubectl"))
        .args(["apply", "--server-side", "--force-conflicts", "-k"])
        .arg(&overlay)
        .env("KUBECONFIG", require_env("KUBECONFIG"))
        .output()
        .expect("kubectl apply -k");
    assert!(
        applied.status.success(),
        "kubectl apply -k: {}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let operator = format!("streamlake-operator{suffix}");
    wait_replicas_of(&ns, &operator, 2).await;
    let leases: Api<Lease> = ns.api();
    wait_until("a pod holds the Lease", Duration::from_secs(60), || async {
        holder(&leases).await.is_some()
    })
    .await;
    let leader = holder(&leases).await.expect("holder");
    let pods: Api<Pod> = ns.api();
    let names: Vec<String> = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=streamlake-operator"))
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert!(
        names.contains(&leader),
        "the Lease holder {leader} is one of the pods {names:?}"
    );

    // A consumer Deployment and a fully consumed group; a Replay to the latest offsets completes at once.
    let dataset = unique_name("ds");
    let (topic, group) = (names::raw_topic(&dataset), names::consumer_group(&dataset));
    kafka::create_topic(&topic, 2).await;
    kafka::produce_timed(&topic, 2, 5, 1_700_000_000_000).await;
    kafka::commit(&group, &topic, [(0, 2), (1, 2)].into()).await;
    create_deployment(&ns, &sleeper("consumer", &dataset, 2)).await;
    wait_replicas(&ns, "consumer", 2, Duration::from_secs(60)).await;
    create_replay(
        &ns,
        "to-latest",
        json!({"dataset": dataset, "from": {"position": "latest"}}),
    )
    .await;
    wait_phase(&ns, "to-latest", ReplayPhase::Succeeded, Duration::from_secs(90)).await;
    assert_eq!(kafka::cli_offsets(&group), [(0, 5), (1, 5)].into());
    wait_replicas(&ns, "consumer", 2, Duration::from_secs(60)).await;
    let instances = event_instances(&ns, "to-latest").await;
    assert!(
        instances.iter().all(|i| i == &leader),
        "Events come from the leader {leader}: {instances:?}"
    );

    // The leader's pod goes away (SIGTERM: it releases the Lease); another pod takes over.
    pods.delete(&leader, &DeleteParams::default())
        .await
        .expect("leader pod deleted");
    wait_until("another pod holds the Lease", Duration::from_secs(60), || async {
        holder(&leases).await.is_some_and(|h| h != leader)
    })
    .await;
    create_replay(
        &ns,
        "after",
        json!({"dataset": dataset, "dryRun": true, "from": {"position": "earliest"}}),
    )
    .await;
    wait_phase(&ns, "after", ReplayPhase::Succeeded, Duration::from_secs(90)).await;

    remove_replays(&ns).await;
    let deployments: Api<Deployment> = ns.api();
    let _ = deployments.delete(&operator, &DeleteParams::default()).await;
    let _ = Api::<ClusterRoleBinding>::all(client.clone())
        .delete(&operator, &DeleteParams::default())
        .await;
    let _ = Api::<ClusterRole>::all(client.clone())
        .delete(&operator, &DeleteParams::default())
        .await;
    ns.delete().await;
}

async fn wait_replicas_of(ns: &TestNamespace, name: &str, replicas: i32) {
    let api: Api<Deployment> = ns.api();
    wait_until(
        &format!("{name} has {replicas} ready pods"),
        Duration::from_secs(120),
        || async {
            api.get(name)
                .await
                .ok()
                .and_then(|d| d.status)
                .and_then(|s| s.ready_replicas)
                == Some(replicas)
        },
    )
    .await;
}

async fn event_instances(ns: &TestNamespace, name: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> = ns.api();
    api.list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reporting_instance)
        .collect()
}
