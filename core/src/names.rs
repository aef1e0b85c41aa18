//! Names derived from a dataset: topics, consumer group, Kubernetes labels (DESIGN.md "Names").

use std::fmt;

use serde::{Deserialize, Serialize};

/// Label that ties a Kubernetes object to its dataset.
pub const LABEL_DATASET: &str = "streamlake.io/dataset";
/// Label naming the StreamLake component (`consumer`, `ingest-api`, ...).
pub const LABEL_COMPONENT: &str = "streamlake.io/component";
/// Value of [`LABEL_COMPONENT`] on consumer Deployments.
pub const COMPONENT_CONSUMER: &str = "consumer";
/// Value of [`LABEL_COMPONENT`] on the ingest API.
pub const COMPONENT_INGEST_API: &str = "ingest-api";

/// Longest dataset name: keeps `streamlake-<dataset>-sink` within Kafka's and Kubernetes' limits.
pub const MAX_DATASET_LEN: usize = 63;

/// A validated dataset name: lowercase ASCII letters, digits, `_` and `-`, starting with a letter.
///
/// These characters are legal in Kafka topic names, consumer group ids and Kubernetes label values,
/// so every name derived from a dataset is legal too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid dataset name {name:?}: use 1 to {MAX_DATASET_LEN} characters from a-z, 0-9, '_' and '-', \
     starting with a letter"
)]
pub struct InvalidDatasetName {
    pub name: String,
}

impl DatasetName {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidDatasetName> {
        let name = name.into();
        let mut chars = name.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if starts_with_letter && rest_ok && name.len() <= MAX_DATASET_LEN {
            Ok(Self(name))
        } else {
            Err(InvalidDatasetName { name })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `streamlake.<dataset>.raw`: the system of record for the dataset.
    pub fn raw_topic(&self) -> String {
        raw_topic(&self.0)
    }

    /// `streamlake.<dataset>.dlq`: records rejected by the API or the consumer.
    pub fn dlq_topic(&self) -> String {
        dlq_topic(&self.0)
    }

    /// `streamlake-<dataset>-sink`: the consumer group of the raw-zone sink.
    pub fn consumer_group(&self) -> String {
        consumer_group(&self.0)
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DatasetName {
    type Error = InvalidDatasetName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<DatasetName> for String {
    fn from(value: DatasetName) -> Self {
        value.0
    }
}

// Sound: Eq, Ord and Hash are derived from the one String field, so they agree with str's.
impl std::borrow::Borrow<str> for DatasetName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DatasetName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

pub fn raw_topic(dataset: &str) -> String {
    format!("streamlake.{dataset}.raw")
}

pub fn dlq_topic(dataset: &str) -> String {
    format!("streamlake.{dataset}.dlq")
}

pub fn consumer_group(dataset: &str) -> String {
    format!("streamlake-{dataset}-sink")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_topic_and_group_names() {
        let ds = DatasetName::new("orders").expect("valid name");
        assert_eq!(ds.raw_topic(), "streamlake.orders.raw");
        assert_eq!(ds.dlq_topic(), "streamlake.orders.dlq");
        assert_eq!(ds.consumer_group(), "streamlake-orders-sink");
    }

    #[test]
    fn accepts_digits_dashes_and_underscores_after_a_letter() {
        for ok in ["a", "orders_v2", "click-stream", "t1-2_3"] {
            assert!(DatasetName::new(ok).is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn rejects_names_unsafe_for_topics_or_labels() {
        let too_long = "a".repeat(MAX_DATASET_LEN + 1);
        for bad in [
            "",
            "Orders",
            "1orders",
            "-x",
            "or.ders",
            "or ders",
            "ördrs",
            too_long.as_str(),
        ] {
            let err = DatasetName::new(bad).expect_err("should be rejected");
            assert_eq!(err.name, bad);
        }
    }

    #[test]
    fn deserializes_only_valid_names() {
        assert!(serde_json::from_str::<DatasetName>("\"orders\"").is_ok());
        assert!(serde_json::from_str::<DatasetName>("\"Bad.Name\"").is_err());
    }
}
