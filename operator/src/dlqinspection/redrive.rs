//! Redrive: re-produce selected DLQ records (original key and bytes, metadata headers) to the raw
//! topic, at most once per DLQ record, with an attempt counter as the loop guard.
//!
//! Never twice: before producing, the inspection claims the record with a create-only marker object
//! in the lake (`reports/dlq/redrive-ledger/topic=<dlq>/partition=<p>/offset=<o>.json`, a GCS
//! `ifGenerationMatch=0` write or a locked create locally). A record whose marker exists is skipped,
//! so a second inspection (or a second reconcile) never produces it again. The one window left, a
//! crash between claim and acknowledgement, is closed by the redriven records themselves: each carries
//! `redrive.id` (the inspection's uid) and its DLQ position, and a resumed inspection first scans the
//! raw topic from the end offsets it saved in status before its first produce; a record claimed by
//! itself is produced again only if that scan did not find it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use streamlake_core::headers;
use streamlake_core::rawzone::{RawZoneStore, StoreError};

use super::error::Error;
use super::read::{
    REDRIVE_ATTEMPTS, REDRIVE_DLQ_OFFSET, REDRIVE_DLQ_PARTITION, REDRIVE_DLQ_TOPIC, REDRIVE_ID, all_headers,
    view,
};
use super::request::RedriveRule;

/// Headers of a DLQ record that describe its failure, not the event: not carried back to the raw topic.
const DLQ_ONLY: [&str; 7] = [
    headers::ERROR_STAGE,
    headers::ERROR_TYPE,
    headers::ERROR_MESSAGE,
    headers::SOURCE_TOPIC,
    headers::SOURCE_PARTITION,
    headers::SOURCE_OFFSET,
    headers::FAILED_AT,
];
/// Headers this module sets afresh on every redrive.
const REDRIVE_HEADERS: [&str; 5] = [
    REDRIVE_ATTEMPTS,
    REDRIVE_ID,
    REDRIVE_DLQ_TOPIC,
    REDRIVE_DLQ_PARTITION,
    REDRIVE_DLQ_OFFSET,
];
/// Records listed one by one in the report's redrive section.
const MAX_LISTED: usize = 10_000;

/// The claim on one DLQ record, stored as its marker object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    pub redrive_id: String,
    pub inspection: String,
    pub dlq_topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// What to do with one selected record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Produce,
    /// Claimed and produced by this inspection before a restart.
    AlreadyDone,
    SkipAlreadyRedriven,
    SkipMaxAttempts,
    /// The DLQ keeps only the first bytes of the record (it was over the size limit): nothing to redrive.
    SkipExcerpt,
}

impl Decision {
    pub fn label(self) -> &'static str {
        match self {
            Self::Produce => "redriven",
            Self::AlreadyDone => "redriven",
            Self::SkipAlreadyRedriven => "alreadyRedriven",
            Self::SkipMaxAttempts => "maxAttempts",
            Self::SkipExcerpt => "excerpt",
        }
    }
}

/// Decides from whether the record is whole, its attempt count, its marker (if any) and whether the
/// resume scan found it.
pub fn decide(
    excerpt: bool,
    attempts: u32,
    max_attempts: u32,
    marker: Option<&Marker>,
    own_id: &str,
    found: bool,
) -> Decision {
    match marker {
        _ if excerpt => Decision::SkipExcerpt,
        _ if attempts >= max_attempts => Decision::SkipMaxAttempts,
        None => Decision::Produce,
        Some(m) if m.redrive_id != own_id => Decision::SkipAlreadyRedriven,
        Some(_) if found => Decision::AlreadyDone,
        Some(_) => Decision::Produce,
    }
}

pub fn marker_key(dlq_topic: &str, partition: i32, offset: i64) -> String {
    format!("reports/dlq/redrive-ledger/topic={dlq_topic}/partition={partition}/offset={offset}.json")
}

/// The headers of the redriven record: the original ones without the DLQ error headers and older
/// redrive headers, then the attempt count and where the record came from.
pub fn redrive_headers(
    original: &[(String, Option<Vec<u8>>)],
    attempts: u32,
    own_id: &str,
    dlq_topic: &str,
    partition: i32,
    offset: i64,
) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out: Vec<(String, Option<Vec<u8>>)> = original
        .iter()
        .filter(|(k, _)| !DLQ_ONLY.contains(&k.as_str()) && !REDRIVE_HEADERS.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut add = |k: &str, v: String| out.push((k.to_owned(), Some(v.into_bytes())));
    add(REDRIVE_ATTEMPTS, attempts.saturating_add(1).to_string());
    add(REDRIVE_ID, own_id.to_owned());
    add(REDRIVE_DLQ_TOPIC, dlq_topic.to_owned());
    add(REDRIVE_DLQ_PARTITION, partition.to_string());
    add(REDRIVE_DLQ_OFFSET, offset.to_string());
    out
}

/// The DLQ positions this inspection's redriven records carry, from a scan of the raw topic.
pub fn own_redriven(message: &OwnedMessage, own_id: &str, dlq_topic: &str) -> Option<(i32, i64)> {
    use super::read::header;
    if header(message, REDRIVE_ID)? != own_id || header(message, REDRIVE_DLQ_TOPIC)? != dlq_topic {
        return None;
    }
    Some((
        header(message, REDRIVE_DLQ_PARTITION)?.parse().ok()?,
        header(message, REDRIVE_DLQ_OFFSET)?.parse().ok()?,
    ))
}

/// One DLQ record's redrive outcome, for the report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RedriveEntry {
    pub partition: i32,
    pub offset: i64,
    pub outcome: &'static str,
}

/// Redrives the selected records one at a time, each acknowledged before the next.
pub struct Redriver<'a> {
    pub store: &'a RawZoneStore,
    pub producer: &'a FutureProducer,
    pub rule: &'a RedriveRule,
    pub own_id: &'a str,
    pub inspection: &'a str,
    pub dlq_topic: &'a str,
    /// DLQ positions this inspection's records found in the raw topic (the resume scan).
    pub found: &'a BTreeSet<(i32, i64)>,
    pub timeout: Duration,
    pub redriven: i64,
    pub skipped: BTreeMap<String, i64>,
    pub listed: Vec<RedriveEntry>,
}

impl std::fmt::Debug for Redriver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redriver")
            .field("dlq_topic", &self.dlq_topic)
            .field("redriven", &self.redriven)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl Redriver<'_> {
    /// Redrives `message` if the rule selects it.
    pub async fn handle(&mut self, message: &OwnedMessage) -> Result<(), Error> {
        let v = view(message);
        if !self
            .rule
            .selects(v.error_type.as_deref(), v.error_stage.as_deref())
        {
            return Ok(());
        }
        let key = marker_key(self.dlq_topic, v.partition, v.offset);
        let mut decision = decide(
            v.original_bytes.is_some(),
            v.attempts,
            self.rule.max_attempts,
            self.marker(&key).await?.as_ref(),
            self.own_id,
            self.found.contains(&(v.partition, v.offset)),
        );
        if decision == Decision::Produce && !self.claim(&key, v.partition, v.offset).await? {
            // Someone claimed it between our read and our write: theirs now.
            decision = Decision::SkipAlreadyRedriven;
        }
        if decision == Decision::Produce {
            self.produce(message, v.attempts).await?;
        }
        match decision {
            Decision::Produce | Decision::AlreadyDone => self.redriven += 1,
            skipped => *self.skipped.entry(skipped.label().to_owned()).or_default() += 1,
        }
        if self.listed.len() < MAX_LISTED {
            self.listed.push(RedriveEntry {
                partition: v.partition,
                offset: v.offset,
                outcome: decision.label(),
            });
        }
        Ok(())
    }

    async fn marker(&self, key: &str) -> Result<Option<Marker>, Error> {
        let Some(found) = self.store.get(key).await.map_err(Error::Ledger)? else {
            return Ok(None);
        };
        // An unreadable marker still claims its record: skipping is safe, producing twice is not.
        Ok(Some(serde_json::from_slice(&found.data).unwrap_or_else(|_| {
            Marker {
                redrive_id: "(unreadable marker)".into(),
                inspection: String::new(),
                dlq_topic: self.dlq_topic.to_owned(),
                partition: -1,
                offset: -1,
            }
        })))
    }

    /// Creates the marker; `false` if it exists already (claimed by someone else meanwhile), unless
    /// it is this inspection's own.
    async fn claim(&self, key: &str, partition: i32, offset: i64) -> Result<bool, Error> {
        let marker = Marker {
            redrive_id: self.own_id.to_owned(),
            inspection: self.inspection.to_owned(),
            dlq_topic: self.dlq_topic.to_owned(),
            partition,
            offset,
        };
        let body = serde_json::to_vec(&marker).unwrap_or_default();
        match self.store.put_if(key, Bytes::from(body), None).await {
            Ok(_) => Ok(true),
            Err(StoreError::PreconditionFailed { .. }) => Ok(self
                .marker(key)
                .await?
                .is_some_and(|m| m.redrive_id == self.own_id)),
            Err(e) => Err(Error::Ledger(e)),
        }
    }

    async fn produce(&self, message: &OwnedMessage, attempts: u32) -> Result<(), Error> {
        let pairs = redrive_headers(
            &all_headers(message),
            attempts,
            self.own_id,
            self.dlq_topic,
            message.partition(),
            message.offset(),
        );
        let mut headers = OwnedHeaders::new_with_capacity(pairs.len());
        for (key, value) in &pairs {
            headers = headers.insert(Header {
                key: key.as_str(),
                value: value.as_deref(),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.rule.topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        self.producer
            .send(record, self.timeout)
            .await
            .map_err(|(e, _)| Error::Produce {
                topic: self.rule.topic.clone(),
                source: e,
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(id: &str) -> Marker {
        Marker {
            redrive_id: id.into(),
            inspection: "ns/name".into(),
            dlq_topic: "streamlake.orders.dlq".into(),
            partition: 0,
            offset: 4,
        }
    }

    #[test]
    fn a_record_is_redriven_once_and_the_loop_guard_holds() {
        assert_eq!(decide(false, 0, 3, None, "me", false), Decision::Produce);
        assert_eq!(decide(false, 3, 3, None, "me", false), Decision::SkipMaxAttempts);
        assert_eq!(
            decide(false, 0, 3, Some(&marker("other")), "me", true),
            Decision::SkipAlreadyRedriven
        );
        assert_eq!(
            decide(false, 0, 3, Some(&marker("me")), "me", true),
            Decision::AlreadyDone
        );
        assert_eq!(
            decide(false, 0, 3, Some(&marker("me")), "me", false),
            Decision::Produce
        );
    }

    #[test]
    fn an_excerpt_is_never_redriven() {
        assert_eq!(decide(true, 0, 3, None, "me", false), Decision::SkipExcerpt);
        assert_eq!(
            decide(true, 0, 3, Some(&marker("me")), "me", false),
            Decision::SkipExcerpt
        );
        assert_eq!(Decision::SkipExcerpt.label(), "excerpt");
    }

    #[test]
    fn headers_drop_the_failure_and_count_the_attempt() {
        let original = vec![
            ("event_id".to_owned(), Some(b"e-1".to_vec())),
            ("error.type".to_owned(), Some(b"contract_violation".to_vec())),
            ("failed_at".to_owned(), Some(b"2026-01-01T00:00:00.000Z".to_vec())),
            ("redrive.attempts".to_owned(), Some(b"1".to_vec())),
            ("redrive.id".to_owned(), Some(b"old".to_vec())),
        ];
        let out = redrive_headers(&original, 1, "me", "streamlake.orders.dlq", 2, 9);
        let text: Vec<(String, String)> = out
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.unwrap_or_default()).expect("utf-8")))
            .collect();
        let expect = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            text,
            [
                expect("event_id", "e-1"),
                expect("redrive.attempts", "2"),
                expect("redrive.id", "me"),
                expect("redrive.dlq.topic", "streamlake.orders.dlq"),
                expect("redrive.dlq.partition", "2"),
                expect("redrive.dlq.offset", "9"),
            ]
        );
    }

    #[test]
    fn marker_keys_name_the_record() {
        assert_eq!(
            marker_key("streamlake.orders.dlq", 1, 42),
            "reports/dlq/redrive-ledger/topic=streamlake.orders.dlq/partition=1/offset=42.json"
        );
    }
}
