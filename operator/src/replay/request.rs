//! A Replay spec read into what the controller acts on. The CRD schema already rejects malformed specs;
//! this checks again, so an object stored under an older schema is reported, not acted on.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use streamlake_core::names::{self, DatasetName};

use crate::crd::PartitionOffset;
use crate::crd::replay::{ReplayPosition, ReplaySpec};

pub const DEFAULT_GROUP_EMPTY_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    pub topic: String,
    pub group: String,
    pub deployment: DeploymentRef,
    pub from: Start,
    pub to: End,
    pub dry_run: bool,
    pub group_empty_timeout: Duration,
}

/// How to find the consumer Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentRef {
    Named(String),
    /// The one Deployment with these labels (`key=value,...`).
    Labelled(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    TimestampMs(i64),
    Offsets(BTreeMap<i32, i64>),
    ShiftBy(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    LogEnd,
    TimestampMs(i64),
    Offsets(BTreeMap<i32, i64>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Dataset(#[from] names::InvalidDatasetName),
    #[error("from must set exactly one of position, timestamp, offsets or shiftBy (it sets {0})")]
    Start(usize),
    #[error("to must set exactly one of timestamp or offsets")]
    End,
    #[error("{field} {value:?} is not an RFC 3339 timestamp: {reason}")]
    Timestamp {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("to.timestamp must be after from.timestamp")]
    EndBeforeStart,
    #[error("{field} lists partition {partition} more than once")]
    DuplicatePartition { field: &'static str, partition: i32 },
    #[error("{field} has a negative partition or offset")]
    Negative { field: &'static str },
    #[error("groupEmptyTimeout {0:?} is not a duration such as 90s, 5m or 1h")]
    Timeout(String),
    #[error("shiftBy must not be 0")]
    ZeroShift,
}

impl ReplayRequest {
    pub fn from_spec(spec: &ReplaySpec) -> Result<Self, SpecError> {
        let dataset = DatasetName::new(spec.dataset.clone())?;
        let f = &spec.from;
        let starts = [
            f.position.is_some(),
            f.timestamp.is_some(),
            f.offsets.is_some(),
            f.shift_by.is_some(),
        ];
        let from = match (f.position, &f.timestamp, &f.offsets, f.shift_by) {
            _ if starts.iter().filter(|s| **s).count() != 1 => {
                return Err(SpecError::Start(starts.iter().filter(|s| **s).count()));
            }
            (Some(ReplayPosition::Earliest), ..) => Start::Earliest,
            (Some(ReplayPosition::Latest), ..) => Start::Latest,
            (_, Some(ts), ..) => Start::TimestampMs(timestamp_ms("from.timestamp", ts)?),
            (_, _, Some(list), _) => Start::Offsets(offsets("from.offsets", list)?),
            (.., Some(0)) => return Err(SpecError::ZeroShift),
            (.., Some(n)) => Start::ShiftBy(n),
            (None, None, None, None) => return Err(SpecError::Start(0)),
        };
        let to = match &spec.to {
            None => End::LogEnd,
            Some(to) => match (&to.timestamp, &to.offsets) {
                (Some(ts), None) => End::TimestampMs(timestamp_ms("to.timestamp", ts)?),
                (None, Some(list)) => End::Offsets(offsets("to.offsets", list)?),
                _ => return Err(SpecError::End),
            },
        };
        if let (Start::TimestampMs(a), End::TimestampMs(b)) = (&from, &to)
            && b <= a
        {
            return Err(SpecError::EndBeforeStart);
        }
        let group_empty_timeout = match &spec.group_empty_timeout {
            None => DEFAULT_GROUP_EMPTY_TIMEOUT,
            Some(text) => kube::core::Duration::from_str(text)
                .ok()
                .filter(|d| !d.is_negative())
                .map(Duration::from)
                .ok_or_else(|| SpecError::Timeout(text.clone()))?,
        };
        let deployment = match &spec.deployment {
            Some(name) => DeploymentRef::Named(name.clone()),
            None => DeploymentRef::Labelled(consumer_selector(&dataset)),
        };
        Ok(Self {
            topic: spec.topic.clone().unwrap_or_else(|| dataset.raw_topic()),
            group: spec
                .consumer_group
                .clone()
                .unwrap_or_else(|| dataset.consumer_group()),
            deployment,
            from,
            to,
            dry_run: spec.dry_run,
            group_empty_timeout,
        })
    }
}

/// The label selector of a dataset's consumer Deployment (DESIGN.md "Names").
pub fn consumer_selector(dataset: &DatasetName) -> String {
    format!(
        "{}={dataset},{}={}",
        names::LABEL_DATASET,
        names::LABEL_COMPONENT,
        names::COMPONENT_CONSUMER
    )
}

/// The consumer group a spec resolves to, without validating the rest (to find competing Replays).
pub fn group_of(spec: &ReplaySpec) -> String {
    spec.consumer_group
        .clone()
        .unwrap_or_else(|| names::consumer_group(&spec.dataset))
}

fn timestamp_ms(field: &'static str, value: &str) -> Result<i64, SpecError> {
    let ts = Timestamp::from_str(value).map_err(|e| SpecError::Timestamp {
        field,
        value: value.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(ts.as_millisecond())
}

fn offsets(field: &'static str, list: &[PartitionOffset]) -> Result<BTreeMap<i32, i64>, SpecError> {
    let mut map = BTreeMap::new();
    for entry in list {
        if entry.partition < 0 || entry.offset < 0 {
            return Err(SpecError::Negative { field });
        }
        if map.insert(entry.partition, entry.offset).is_some() {
            return Err(SpecError::DuplicatePartition {
                field,
                partition: entry.partition,
            });
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: serde_json::Value) -> ReplaySpec {
        serde_json::from_value(value).expect("spec deserializes")
    }

    #[test]
    fn defaults_come_from_the_dataset_name() {
        let r = ReplayRequest::from_spec(&spec(
            json!({"dataset": "orders", "from": {"position": "earliest"}}),
        ))
        .expect("valid");
        assert_eq!(r.topic, "streamlake.orders.raw");
        assert_eq!(r.group, "streamlake-orders-sink");
        assert_eq!(
            r.deployment,
            DeploymentRef::Labelled("streamlake.io/dataset=orders,streamlake.io/component=consumer".into())
        );
        assert_eq!((r.from, r.to), (Start::Earliest, End::LogEnd));
        assert_eq!(r.group_empty_timeout, DEFAULT_GROUP_EMPTY_TIMEOUT);
    }

    #[test]
    fn overrides_timestamps_and_timeouts_are_read() {
        let r = ReplayRequest::from_spec(&spec(json!({
            "dataset": "orders", "topic": "t", "consumerGroup": "g", "deployment": "d",
            "from": {"timestamp": "2025-01-31T12:00:00Z"},
            "to": {"timestamp": "2025-01-31T14:00:00+01:00"},
            "groupEmptyTimeout": "1m30s", "dryRun": true
        })))
        .expect("valid");
        assert_eq!((r.topic.as_str(), r.group.as_str()), ("t", "g"));
        assert_eq!(r.deployment, DeploymentRef::Named("d".into()));
        assert_eq!(r.from, Start::TimestampMs(1_738_324_800_000));
        assert_eq!(r.group_empty_timeout, Duration::from_secs(90));
        assert!(r.dry_run);
        assert_eq!(r.to, End::TimestampMs(1_738_328_400_000), "14:00+01:00 is 13:00Z");
    }

    #[test]
    fn malformed_specs_are_reported_with_the_field() {
        let cases = [
            (
                json!({"dataset": "Orders", "from": {"position": "latest"}}),
                "invalid dataset name",
            ),
            (json!({"dataset": "o", "from": {}}), "sets 0"),
            (
                json!({"dataset": "o", "from": {"position": "latest", "shiftBy": -5}}),
                "sets 2",
            ),
            (
                json!({"dataset": "o", "from": {"timestamp": "yesterday"}}),
                "from.timestamp \"yesterday\"",
            ),
            (json!({"dataset": "o", "from": {"shiftBy": 0}}), "must not be 0"),
            (
                json!({"dataset": "o", "from": {"timestamp": "2025-01-02T00:00:00Z"},
                       "to": {"timestamp": "2025-01-01T00:00:00Z"}}),
                "after from.timestamp",
            ),
            (
                json!({"dataset": "o", "from": {"offsets": [{"partition": 1, "offset": 1}, {"partition": 1, "offset": 2}]}}),
                "partition 1 more than once",
            ),
            (
                json!({"dataset": "o", "from": {"position": "earliest"}, "to": {}}),
                "to must set",
            ),
            (
                json!({"dataset": "o", "from": {"position": "earliest"}, "groupEmptyTimeout": "soon"}),
                "\"soon\"",
            ),
        ];
        for (value, expected) in cases {
            let err = ReplayRequest::from_spec(&spec(value.clone())).expect_err("malformed");
            assert!(err.to_string().contains(expected), "{value}: {err}");
        }
    }
}
