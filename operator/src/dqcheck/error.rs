//! Everything a DqCheck reconcile can fail at, one variant per step. These are retried; a check that
//! cannot be run at all for a reason a retry will not fix ends the DqCheck `Failed` instead.

use streamlake_core::rawzone::StoreError;

use crate::controller::ReconcileError;
use crate::error::CommonError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step every controller has: its message and metric label are the step's.
    #[error(transparent)]
    Common(#[from] CommonError),
    #[error("reading the raw zone: {0}")]
    ReadLake(#[source] StoreError),
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Self::Common(e) => e.metric_label(),
            Self::ReadLake(_) => "ReadLake",
        }
    }
}
