//! Everything a Backfill reconcile can fail at, one variant per step; retried after a back-off.
//! What ends a Backfill (bad range, no consumer, a failed Job) is its `Failed` status instead.

use streamlake_core::offsets::OffsetError;

use crate::controller::ReconcileError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading Kafka offsets: {0}")]
    ReadKafka(#[source] OffsetError),
    #[error("a Kafka call did not finish: {0}")]
    KafkaTask(#[source] tokio::task::JoinError),
    #[error("reading consumer Deployments: {0}")]
    ReadDeployments(#[source] kube::Error),
    #[error("creating the Job: {0}")]
    CreateJob(#[source] kube::Error),
    #[error("reading the Job: {0}")]
    ReadJob(#[source] kube::Error),
    #[error("building the child Replay: {0}")]
    BuildReplay(#[source] serde_json::Error),
    #[error("creating the child Replay: {0}")]
    CreateReplay(#[source] kube::Error),
    #[error("reading the child Replay: {0}")]
    ReadReplay(#[source] kube::Error),
    #[error("reading the Job's run summary: {0}")]
    ReadSummary(#[source] streamlake_core::rawzone::StoreError),
    #[error("writing the Backfill status: {0}")]
    WriteStatus(#[source] kube::Error),
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Self::ReadKafka(_) => "ReadKafka",
            Self::KafkaTask(_) => "KafkaTask",
            Self::ReadDeployments(_) => "ReadDeployments",
            Self::CreateJob(_) => "CreateJob",
            Self::ReadJob(_) => "ReadJob",
            Self::BuildReplay(_) => "BuildReplay",
            Self::CreateReplay(_) => "CreateReplay",
            Self::ReadReplay(_) => "ReadReplay",
            Self::ReadSummary(_) => "ReadSummary",
            Self::WriteStatus(_) => "WriteStatus",
        }
    }
}
