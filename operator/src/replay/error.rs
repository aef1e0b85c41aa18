//! Everything a Replay reconcile can fail at, one variant per step. A failure here is retried (the
//! reconcile runs again after a back-off); failures that end a Replay are its `Failed` status instead.

use streamlake_core::offsets::OffsetError;

use crate::controller::ReconcileError;
use crate::error::CommonError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading consumer Deployments in {namespace}: {source}")]
    ReadDeployments { namespace: String, source: kube::Error },
    #[error("reading autoscalers in {namespace}: {source}")]
    ReadAutoscalers { namespace: String, source: kube::Error },
    /// A step every controller has: its message and metric label are the step's.
    #[error(transparent)]
    Common(#[from] CommonError),
    #[error("scaling Deployment {name} to {replicas}: {source}")]
    ScaleDeployment {
        name: String,
        replicas: i32,
        source: kube::Error,
    },
    #[error("pausing or restoring autoscaler {name}: {source}")]
    PatchAutoscaler { name: String, source: kube::Error },
    #[error("committing offsets: {0}")]
    CommitOffsets(#[source] OffsetError),
    #[error("removing the finalizer: {0}")]
    ReleaseFinalizer(#[source] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Self::ReadDeployments { .. } => "ReadDeployments",
            Self::ReadAutoscalers { .. } => "ReadAutoscalers",
            Self::Common(e) => e.metric_label(),
            Self::ScaleDeployment { .. } => "ScaleDeployment",
            Self::PatchAutoscaler { .. } => "PatchAutoscaler",
            Self::CommitOffsets(_) => "CommitOffsets",
            Self::ReleaseFinalizer(_) => "ReleaseFinalizer",
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "Finalizer",
            },
        }
    }
}
