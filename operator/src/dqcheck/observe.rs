//! Reads what the checks need: each day's `_metadata.json` and files from the lake, a sample of rows,
//! and the raw topic's offsets (by timestamp, and the group's committed offsets) from Kafka.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use streamlake_core::contract::ContractRegistry;
use streamlake_core::names::DatasetName;
use streamlake_core::offsets::OffsetClient;
use streamlake_core::rawzone::readback::{ReadBack, read_back};
use streamlake_core::rawzone::{
    FileFormat, IngestionDate, RawZoneLayout, RawZoneStore, checksum_as_listed, parse_metadata,
};

use super::Error;
use super::checks::{DayObservation, FileObservation, MetadataState, Observation, SampleObservation};
use super::rows::{event_of_row, json_text_columns_of};
use crate::error::CommonError;

/// The Kafka side of one day: per partition `[start, end)` below the committed offset.
type Expected = BTreeMap<i32, (i64, i64)>;

/// Midnight UTC of a day, in milliseconds.
pub fn day_start_ms(date: IngestionDate) -> i64 {
    date.date()
        .and_hms_opt(0, 0, 0)
        .map_or(i64::MAX, |t| t.and_utc().timestamp_millis())
}

/// Per day, the offsets of its records (by record timestamp) below the group's committed offsets.
/// Blocking: run from `spawn_blocking`.
fn read_kafka(
    offsets: &OffsetClient,
    topic: &str,
    group: &str,
    dates: &[IngestionDate],
) -> Result<(BTreeMap<i32, i64>, Vec<Expected>), Error> {
    let committed = offsets.committed(group, topic).map_err(CommonError::ReadKafka)?;
    let watermarks = offsets.watermarks(topic).map_err(CommonError::ReadKafka)?;
    let mut days = Vec::new();
    for date in dates {
        let start_ms = day_start_ms(*date);
        let end_ms = start_ms.saturating_add(86_400_000);
        let starts = offsets
            .offsets_for_timestamp(topic, start_ms)
            .map_err(CommonError::ReadKafka)?;
        let ends = offsets
            .offsets_for_timestamp(topic, end_ms)
            .map_err(CommonError::ReadKafka)?;
        let mut expected = Expected::new();
        for (partition, w) in &watermarks {
            let at = |m: &BTreeMap<i32, Option<i64>>| m.get(partition).copied().flatten().unwrap_or(w.high);
            let limit = committed.get(partition).copied().unwrap_or(w.low);
            let end = at(&ends).min(limit);
            expected.insert(*partition, (at(&starts).min(end), end));
        }
        days.push(expected);
    }
    Ok((committed, days))
}

/// Rows still to sample, and the contracts to check them against.
struct Sampler<'a> {
    remaining: usize,
    contracts: Result<&'a ContractRegistry, &'a str>,
    dataset: &'a DatasetName,
    seen: SampleObservation,
}

impl Sampler<'_> {
    /// Checks up to `remaining` rows of a data file in any format the consumer writes. The event is
    /// rebuilt without the sink's own columns (`_partition`, `_offset`, ...): the contract describes
    /// the record's fields only.
    fn take(&mut self, path: &str, format: FileFormat, data: &Bytes) {
        if self.remaining == 0 {
            return;
        }
        let ReadBack {
            rows,
            json_text_columns: described,
        } = match read_back(format, data.clone()) {
            Ok(read) => read,
            Err(e) => {
                self.seen
                    .invalid
                    .push(format!("{path}: unreadable {format} file: {e}"));
                return;
            }
        };
        // Only Parquet rows have JSON-text columns; a file that does not name them has the newest
        // contract's.
        let json_text = match format {
            FileFormat::Parquet => described
                .or_else(|| {
                    let newest = self.contracts.ok()?.latest(self.dataset.as_str())?;
                    Some(json_text_columns_of(newest))
                })
                .unwrap_or_default(),
            _ => BTreeSet::new(),
        };
        for (row_no, row) in rows.into_iter().enumerate() {
            if self.remaining == 0 {
                return;
            }
            self.remaining -= 1;
            self.seen.checked += 1;
            if let Some(problem) = self.problem(format, row, &json_text) {
                self.seen
                    .invalid
                    .push(format!("{path} row {}: {problem}", row_no + 1));
            }
        }
    }

    fn problem(
        &self,
        format: FileFormat,
        row: Map<String, Value>,
        json_text: &BTreeSet<String>,
    ) -> Option<String> {
        let contracts = match self.contracts {
            Ok(c) => c,
            Err(e) => return Some(e.to_owned()),
        };
        let version = row.get("_schema_version").and_then(Value::as_u64);
        let dataset = self.dataset.as_str();
        let contract = match version.and_then(|v| u32::try_from(v).ok()) {
            Some(v) => contracts.get(dataset, v),
            None => contracts.latest(dataset),
        };
        let Some(contract) = contract else {
            return Some(format!("no contract for {dataset} version {version:?}"));
        };
        let event = match event_of_row(format, row, contract, json_text) {
            Ok(event) => event,
            Err(e) => return Some(e),
        };
        let violations = contract.violations(&event);
        let first = violations.first()?;
        Some(format!(
            "{} violation(s), first at {:?}: {}",
            violations.len(),
            first.pointer,
            first.message
        ))
    }
}

/// Everything [`super::checks::evaluate`] needs.
#[allow(clippy::too_many_arguments)]
pub async fn observe(
    store: &RawZoneStore,
    offsets: &Arc<OffsetClient>,
    contracts_dir: &Path,
    dataset: &DatasetName,
    dates: &[IngestionDate],
    sample_size: usize,
    now_ms: i64,
) -> Result<Observation, Error> {
    let (topic, group) = (dataset.raw_topic(), dataset.consumer_group());
    let (committed, expected) = {
        let (offsets, topic, group, dates) = (offsets.clone(), topic.clone(), group.clone(), dates.to_vec());
        tokio::task::spawn_blocking(move || read_kafka(&offsets, &topic, &group, &dates))
            .await
            .map_err(CommonError::KafkaTask)??
    };
    let registry = ContractRegistry::load_dir(contracts_dir)
        .map_err(|e| format!("contracts in {}: {e}", contracts_dir.display()));
    let mut sampler = Sampler {
        remaining: sample_size,
        contracts: registry.as_ref().map_err(String::as_str),
        dataset,
        seen: SampleObservation::default(),
    };
    let layout = RawZoneLayout::new(dataset.clone());
    let mut days = Vec::new();
    for (date, expected) in dates.iter().zip(expected) {
        let key = layout.metadata_key(*date);
        let (metadata, doc) = match store.get(&key).await.map_err(Error::ReadLake)? {
            None => (MetadataState::Missing, None),
            Some(object) => match parse_metadata(&key, &object.data) {
                Ok(doc) => (MetadataState::Present, Some(doc)),
                Err(e) => (MetadataState::Unreadable(e.to_string()), None),
            },
        };
        let mut files = Vec::new();
        for entry in doc.iter().flat_map(|d| &d.files) {
            let stored = store
                .get(&layout.data_file_key(*date, &entry.path))
                .await
                .map_err(Error::ReadLake)?;
            let found = stored.map(|object| {
                sampler.take(&entry.path, entry.format, &object.data);
                (
                    object.data.len() as u64,
                    checksum_as_listed(&entry.checksum, &object.data),
                )
            });
            files.push(FileObservation {
                path: entry.path.clone(),
                partition: entry.partition,
                first_offset: entry.first_offset,
                last_offset: entry.last_offset,
                record_count: entry.record_count,
                listed_bytes: entry.bytes,
                listed_checksum: entry.checksum.clone(),
                found,
                max_timestamp_ms: entry.max_timestamp.timestamp_millis(),
            });
        }
        days.push(DayObservation {
            date: date.to_string(),
            metadata,
            files,
            dlq: doc
                .iter()
                .flat_map(|d| &d.dlq)
                .map(|d| (d.partition, d.offset))
                .collect(),
            expected,
        });
    }
    Ok(Observation {
        days,
        group,
        committed,
        sample: (sample_size > 0).then_some(sampler.seen),
        now_ms,
    })
}
