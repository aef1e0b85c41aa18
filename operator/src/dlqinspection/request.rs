//! A DlqInspection spec turned into what the reconcile reads and redrives, and its window as offsets.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use streamlake_core::headers::ErrorStage;
use streamlake_core::names::DatasetName;
use streamlake_core::offsets::Watermarks;

use crate::crd::PartitionRange;
use crate::crd::dlq_inspection::{self as api, DlqInspectionSpec};

/// Which records of the DLQ topic to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Records with a Kafka timestamp in `[since, until)`; no `until`: up to the end of the log.
    Time { since_ms: i64, until_ms: Option<i64> },
    /// The last N records of each partition.
    Last(i64),
}

/// Which selected records go back to the raw topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedriveRule {
    pub topic: String,
    /// Empty: every error type.
    pub error_types: Vec<String>,
    /// Empty: both stages.
    pub stages: Vec<ErrorStage>,
    pub max_attempts: u32,
}

impl RedriveRule {
    /// Whether a record with these error headers is selected (missing headers never match a filter).
    pub fn selects(&self, error_type: Option<&str>, stage: Option<&str>) -> bool {
        let type_ok = self.error_types.is_empty()
            || error_type.is_some_and(|t| self.error_types.iter().any(|w| w == t));
        let stage_ok =
            self.stages.is_empty() || stage.is_some_and(|s| self.stages.iter().any(|w| w.as_str() == s));
        type_ok && stage_ok
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqRequest {
    pub topic: String,
    pub window: Window,
    pub max_records: u64,
    pub sample_size: usize,
    pub redrive: Option<RedriveRule>,
}

impl DlqRequest {
    /// Checks what the schema cannot: the names, the timestamps, and where a redrive would go.
    pub fn from_spec(spec: &DlqInspectionSpec) -> Result<Self, String> {
        let dataset = match (&spec.dataset, &spec.topic) {
            (Some(d), None) => Some(DatasetName::new(d.clone()).map_err(|e| format!("dataset: {e}"))?),
            (None, Some(topic)) => dataset_of_dlq_topic(topic),
            _ => return Err("set exactly one of dataset or topic".into()),
        };
        let topic = match (&spec.topic, &dataset) {
            (Some(topic), _) => topic.clone(),
            (None, Some(d)) => d.dlq_topic(),
            (None, None) => return Err("set exactly one of dataset or topic".into()),
        };
        let window = match (&spec.since, &spec.until, spec.last_records) {
            (Some(since), until, None) => {
                let since_ms = millis("since", since)?;
                let until_ms = until.as_deref().map(|u| millis("until", u)).transpose()?;
                if until_ms.is_some_and(|u| u <= since_ms) {
                    return Err("until must be after since".into());
                }
                Window::Time { since_ms, until_ms }
            }
            (None, None, Some(n)) if n >= 1 => Window::Last(n),
            _ => return Err("set exactly one window: since (with an optional until) or lastRecords".into()),
        };
        let max_records = u64::try_from(spec.max_records)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or("maxRecords must be at least 1")?;
        let sample_size = usize::try_from(spec.sample_size).map_err(|_| "sampleSize must not be negative")?;
        let redrive = spec
            .redrive
            .as_ref()
            .map(|r| redrive_rule(r, dataset.as_ref(), &topic))
            .transpose()?;
        Ok(Self {
            topic,
            window,
            max_records,
            sample_size,
            redrive,
        })
    }
}

fn redrive_rule(
    spec: &api::DlqRedrive,
    dataset: Option<&DatasetName>,
    topic: &str,
) -> Result<RedriveRule, String> {
    let dataset = dataset.ok_or_else(|| {
        format!("redrive needs a dataset: {topic} is not named streamlake.<dataset>.dlq; set dataset instead")
    })?;
    let max_attempts = u32::try_from(spec.max_attempts)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or("redrive.maxAttempts must be at least 1")?;
    Ok(RedriveRule {
        topic: dataset.raw_topic(),
        error_types: spec.error_types.clone(),
        stages: spec
            .error_stages
            .iter()
            .map(|s| match s {
                api::ErrorStage::Api => ErrorStage::Api,
                api::ErrorStage::Consumer => ErrorStage::Consumer,
            })
            .collect(),
        max_attempts,
    })
}

/// `streamlake.<dataset>.dlq` → the dataset, when the middle is a valid dataset name.
fn dataset_of_dlq_topic(topic: &str) -> Option<DatasetName> {
    let name = topic.strip_prefix("streamlake.")?.strip_suffix(".dlq")?;
    DatasetName::new(name.to_owned()).ok()
}

fn millis(field: &str, value: &str) -> Result<i64, String> {
    value
        .parse::<Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| format!("{field}: {value:?} is not an RFC 3339 timestamp: {e}"))
}

/// The window as non-empty per-partition offset ranges. `since`/`until`: per partition, the first
/// offset at or after each timestamp (`None`: no record that recent, so the end of the log).
pub fn resolve_ranges(
    window: Window,
    watermarks: &BTreeMap<i32, Watermarks>,
    since: &BTreeMap<i32, Option<i64>>,
    until: &BTreeMap<i32, Option<i64>>,
) -> Vec<PartitionRange> {
    watermarks
        .iter()
        .filter_map(|(&partition, w)| {
            let (start, end) = match window {
                Window::Last(n) => (w.high.saturating_sub(n).max(w.low), w.high),
                Window::Time { until_ms, .. } => {
                    let at = |found: Option<&Option<i64>>| found.copied().flatten().unwrap_or(w.high);
                    let start = at(since.get(&partition)).max(w.low);
                    let end = if until_ms.is_some() {
                        at(until.get(&partition))
                    } else {
                        w.high
                    };
                    (start, end.min(w.high))
                }
            };
            (end > start).then_some(PartitionRange {
                partition,
                start,
                end,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: serde_json::Value) -> DlqInspectionSpec {
        serde_json::from_value(value).expect("spec")
    }

    #[test]
    fn a_dataset_names_both_topics_and_defaults_apply() {
        let r = DlqRequest::from_spec(&spec(
            json!({"dataset": "orders", "lastRecords": 5, "redrive": {}}),
        ))
        .expect("valid");
        assert_eq!(r.topic, "streamlake.orders.dlq");
        assert_eq!(r.window, Window::Last(5));
        assert_eq!((r.max_records, r.sample_size), (10_000, 5));
        let redrive = r.redrive.expect("redrive");
        assert_eq!(
            (redrive.topic.as_str(), redrive.max_attempts),
            ("streamlake.orders.raw", 3)
        );
    }

    #[test]
    fn a_redrive_from_a_topic_needs_a_dataset_in_its_name() {
        let ok = DlqRequest::from_spec(&spec(json!({
            "topic": "streamlake.orders.dlq", "since": "2026-01-01T00:00:00Z", "redrive": {}
        })))
        .expect("valid");
        assert_eq!(ok.redrive.expect("redrive").topic, "streamlake.orders.raw");
        let refused = DlqRequest::from_spec(&spec(json!({
            "topic": "legacy-dead-letters", "lastRecords": 1, "redrive": {}
        })));
        assert!(
            refused
                .expect_err("no dataset")
                .contains("redrive needs a dataset")
        );
        let plain = DlqRequest::from_spec(&spec(json!({"topic": "legacy-dead-letters", "lastRecords": 1})));
        assert_eq!(plain.expect("inspection only").topic, "legacy-dead-letters");
    }

    #[test]
    fn windows_are_checked() {
        let backwards = DlqRequest::from_spec(&spec(json!({
            "dataset": "orders", "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"
        })));
        assert!(
            backwards
                .expect_err("backwards")
                .contains("until must be after since")
        );
        let both = DlqRequest::from_spec(&spec(json!({
            "dataset": "orders", "since": "2026-01-02T00:00:00Z", "lastRecords": 3
        })));
        assert!(both.expect_err("two windows").contains("exactly one window"));
    }

    #[test]
    fn filters_select_by_type_and_stage() {
        let rule = RedriveRule {
            topic: "t".into(),
            error_types: vec!["contract_violation".into()],
            stages: vec![ErrorStage::Api],
            max_attempts: 3,
        };
        assert!(rule.selects(Some("contract_violation"), Some("api")));
        assert!(!rule.selects(Some("contract_violation"), Some("consumer")));
        assert!(!rule.selects(Some("invalid_json"), Some("api")));
        assert!(!rule.selects(None, Some("api")));
        let all = RedriveRule {
            error_types: vec![],
            stages: vec![],
            ..rule
        };
        assert!(all.selects(None, None));
    }

    #[test]
    fn ranges_follow_the_window_and_the_log() {
        let marks = BTreeMap::from([
            (0, Watermarks { low: 0, high: 10 }),
            (1, Watermarks { low: 4, high: 6 }),
            (2, Watermarks { low: 3, high: 3 }),
        ]);
        let none = BTreeMap::new();
        let last = resolve_ranges(Window::Last(3), &marks, &none, &none);
        assert_eq!(
            last,
            [
                PartitionRange {
                    partition: 0,
                    start: 7,
                    end: 10
                },
                PartitionRange {
                    partition: 1,
                    start: 4,
                    end: 6
                },
            ]
        );
        let since = BTreeMap::from([(0, Some(2)), (1, None), (2, None)]);
        let until = BTreeMap::from([(0, Some(5)), (1, None), (2, None)]);
        let timed = Window::Time {
            since_ms: 1,
            until_ms: Some(2),
        };
        assert_eq!(
            resolve_ranges(timed, &marks, &since, &until),
            [PartitionRange {
                partition: 0,
                start: 2,
                end: 5
            }]
        );
        let open = Window::Time {
            since_ms: 1,
            until_ms: None,
        };
        assert_eq!(
            resolve_ranges(open, &marks, &since, &none),
            [PartitionRange {
                partition: 0,
                start: 2,
                end: 10
            }]
        );
    }
}
