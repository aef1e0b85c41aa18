//! What an inspection learns from the records it reads: counts by error type and stage, the time span,
//! the most frequent messages, samples, and a bounded per-record listing for the report. Pure.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::crd::dlq_inspection::{DlqSample, ErrorMessageCount};

/// The label counted when a record lacks an error header.
pub const MISSING: &str = "(missing)";
/// Distinct messages counted one by one; the rest are counted together, so memory stays bounded.
pub const MAX_DISTINCT_MESSAGES: usize = 1000;
/// Records listed one by one in the report.
pub const MAX_LISTED: usize = 10_000;
/// Messages shown in status.
pub const TOP_MESSAGES: usize = 10;
/// Longest message kept in status and the report (the header allows 4 KiB).
const MAX_MESSAGE_CHARS: usize = 512;

/// The headers of one DLQ record that an inspection reads; also a line of the report's listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DlqRecordView {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub error_type: Option<String>,
    pub error_stage: Option<String>,
    pub error_message: Option<String>,
    // Shown in the samples, not in the listing.
    #[serde(skip)]
    pub source: Option<String>,
    #[serde(skip)]
    pub failed_at: Option<String>,
    /// Where a consumer reject sat in the raw topic (absent for API rejects, which never reached it).
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
    /// Times this record was redriven already (the `redrive.attempts` header; absent: 0).
    pub attempts: u32,
    /// The rejected record's whole length when this DLQ record keeps only its first bytes (the API's
    /// record over the size limit; the `payload.original_bytes` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub total: i64,
    pub by_error_type: BTreeMap<String, i64>,
    pub by_error_stage: BTreeMap<String, i64>,
    pub first_timestamp_ms: Option<i64>,
    pub last_timestamp_ms: Option<i64>,
    messages: HashMap<String, i64>,
    /// Records whose message was not counted on its own (past [`MAX_DISTINCT_MESSAGES`]).
    pub other_messages: i64,
    pub samples: Vec<DlqSample>,
    /// The report's listing, messages shortened as in status.
    pub listed: Vec<DlqRecordView>,
    sample_size: usize,
}

impl Summary {
    pub fn new(sample_size: usize) -> Self {
        Self {
            sample_size,
            ..Self::default()
        }
    }

    pub fn add(&mut self, r: &DlqRecordView) {
        self.total += 1;
        let label = |v: &Option<String>| v.clone().unwrap_or_else(|| MISSING.to_owned());
        *self.by_error_type.entry(label(&r.error_type)).or_default() += 1;
        *self.by_error_stage.entry(label(&r.error_stage)).or_default() += 1;
        if let Some(ts) = r.timestamp_ms {
            self.first_timestamp_ms = Some(self.first_timestamp_ms.map_or(ts, |f| f.min(ts)));
            self.last_timestamp_ms = Some(self.last_timestamp_ms.map_or(ts, |l| l.max(ts)));
        }
        let message = r.error_message.as_deref().map(shorten);
        let key = message.clone().unwrap_or_else(|| MISSING.to_owned());
        if let Some(count) = self.messages.get_mut(&key) {
            *count += 1;
        } else if self.messages.len() < MAX_DISTINCT_MESSAGES {
            self.messages.insert(key, 1);
        } else {
            self.other_messages += 1;
        }
        if self.samples.len() < self.sample_size {
            self.samples.push(DlqSample {
                partition: r.partition,
                offset: r.offset,
                error_type: r.error_type.clone(),
                error_stage: r.error_stage.clone(),
                error_message: message.clone(),
                source: r.source.clone(),
                failed_at: r.failed_at.clone(),
            });
        }
        if self.listed.len() < MAX_LISTED {
            self.listed.push(DlqRecordView {
                error_message: message,
                ..r.clone()
            });
        }
    }

    /// The `n` most frequent messages, most frequent first, ties by message.
    pub fn top_messages(&self, n: usize) -> Vec<ErrorMessageCount> {
        let mut all: Vec<ErrorMessageCount> = self
            .messages
            .iter()
            .map(|(message, count)| ErrorMessageCount {
                message: message.clone(),
                count: *count,
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.message.cmp(&b.message)));
        all.truncate(n);
        all
    }

    pub fn distinct_messages(&self) -> usize {
        self.messages.len()
    }
}

fn shorten(message: &str) -> String {
    message.chars().take(MAX_MESSAGE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, error_type: Option<&str>, stage: &str, message: &str, ts: i64) -> DlqRecordView {
        DlqRecordView {
            partition: 0,
            offset,
            timestamp_ms: Some(ts),
            error_type: error_type.map(str::to_owned),
            error_stage: Some(stage.to_owned()),
            error_message: Some(message.to_owned()),
            ..DlqRecordView::default()
        }
    }

    #[test]
    fn counts_span_top_messages_and_samples() {
        let mut s = Summary::new(2);
        s.add(&record(
            0,
            Some("contract_violation"),
            "api",
            "amount missing",
            300,
        ));
        s.add(&record(
            1,
            Some("contract_violation"),
            "api",
            "amount missing",
            100,
        ));
        s.add(&record(2, Some("invalid_json"), "consumer", "not json", 200));
        s.add(&record(3, None, "consumer", "no type", 250));
        assert_eq!(s.total, 4);
        assert_eq!(
            s.by_error_type,
            BTreeMap::from([
                ("(missing)".to_owned(), 1),
                ("contract_violation".to_owned(), 2),
                ("invalid_json".to_owned(), 1)
            ])
        );
        assert_eq!(
            s.by_error_stage,
            BTreeMap::from([("api".to_owned(), 2), ("consumer".to_owned(), 2)])
        );
        assert_eq!(
            (s.first_timestamp_ms, s.last_timestamp_ms),
            (Some(100), Some(300))
        );
        let top = s.top_messages(2);
        assert_eq!(top[0].message, "amount missing");
        assert_eq!(top[0].count, 2);
        assert_eq!(top[1].message, "no type");
        assert_eq!(s.samples.iter().map(|x| x.offset).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(s.listed.len(), 4);
    }

    #[test]
    fn a_listed_record_keeps_the_report_fields_and_a_short_message() {
        let mut s = Summary::new(0);
        let long = "x".repeat(MAX_MESSAGE_CHARS + 10);
        s.add(&DlqRecordView {
            source: Some("api".into()),
            failed_at: Some("2026-11-01T10:00:00Z".into()),
            source_partition: Some(1),
            source_offset: Some(7),
            attempts: 2,
            ..record(5, Some("invalid_json"), "consumer", &long, 100)
        });
        let listed = serde_json::to_value(&s.listed[0]).expect("json");
        assert_eq!(
            listed,
            serde_json::json!({
                "partition": 0, "offset": 5, "timestampMs": 100, "errorType": "invalid_json",
                "errorStage": "consumer", "errorMessage": "x".repeat(MAX_MESSAGE_CHARS),
                "sourcePartition": 1, "sourceOffset": 7, "attempts": 2,
            })
        );
    }

    #[test]
    fn distinct_messages_are_bounded() {
        let mut s = Summary::new(0);
        for i in 0..(MAX_DISTINCT_MESSAGES as i64 + 5) {
            s.add(&record(i, Some("t"), "api", &format!("message {i}"), i));
        }
        assert_eq!(s.distinct_messages(), MAX_DISTINCT_MESSAGES);
        assert_eq!(s.other_messages, 5);
        assert!(s.samples.is_empty());
    }
}
