//! `DlqInspection`: summarise a dataset's dead-letter topic, and optionally redrive fixed records.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::CommonStatus;
use super::{PartitionOffset, PartitionRange, schema};

/// Reads a window of a DLQ topic and reports what failed and why; can redrive records to the raw topic.
// Each printcolumn(...) repeats `type_ = "string"`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "streamlake.io",
    version = "v1alpha1",
    kind = "DlqInspection",
    plural = "dlqinspections",
    shortname = "dlqi",
    category = "streamlake",
    namespaced,
    status = "DlqInspectionStatus",
    doc = "Summarises a window of a dataset's DLQ topic (counts by error type and stage, top messages, \
           samples, a JSON report in the lake) and optionally redrives the selected records.",
    printcolumn(name = "Dataset", type_ = "string", json_path = ".spec.dataset"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Progress", type_ = "string", json_path = ".status.progress"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self == oldSelf",
        "message": "spec is immutable: delete this DlqInspection and create a new one"
    },
    {
        "rule": "has(self.dataset) != has(self.topic)",
        "message": "set exactly one of dataset or topic"
    },
    {
        "rule": "has(self.since) != has(self.lastRecords)",
        "message": "set exactly one window: since (with an optional until) or lastRecords"
    },
    {
        "rule": "!has(self.until) || (has(self.since) && self.until > self.since)",
        "message": "until needs since, and must be after it"
    }
]))]
pub struct DlqInspectionSpec {
    /// Dataset whose DLQ topic (`streamlake.<dataset>.dlq`) is inspected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_dataset")]
    pub dataset: Option<String>,
    /// A DLQ topic named directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_topic")]
    pub topic: Option<String>,
    /// Records that failed at or after this time...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_timestamp")]
    pub since: Option<String>,
    /// ...and before this time (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_timestamp")]
    pub until: Option<String>,
    /// Or the last N records of each partition of the topic (a DLQ topic usually has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub last_records: Option<i64>,
    /// Upper bound on records read, whatever the window.
    #[serde(default = "default_max_records")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_records: i64,
    /// Records kept as samples in status (the report in the lake keeps the same samples).
    #[serde(default = "default_sample_size")]
    #[schemars(range(min = 0, max = 100))]
    pub sample_size: i32,
    /// Re-produce the selected records to the raw topic after a fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive: Option<DlqRedrive>,
}

fn default_max_records() -> i64 {
    10_000
}

fn default_sample_size() -> i32 {
    5
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqRedrive {
    /// Only records with these `error.type` values (default: all in the window).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub error_types: Vec<String>,
    /// Only records rejected at these stages (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub error_stages: Vec<ErrorStage>,
    /// Loop guard: a record whose attempt header reached this count is not redriven again.
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1, max = 10))]
    pub max_attempts: i32,
}

fn default_max_attempts() -> i32 {
    3
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ErrorStage {
    Api,
    Consumer,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DlqInspectionPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqInspectionStatus {
    #[serde(flatten)]
    pub common: CommonStatus<DlqInspectionPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// The DLQ topic read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The window as offsets, fixed when the inspection starts so a restarted operator reads the same records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<PartitionRange>,
    /// Records the window holds; more than `total` when `maxRecords` cut the read short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_records: Option<i64>,
    /// Records read from the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_error_type: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_error_stage: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_messages: Vec<ErrorMessageCount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<DlqSample>,
    /// Where the full JSON report was written, under `reports/dlq/` in the lake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// The raw topic records are redriven to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive_topic: Option<String>,
    /// End offsets of the raw topic before the first redriven record: where a resumed redrive looks
    /// for the records it already produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redrive_start_offsets: Vec<PartitionOffset>,
    /// Records re-produced to the raw topic by this inspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redriven: Option<i64>,
    /// Selected records not redriven, by reason (`alreadyRedriven`, `maxAttempts`, `excerpt`: the DLQ keeps only the first bytes of a record over the size limit).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub redrive_skipped: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessageCount {
    pub message: String,
    pub count: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqSample {
    pub partition: i32,
    pub offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<String>,
}
