//! The data-quality checks as a pure function of what was read: no client, no clock, unit-tested.
//!
//! Every check fails over no data: an empty day proves nothing, so it never passes vacuously.

use std::collections::BTreeMap;

use crate::crd::dq_check::{CheckResult, DqChecks};

/// The names of the checks, as they appear in the status and the report (the spec's field names).
pub const FILES_EXIST: &str = "filesExist";
pub const MIN_ROW_COUNT: &str = "minRowCount";
pub const METADATA_CONSISTENT: &str = "metadataConsistent";
pub const NO_EMPTY_PARTITIONS: &str = "noEmptyPartitions";
pub const OFFSET_CONTINUITY: &str = "offsetContinuity";
pub const CONTRACT_SAMPLE: &str = "contractSample";
pub const FRESHNESS: &str = "freshness";

/// Most problems named in one check's `observed`; the report holds them all.
const SHOWN: usize = 5;

/// What the `_metadata.json` of a day turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataState {
    Missing,
    Unreadable(String),
    Present,
}

/// A file listed in `_metadata.json`, and what the store holds under its name.
#[derive(Debug, Clone, PartialEq)]
pub struct FileObservation {
    pub path: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub record_count: u64,
    pub listed_bytes: u64,
    pub listed_checksum: String,
    /// `(bytes, checksum)` of the stored object; `None` when it is gone.
    pub found: Option<(u64, String)>,
    pub max_timestamp_ms: i64,
}

/// One `ingestion_date=` folder.
#[derive(Debug, Clone, PartialEq)]
pub struct DayObservation {
    pub date: String,
    pub metadata: MetadataState,
    pub files: Vec<FileObservation>,
    /// `(partition, offset)` of the day's records listed as sent to the DLQ.
    pub dlq: Vec<(i32, i64)>,
    /// Per Kafka partition, the offsets `[start, end)` of this day's records below the committed offset.
    pub expected: BTreeMap<i32, (i64, i64)>,
}

/// Rows read for the contract sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleObservation {
    pub checked: usize,
    /// One line per invalid row: where it is and why.
    pub invalid: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub days: Vec<DayObservation>,
    /// The consumer group and its committed offsets on the raw topic.
    pub group: String,
    pub committed: BTreeMap<i32, i64>,
    pub sample: Option<SampleObservation>,
    pub now_ms: i64,
}

/// Runs the selected checks, in a fixed order. `max_age_ms` is the parsed freshness limit.
pub fn evaluate(checks: &DqChecks, max_age_ms: Option<i64>, o: &Observation) -> Vec<CheckResult> {
    let mut results = Vec::new();
    if checks.files_exist == Some(true) {
        results.push(files_exist(o));
    }
    if let Some(min) = checks.min_row_count {
        results.push(min_row_count(o, min));
    }
    if checks.metadata_consistent == Some(true) {
        results.push(metadata_consistent(o));
    }
    if checks.no_empty_partitions == Some(true) {
        results.push(no_empty_partitions(o));
    }
    if checks.offset_continuity == Some(true) {
        results.push(offset_continuity(o));
    }
    if checks.contract_sample.is_some() {
        results.push(contract_sample(o));
    }
    if let Some(max_age) = max_age_ms {
        results.push(freshness(o, max_age));
    }
    results
}

fn result(name: &str, passed: bool, observed: String, expected: Option<String>) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        passed,
        observed,
        expected,
        message: None,
    }
}

fn listing(problems: &[String]) -> String {
    let mut text = problems
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > SHOWN {
        text.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    text
}

fn files_exist(o: &Observation) -> CheckResult {
    let mut problems = Vec::new();
    let mut present = 0;
    for day in &o.days {
        let found = day.files.iter().filter(|f| f.found.is_some()).count();
        present += found;
        match &day.metadata {
            MetadataState::Missing => problems.push(format!("{}: no _metadata.json", day.date)),
            MetadataState::Unreadable(e) => problems.push(format!("{}: {e}", day.date)),
            MetadataState::Present if day.files.is_empty() => {
                problems.push(format!("{}: no data files listed", day.date));
            }
            MetadataState::Present => {}
        }
        for file in day.files.iter().filter(|f| f.found.is_none()) {
            problems.push(format!("{}: {} is missing", day.date, file.path));
        }
    }
    let observed = if problems.is_empty() {
        format!("{present} files")
    } else {
        format!("{present} files; {}", listing(&problems))
    };
    result(
        FILES_EXIST,
        problems.is_empty() && present > 0,
        observed,
        Some("every day has its listed files".into()),
    )
}

fn rows(o: &Observation) -> u64 {
    o.days
        .iter()
        .flat_map(|d| &d.files)
        .filter(|f| f.found.is_some())
        .map(|f| f.record_count)
        .sum()
}

fn min_row_count(o: &Observation, min: i64) -> CheckResult {
    let rows = rows(o);
    let passed = rows > 0 && i64::try_from(rows).unwrap_or(i64::MAX) >= min;
    result(
        MIN_ROW_COUNT,
        passed,
        format!("{rows} rows"),
        Some(format!(">= {min} rows")),
    )
}

fn metadata_consistent(o: &Observation) -> CheckResult {
    let mut problems = Vec::new();
    let mut files = 0;
    for day in &o.days {
        match &day.metadata {
            MetadataState::Missing => {
                problems.push(format!("{}: _metadata.json is missing", day.date));
                continue;
            }
            MetadataState::Unreadable(e) => {
                problems.push(format!("{}: {e}", day.date));
                continue;
            }
            MetadataState::Present => {}
        }
        if day.files.is_empty() {
            problems.push(format!("{}: _metadata.json lists no files", day.date));
        }
        for file in &day.files {
            files += 1;
            match &file.found {
                None => problems.push(format!("{}: listed {} is missing", day.date, file.path)),
                Some((bytes, _)) if *bytes != file.listed_bytes => problems.push(format!(
                    "{}: {} has {bytes} bytes, listed {}",
                    day.date, file.path, file.listed_bytes
                )),
                Some((_, checksum)) if *checksum != file.listed_checksum => problems.push(format!(
                    "{}: {} has checksum {checksum}, listed {}",
                    day.date, file.path, file.listed_checksum
                )),
                Some(_) => {}
            }
        }
    }
    let observed = if problems.is_empty() {
        format!("{files} files match their sizes and checksums")
    } else {
        listing(&problems)
    };
    result(
        METADATA_CONSISTENT,
        problems.is_empty() && files > 0,
        observed,
        Some("_metadata.json present, every listed file with its size and checksum".into()),
    )
}

fn no_empty_partitions(o: &Observation) -> CheckResult {
    let mut problems = Vec::new();
    for day in &o.days {
        if !day.files.iter().any(|f| f.found.is_some()) {
            problems.push(format!("{}: empty", day.date));
            continue;
        }
        for (partition, (start, end)) in &day.expected {
            let landed = day
                .files
                .iter()
                .any(|f| f.partition == *partition && f.found.is_some());
            // A partition whose every record of the day was a poison pill has no file, and is not empty:
            // its records are accounted for, in the DLQ.
            let in_dlq = day
                .dlq
                .iter()
                .filter(|(p, offset)| p == partition && (start..end).contains(&offset))
                .count() as i64;
            if end > start && !landed && in_dlq < end - start {
                problems.push(format!(
                    "{}: Kafka partition {partition} has {} records but no file{}",
                    day.date,
                    end - start,
                    if in_dlq > 0 {
                        format!(" ({in_dlq} of them in the DLQ)")
                    } else {
                        String::new()
                    }
                ));
            }
        }
    }
    let observed = if problems.is_empty() {
        format!("{} days with data", o.days.len())
    } else {
        listing(&problems)
    };
    result(
        NO_EMPTY_PARTITIONS,
        problems.is_empty() && !o.days.is_empty(),
        observed,
        Some("every day, and every Kafka partition with records that day, has data".into()),
    )
}

/// Gaps and overlaps of the offsets landed (present files and DLQ entries) against the day's offsets
/// below the group's committed offset, per Kafka partition.
fn offset_continuity(o: &Observation) -> CheckResult {
    if o.committed.is_empty() {
        return result(
            OFFSET_CONTINUITY,
            false,
            format!("group {} has no committed offsets", o.group),
            Some("committed offsets to check against".into()),
        );
    }
    let mut problems = Vec::new();
    let mut expected_total = 0;
    for day in &o.days {
        for (partition, &(start, end)) in &day.expected {
            expected_total += (end - start).max(0);
            let files: Vec<(i64, i64)> = day
                .files
                .iter()
                .filter(|f| f.partition == *partition && f.found.is_some())
                .map(|f| (f.first_offset, f.last_offset))
                .collect();
            // A listed file holds every record of its range except the DLQ entries inside it (core
            // rawzone::metadata): such an entry belongs to that file's landing, it is not a second landing.
            let outside_files = |offset: i64| {
                !files
                    .iter()
                    .any(|&(first, last)| (first..=last).contains(&offset))
            };
            let mut covered: Vec<(i64, i64)> = files
                .iter()
                .copied()
                .chain(
                    day.dlq
                        .iter()
                        .filter(|d| d.0 == *partition && outside_files(d.1))
                        .map(|d| (d.1, d.1)),
                )
                .collect();
            covered.sort_unstable();
            let mut next = start;
            for (first, last) in covered {
                if first < next && next > start {
                    problems.push(format!(
                        "{}: overlap at partition {partition} offsets {}..={}",
                        day.date,
                        first.max(start),
                        last.min(next - 1)
                    ));
                }
                if first > next && next < end {
                    problems.push(format!(
                        "{}: gap at partition {partition} offsets {next}..={}",
                        day.date,
                        (first - 1).min(end - 1)
                    ));
                }
                next = next.max(last + 1);
            }
            if next < end {
                problems.push(format!(
                    "{}: gap at partition {partition} offsets {next}..={}",
                    day.date,
                    end - 1
                ));
            }
        }
    }
    if expected_total == 0 {
        return result(
            OFFSET_CONTINUITY,
            false,
            "no committed records of these days in Kafka: nothing to prove".into(),
            Some("records to check".into()),
        );
    }
    let observed = if problems.is_empty() {
        format!("{expected_total} offsets landed once each")
    } else {
        listing(&problems)
    };
    result(
        OFFSET_CONTINUITY,
        problems.is_empty(),
        observed,
        Some(format!(
            "no gaps or overlaps up to the committed offsets of {}",
            o.group
        )),
    )
}

fn contract_sample(o: &Observation) -> CheckResult {
    let Some(sample) = &o.sample else {
        return result(CONTRACT_SAMPLE, false, "no sample was read".into(), None);
    };
    let mut observed = format!(
        "{} rows checked, {} invalid",
        sample.checked,
        sample.invalid.len()
    );
    if !sample.invalid.is_empty() {
        observed.push_str(&format!(": {}", listing(&sample.invalid)));
    }
    result(
        CONTRACT_SAMPLE,
        sample.checked > 0 && sample.invalid.is_empty(),
        observed,
        Some("every sampled row valid against the contract".into()),
    )
}

fn freshness(o: &Observation, max_age_ms: i64) -> CheckResult {
    let newest = o
        .days
        .iter()
        .flat_map(|d| &d.files)
        .filter(|f| f.found.is_some())
        .map(|f| f.max_timestamp_ms)
        .max();
    let expected = Some(format!("newest record at most {} s old", max_age_ms / 1000));
    match newest {
        None => result(FRESHNESS, false, "no records".into(), expected),
        Some(newest) => {
            let age = o.now_ms - newest;
            result(
                FRESHNESS,
                age <= max_age_ms,
                format!("newest record {} s old", age / 1000),
                expected,
            )
        }
    }
}

#[cfg(test)]
mod tests;
