//! Idempotent creation of each dataset's raw and DLQ topics.

use std::time::Duration;

use clap::Args;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::names::DatasetName;

/// Partitions, replication and retention of the topics created for each dataset.
#[derive(Debug, Clone, Args)]
pub struct TopicArgs {
    #[arg(
        long = "raw-partitions",
        env = "STREAMLAKE_RAW_PARTITIONS",
        default_value_t = 6
    )]
    pub raw_partitions: i32,
    #[arg(
        long = "dlq-partitions",
        env = "STREAMLAKE_DLQ_PARTITIONS",
        default_value_t = 1
    )]
    pub dlq_partitions: i32,
    #[arg(
        long = "replication-factor",
        env = "STREAMLAKE_REPLICATION_FACTOR",
        default_value_t = 1
    )]
    pub replication_factor: i32,
    /// retention.ms of raw topics (default 7 days; -1 keeps records forever).
    #[arg(
        long = "raw-retention-ms",
        env = "STREAMLAKE_RAW_RETENTION_MS",
        default_value_t = 604_800_000
    )]
    pub raw_retention_ms: i64,
    /// retention.ms of DLQ topics (default 30 days).
    #[arg(
        long = "dlq-retention-ms",
        env = "STREAMLAKE_DLQ_RETENTION_MS",
        default_value_t = 2_592_000_000
    )]
    pub dlq_retention_ms: i64,
}

/// One topic to make sure of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub retention_ms: i64,
}

impl TopicArgs {
    /// The raw and DLQ topic of a dataset.
    pub fn specs_for(&self, dataset: &DatasetName) -> [TopicSpec; 2] {
        [
            TopicSpec {
                name: dataset.raw_topic(),
                partitions: self.raw_partitions,
                replication_factor: self.replication_factor,
                retention_ms: self.raw_retention_ms,
            },
            TopicSpec {
                name: dataset.dlq_topic(),
                partitions: self.dlq_partitions,
                replication_factor: self.replication_factor,
                retention_ms: self.dlq_retention_ms,
            },
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    /// It existed already; it is left as it is, with this many partitions.
    Existed {
        partitions: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("creating the Kafka admin client: {0}")]
    Client(#[source] KafkaError),
    #[error("asking Kafka to create topics: {0}")]
    Request(#[source] KafkaError),
    #[error("Kafka refused to create topic {topic}: {code}")]
    Refused { topic: String, code: RDKafkaErrorCode },
    #[error("reading metadata of topic {topic}: {source}")]
    Metadata { topic: String, source: KafkaError },
}

/// Creates the topics that do not exist yet; existing ones are reported with their partition count.
pub async fn ensure_topics(
    client: &ClientConfig,
    specs: &[TopicSpec],
    timeout: Duration,
) -> Result<Vec<(TopicSpec, TopicOutcome)>, TopicError> {
    let admin: AdminClient<DefaultClientContext> = client.create().map_err(TopicError::Client)?;
    let retention: Vec<String> = specs.iter().map(|s| s.retention_ms.to_string()).collect();
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .zip(&retention)
        .map(|(s, ms)| {
            NewTopic::new(
                &s.name,
                s.partitions,
                TopicReplication::Fixed(s.replication_factor),
            )
            .set("retention.ms", ms)
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(TopicError::Request)?;
    let mut outcomes = Vec::with_capacity(specs.len());
    for (spec, result) in specs.iter().zip(results) {
        let outcome = match result {
            Ok(_) => TopicOutcome::Created,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                let metadata = admin
                    .inner()
                    .fetch_metadata(Some(&spec.name), timeout)
                    .map_err(|source| TopicError::Metadata {
                        topic: spec.name.clone(),
                        source,
                    })?;
                let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len());
                TopicOutcome::Existed { partitions }
            }
            Err((topic, code)) => return Err(TopicError::Refused { topic, code }),
        };
        outcomes.push((spec.clone(), outcome));
    }
    Ok(outcomes)
}
