//! Everything a DlqInspection reconcile can fail at, one variant per step; retried after a back-off.
//! What ends an inspection (a bad spec, a missing topic, no lake) is its `Failed` status instead.

use rdkafka::error::KafkaError;
use streamlake_core::kafka::KafkaConfigError;
use streamlake_core::rawzone::StoreError;

use super::read::ReadError;
use crate::controller::ReconcileError;
use crate::error::CommonError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step every controller has: its message and metric label are the step's.
    #[error(transparent)]
    Common(#[from] CommonError),
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
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Self::Common(e) => e.metric_label(),
            Self::ReadRecords(_) => "ReadRecords",
            Self::ProducerConfig(_) => "ProducerConfig",
            Self::CreateProducer(_) => "CreateProducer",
            Self::Produce { .. } => "Produce",
            Self::Ledger(_) => "Ledger",
        }
    }
}
