//! The run summary a bounded consumer (a Backfill Job) leaves in the lake for the operator.
//!
//! A Job's exit code says only that it finished; the counts live in the consumer's metrics, which die
//! with its pod. So the consumer writes this small JSON object at a key the operator chose
//! (`--bounded-summary`), and the operator reads it back once the Job completed: no scraping of a pod
//! that is gone, no log parsing, and the same store on `file://` and `gs://`.

use serde::{Deserialize, Serialize};

/// What one bounded run did. Records the contract rejected went to the DLQ topic and are in neither
/// record count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoundedSummary {
    /// Records this run wrote into new raw-zone files.
    pub records_written: u64,
    /// Records the dataset's `_metadata.json` already listed: skipped, not duplicated.
    pub records_already_landed: u64,
    /// Raw-zone files this run added to `_metadata.json`.
    pub files_written: u64,
}

/// The key of a Backfill's summary in the raw zone: unique per Backfill object (its uid).
pub fn key(namespace: &str, name: &str, uid: &str) -> String {
    format!("reports/backfill/{namespace}.{name}.{uid}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_round_trips_in_camel_case() {
        let summary = BoundedSummary {
            records_written: 3,
            records_already_landed: 2,
            files_written: 1,
        };
        let text = serde_json::to_string(&summary).expect("json");
        assert!(text.contains("\"recordsAlreadyLanded\":2"), "{text}");
        assert_eq!(
            serde_json::from_str::<BoundedSummary>(&text).expect("parse"),
            summary
        );
        assert_eq!(key("ns", "bf", "u-1"), "reports/backfill/ns.bf.u-1.json");
    }
}
