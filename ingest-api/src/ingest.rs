//! The two ingest endpoints: validate against the dataset's contract, stamp metadata, produce, and
//! answer only with what Kafka acknowledged.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use streamlake_core::contract::{Contract, Violation};
use streamlake_core::headers::{CONTENT_TYPE_JSON, DLQ_EXCERPT_BYTES, DlqError, ErrorStage, RecordMetadata};
use uuid::Uuid;

use crate::body::{self, EventBody, Length};
use crate::error::ApiError;
use crate::event::{self, Rejection};
use crate::producer::{Delivered, ProduceError};
use crate::state::AppState;

/// The answer to an accepted event.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub event_id: Uuid,
    pub dataset: String,
    pub schema_version: u32,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// `POST /ingest/{dataset}`: one JSON event.
pub async fn ingest_one(
    State(state): State<AppState>,
    dataset: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Accepted>, ApiError> {
    let contract = lookup(&state, dataset, &headers)?;
    let limit = state.settings.max_event_bytes;
    let read = body::read_event(&headers, body, limit, state.settings.max_batch_bytes).await?;
    let request = RequestMeta::from_headers(&state, &headers)?;
    let event_id = event::event_id(
        contract.dataset().as_str(),
        request.idempotency_key.as_deref(),
        None,
    );
    let retry = state.settings.retry_after_secs;
    let raw_topic = contract.dataset().raw_topic();
    let bytes = match read {
        EventBody::Whole(bytes) => bytes,
        EventBody::TooLarge { excerpt, length } => {
            let rejection = too_large(length, limit);
            let origin = Origin {
                state: &state,
                contract: &contract,
                raw_topic: &raw_topic,
                request: &request,
                event_id,
            };
            return match dead_letter(origin, &rejection, &excerpt, length.bytes()).await {
                DeadLetter::Written(dlq) => Err(ApiError::PayloadTooLarge { limit, dlq }),
                DeadLetter::Failed(err) => Err(ApiError::from_produce(err, retry)),
            };
        }
    };
    match produce_record(&state, &contract, &raw_topic, &request, event_id, &bytes).await {
        RecordOutcome::Accepted(d) => {
            state.metrics.count_produced(contract.dataset().as_str(), 1);
            Ok(Json(Accepted {
                event_id,
                dataset: contract.dataset().to_string(),
                schema_version: contract.version(),
                topic: d.topic,
                partition: d.partition,
                offset: d.offset,
            }))
        }
        RecordOutcome::Rejected(rejection, dlq) => Err(rejection_error(&contract, rejection, dlq)),
        RecordOutcome::Failed(err) => Err(ApiError::from_produce(err, retry)),
    }
}

/// One record's result in a batch answer.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RecordResult {
    Accepted {
        index: usize,
        event_id: Uuid,
        partition: i32,
        offset: i64,
    },
    Rejected {
        index: usize,
        event_id: Uuid,
        error: RecordError,
        dlq: Option<Delivered>,
    },
    Failed {
        index: usize,
        event_id: Uuid,
        error: RecordError,
        retryable: bool,
    },
}

#[derive(Debug, Serialize)]
pub struct RecordError {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

#[derive(Debug, Serialize)]
pub struct BatchAnswer {
    pub dataset: String,
    pub schema_version: u32,
    pub topic: String,
    pub accepted: usize,
    pub rejected: usize,
    pub failed: usize,
    pub results: Vec<RecordResult>,
}

/// `POST /ingest/{dataset}/batch`: a JSON array or NDJSON, answered record by record.
pub async fn ingest_batch(
    State(state): State<AppState>,
    dataset: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let contract = lookup(&state, dataset, &headers)?;
    let bytes = body.map_err(|r| body_error(&r, state.settings.max_batch_bytes))?;
    let request = RequestMeta::from_headers(&state, &headers)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let records = event::split_batch(&bytes, content_type)?;
    if records.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    let limit = state.settings.max_batch_records;
    if records.len() > limit {
        return Err(ApiError::TooManyRecords {
            count: records.len(),
            limit,
        });
    }
    let dataset = contract.dataset().as_str();
    let raw_topic = contract.dataset().raw_topic();
    let outcomes = futures::future::join_all(records.iter().enumerate().map(|(index, record)| {
        let event_id = event::event_id(dataset, request.idempotency_key.as_deref(), Some(index));
        let (state, contract, raw_topic, request) = (&state, &contract, raw_topic.as_str(), &request);
        async move {
            let outcome = produce_record(state, contract, raw_topic, request, event_id, record).await;
            (index, event_id, outcome)
        }
    }))
    .await;
    let results: Vec<RecordResult> = outcomes
        .into_iter()
        .map(|(index, event_id, outcome)| {
            outcome.into_result(index, event_id, state.settings.retry_after_secs)
        })
        .collect();
    let count = |f: fn(&RecordResult) -> bool| results.iter().filter(|r| f(r)).count();
    let accepted = count(|r| matches!(r, RecordResult::Accepted { .. }));
    state.metrics.count_produced(dataset, accepted as u64);
    let rejected = count(|r| matches!(r, RecordResult::Rejected { .. }));
    let failed = count(|r| matches!(r, RecordResult::Failed { .. }));
    let all_retryable = results
        .iter()
        .all(|r| matches!(r, RecordResult::Failed { retryable: true, .. }));
    let answer = BatchAnswer {
        dataset: dataset.to_owned(),
        schema_version: contract.version(),
        topic: raw_topic,
        accepted,
        rejected,
        failed,
        results,
    };
    // Nothing got through and a retry may succeed: say so at the status level too.
    if all_retryable {
        let retry = state.settings.retry_after_secs;
        return Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, retry.to_string())],
            Json(answer),
        )
            .into_response());
    }
    Ok(Json(answer).into_response())
}

/// What the client told us about the request, checked once.
struct RequestMeta {
    idempotency_key: Option<String>,
    source: String,
    ingested_at: DateTime<Utc>,
}

impl RequestMeta {
    fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<Self, ApiError> {
        Ok(Self {
            idempotency_key: event::idempotency_key(headers)?.map(str::to_owned),
            source: event::source(headers, &state.settings.default_source)?.to_owned(),
            ingested_at: Utc::now(),
        })
    }
}

enum RecordOutcome {
    Accepted(Delivered),
    /// Rejected, and written to the DLQ when that is enabled.
    Rejected(Rejection, Option<Delivered>),
    /// Neither acknowledged nor dead-lettered.
    Failed(ProduceError),
}

impl RecordOutcome {
    fn into_result(self, index: usize, event_id: Uuid, retry_after_secs: u64) -> RecordResult {
        match self {
            Self::Accepted(d) => RecordResult::Accepted {
                index,
                event_id,
                partition: d.partition,
                offset: d.offset,
            },
            Self::Rejected(r, dlq) => RecordResult::Rejected {
                index,
                event_id,
                error: RecordError {
                    code: r.error_type,
                    message: r.message,
                    violations: r.violations,
                },
                dlq,
            },
            Self::Failed(err) => {
                let api = ApiError::from_produce(err, retry_after_secs);
                let retryable = api.retry_after_secs().is_some();
                RecordResult::Failed {
                    index,
                    event_id,
                    error: RecordError {
                        code: api.code(),
                        message: api.to_string(),
                        violations: Vec::new(),
                    },
                    retryable,
                }
            }
        }
    }
}

/// Validates one record and writes it to the raw topic (`raw_topic`, the contract's: named once per
/// request rather than per record), or to the DLQ if it is rejected.
async fn produce_record(
    state: &AppState,
    contract: &Contract,
    raw_topic: &str,
    request: &RequestMeta,
    event_id: Uuid,
    bytes: &[u8],
) -> RecordOutcome {
    let dataset = contract.dataset();
    let limit = state.settings.max_event_bytes;
    // A record over the limit is rejected without a check; the DLQ keeps its first bytes and its length.
    let (rejection, dlq_bytes) = if bytes.len() > limit {
        let excerpt = &bytes[..bytes.len().min(DLQ_EXCERPT_BYTES)];
        (too_large(Length::Exact(bytes.len() as u64), limit), excerpt)
    } else {
        match event::check(contract, bytes) {
            Ok(key) => {
                let metadata = record_metadata(contract, request, event_id);
                // Kafka refusing the record as too large is not a rejection: librdkafka fails every record
                // of a refused batch, so a small record batched with a large one gets that error too.
                return match state
                    .sink
                    .send(raw_topic, Some(&key), bytes, metadata.to_headers())
                    .await
                {
                    // Counted by the caller, once per request: a label lookup per record costs in a batch.
                    Ok(delivered) => RecordOutcome::Accepted(delivered),
                    Err(err) => {
                        tracing::warn!(dataset = %dataset, %event_id, error = %err, "record not acknowledged");
                        state.metrics.count_failed(dataset.as_str(), "raw_produce");
                        RecordOutcome::Failed(err)
                    }
                };
            }
            Err(rejection) => (rejection, bytes),
        }
    };
    let origin = Origin {
        state,
        contract,
        raw_topic,
        request,
        event_id,
    };
    match dead_letter(origin, &rejection, dlq_bytes, bytes.len() as u64).await {
        DeadLetter::Written(dlq) => RecordOutcome::Rejected(rejection, dlq),
        DeadLetter::Failed(err) => RecordOutcome::Failed(err),
    }
}

/// The rejection of a record over the size limit.
fn too_large(length: Length, limit: usize) -> Rejection {
    let size = match length {
        Length::Exact(n) => format!("{n} bytes"),
        Length::AtLeast(n) => format!("more than {n} bytes"),
    };
    Rejection {
        error_type: "record_too_large",
        message: format!("the record is {size}; the limit is {limit}"),
        violations: Vec::new(),
        key: None,
    }
}

fn record_metadata(contract: &Contract, request: &RequestMeta, event_id: Uuid) -> RecordMetadata {
    RecordMetadata {
        event_id,
        schema_version: contract.version(),
        ingested_at: request.ingested_at,
        source: request.source.clone(),
        content_type: CONTENT_TYPE_JSON.to_owned(),
    }
}

/// A record as a request brought it: what its rejection is dead-lettered with.
struct Origin<'a> {
    state: &'a AppState,
    contract: &'a Contract,
    /// The topic it was meant for (`source.topic` in the DLQ).
    raw_topic: &'a str,
    request: &'a RequestMeta,
    event_id: Uuid,
}

enum DeadLetter {
    /// In the DLQ (`None`: dead-lettering is off).
    Written(Option<Delivered>),
    /// The DLQ did not take it: the rejection is recorded nowhere, so the client must retry.
    Failed(ProduceError),
}

/// Writes a rejected record to the DLQ with the error headers: `dlq_bytes` are the record's bytes, or its
/// first bytes when it was over the size limit (then `payload.original_bytes` gives its `length`). A
/// record the DLQ topic refuses whole as too large goes as its first [`DLQ_EXCERPT_BYTES`] (a small
/// record librdkafka had batched with it fails with it, and is answered as a failure to retry).
async fn dead_letter(origin: Origin<'_>, rejection: &Rejection, dlq_bytes: &[u8], length: u64) -> DeadLetter {
    if !origin.state.settings.dead_letter_invalid {
        return DeadLetter::Written(None);
    }
    let (state, dataset, event_id) = (origin.state, origin.contract.dataset(), origin.event_id);
    let mut sent = send_to_dlq(&origin, rejection, dlq_bytes, length).await;
    if matches!(sent, Err(ProduceError::TooLarge { .. })) && dlq_bytes.len() > DLQ_EXCERPT_BYTES {
        let excerpt = &dlq_bytes[..DLQ_EXCERPT_BYTES];
        sent = send_to_dlq(&origin, rejection, excerpt, length).await;
    }
    match sent {
        Ok(delivered) => {
            state
                .metrics
                .count_dead_lettered(dataset.as_str(), rejection.error_type);
            DeadLetter::Written(Some(delivered))
        }
        Err(err) => {
            tracing::warn!(dataset = %dataset, %event_id, error = %err, "rejected record not dead-lettered");
            state.metrics.count_failed(dataset.as_str(), "dlq_produce");
            DeadLetter::Failed(err)
        }
    }
}

/// One DLQ send of [`dead_letter`]: `kept` of the record's `length` bytes.
async fn send_to_dlq(
    origin: &Origin<'_>,
    rejection: &Rejection,
    kept: &[u8],
    length: u64,
) -> Result<Delivered, ProduceError> {
    let dlq_error = DlqError {
        stage: ErrorStage::Api,
        error_type: rejection.error_type.to_owned(),
        message: rejection.message.clone(),
        source_topic: origin.raw_topic.to_owned(),
        source_partition: None,
        source_offset: None,
        failed_at: Utc::now(),
        original_bytes: None,
    };
    let dlq_error = if (kept.len() as u64) < length {
        dlq_error.excerpt(kept.len(), length)
    } else {
        dlq_error
    };
    let metadata = record_metadata(origin.contract, origin.request, origin.event_id);
    let headers = dlq_error.append_to(metadata.to_headers());
    let dlq_topic = origin.contract.dataset().dlq_topic();
    (origin.state.sink)
        .send(&dlq_topic, rejection.key.as_deref(), kept, headers)
        .await
}

/// The dataset's contract: the newest version, or the one the client pins with
/// `X-StreamLake-Schema-Version` (while its producers move to a newer one).
fn lookup(
    state: &AppState,
    dataset: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
) -> Result<Arc<Contract>, ApiError> {
    let Path(dataset) = dataset.map_err(|e| ApiError::InvalidPath(e.body_text()))?;
    let Some(latest) = state.contracts.latest(&dataset) else {
        return Err(ApiError::UnknownDataset(dataset));
    };
    let Some(version) = event::schema_version(headers)? else {
        return Ok(latest.clone());
    };
    state
        .contracts
        .get(&dataset, version)
        .cloned()
        .ok_or_else(|| ApiError::UnknownSchemaVersion {
            dataset,
            version,
            versions: state.contracts.versions(latest.dataset().as_str()).collect(),
        })
}

fn body_error(rejection: &BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit, dlq: None }
    } else {
        ApiError::BodyUnreadable(rejection.body_text())
    }
}

fn rejection_error(contract: &Contract, rejection: Rejection, dlq: Option<Delivered>) -> ApiError {
    match rejection.error_type {
        "invalid_json" => ApiError::InvalidJson {
            message: rejection.message,
            dlq,
        },
        _ => ApiError::ContractViolation {
            dataset: contract.dataset().to_string(),
            version: contract.version(),
            violations: rejection.violations,
            dlq,
        },
    }
}
