//! Kafka record headers (DESIGN.md): the metadata stamped on every record, and the DLQ error headers.
//!
//! The ingest API writes them, the consumer and the DLQ inspection read them: one definition for all.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use uuid::Uuid;

pub const EVENT_ID: &str = "event_id";
pub const SCHEMA_VERSION: &str = "schema_version";
pub const INGESTED_AT: &str = "ingested_at";
pub const SOURCE: &str = "source";
pub const CONTENT_TYPE: &str = "content-type";

pub const ERROR_STAGE: &str = "error.stage";
pub const ERROR_TYPE: &str = "error.type";
pub const ERROR_MESSAGE: &str = "error.message";
pub const SOURCE_TOPIC: &str = "source.topic";
pub const SOURCE_PARTITION: &str = "source.partition";
pub const SOURCE_OFFSET: &str = "source.offset";
pub const FAILED_AT: &str = "failed_at";
/// On a DLQ record that keeps only the first bytes of what was rejected (a record over the size limit):
/// the rejected record's whole length, in bytes. Such a record is evidence, not something to redrive.
pub const PAYLOAD_ORIGINAL_BYTES: &str = "payload.original_bytes";

/// What a DLQ record keeps of a record too large for the DLQ (over the API's event limit or the
/// consumer's record limit, or refused whole by the DLQ topic): its first bytes, enough to tell what it
/// was, with [`PAYLOAD_ORIGINAL_BYTES`]. A DLQ topic takes Kafka's 1 MB at most by default.
pub const DLQ_EXCERPT_BYTES: usize = 64 * 1024;

/// Content type of every record the ingest API writes.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Longest `error.message` written: a header is no place for an unbounded report.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("record has no {0:?} header")]
    Missing(&'static str),
    #[error("header {0:?} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("header {name:?} has invalid value {value:?}: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// Metadata stamped on every record of a raw topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub event_id: Uuid,
    pub schema_version: u32,
    pub ingested_at: DateTime<Utc>,
    pub source: String,
    pub content_type: String,
}

impl RecordMetadata {
    pub fn to_headers(&self) -> OwnedHeaders {
        self.append_to(OwnedHeaders::new())
    }

    pub fn append_to(&self, headers: OwnedHeaders) -> OwnedHeaders {
        headers
            .insert(text(EVENT_ID, &self.event_id.to_string()))
            .insert(text(SCHEMA_VERSION, &self.schema_version.to_string()))
            .insert(text(INGESTED_AT, &format_time(self.ingested_at)))
            .insert(text(SOURCE, &self.source))
            .insert(text(CONTENT_TYPE, &self.content_type))
    }

    pub fn from_headers<H: Headers>(headers: &H) -> Result<Self, HeaderError> {
        Ok(Self {
            event_id: parse(headers, EVENT_ID)?,
            schema_version: parse(headers, SCHEMA_VERSION)?,
            ingested_at: parse_time(headers, INGESTED_AT)?,
            source: required(headers, SOURCE)?.to_owned(),
            content_type: required(headers, CONTENT_TYPE)?.to_owned(),
        })
    }
}

/// Where a record was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStage {
    Api,
    Consumer,
}

impl ErrorStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Consumer => "consumer",
        }
    }
}

impl fmt::Display for ErrorStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorStage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "api" => Ok(Self::Api),
            "consumer" => Ok(Self::Consumer),
            other => Err(format!(
                "unknown error stage {other:?} (expected api or consumer)"
            )),
        }
    }
}

/// Why a record is in a DLQ topic. The source position is absent for records rejected by the API,
/// which never reached the raw topic; `source_topic` then names the raw topic it was meant for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqError {
    pub stage: ErrorStage,
    /// A stable snake_case code, e.g. `contract_violation`, `invalid_json`.
    pub error_type: String,
    pub message: String,
    pub source_topic: String,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
    pub failed_at: DateTime<Utc>,
    /// Set when the DLQ record keeps only the first bytes of the rejected record: its whole length
    /// ([`PAYLOAD_ORIGINAL_BYTES`]; see [`Self::excerpt`]).
    pub original_bytes: Option<u64>,
}

impl DlqError {
    /// This error for a DLQ record that keeps only the first `kept` of the record's `length` bytes: the
    /// message says so and the length goes into [`PAYLOAD_ORIGINAL_BYTES`].
    pub fn excerpt(self, kept: usize, length: u64) -> Self {
        Self {
            message: format!("{}; this record keeps its first {kept} bytes", self.message),
            original_bytes: Some(length),
            ..self
        }
    }

    pub fn to_headers(&self) -> OwnedHeaders {
        self.append_to(OwnedHeaders::new())
    }

    pub fn append_to(&self, headers: OwnedHeaders) -> OwnedHeaders {
        let mut headers = headers
            .insert(text(ERROR_STAGE, self.stage.as_str()))
            .insert(text(ERROR_TYPE, &self.error_type))
            .insert(text(
                ERROR_MESSAGE,
                truncate(&self.message, MAX_ERROR_MESSAGE_BYTES),
            ))
            .insert(text(SOURCE_TOPIC, &self.source_topic));
        if let Some(partition) = self.source_partition {
            headers = headers.insert(text(SOURCE_PARTITION, &partition.to_string()));
        }
        if let Some(offset) = self.source_offset {
            headers = headers.insert(text(SOURCE_OFFSET, &offset.to_string()));
        }
        if let Some(length) = self.original_bytes {
            headers = headers.insert(text(PAYLOAD_ORIGINAL_BYTES, &length.to_string()));
        }
        headers.insert(text(FAILED_AT, &format_time(self.failed_at)))
    }

    pub fn from_headers<H: Headers>(headers: &H) -> Result<Self, HeaderError> {
        Ok(Self {
            stage: parse(headers, ERROR_STAGE)?,
            error_type: required(headers, ERROR_TYPE)?.to_owned(),
            message: required(headers, ERROR_MESSAGE)?.to_owned(),
            source_topic: required(headers, SOURCE_TOPIC)?.to_owned(),
            source_partition: optional_parse(headers, SOURCE_PARTITION)?,
            source_offset: optional_parse(headers, SOURCE_OFFSET)?,
            failed_at: parse_time(headers, FAILED_AT)?,
            original_bytes: optional_parse(headers, PAYLOAD_ORIGINAL_BYTES)?,
        })
    }
}

/// RFC 3339 in UTC with milliseconds, the format of every time header.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The value of the last header named `name`, if it is UTF-8.
pub fn get_str<'h, H: Headers>(headers: &'h H, name: &'static str) -> Result<Option<&'h str>, HeaderError> {
    let found = headers.iter().filter(|h| h.key == name).last();
    value_str(name, found.and_then(|h| h.value))
}

/// The value of header `name` as text: `None` for a null (or absent) value, an error if it is not UTF-8.
pub fn value_str<'h>(name: &'static str, value: Option<&'h [u8]>) -> Result<Option<&'h str>, HeaderError> {
    value
        .map(|bytes| std::str::from_utf8(bytes).map_err(|_| HeaderError::NotUtf8(name)))
        .transpose()
}

fn text<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

fn required<'h, H: Headers>(headers: &'h H, name: &'static str) -> Result<&'h str, HeaderError> {
    get_str(headers, name)?.ok_or(HeaderError::Missing(name))
}

fn parse<T: FromStr, H: Headers>(headers: &H, name: &'static str) -> Result<T, HeaderError>
where
    T::Err: fmt::Display,
{
    optional_parse(headers, name)?.ok_or(HeaderError::Missing(name))
}

fn optional_parse<T: FromStr, H: Headers>(headers: &H, name: &'static str) -> Result<Option<T>, HeaderError>
where
    T::Err: fmt::Display,
{
    get_str(headers, name)?
        .map(|value| {
            value.parse().map_err(|e: T::Err| HeaderError::Invalid {
                name,
                value: value.to_owned(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

fn parse_time<H: Headers>(headers: &H, name: &'static str) -> Result<DateTime<Utc>, HeaderError> {
    let value = required(headers, name)?;
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| HeaderError::Invalid {
            name,
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
