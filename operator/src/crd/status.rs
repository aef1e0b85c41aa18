//! The status fields the four kinds share, flattened into each kind's status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// Where an object stands (`phase`, a kind's own enum), why, and since when. A plain comment: a doc
// comment would become the description of every kind's status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
// The bound replaces serde's inferred `P: Default` (asked for by the `default` fields).
#[serde(rename_all = "camelCase", bound(deserialize = "P: Deserialize<'de>"))]
pub struct CommonStatus<P> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<P>,
    /// What is happening now, or why it failed, for a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Stable reason of the outcome or of a failure (also the Event reason), e.g. `MalformedObject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
}

// Not derived: that would ask every phase enum for a `Default`.
impl<P> Default for CommonStatus<P> {
    fn default() -> Self {
        Self {
            phase: None,
            message: None,
            reason: None,
            observed_generation: None,
            conditions: Vec::new(),
            started_at: None,
            completed_at: None,
        }
    }
}
