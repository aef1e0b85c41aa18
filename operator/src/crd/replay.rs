//! `Replay`: make a dataset's consumers re-read their topic from a chosen position.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::CommonStatus;
use super::{PartitionOffset, schema};

/// Re-read a dataset's raw topic: scale its consumers down, reset the group's offsets, scale them up,
/// and follow the re-read until the group reaches the end position.
// Each printcolumn(...) repeats `type_ = "string"`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "streamlake.io",
    version = "v1alpha1",
    kind = "Replay",
    plural = "replays",
    shortname = "rpl",
    category = "streamlake",
    namespaced,
    status = "ReplayStatus",
    doc = "Re-reads a dataset's raw topic from a chosen position: scales the consumers down, resets the \
           consumer group's offsets while it has no members, scales them back up and tracks progress.",
    printcolumn(name = "Dataset", type_ = "string", json_path = ".spec.dataset"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Progress", type_ = "string", json_path = ".status.progress"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self == oldSelf",
        "message": "spec is immutable: delete this Replay and create a new one"
    },
    {
        "rule": "!has(self.to) || !has(self.to.timestamp) || !has(self.from.timestamp) || self.to.timestamp > self.from.timestamp",
        "message": "to.timestamp must be after from.timestamp"
    },
    {
        "rule": "!has(self.to) || !has(self.to.offsets) || !has(self.from.offsets) || self.to.offsets.all(t, self.from.offsets.all(f, f.partition != t.partition || t.offset > f.offset))",
        "message": "each to.offsets entry must be greater than the from.offsets entry of the same partition"
    }
]))]
pub struct ReplaySpec {
    /// Dataset to replay. Names the topic (`streamlake.<dataset>.raw`), the consumer group
    /// (`streamlake-<dataset>-sink`) and the consumer Deployment (labelled `streamlake.io/dataset`).
    #[schemars(schema_with = "schema::dataset")]
    pub dataset: String,
    /// Topic to replay, instead of the dataset's raw topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_topic")]
    pub topic: Option<String>,
    /// Consumer group to reset, instead of the dataset's sink group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_group")]
    pub consumer_group: Option<String>,
    /// Name of the consumer Deployment in this namespace, instead of the one found by its labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_object_name")]
    pub deployment: Option<String>,
    /// Where the group restarts reading.
    pub from: ReplayFrom,
    /// Where the replay is complete; without it, the end of each partition when offsets are reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<ReplayTo>,
    /// Compute the offset plan into status and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// How long to wait for the consumer group to have no members before failing (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_duration")]
    pub group_empty_timeout: Option<String>,
}

/// The start position; exactly one field is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.position) ? 1 : 0) + (has(self.timestamp) ? 1 : 0) + (has(self.offsets) ? 1 : 0) + (has(self.shiftBy) ? 1 : 0) == 1",
        "message": "from must set exactly one of position (earliest or latest), timestamp, offsets or shiftBy"
    }
]))]
pub struct ReplayFrom {
    /// The first (`earliest`) or the next (`latest`) offset of every partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<ReplayPosition>,
    /// The first record at or after this time, per partition (the end of the partition if none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_timestamp")]
    pub timestamp: Option<String>,
    /// Explicit offsets; partitions not listed keep their committed offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_partition_list::<PartitionOffset>")]
    pub offsets: Option<Vec<PartitionOffset>>,
    /// Move every partition's committed offset by N (negative re-reads the last N records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self != 0", "message": "shiftBy must not be 0"}
    ]))]
    pub shift_by: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplayPosition {
    Earliest,
    Latest,
}

/// The end position; exactly one field is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.timestamp) != has(self.offsets)",
        "message": "to must set exactly one of timestamp or offsets"
    }
]))]
pub struct ReplayTo {
    /// Complete once the group has read every record before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_timestamp")]
    pub timestamp: Option<String>,
    /// Complete once the group's committed offsets reach these; unlisted partitions go to their end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_partition_list::<PartitionOffset>")]
    pub offsets: Option<Vec<PartitionOffset>>,
}

/// The steps of a replay; the current one is kept in status so a restarted operator resumes it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ReplayPhase {
    Pending,
    /// Another Replay holds the consumer group; `status.waitingFor` names it.
    Queued,
    ScalingDown,
    WaitingForGroupEmpty,
    ResettingOffsets,
    ScalingUp,
    Replaying,
    Succeeded,
    Failed,
}

impl ReplayPhase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// Phases in which this Replay holds its consumer group (one at a time per group).
    pub fn holds_group(self) -> bool {
        matches!(
            self,
            Self::ScalingDown
                | Self::WaitingForGroupEmpty
                | Self::ResettingOffsets
                | Self::ScalingUp
                | Self::Replaying
        )
    }

    /// Phases in which the consumers are (being) kept at zero replicas by this Replay.
    pub fn consumers_held_down(self) -> bool {
        matches!(
            self,
            Self::ScalingDown | Self::WaitingForGroupEmpty | Self::ResettingOffsets
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Queued => "Queued",
            Self::ScalingDown => "ScalingDown",
            Self::WaitingForGroupEmpty => "WaitingForGroupEmpty",
            Self::ResettingOffsets => "ResettingOffsets",
            Self::ScalingUp => "ScalingUp",
            Self::Replaying => "Replaying",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for ReplayPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayStatus {
    #[serde(flatten)]
    pub common: CommonStatus<ReplayPhase>,
    /// When the current phase began (the group-empty time-out counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_since: Option<Time>,
    /// While Queued: `namespace/name` of the Replay that holds the consumer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// What this replay acts on, resolved once from the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ReplayTarget>,
    /// The scale and autoscalers to restore, recorded before anything is scaled down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved: Option<SavedScale>,
    /// The per-partition offset plan, stored before any offset is committed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PartitionPlan>,
    /// When the plan's offsets were committed as the consumer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets_reset_at: Option<Time>,
    /// Records re-read so far and in all, from the group's committed offsets against the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_replayed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_total: Option<i64>,
    /// `records_replayed / records_total` as a percentage, e.g. `42%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayTarget {
    pub topic: String,
    pub consumer_group: String,
    pub deployment: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavedScale {
    /// The Deployment's `spec.replicas` before the replay.
    pub replicas: i32,
    /// HorizontalPodAutoscalers targeting the Deployment; inactive while it is at zero replicas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hpas: Vec<String>,
    /// KEDA ScaledObjects targeting the Deployment, paused during the reset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scaled_objects: Vec<SavedScaledObject>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavedScaledObject {
    pub name: String,
    /// Its `autoscaling.keda.sh/paused-replicas` annotation before the replay, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_replicas: Option<String>,
}

/// One partition of the offset reset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionPlan {
    pub partition: i32,
    /// The group's committed offset before the reset (absent: it had none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<i64>,
    /// The offset committed for the group.
    pub new_offset: i64,
    /// The replay is complete on this partition once the group has committed this offset.
    pub end_offset: i64,
    /// The requested position lay outside the partition and was moved to its nearest end.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clamped: bool,
}
