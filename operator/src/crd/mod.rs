//! The four StreamLake custom resources (group `streamlake.io`, version `v1alpha1`).
//!
//! The Rust types are the source of truth: `crdgen` prints the CRDs from them into `crds/`, and the
//! schemas carry the validation (patterns, bounds, CEL rules) so the API server rejects a malformed
//! spec at `kubectl apply`, before the operator ever sees it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod backfill;
pub mod dlq_inspection;
pub mod dq_check;
pub mod replay;
pub mod status;

pub use backfill::{Backfill, BackfillSpec, BackfillStatus};
pub use dlq_inspection::{DlqInspection, DlqInspectionSpec, DlqInspectionStatus};
pub use dq_check::{DqCheck, DqCheckSpec, DqCheckStatus};
pub use replay::{Replay, ReplayPhase, ReplaySpec, ReplayStatus};
pub use status::CommonStatus;

pub const GROUP: &str = "streamlake.io";
pub const VERSION: &str = "v1alpha1";

/// Every CRD the operator serves, in a stable order (the order of files in `crds/`).
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        Replay::crd(),
        Backfill::crd(),
        DlqInspection::crd(),
        DqCheck::crd(),
    ]
}

/// Largest number of per-partition entries a spec may list; bounds the cost of the CEL rules.
pub const MAX_PARTITION_ENTRIES: u32 = 512;

/// A Kafka partition and an offset in it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionOffset {
    #[schemars(range(min = 0))]
    pub partition: i32,
    #[schemars(range(min = 0))]
    pub offset: i64,
}

/// A half-open offset range `[start, end)` of one partition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.end > self.start", "message": "end must be greater than start (the range is [start, end))"}
]))]
pub struct PartitionRange {
    #[schemars(range(min = 0))]
    pub partition: i32,
    /// First offset of the range.
    #[schemars(range(min = 0))]
    pub start: i64,
    /// Offset after the last record of the range.
    #[schemars(range(min = 0))]
    pub end: i64,
}

/// Schema pieces shared by the four kinds.
pub(crate) mod schema {
    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

    /// A dataset name: the same rule as `streamlake_core::names::DatasetName`.
    pub fn dataset(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-z][a-z0-9_-]*$",
            "minLength": 1,
            "maxLength": 63,
            "description": "Dataset name: lowercase letters, digits, '_' and '-', starting with a letter."
        })
    }

    /// An optional dataset name.
    pub fn optional_dataset(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = dataset(generator);
        schema.insert("nullable".into(), true.into());
        schema
    }

    /// An RFC 3339 timestamp; CEL sees it as a timestamp. The pattern insists on a zone, which the
    /// API server's `date-time` check alone does not.
    pub fn optional_timestamp(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$",
            "maxLength": 64,
            "nullable": true,
            "description": "RFC 3339 timestamp with a zone, e.g. 2025-01-31T12:00:00Z."
        })
    }

    /// A calendar day `YYYY-MM-DD` (UTC), the unit of raw-zone partitions.
    pub fn optional_date(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date",
            "nullable": true,
            "description": "A UTC day, YYYY-MM-DD."
        })
    }

    /// A Go-style duration such as `90s`, `5m` or `1h30m`, checked by pattern at apply.
    pub fn duration(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$",
            "maxLength": 32,
            "description": "Duration such as 90s, 5m or 1h30m."
        })
    }

    pub fn optional_duration(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = duration(generator);
        schema.insert("nullable".into(), true.into());
        schema
    }

    /// A Kafka topic name.
    pub fn optional_topic(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-zA-Z0-9._-]+$",
            "minLength": 1,
            "maxLength": 249,
            "nullable": true
        })
    }

    /// A Kafka consumer group id.
    pub fn optional_group(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "minLength": 1, "maxLength": 255, "nullable": true })
    }

    /// The name of an object in the namespace (a DNS-1123 subdomain).
    pub fn optional_object_name(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
            "maxLength": 253,
            "nullable": true
        })
    }

    /// A list of per-partition entries keyed by `partition`, so the API server refuses duplicates.
    pub fn optional_partition_list<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
        let items = generator.subschema_for::<T>();
        json_schema!({
            "type": "array",
            "items": items,
            "minItems": 1,
            "maxItems": super::MAX_PARTITION_ENTRIES,
            "nullable": true,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["partition"]
        })
    }
}

#[cfg(test)]
mod tests;
