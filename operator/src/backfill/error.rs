//! Everything a Backfill reconcile can fail at, one variant per step; retried after a back-off.
//! What ends a Backfill (bad range, no consumer, a failed Job) is its `Failed` status instead.

use crate::controller::ReconcileError;
use crate::error::CommonError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step every controller has: its message and metric label are the step's.
    #[error(transparent)]
    Common(#[from] CommonError),
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
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Self::Common(e) => e.metric_label(),
            Self::ReadDeployments(_) => "ReadDeployments",
            Self::CreateJob(_) => "CreateJob",
            Self::ReadJob(_) => "ReadJob",
            Self::BuildReplay(_) => "BuildReplay",
            Self::CreateReplay(_) => "CreateReplay",
            Self::ReadReplay(_) => "ReadReplay",
            Self::ReadSummary(_) => "ReadSummary",
        }
    }
}
