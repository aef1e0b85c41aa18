//! `DqCheck`: prove a day (or days) of a dataset's raw zone is complete and consistent.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema;
use super::status::CommonStatus;

/// Runs data-quality checks over raw-zone partitions and reports each with its observed value.
// Each printcolumn(...) repeats `type_ = "string"`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "streamlake.io",
    version = "v1alpha1",
    kind = "DqCheck",
    plural = "dqchecks",
    shortname = "dqc",
    category = "streamlake",
    namespaced,
    status = "DqCheckStatus",
    doc = "Checks one or more days of a dataset's raw zone (files, row counts, _metadata.json, offset \
           continuity, contract sample, freshness) and reports each check with its observed value.",
    printcolumn(name = "Dataset", type_ = "string", json_path = ".spec.dataset"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Progress", type_ = "string", json_path = ".status.progress"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self == oldSelf",
        "message": "spec is immutable: delete this DqCheck and create a new one"
    },
    {
        "rule": "(has(self.date) ? 1 : 0) + ((has(self.startDate) || has(self.endDate)) ? 1 : 0) == 1",
        "message": "set exactly one of date, or startDate and endDate"
    },
    {
        "rule": "has(self.startDate) == has(self.endDate)",
        "message": "startDate and endDate go together"
    },
    {
        "rule": "!has(self.startDate) || !has(self.endDate) || self.endDate >= self.startDate",
        "message": "endDate must not be before startDate"
    }
]))]
pub struct DqCheckSpec {
    #[schemars(schema_with = "schema::dataset")]
    pub dataset: String,
    /// The UTC day (`ingestion_date`) to check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_date")]
    pub date: Option<String>,
    /// First day of a range, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_date")]
    pub start_date: Option<String>,
    /// Last day of a range, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_date")]
    pub end_date: Option<String>,
    /// Which checks to run; at least one.
    pub checks: DqChecks,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.filesExist) && self.filesExist) || has(self.minRowCount) || (has(self.metadataConsistent) && self.metadataConsistent) || (has(self.noEmptyPartitions) && self.noEmptyPartitions) || (has(self.offsetContinuity) && self.offsetContinuity) || has(self.contractSample) || has(self.freshness)",
        "message": "select at least one check"
    }
]))]
pub struct DqChecks {
    /// Every day in the range has data files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_exist: Option<bool>,
    /// At least this many rows in the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_row_count: Option<i64>,
    /// `_metadata.json` is present and agrees with the data files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_consistent: Option<bool>,
    /// No day in the range is unexpectedly empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_empty_partitions: Option<bool>,
    /// File offset ranges have no gaps or overlaps, up to the group's committed offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_continuity: Option<bool>,
    /// Validate a sample of rows against the dataset's contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_sample: Option<ContractSample>,
    /// The newest record is no older than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Freshness>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContractSample {
    #[schemars(range(min = 1, max = 100_000))]
    pub size: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Freshness {
    /// Such as `2h`.
    #[schemars(schema_with = "schema::duration")]
    pub max_age: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DqCheckPhase {
    Pending,
    Running,
    Passed,
    Failed,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DqCheckStatus {
    #[serde(flatten)]
    pub common: CommonStatus<DqCheckPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Each check that ran, with what it saw.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// Where the full report was written, under `reports/dq/` in the lake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    /// What the check saw, e.g. `1520 rows` or `gap at partition 2 offsets 400..410`.
    pub observed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
