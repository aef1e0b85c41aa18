//! A dataset of a test's own, for the tests that land a day in a raw zone: its namespace (CRDs
//! installed), the operator's kubeconfig there, a scratch raw zone and a contracts directory with the
//! orders contract under the dataset's name.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};
use streamlake_core::names::DatasetName;
use streamlake_testkit::unique_name;

use super::{TestNamespace, admin, deployment, install_crds, kafka, operator_kubeconfig, repo, scratch_dir};

pub struct TestDataset {
    pub ns: TestNamespace,
    pub kubeconfig: PathBuf,
    /// The dataset's name as a spec writes it.
    pub dataset: String,
    pub name: DatasetName,
    /// Where the raw zone goes (`file://`); nothing is created there yet.
    pub lake: PathBuf,
    pub contracts: PathBuf,
}

impl TestDataset {
    /// A namespace named after `ns_prefix` and a dataset named after `dataset_prefix`, both unique.
    pub async fn create(ns_prefix: &str, dataset_prefix: &str) -> Self {
        let client = admin().await;
        install_crds(&client).await;
        let ns = TestNamespace::create(&client, ns_prefix).await;
        let kubeconfig = operator_kubeconfig(&client, &ns.name).await;
        let dataset = unique_name(dataset_prefix);
        let name = DatasetName::new(dataset.clone()).expect("dataset name");
        let scratch = scratch_dir(&ns.name);
        let (lake, contracts) = (scratch.join("lake"), scratch.join("contracts"));
        contracts_for(&contracts, &dataset);
        Self {
            ns,
            kubeconfig,
            dataset,
            name,
            lake,
            contracts,
        }
    }

    /// The dataset's real consumer (`<dataset>-consumer`, image `streamlake/consumer`) landing in the
    /// lake, closing files after 1s and committing every 500ms; `extra_env` is added to its env.
    pub fn consumer(&self, replicas: i32, extra_env: &[Value]) -> Deployment {
        let mut env = vec![
            json!({"name": "KAFKA_BOOTSTRAP_SERVERS", "value": kafka::bootstrap()}),
            json!({"name": "STREAMLAKE_DATASET", "value": self.dataset}),
            json!({"name": "STREAMLAKE_RAW_ZONE", "value": format!("file://{}", self.lake.display())}),
            json!({"name": "STREAMLAKE_CONTRACTS_DIR", "value": self.contracts.display().to_string()}),
            json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
            json!({"name": "STREAMLAKE_LISTEN", "value": "$(POD_IP):8080"}),
            json!({"name": "STREAMLAKE_MAX_FILE_AGE", "value": "1s"}),
            json!({"name": "STREAMLAKE_COMMIT_INTERVAL", "value": "500ms"}),
            json!({"name": "RUST_LOG", "value": "info"}),
        ];
        env.extend_from_slice(extra_env);
        let container = json!({"name": "consumer", "image": "streamlake/consumer", "env": env});
        // 30s, Kubernetes' default: room to drain and commit on SIGTERM.
        deployment(
            &format!("{}-consumer", self.dataset),
            &self.dataset,
            replicas,
            30,
            container,
        )
    }
}

/// A contracts directory holding the orders contract under the dataset's name.
pub fn contracts_for(dir: &Path, dataset: &str) {
    std::fs::create_dir_all(dir).expect("contracts dir");
    std::fs::copy(
        repo().join("contracts/orders.v1.json"),
        dir.join(format!("{dataset}.v1.json")),
    )
    .expect("contract copied");
}
