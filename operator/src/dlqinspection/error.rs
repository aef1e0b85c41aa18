//! Everything a DlqInspection reconcile can fail at, one variant per step; retried after a back-off.
//! What ends an inspection (a bad spec, a missing topic, no lake) is its `Failed` status instead.

use rdkafka::error::KafkaError;
use streamlake_core::kafka::KafkaConfigError;
use streamlake_core::offsets::OffsetError;
use streamlake_core::rawzone::StoreError;

use super::read::ReadError;
use crate::controller::ReconcileError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading Kafka offsets: {0}")]
    ReadKafka(#[source] OffsetError),
    #[error("a Kafka call did not finish: {0}")]
    KafkaTask(#[source] tokio::task::JoinError),
    #[error("{0}")]
    ReadRecords(#[source] ReadError),
    #[error("configuring the redrive producer: {0}")]
    ProducerConfig(#[source] KafkaConfigError),
    #[error("creating the redrive producer: {0}")]
    CreateProducer(#[source] KafkaError),
    #[error("redriving a record to {topic}: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error("reading or writing the redrive ledger: {0}")]
    Ledger(#[source] StoreError),
    #[error("writing the report to the lake: {0}")]
    WriteReport(#[source] StoreError),
    #[error("writing the DlqInspection status: {0}")]
    WriteStatus(#[source] kube::Error),
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Self::ReadKafka(_) => "ReadKafka",
            Self::KafkaTask(_) => "KafkaTask",
            Self::ReadRecords(_) => "ReadRecords",
            Self::ProducerConfig(_) => "ProducerConfig",
            Self::CreateProducer(_) => "CreateProducer",
            Self::Produce { .. } => "Produce",
            Self::Ledger(_) => "Ledger",
            Self::WriteReport(_) => "WriteReport",
            Self::WriteStatus(_) => "WriteStatus",
        }
    }
}
