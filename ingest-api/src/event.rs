//! Pure request logic: event ids, client headers, batch splitting and contract checks. No I/O.

use axum::http::HeaderMap;
use serde_json::Value;
use serde_json::value::RawValue;
use streamlake_core::contract::{Contract, Violation};
use uuid::Uuid;

use crate::error::ApiError;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const SOURCE_HEADER: &str = "x-streamlake-source";
pub const SCHEMA_VERSION_HEADER: &str = "x-streamlake-schema-version";
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
pub const MAX_SOURCE_LEN: usize = 128;

/// Namespace of the UUIDv5 event ids derived from an `Idempotency-Key`: fixed forever, so a retried
/// request gets the same event id from any replica, before or after a restart.
pub const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b9e_54a3_4d0e_9a57_3c1e_8f20_b4d7);

/// A new UUIDv7, or the UUIDv5 of (dataset, idempotency key, position in the batch).
pub fn event_id(dataset: &str, idempotency_key: Option<&str>, batch_index: Option<usize>) -> Uuid {
    match (idempotency_key, batch_index) {
        (None, _) => Uuid::now_v7(),
        (Some(key), None) => Uuid::new_v5(&EVENT_ID_NAMESPACE, format!("{dataset}\n{key}").as_bytes()),
        (Some(key), Some(i)) => {
            Uuid::new_v5(&EVENT_ID_NAMESPACE, format!("{dataset}\n{key}\n{i}").as_bytes())
        }
    }
}

/// The `Idempotency-Key` header: 1 to 256 visible ASCII characters (no spaces), if sent.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    header_text(
        headers,
        IDEMPOTENCY_KEY,
        "Idempotency-Key",
        MAX_IDEMPOTENCY_KEY_LEN,
    )
}

/// The producing system, from `X-StreamLake-Source`, else the configured default.
pub fn source<'a>(headers: &'a HeaderMap, default: &'a str) -> Result<&'a str, ApiError> {
    Ok(header_text(headers, SOURCE_HEADER, "X-StreamLake-Source", MAX_SOURCE_LEN)?.unwrap_or(default))
}

/// The contract version a client pins with `X-StreamLake-Schema-Version` (a positive integer of at most
/// nine digits), if sent; without it events are checked against the dataset's newest version.
pub fn schema_version(headers: &HeaderMap) -> Result<Option<u32>, ApiError> {
    let name = "X-StreamLake-Schema-Version";
    let Some(text) = header_text(headers, SCHEMA_VERSION_HEADER, name, 9)? else {
        return Ok(None);
    };
    match text.parse::<u32>() {
        Ok(version) if text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0') => {
            Ok(Some(version))
        }
        _ => Err(ApiError::InvalidHeader {
            name,
            reason: format!("{text:?} is not a contract version (a positive integer, no leading zero)"),
        }),
    }
}

fn header_text<'a>(
    headers: &'a HeaderMap,
    key: &str,
    name: &'static str,
    max: usize,
) -> Result<Option<&'a str>, ApiError> {
    let Some(value) = headers.get(key) else {
        return Ok(None);
    };
    let invalid = |reason: String| ApiError::InvalidHeader { name, reason };
    let text = value
        .to_str()
        .map_err(|_| invalid("it must be visible ASCII".into()))?
        .trim();
    if text.is_empty() || text.len() > max {
        return Err(invalid(format!("it must hold 1 to {max} characters")));
    }
    // As the OpenAPI document says (`^[!-~]{1,max}$`): one token, so no spaces inside either.
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("it must be visible ASCII without spaces".into()));
    }
    Ok(Some(text))
}

/// Splits a batch body into its records' original bytes: a JSON array, or NDJSON (one event per
/// non-blank line). `application/x-ndjson` forces NDJSON, `application/json` requires an array; without
/// either, a leading `[` means an array.
pub fn split_batch<'b>(body: &'b [u8], content_type: Option<&str>) -> Result<Vec<&'b [u8]>, ApiError> {
    let essence = content_type.map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    let ndjson = matches!(
        essence.as_deref(),
        Some("application/x-ndjson" | "application/jsonl")
    );
    let is_array = body.trim_ascii_start().first() == Some(&b'[');
    if essence.as_deref() == Some("application/json") && !is_array {
        return Err(ApiError::InvalidJson {
            message: "an application/json batch must be a JSON array; send NDJSON as application/x-ndjson"
                .into(),
            dlq: None,
        });
    }
    if !ndjson && is_array {
        let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson {
            message: format!("batch is not a JSON array: {e}"),
            dlq: None,
        })?;
        return Ok(items.into_iter().map(|raw| raw.get().as_bytes()).collect());
    }
    Ok(body
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.trim_ascii().is_empty())
        .collect())
}

/// Why an event is not accepted; it goes to the DLQ with `error_type` as `error.type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub error_type: &'static str,
    pub message: String,
    pub violations: Vec<Violation>,
    /// The partition key, when the event had one: the DLQ record keeps it.
    pub key: Option<String>,
}

/// Validates one event; on success returns its record key. The record's value is `bytes` either way.
pub fn check(contract: &Contract, bytes: &[u8]) -> Result<String, Rejection> {
    // Most events are valid: recognised over their bytes, with no JSON tree; any doubt takes the full path.
    if let Some(key) = contract.certainly_valid_key(bytes, &[]) {
        return Ok(key);
    }
    check_in_full(contract, bytes)
}

/// Parses and validates one event with the full validator, which words every rejection.
fn check_in_full(contract: &Contract, bytes: &[u8]) -> Result<String, Rejection> {
    let event: Value = serde_json::from_slice(bytes).map_err(|e| Rejection {
        error_type: "invalid_json",
        message: format!("the event is not valid JSON: {e}"),
        violations: Vec::new(),
        key: None,
    })?;
    let key = contract.partition_key(&event);
    let violations = contract.violations(&event);
    if !violations.is_empty() {
        let summary: Vec<String> = violations
            .iter()
            .map(|v| format!("{}: {}", display_pointer(&v.pointer), v.message))
            .collect();
        return Err(Rejection {
            error_type: "contract_violation",
            message: format!(
                "violates contract {} v{}: {}",
                contract.dataset(),
                contract.version(),
                summary.join("; ")
            ),
            violations,
            key,
        });
    }
    // A valid event has its key (the contract requires it); this guards against a contract that allows null.
    key.ok_or_else(|| {
        let field = contract.partition_key_field();
        let message =
            format!("partition key field {field:?} must be a string or an integer without fraction");
        Rejection {
            error_type: "contract_violation",
            message: message.clone(),
            violations: vec![Violation {
                pointer: format!("/{}", field.replace('~', "~0").replace('/', "~1")),
                keyword: streamlake_core::contract::PARTITION_KEY_KEYWORD.to_owned(),
                message,
            }],
            key: None,
        }
    })
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() { "/" } else { pointer }
}

#[cfg(test)]
mod tests;
