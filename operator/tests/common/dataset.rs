//! A dataset of a test's own, for the tests that land a day in a raw zone: its namespace (CRDs
//! installed), the operator's kubeconfig there, a scratch raw zone and a contracts directory with the
//! orders contract under the dataset's name.

use std::path::{Path, PathBuf};

use streamlake_core::names::DatasetName;
use streamlake_testkit::unique_name;

use super::{TestNamespace, admin, install_crds, operator_kubeconfig, repo, scratch_dir};

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
