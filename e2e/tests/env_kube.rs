//! The local Kubernetes is real: the upstream API server and controllers, and the process kubelet running
//! pods as local processes. Deployments scale real processes up and down; Jobs complete or fail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use streamlake_testkit::{require_env, unique_name, wait_until};

/// A throwaway namespace, deleted when the test ends (pass or fail).
struct TestNamespace {
    client: Client,
    name: String,
}

impl TestNamespace {
    async fn create(prefix: &str) -> Self {
        require_env("KUBECONFIG");
        let client = Client::try_default().await.expect("a client from KUBECONFIG");
        let name = unique_name(prefix);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("namespace created");
        Self { client, name }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Best effort, on a runtime of its own (the test's may be gone): the namespace controller and
        // the kubelet clean up what is left inside.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(client) = Client::try_default().await {
                        let namespaces: Api<Namespace> = Api::all(client);
                        namespaces.delete(&name, &DeleteParams::default()).await.ok();
                    }
                });
            }
        })
        .join()
        .ok();
    }
}

/// A shell program that records its pid and reports SIGTERM into `out_dir`, one file per pod.
fn sleeper_script() -> &'static str {
    r#"echo $$$$ > "$OUT_DIR/$POD_NAME.pid"; trap 'echo got SIGTERM > "$OUT_DIR/$POD_NAME.term"; exit 0' TERM; while true; do sleep 0.2; done"#
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn recorded_pids(out_dir: &Path) -> Vec<(String, u32)> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(out_dir).expect("out dir").flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) == Some("pid") {
            let pod = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            if let Some(pid) = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                pids.push((pod, pid));
            }
        }
    }
    pids
}

fn out_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(require_env("STREAMLAKE_STATE"))
        .join("test-out")
        .join(name);
    std::fs::create_dir_all(&dir).expect("out dir");
    dir
}

#[tokio::test]
async fn a_deployment_runs_real_processes_and_scaling_to_zero_terminates_them_with_sigterm() {
    let ns = TestNamespace::create("env-deploy").await;
    let dir = out_dir(&ns.name);
    let deployments: Api<Deployment> = ns.api();
    let deployment = serde_json::from_value(json!({
        "metadata": {"name": "sleeper"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "sleeper"}},
            "template": {
                "metadata": {"labels": {"app": "sleeper"}},
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "containers": [{
                        "name": "sleeper",
                        "image": "busybox:1.36",
                        "command": ["sh", "-c", sleeper_script()],
                        "env": [
                            {"name": "OUT_DIR", "value": dir.to_string_lossy()},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                        ]
                    }]
                }
            }
        }
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("deployment created");

    wait_until(
        "the deployment has 2 ready replicas",
        Duration::from_secs(60),
        || async {
            let d = deployments.get("sleeper").await.ok();
            d.and_then(|d| d.status).and_then(|s| s.ready_replicas) == Some(2)
        },
    )
    .await;
    wait_until(
        "both processes recorded their pids",
        Duration::from_secs(20),
        || async { recorded_pids(&dir).len() == 2 },
    )
    .await;
    let pids = recorded_pids(&dir);
    for (pod, pid) in &pids {
        assert!(process_alive(*pid), "pod {pod}: process {pid} is not running");
    }
    assert_ne!(pids[0].1, pids[1].1, "two replicas are two processes");

    deployments
        .patch(
            "sleeper",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scaled to 0");
    wait_until("both processes exited", Duration::from_secs(60), || async {
        pids.iter().all(|(_, pid)| !process_alive(*pid))
    })
    .await;
    for (pod, _) in &pids {
        let term = std::fs::read_to_string(dir.join(format!("{pod}.term")))
            .unwrap_or_else(|_| panic!("pod {pod} never reported SIGTERM"));
        assert_eq!(term.trim(), "got SIGTERM");
    }
    wait_until(
        "the deployment reports 0 replicas",
        Duration::from_secs(60),
        || async {
            let status = deployments.get("sleeper").await.ok().and_then(|d| d.status);
            status.is_some_and(|s| s.replicas.unwrap_or(0) == 0 && s.ready_replicas.unwrap_or(0) == 0)
        },
    )
    .await;
}

fn job(name: &str, script: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}]
            }}
        }
    }))
    .expect("job")
}

fn job_condition(job: &Job, kind: &str) -> bool {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == kind && c.status == "True"))
}

#[tokio::test]
async fn a_job_that_exits_zero_is_complete_and_one_that_exits_non_zero_is_failed() {
    let ns = TestNamespace::create("env-jobs").await;
    let jobs: Api<Job> = ns.api();
    jobs.create(
        &PostParams::default(),
        &job("succeeds", "echo working; sleep 1; exit 0"),
    )
    .await
    .expect("job");
    jobs.create(&PostParams::default(), &job("fails", "echo broken >&2; exit 3"))
        .await
        .expect("job");

    wait_until("job `succeeds` is Complete", Duration::from_secs(90), || async {
        jobs.get("succeeds")
            .await
            .is_ok_and(|j| job_condition(&j, "Complete"))
    })
    .await;
    wait_until("job `fails` is Failed", Duration::from_secs(90), || async {
        jobs.get("fails").await.is_ok_and(|j| job_condition(&j, "Failed"))
    })
    .await;
    let succeeded = jobs.get("succeeds").await.expect("job");
    assert_eq!(succeeded.status.and_then(|s| s.succeeded), Some(1));
    let failed = jobs.get("fails").await.expect("job");
    assert!(!job_condition(&failed, "Complete"));
    assert_eq!(failed.status.and_then(|s| s.failed), Some(1));
}
