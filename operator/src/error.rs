//! The failing steps every controller shares. Each controller's `Error` wraps them transparently, so
//! the message, the source and the metric label stay those of the step.

use std::borrow::Cow;

use kube::Resource;
use streamlake_core::offsets::OffsetError;
use streamlake_core::rawzone::StoreError;

use crate::controller::ReconcileError;

#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    #[error("reading Kafka offsets: {0}")]
    ReadKafka(#[source] OffsetError),
    #[error("a Kafka call did not finish: {0}")]
    KafkaTask(#[source] tokio::task::JoinError),
    #[error("writing the report to the lake: {0}")]
    WriteReport(#[source] StoreError),
    #[error("writing the {kind} status: {source}")]
    WriteStatus {
        kind: Cow<'static, str>,
        source: kube::Error,
    },
}

impl CommonError {
    /// A failed write of a `K`'s status.
    pub fn write_status<K: Resource<DynamicType = ()>>(source: kube::Error) -> Self {
        Self::WriteStatus {
            kind: K::kind(&()),
            source,
        }
    }
}

impl ReconcileError for CommonError {
    fn metric_label(&self) -> &'static str {
        match self {
            Self::ReadKafka(_) => "ReadKafka",
            Self::KafkaTask(_) => "KafkaTask",
            Self::WriteReport(_) => "WriteReport",
            Self::WriteStatus { .. } => "WriteStatus",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Backfill, DlqInspection, DqCheck, Replay};

    #[test]
    fn a_wrapped_step_keeps_its_message_source_and_label() {
        let missing = || CommonError::ReadKafka(OffsetError::UnknownTopic { topic: "t".into() });
        let errors: [Box<dyn ReconcileError>; 4] = [
            Box::new(crate::backfill::Error::from(missing())),
            Box::new(crate::dlqinspection::Error::from(missing())),
            Box::new(crate::dqcheck::Error::from(missing())),
            Box::new(crate::replay::Error::from(missing())),
        ];
        for e in errors {
            assert_eq!(e.to_string(), "reading Kafka offsets: topic t does not exist");
            assert_eq!(e.metric_label(), "ReadKafka");
            let source = e.source().expect("a source");
            assert_eq!(source.to_string(), "topic t does not exist");
        }
    }

    #[test]
    fn a_failed_status_write_names_the_kind() {
        let failed = || kube::Error::LinesCodecMaxLineLengthExceeded;
        let errors: [(Box<dyn ReconcileError>, &str); 4] = [
            (
                Box::new(crate::backfill::Error::from(
                    CommonError::write_status::<Backfill>(failed()),
                )),
                "Backfill",
            ),
            (
                Box::new(crate::dlqinspection::Error::from(CommonError::write_status::<
                    DlqInspection,
                >(failed()))),
                "DlqInspection",
            ),
            (
                Box::new(crate::dqcheck::Error::from(CommonError::write_status::<DqCheck>(
                    failed(),
                ))),
                "DqCheck",
            ),
            (
                Box::new(crate::replay::Error::from(CommonError::write_status::<Replay>(
                    failed(),
                ))),
                "Replay",
            ),
        ];
        for (e, kind) in errors {
            let expected = format!("writing the {kind} status: Error finding newline character");
            assert_eq!(e.to_string(), expected);
            assert_eq!(e.metric_label(), "WriteStatus");
        }
    }
}
