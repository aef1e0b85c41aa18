//! Everything a DqCheck reconcile can fail at, one variant per step. These are retried; a check that
//! cannot be run at all for a reason a retry will not fix ends the DqCheck `Failed` instead.

use streamlake_core::offsets::OffsetError;
use streamlake_core::rawzone::StoreError;

use crate::controller::ReconcileError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading Kafka offsets: {0}")]
    ReadKafka(#[source] OffsetError),
    #[error("a Kafka call did not finish: {0}")]
    KafkaTask(#[source] tokio::task::JoinError),
    #[error("reading the raw zone: {0}")]
    ReadLake(#[source] StoreError),
    #[error("writing the report to the lake: {0}")]
    WriteReport(#[source] StoreError),
    #[error("writing the DqCheck status: {0}")]
    WriteStatus(#[source] kube::Error),
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Self::ReadKafka(_) => "ReadKafka",
            Self::KafkaTask(_) => "KafkaTask",
            Self::ReadLake(_) => "ReadLake",
            Self::WriteReport(_) => "WriteReport",
            Self::WriteStatus(_) => "WriteStatus",
        }
    }
}
