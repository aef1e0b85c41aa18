//! The API's one error type: every failure answers with a stable JSON body
//! `{"error": {"code", "message", ...}}`, including failures axum would otherwise answer in plain text.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use streamlake_core::contract::Violation;

use crate::producer::{Delivered, ProduceError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no dataset named {0:?}: no contract for it in the contracts directory")]
    UnknownDataset(String),
    #[error("the body is not valid JSON: {message}")]
    InvalidJson { message: String, dlq: Option<Delivered> },
    #[error("the event violates contract {dataset} v{version} ({} violations)", violations.len())]
    ContractViolation {
        dataset: String,
        version: u32,
        violations: Vec<Violation>,
        dlq: Option<Delivered>,
    },
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize, dlq: Option<Delivered> },
    #[error("the batch holds {count} records; the limit is {limit}")]
    TooManyRecords { count: usize, limit: usize },
    #[error("the batch holds no records")]
    EmptyBatch,
    #[error("could not read the request body: {0}")]
    BodyUnreadable(String),
    #[error("header {name} is invalid: {reason}")]
    InvalidHeader { name: &'static str, reason: String },
    #[error(
        "dataset {dataset} has no contract version {version} (X-StreamLake-Schema-Version); it has {versions:?}"
    )]
    UnknownSchemaVersion {
        dataset: String,
        version: u32,
        versions: Vec<u32>,
    },
    #[error("invalid path: {0}")]
    InvalidPath(String),
    #[error("Kafka is unavailable, nothing was accepted: {reason}")]
    Unavailable { reason: String, retry_after_secs: u64 },
    #[error("the producer queue is full, nothing was accepted; retry later")]
    QueueFull { retry_after_secs: u64 },
    #[error("the server is at its concurrency limit; retry later")]
    Overloaded { retry_after_secs: u64 },
    #[error(
        "the request did not complete in time; it was not acknowledged, retry with the same Idempotency-Key"
    )]
    Timeout { retry_after_secs: u64 },
    #[error("not ready: {0}")]
    NotReady(String),
    /// The producer failed for good; retrying is right once the process has restarted with a new one.
    #[error("{reason}; the process must restart")]
    ProducerFailed { reason: String, retry_after_secs: u64 },
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the record was refused by Kafka: {0}")]
    KafkaRejected(String),
}

impl ApiError {
    /// A stable snake_case code: the JSON `error.code`, the metric label, the DLQ `error.type`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownDataset(_) => "unknown_dataset",
            Self::InvalidJson { .. } => "invalid_json",
            Self::ContractViolation { .. } => "contract_violation",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::TooManyRecords { .. } => "too_many_records",
            Self::EmptyBatch => "empty_batch",
            Self::BodyUnreadable(_) => "body_unreadable",
            Self::InvalidHeader { .. } => "invalid_header",
            Self::UnknownSchemaVersion { .. } => "unknown_schema_version",
            Self::InvalidPath(_) => "invalid_path",
            Self::Unavailable { .. } => "kafka_unavailable",
            Self::QueueFull { .. } => "queue_full",
            Self::Overloaded { .. } => "overloaded",
            Self::Timeout { .. } => "timeout",
            Self::NotReady(_) => "not_ready",
            Self::ProducerFailed { .. } => "producer_failed",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::KafkaRejected(_) => "kafka_rejected",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownDataset(_) | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::InvalidJson { .. }
            | Self::EmptyBatch
            | Self::BodyUnreadable(_)
            | Self::InvalidHeader { .. }
            | Self::UnknownSchemaVersion { .. }
            | Self::InvalidPath(_) => StatusCode::BAD_REQUEST,
            Self::ContractViolation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge { .. } | Self::TooManyRecords { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable { .. }
            | Self::QueueFull { .. }
            | Self::Overloaded { .. }
            | Self::Timeout { .. }
            | Self::NotReady(_)
            | Self::ProducerFailed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::KafkaRejected(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// Seconds a client should wait before retrying, for errors that are worth retrying.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Unavailable { retry_after_secs, .. }
            | Self::QueueFull { retry_after_secs }
            | Self::Overloaded { retry_after_secs }
            | Self::Timeout { retry_after_secs }
            | Self::ProducerFailed { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// Maps a failed produce to the answer the client gets.
    pub fn from_produce(err: ProduceError, retry_after_secs: u64) -> Self {
        match err {
            ProduceError::QueueFull => Self::QueueFull { retry_after_secs },
            ProduceError::Unavailable(reason) => Self::Unavailable {
                reason,
                retry_after_secs,
            },
            ProduceError::TooLarge { limit } => Self::PayloadTooLarge { limit, dlq: None },
            ProduceError::Rejected(reason) => Self::KafkaRejected(reason),
            ProduceError::Failed(reason) => Self::ProducerFailed {
                reason,
                retry_after_secs,
            },
        }
    }

    /// The `error` object of the JSON body.
    pub fn body(&self) -> ErrorBody<'_> {
        let (violations, dlq) = match self {
            Self::ContractViolation { violations, dlq, .. } => (Some(violations.as_slice()), dlq.as_ref()),
            Self::InvalidJson { dlq, .. } | Self::PayloadTooLarge { dlq, .. } => (None, dlq.as_ref()),
            _ => (None, None),
        };
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            violations,
            dlq,
            retryable: self.retry_after_secs().is_some(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<&'a [Violation]>,
    /// Where the rejected event was written in the DLQ topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlq: Option<&'a Delivered>,
    pub retryable: bool,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(json!({ "error": self.body() }))).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_errors_carry_retry_after_and_others_do_not() {
        let full = ApiError::QueueFull { retry_after_secs: 2 }.into_response();
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            full.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"2"[..])
        );
        let bad = ApiError::EmptyBatch.into_response();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert!(bad.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn the_body_names_the_code_and_every_violation() {
        let err = ApiError::ContractViolation {
            dataset: "orders".into(),
            version: 1,
            violations: vec![Violation {
                pointer: "/amount".into(),
                keyword: "type".into(),
                message: "m".into(),
            }],
            dlq: Some(Delivered {
                topic: "streamlake.orders.dlq".into(),
                partition: 0,
                offset: 7,
            }),
        };
        let body = serde_json::to_value(err.body()).expect("serializes");
        assert_eq!(body["code"], "contract_violation");
        assert_eq!(body["violations"][0]["pointer"], "/amount");
        assert_eq!(body["dlq"]["offset"], 7);
        assert_eq!(body["retryable"], false);
    }
}
