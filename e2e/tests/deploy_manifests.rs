//! The deployment manifests (deploy/): every overlay renders with `kubectl kustomize` and passes a server-side
//! dry-run apply against the local API server without a warning (Pod Security `restricted` included), every
//! workload is hardened, probed and bounded, and each overlay has what its environment needs.
//! The ServiceAccounts' permissions are checked in deploy_rbac.rs.

mod deploy_support;

use deploy_support::{
    Manifests, NAMESPACE, OVERLAYS, containers, env_value, kubectl, kubectl_with_stdin, labels_match,
    repo_root,
};
use serde_json::Value;

#[test]
fn overlays_render_with_kubectl_kustomize() {
    for overlay in OVERLAYS {
        let out = kubectl(&["kustomize", &format!("deploy/overlays/{overlay}")]);
        assert!(
            out.status.success(),
            "{overlay}: kubectl kustomize failed: {}",
            out.stderr
        );
        let yaml = out.stdout;
        assert_eq!(
            yaml.matches("kind: CustomResourceDefinition").count(),
            4,
            "{overlay}: the four CRDs"
        );
        for name in [
            "streamlake-ingest-api",
            "streamlake-consumer-orders",
            "streamlake-operator",
        ] {
            assert!(
                yaml.contains(&format!("name: {name}\n")),
                "{overlay}: renders {name}"
            );
        }
    }
}

#[test]
fn overlays_pass_a_server_side_dry_run_without_warnings() {
    for overlay in OVERLAYS {
        let out = kubectl(&[
            "apply",
            "--server-side",
            "--dry-run=server",
            // Its own field manager and --force-conflicts: the live objects' owners never block the check.
            "--force-conflicts",
            "--field-manager=streamlake-deploy-check",
            "-k",
            &format!("deploy/overlays/{overlay}"),
        ]);
        assert!(
            out.status.success(),
            "{overlay}: server dry run failed: {}",
            out.stderr
        );
        // Pod Security `warn: restricted` on the namespace turns any non-compliant template into a warning.
        assert!(
            !out.stderr.to_lowercase().contains("warning"),
            "{overlay}: the API server warned: {}",
            out.stderr
        );
        let applied = out
            .stdout
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert!(
            applied >= 20,
            "{overlay}: only {applied} objects went through the dry run:\n{}",
            out.stdout
        );
    }
}

#[test]
fn restricted_pod_security_refuses_a_root_pod_in_the_namespace() {
    let pod = r#"{"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "psa-check", "namespace": "streamlake"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}"#;
    let out = kubectl_with_stdin(&["create", "--dry-run=server", "-f", "-"], Some(pod));
    assert!(
        !out.status.success(),
        "a pod without securityContext was admitted into {NAMESPACE}"
    );
    assert!(
        out.stderr.contains("violates PodSecurity \"restricted"),
        "refused for Pod Security: {}",
        out.stderr
    );
}

#[test]
fn workloads_are_hardened_probed_and_bounded_in_every_overlay() {
    for overlay in OVERLAYS {
        let manifests = Manifests::render(overlay);
        let workloads = manifests.of_kinds(&["Deployment", "StatefulSet"]);
        assert!(
            workloads.len() >= 3,
            "{overlay}: the three platform Deployments at least"
        );
        for workload in workloads {
            let name = format!("{overlay}: {}", workload["metadata"]["name"]);
            let pod = &workload["spec"]["template"]["spec"];
            assert_eq!(
                pod["securityContext"]["runAsNonRoot"], true,
                "{name}: pod runAsNonRoot"
            );
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{name}: seccomp"
            );
            assert_ne!(pod["hostNetwork"], true, "{name}: no hostNetwork");
            for (container, is_init) in containers(pod) {
                let cname = format!("{name}/{}", container["name"]);
                let sc = &container["securityContext"];
                assert_eq!(
                    sc["allowPrivilegeEscalation"], false,
                    "{cname}: allowPrivilegeEscalation"
                );
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{cname}: drop ALL"
                );
                // The apache/kafka image writes its rendered config into the image (kind only).
                if container["name"] != "kafka" {
                    assert_eq!(
                        sc["readOnlyRootFilesystem"], true,
                        "{cname}: read-only root filesystem"
                    );
                }
                let resources = &container["resources"];
                for field in ["requests/cpu", "requests/memory", "limits/memory"] {
                    let (a, b) = field.split_once('/').expect("a/b");
                    assert!(resources[a][b].is_string(), "{cname}: resources.{a}.{b}");
                }
                if !is_init {
                    assert!(
                        container["readinessProbe"].is_object(),
                        "{cname}: readiness probe"
                    );
                    assert!(container["livenessProbe"].is_object(), "{cname}: liveness probe");
                }
            }
        }
        let platform = manifests.platform_deployments();
        for deployment in &platform {
            let template_labels = &deployment["spec"]["template"]["metadata"]["labels"];
            let budgets = manifests.of_kinds(&["PodDisruptionBudget"]);
            assert!(
                budgets
                    .iter()
                    .any(|pdb| labels_match(&pdb["spec"]["selector"]["matchLabels"], template_labels)),
                "{overlay}: a PodDisruptionBudget covers {}",
                deployment["metadata"]["name"]
            );
        }
        let deny_all = manifests.of_kinds(&["NetworkPolicy"]).into_iter().any(|np| {
            np["spec"]["podSelector"]
                .as_object()
                .is_some_and(|s| s.is_empty())
                && np["spec"]["policyTypes"] == serde_json::json!(["Ingress"])
                && np["spec"]["ingress"].is_null()
        });
        assert!(deny_all, "{overlay}: a default-deny ingress NetworkPolicy");
        let namespace = manifests.named("Namespace", NAMESPACE);
        assert_eq!(
            namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
            "restricted"
        );
    }
}

#[test]
fn every_contract_has_a_consumer_deployment_in_every_overlay() {
    let datasets = contract_datasets();
    assert!(
        datasets.contains(&"orders".to_owned()),
        "contracts/ holds orders: {datasets:?}"
    );
    for overlay in OVERLAYS {
        let manifests = Manifests::render(overlay);
        for dataset in &datasets {
            let consumers: Vec<&Value> = manifests
                .platform_deployments()
                .into_iter()
                .filter(|d| {
                    let labels = &d["metadata"]["labels"];
                    labels["streamlake.io/component"] == "consumer"
                        && labels["streamlake.io/dataset"] == **dataset
                })
                .collect();
            assert_eq!(
                consumers.len(),
                1,
                "{overlay}: one consumer Deployment for dataset {dataset}"
            );
            let container = &consumers[0]["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(
                env_value(container, "STREAMLAKE_DATASET").as_deref(),
                Some(dataset.as_str())
            );
        }
    }
}

#[test]
fn the_operator_reads_the_config_the_consumers_write_with_in_every_overlay() {
    for overlay in OVERLAYS {
        let manifests = Manifests::render(overlay);
        let config_maps = |name: &str| -> Vec<String> {
            let container = &manifests.named("Deployment", name)["spec"]["template"]["spec"]["containers"][0];
            let sources = container["envFrom"].as_array().cloned().unwrap_or_default();
            sources
                .iter()
                .filter_map(|s| s["configMapRef"]["name"].as_str().map(str::to_owned))
                .collect()
        };
        let consumer = config_maps("streamlake-consumer-orders");
        let operator = config_maps("streamlake-operator");
        let shared = consumer.iter().find(|n| n.starts_with("streamlake-config-"));
        assert!(
            shared.is_some(),
            "{overlay}: the consumer reads streamlake-config: {consumer:?}"
        );
        assert!(
            operator.iter().any(|n| Some(n) == shared),
            "{overlay}: the operator (DqCheck) reads the same raw zone config: {operator:?}"
        );
    }
}

#[test]
fn dev_overlay_runs_on_the_process_kubelet() {
    let manifests = Manifests::render("dev");
    for deployment in manifests.platform_deployments() {
        let name = &deployment["metadata"]["name"];
        // Replicas left to the default (1) and to the operator, which scales consumers during replays.
        assert!(
            deployment["spec"]["replicas"].is_null(),
            "dev: {name} leaves spec.replicas unset"
        );
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let image = container["image"].as_str().expect("image");
        assert!(
            image.starts_with("streamlake/") && image.ends_with(":dev"),
            "dev: {name} image {image}"
        );
    }
    // Each pod binds its own pod IP: replicas on the one host never clash.
    for (deployment, variable) in [
        ("streamlake-ingest-api", "INGEST_LISTEN_ADDR"),
        ("streamlake-consumer-orders", "STREAMLAKE_LISTEN"),
        ("streamlake-operator", "STREAMLAKE_METRICS_ADDR"),
    ] {
        let container =
            &manifests.named("Deployment", deployment)["spec"]["template"]["spec"]["containers"][0];
        let value = env_value(container, variable).unwrap_or_default();
        assert!(
            value.starts_with("$(POD_IP):"),
            "dev: {deployment} {variable}={value}"
        );
    }
    // A host directory the consumers and the operator share (dev/platform/up points it at the state dir).
    let config = manifests.config_map("streamlake-config");
    let raw_zone = config["STREAMLAKE_RAW_ZONE"].as_str().unwrap_or_default();
    assert!(
        raw_zone.starts_with("file:///"),
        "dev: a local raw zone, got {raw_zone:?}"
    );
    assert_eq!(
        manifests.config_map("streamlake-kafka")["KAFKA_BOOTSTRAP_SERVERS"],
        "127.0.0.1:19092"
    );
}

#[test]
fn kind_overlay_serves_the_host_ports_of_kind_config() {
    let kind_config =
        std::fs::read_to_string(repo_root().join("kind-config.yaml")).expect("kind-config.yaml");
    let mapped: Vec<u64> = kind_config
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("- containerPort:")
                .or(l.trim().strip_prefix("containerPort:"))
        })
        .map(|p| p.trim().parse().expect("a port number"))
        .collect();
    let manifests = Manifests::render("kind");
    let node_ports: Vec<u64> = manifests
        .of_kinds(&["Service"])
        .iter()
        .flat_map(|s| s["spec"]["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["nodePort"].as_u64())
        .collect();
    assert_eq!(
        mapped.len(),
        3,
        "kind-config.yaml maps the API, Kafka and the emulator: {mapped:?}"
    );
    for port in &mapped {
        assert!(
            node_ports.contains(port),
            "kind: a NodePort {port} for kind-config.yaml (have {node_ports:?})"
        );
    }
    let kafka = manifests.named("StatefulSet", "kafka");
    let image = kafka["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("image");
    assert!(
        image.starts_with("apache/kafka:"),
        "kind: the official Apache Kafka image, not {image}"
    );
    let kafka_env = &kafka["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        env_value(kafka_env, "KAFKA_PROCESS_ROLES").as_deref(),
        Some("broker,controller")
    );
    // `kafka-storage format` wants 16 bytes in URL-safe base64 without padding: 22 characters.
    let cluster_id = env_value(kafka_env, "CLUSTER_ID").unwrap_or_default();
    let base64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    assert!(
        cluster_id.len() == 22 && cluster_id.chars().all(base64url),
        "kind: CLUSTER_ID {cluster_id:?}"
    );
    assert!(manifests.named("Deployment", "fake-gcs-server").is_object());
    let config = manifests.config_map("streamlake-config");
    assert_eq!(
        config["STORAGE_EMULATOR_HOST"],
        "http://fake-gcs-server.streamlake.svc:4443"
    );
}

#[test]
fn gke_overlay_uses_workload_identity_a_kafka_secret_and_an_hpa() {
    let manifests = Manifests::render("gke");
    let hpa = manifests.named("HorizontalPodAutoscaler", "streamlake-ingest-api");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "streamlake-ingest-api");
    assert!(
        hpa["spec"]["minReplicas"].as_u64() >= Some(2),
        "gke: the HPA keeps two API replicas"
    );
    let api = manifests.named("Deployment", "streamlake-ingest-api");
    assert!(
        api["spec"]["replicas"].is_null(),
        "gke: the HPA owns the API's replicas"
    );
    for deployment in manifests.platform_deployments() {
        let env_from = &deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"];
        let secret_refs: Vec<&Value> = env_from
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["secretRef"]["name"] == "streamlake-kafka-credentials")
            .collect();
        assert_eq!(
            secret_refs.len(),
            1,
            "gke: {} reads the Kafka credentials Secret",
            deployment["metadata"]["name"]
        );
    }
    let consumer_sa = manifests.named("ServiceAccount", "streamlake-consumer");
    let gsa = consumer_sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        .as_str()
        .unwrap_or("");
    assert!(
        gsa.ends_with(".iam.gserviceaccount.com"),
        "gke: Workload Identity annotation, got {gsa:?}"
    );
    let config = manifests.config_map("streamlake-config");
    assert!(
        config["STREAMLAKE_RAW_ZONE"]
            .as_str()
            .is_some_and(|z| z.starts_with("gs://"))
    );
    assert!(config["STORAGE_EMULATOR_HOST"].is_null(), "gke: no emulator");
    assert_eq!(
        manifests.config_map("streamlake-kafka")["KAFKA_SECURITY_PROTOCOL"],
        "sasl_ssl"
    );
}

/// The dataset names of contracts/<dataset>.v<N>.json.
fn contract_datasets() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("contracts"))
        .expect("contracts/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| Some(f.strip_suffix(".json")?.split_once(".v")?.0.to_owned()))
        .collect();
    names.sort();
    names.dedup();
    names
}
