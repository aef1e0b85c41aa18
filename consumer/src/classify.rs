//! Deciding whether a Kafka record can land, or is a poison pill for the DLQ.
//!
//! The verdict depends only on the record and the contracts, so a re-read reaches the same verdict.

use std::sync::Arc;

use serde_json::Value;
use streamlake_core::contract::fast::Member;
use streamlake_core::contract::{Contract, ContractRegistry};
use streamlake_core::headers;
use streamlake_core::names::DatasetName;
use streamlake_core::rawzone::columns::SINK_COLUMNS;

use crate::record::SourceRecord;

/// Kafka timestamps (ms since the epoch) that name a date: those chrono can represent.
const USABLE_TIMESTAMPS: std::ops::RangeInclusive<i64> = chrono::DateTime::<chrono::Utc>::MIN_UTC
    .timestamp_millis()
    ..=chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp_millis();

/// Violations quoted in a contract error message; the rest are counted.
const QUOTED_VIOLATIONS: usize = 5;

/// A record that can land; its key and event id are read from the record, not copied.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent<'r> {
    pub schema_version: u32,
    pub key: Option<&'r str>,
    pub event_id: Option<&'r str>,
    pub timestamp: i64,
}

/// Why a record cannot land: a stable snake_case code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub error_type: &'static str,
    pub message: String,
    /// The record's `schema_version` when it is newer than every contract this consumer has: the API may
    /// have the version already (a rollout in progress), so the landing waits before dead-lettering it
    /// ([`crate::newer::NewerContracts`]).
    pub newer_version: Option<u32>,
}

impl Rejection {
    pub fn new(error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
            newer_version: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Classifier {
    dataset: DatasetName,
    contracts: Arc<ContractRegistry>,
    /// The registry's newest contract of the dataset, looked up once: records without a
    /// `schema_version` header are checked against it.
    latest: Arc<Contract>,
    max_record_bytes: usize,
}

impl Classifier {
    /// Fails if the registry has no contract for the dataset: the sink would reject everything.
    pub fn new(
        dataset: DatasetName,
        contracts: Arc<ContractRegistry>,
        max_record_bytes: usize,
    ) -> Result<Self, String> {
        let Some(latest) = contracts.latest(dataset.as_str()).cloned() else {
            return Err(format!(
                "no contract for dataset {dataset} in the contracts directory"
            ));
        };
        Ok(Self {
            dataset,
            contracts,
            latest,
            max_record_bytes,
        })
    }

    /// The newest contract of the dataset (its columns make the Parquet schema).
    pub fn latest_contract(&self) -> &Arc<Contract> {
        &self.latest
    }

    pub fn classify<'r>(&self, record: &'r SourceRecord) -> Result<ValidEvent<'r>, Rejection> {
        self.classify_reading(record, None)
    }

    /// [`Self::classify`], and the event's top-level members in `members` (cleared first) when the
    /// contract's fast check read them on the way; empty when the full validator decided.
    pub fn classify_with_members<'a>(
        &self,
        record: &'a SourceRecord,
        members: &mut Vec<Member<'a>>,
    ) -> Result<ValidEvent<'a>, Rejection> {
        members.clear();
        self.classify_reading(record, Some(members))
    }

    fn classify_reading<'a>(
        &self,
        record: &'a SourceRecord,
        members: Option<&mut Vec<Member<'a>>>,
    ) -> Result<ValidEvent<'a>, Rejection> {
        let timestamp = record
            .timestamp
            .filter(|t| USABLE_TIMESTAMPS.contains(t))
            .ok_or_else(|| Rejection::new("missing_timestamp", "the record has no usable Kafka timestamp"))?;
        let payload = record
            .payload
            .as_deref()
            .ok_or_else(|| Rejection::new("empty_payload", "the record has no value (a tombstone)"))?;
        if payload.len() > self.max_record_bytes {
            return Err(Rejection::new(
                "record_too_large",
                format!(
                    "the value is {} bytes; the limit is {}",
                    payload.len(),
                    self.max_record_bytes
                ),
            ));
        }
        let key = match record.key.as_deref() {
            None => None,
            Some(bytes) => Some(
                std::str::from_utf8(bytes)
                    .map_err(|_| Rejection::new("invalid_key", "the record key is not UTF-8"))?,
            ),
        };
        let (schema_version, event_id) = self.read_headers(record)?;
        let contract = match schema_version {
            Some(v) => self
                .contracts
                .get(self.dataset.as_str(), v)
                .ok_or_else(|| self.unknown_version(v))?,
            None => &self.latest,
        };
        let certain = match members {
            Some(members) => contract.certainly_valid_members(payload, &SINK_COLUMNS, members),
            None => contract.certainly_valid(payload, &SINK_COLUMNS),
        };
        if certain {
            return Ok(ValidEvent {
                schema_version: contract.version(),
                key,
                event_id,
                timestamp,
            });
        }
        let value: Value = serde_json::from_slice(payload)
            .map_err(|e| Rejection::new("invalid_json", format!("the value is not JSON: {e}")))?;
        let violations = contract.violations(&value);
        if !violations.is_empty() {
            return Err(Rejection::new(
                "contract_violation",
                describe_violations(contract, &violations),
            ));
        }
        let Value::Object(fields) = value else {
            return Err(Rejection::new(
                "not_an_object",
                "the value is valid JSON but not an object",
            ));
        };
        if let Some(reserved) = SINK_COLUMNS.iter().find(|f| fields.contains_key(**f)) {
            return Err(Rejection::new(
                "reserved_field",
                format!("the field {reserved} is reserved for the sink"),
            ));
        }
        Ok(ValidEvent {
            schema_version: contract.version(),
            key,
            event_id,
            timestamp,
        })
    }

    fn unknown_version(&self, version: u32) -> Rejection {
        let newest = self.latest.version();
        let mut message = format!("no contract {} v{version}", self.dataset);
        let newer = version > newest;
        if newer {
            message.push_str(&format!(": this consumer has versions up to v{newest}"));
        }
        Rejection {
            newer_version: newer.then_some(version),
            ..Rejection::new("unknown_schema_version", message)
        }
    }

    /// The `schema_version` and `event_id` headers (the last of each name, as [`headers::get_str`] reads
    /// them), in one pass over the record's headers.
    fn read_headers<'r>(
        &self,
        record: &'r SourceRecord,
    ) -> Result<(Option<u32>, Option<&'r str>), Rejection> {
        let Some(h) = record.headers.as_ref() else {
            return Ok((None, None));
        };
        let (mut version, mut event_id) = (None, None);
        for (name, value) in h.entries() {
            if name == headers::SCHEMA_VERSION.as_bytes() {
                version = value;
            } else if name == headers::EVENT_ID.as_bytes() {
                event_id = value;
            }
        }
        let bad = |e: headers::HeaderError| Rejection::new("invalid_headers", e.to_string());
        let version = match headers::value_str(headers::SCHEMA_VERSION, version).map_err(bad)? {
            None => None,
            Some(text) => Some(text.parse::<u32>().map_err(|_| {
                Rejection::new(
                    "invalid_headers",
                    format!("schema_version header {text:?} is not a number"),
                )
            })?),
        };
        let event_id = headers::value_str(headers::EVENT_ID, event_id).map_err(bad)?;
        Ok((version, event_id))
    }
}

fn describe_violations(contract: &Contract, violations: &[streamlake_core::contract::Violation]) -> String {
    let quoted: Vec<String> = violations
        .iter()
        .take(QUOTED_VIOLATIONS)
        .map(|v| {
            format!(
                "{} ({}): {}",
                if v.pointer.is_empty() { "/" } else { &v.pointer },
                v.keyword,
                v.message
            )
        })
        .collect();
    let more = violations.len().saturating_sub(QUOTED_VIOLATIONS);
    let tail = if more > 0 {
        format!("; and {more} more")
    } else {
        String::new()
    };
    format!(
        "violates {} v{}: {}{tail}",
        contract.dataset(),
        contract.version(),
        quoted.join("; ")
    )
}

#[cfg(test)]
mod tests;
