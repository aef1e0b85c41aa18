//! `Backfill`: re-read a bounded range of a dataset's topic into the raw zone.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::CommonStatus;
use super::{PartitionRange, schema};

/// Re-reads a bounded range of a dataset's raw topic into the same raw-zone partitions.
// Each printcolumn(...) repeats `type_ = "string"`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "streamlake.io",
    version = "v1alpha1",
    kind = "Backfill",
    plural = "backfills",
    shortname = "bf",
    category = "streamlake",
    namespaced,
    status = "BackfillStatus",
    doc = "Re-reads a bounded range (days, timestamps or offsets) of a dataset's raw topic into the raw \
           zone, in an isolated Job (default) or as a Replay bounded by the range.",
    printcolumn(name = "Dataset", type_ = "string", json_path = ".spec.dataset"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Progress", type_ = "string", json_path = ".status.progress"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self == oldSelf",
        "message": "spec is immutable: delete this Backfill and create a new one"
    },
    {
        "rule": "((has(self.startDate) || has(self.endDate)) ? 1 : 0) + ((has(self.startTime) || has(self.endTime)) ? 1 : 0) + (has(self.offsets) ? 1 : 0) == 1",
        "message": "set exactly one range: startDate and endDate, startTime and endTime, or offsets"
    },
    {
        "rule": "has(self.startDate) == has(self.endDate)",
        "message": "startDate and endDate go together"
    },
    {
        "rule": "has(self.startTime) == has(self.endTime)",
        "message": "startTime and endTime go together"
    },
    {
        "rule": "!has(self.startDate) || !has(self.endDate) || self.endDate >= self.startDate",
        "message": "endDate must not be before startDate"
    },
    {
        "rule": "!has(self.startTime) || !has(self.endTime) || self.endTime > self.startTime",
        "message": "endTime must be after startTime"
    }
]))]
pub struct BackfillSpec {
    #[schemars(schema_with = "schema::dataset")]
    pub dataset: String,
    /// The dataset's raw topic, if set: the consumer reads only `streamlake.<dataset>.raw`, so any other
    /// topic ends the Backfill Failed (`TopicNotSupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_topic")]
    pub topic: Option<String>,
    /// First UTC day to backfill (by Kafka record timestamp), inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_date")]
    pub start_date: Option<String>,
    /// Last UTC day to backfill, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_date")]
    pub end_date: Option<String>,
    /// Records at or after this time...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_timestamp")]
    pub start_time: Option<String>,
    /// ...and before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_timestamp")]
    pub end_time: Option<String>,
    /// Explicit per-partition offset ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_partition_list::<PartitionRange>")]
    pub offsets: Option<Vec<PartitionRange>>,
    /// `Isolated` runs a bounded consumer Job and leaves the live group alone; `Replay` resets the
    /// live group like a Replay bounded by the range.
    #[serde(default)]
    pub mode: BackfillMode,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BackfillMode {
    #[default]
    Isolated,
    Replay,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackfillPhase {
    Pending,
    Resolving,
    Running,
    Succeeded,
    Failed,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackfillStatus {
    #[serde(flatten)]
    pub common: CommonStatus<BackfillPhase>,
    /// The per-partition offset ranges resolved from the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<PartitionRange>,
    /// Mode `Isolated`: the Job that lands the ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Mode `Replay`: the Replay (owned by this Backfill) that resets the live group to the ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_name: Option<String>,
    /// Mode `Isolated`: records the Job wrote into new raw-zone files, from its run summary (unset if
    /// the summary is missing). Mode `Replay`: the records of the ranges the live consumers re-read
    /// (they land or skip each one; they do not report which).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_written: Option<i64>,
    /// Mode `Isolated`: records of the ranges the raw zone already held, skipped rather than duplicated.
    /// Unset in mode `Replay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_already_landed: Option<i64>,
    /// Mode `Isolated`: raw-zone files the Job added, from its run summary. Unset in mode `Replay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_written: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}
