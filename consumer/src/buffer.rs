//! Records waiting to be landed: one open buffer per (Kafka partition, ingestion date), sealed into a
//! unit when it reaches the rotation limits (records, bytes, age) or when its partition is drained.
//!
//! Count and byte limits are counted from the buffer's first record, so after a restart from a committed
//! offset the same records are grouped the same way and produce the same file names.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use streamlake_core::rawzone::IngestionDate;

use crate::record::SourceRecord;
use crate::tracker::UnitId;

/// When an open buffer becomes a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

/// A sealed buffer: the records of one (partition, date) that will land together.
#[derive(Debug)]
pub struct SealedUnit {
    pub id: UnitId,
    pub partition: i32,
    pub date: IngestionDate,
    /// In offset order.
    pub records: Vec<SourceRecord>,
    pub bytes: usize,
}

#[derive(Debug)]
struct OpenBuffer {
    id: UnitId,
    records: Vec<SourceRecord>,
    bytes: usize,
    opened_at: Instant,
}

#[derive(Debug)]
pub struct OpenBuffers {
    policy: RotationPolicy,
    /// While memory is short, buffers are also sealed at this size, so landings start early and overlap.
    pressure_limit: Option<usize>,
    open: HashMap<(i32, IngestionDate), OpenBuffer>,
    next_id: UnitId,
    bytes: usize,
    /// The UTC day number (of the Unix epoch) and date of the last record: records mostly share their day,
    /// and the calendar arithmetic showed in profiles.
    last_day: Option<(i64, IngestionDate)>,
}

impl OpenBuffers {
    pub fn new(policy: RotationPolicy) -> Self {
        Self {
            policy,
            pressure_limit: None,
            open: HashMap::new(),
            next_id: 1,
            bytes: 0,
            last_day: None,
        }
    }

    /// Bytes held by open (not yet sealed) buffers.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Seal buffers at `limit` bytes too (memory is short), or only by the rotation policy (`None`).
    /// Returns the buffers already at a newly set limit, sealed: held open, they would wait for a record
    /// of their own partition that the poll loop, holding for memory, does not read.
    pub fn set_pressure_limit(&mut self, limit: Option<usize>) -> Vec<SealedUnit> {
        if self.pressure_limit == limit {
            return Vec::new();
        }
        self.pressure_limit = limit;
        match limit {
            Some(limit) => self.seal_where(|_, b| b.bytes >= limit),
            None => Vec::new(),
        }
    }

    /// Adds a record to its buffer; returns the unit it belongs to, and the sealed unit if it is now full.
    pub fn append(&mut self, record: SourceRecord, now: Instant) -> (UnitId, Option<SealedUnit>) {
        let key = (record.partition, self.date_of(&record));
        let charged = record.charged_bytes();
        let next_id = &mut self.next_id;
        let buffer = self.open.entry(key).or_insert_with(|| {
            let id = *next_id;
            *next_id += 1;
            OpenBuffer {
                id,
                records: Vec::new(),
                bytes: 0,
                opened_at: now,
            }
        });
        buffer.records.push(record);
        buffer.bytes += charged;
        self.bytes += charged;
        let id = buffer.id;
        let full = buffer.records.len() >= self.policy.max_records
            || buffer.bytes >= self.policy.max_bytes
            || self.pressure_limit.is_some_and(|limit| buffer.bytes >= limit);
        (id, full.then(|| self.seal(key)).flatten())
    }

    /// The record's ingestion date, from the last record's when they share their UTC day.
    fn date_of(&mut self, record: &SourceRecord) -> IngestionDate {
        const MILLIS_PER_DAY: i64 = 86_400_000;
        let day = record.timestamp.unwrap_or(0).div_euclid(MILLIS_PER_DAY);
        match self.last_day {
            Some((last, date)) if last == day => date,
            _ => {
                let date = record.ingestion_date();
                self.last_day = Some((day, date));
                date
            }
        }
    }

    /// Seals every buffer older than the age limit.
    pub fn seal_expired(&mut self, now: Instant) -> Vec<SealedUnit> {
        let max_age = self.policy.max_age;
        self.seal_where(|_, b| now.duration_since(b.opened_at) >= max_age)
    }

    /// Seals every buffer of the given Kafka partitions.
    pub fn seal_partitions(&mut self, partitions: &[i32]) -> Vec<SealedUnit> {
        self.seal_where(|(p, _), _| partitions.contains(p))
    }

    /// Seals the `count` largest buffers.
    pub fn seal_largest(&mut self, count: usize) -> Vec<SealedUnit> {
        let mut by_size: Vec<_> = self.open.iter().map(|(k, b)| (b.bytes, *k)).collect();
        by_size.sort_by(|a, b| b.cmp(a));
        by_size.truncate(count);
        by_size.into_iter().filter_map(|(_, k)| self.seal(k)).collect()
    }

    /// Drops the buffers of partitions this consumer no longer owns (their records will be re-read).
    pub fn discard_partitions(&mut self, partitions: &[i32]) {
        let dropped: usize = self
            .open
            .iter()
            .filter(|((p, _), _)| partitions.contains(p))
            .map(|(_, b)| b.bytes)
            .sum();
        self.open.retain(|(p, _), _| !partitions.contains(p));
        self.bytes -= dropped;
    }

    /// When the next buffer will reach its age limit.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open
            .values()
            .map(|b| b.opened_at + self.policy.max_age)
            .min()
    }

    fn seal_where(
        &mut self,
        mut pick: impl FnMut(&(i32, IngestionDate), &OpenBuffer) -> bool,
    ) -> Vec<SealedUnit> {
        let mut keys: Vec<_> = self
            .open
            .iter()
            .filter(|(k, b)| pick(k, b))
            .map(|(k, _)| *k)
            .collect();
        keys.sort();
        keys.into_iter().filter_map(|k| self.seal(k)).collect()
    }

    fn seal(&mut self, key: (i32, IngestionDate)) -> Option<SealedUnit> {
        let buffer = self.open.remove(&key)?;
        self.bytes -= buffer.bytes;
        Some(SealedUnit {
            id: buffer.id,
            partition: key.0,
            date: key.1,
            records: buffer.records,
            bytes: buffer.bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    fn policy(max_records: usize, max_bytes: usize, max_age_ms: u64) -> RotationPolicy {
        RotationPolicy {
            max_records,
            max_bytes,
            max_age: Duration::from_millis(max_age_ms),
        }
    }

    fn record(partition: i32, offset: i64, day: i64, size: usize) -> SourceRecord {
        SourceRecord {
            partition,
            offset,
            timestamp: Some(day * DAY_MS + offset),
            key: None,
            payload: Some(bytes::Bytes::from(vec![b'x'; size])),
            headers: None,
        }
    }

    #[test]
    fn seals_the_largest_buffers_first() {
        let mut buffers = OpenBuffers::new(policy(1000, 1 << 30, 60_000));
        let now = Instant::now();
        for (partition, size) in [(0, 100), (1, 300), (2, 200), (3, 50)] {
            buffers.append(record(partition, 0, 20_000, size), now);
        }
        let sealed: Vec<i32> = buffers.seal_largest(2).iter().map(|u| u.partition).collect();
        assert_eq!(sealed, vec![1, 2]);
        let rest: Vec<i32> = buffers.seal_largest(5).iter().map(|u| u.partition).collect();
        assert_eq!(rest, vec![0, 3], "no more than there are");
        assert_eq!(buffers.bytes(), 0);
    }

    #[test]
    fn rotates_by_record_count_on_deterministic_boundaries() {
        let now = Instant::now();
        let mut buffers = OpenBuffers::new(policy(3, usize::MAX, 60_000));
        let mut sealed = Vec::new();
        for offset in 0..7 {
            let (_, unit) = buffers.append(record(0, offset, 20_000, 10), now);
            sealed.extend(unit);
        }
        let ranges: Vec<(i64, i64)> = sealed
            .iter()
            .map(|u| (u.records[0].offset, u.records.last().expect("records").offset))
            .collect();
        assert_eq!(ranges, vec![(0, 2), (3, 5)]);
        assert_eq!(buffers.seal_largest(usize::MAX)[0].records.len(), 1);
        assert_eq!(buffers.bytes(), 0);
    }

    #[test]
    fn rotates_by_bytes() {
        let now = Instant::now();
        let mut buffers = OpenBuffers::new(policy(usize::MAX, 3000, 60_000));
        let one = record(0, 0, 20_000, 1000).charged_bytes();
        let mut sealed = 0;
        for offset in 0..10 {
            if buffers.append(record(0, offset, 20_000, 1000), now).1.is_some() {
                sealed += 1;
            }
        }
        let per_file = 3000usize.div_ceil(one);
        assert_eq!(sealed, 10 / per_file);
    }

    #[test]
    fn seals_early_under_memory_pressure_only() {
        let now = Instant::now();
        let mut buffers = OpenBuffers::new(policy(usize::MAX, usize::MAX, 60_000));
        let one = record(0, 0, 20_000, 1000).charged_bytes();
        assert!(buffers.append(record(0, 0, 20_000, 1000), now).1.is_none());
        assert!(buffers.set_pressure_limit(Some(2 * one)).is_empty());
        let (_, sealed) = buffers.append(record(0, 1, 20_000, 1000), now);
        assert_eq!(sealed.map(|u| u.records.len()), Some(2));
        assert!(buffers.set_pressure_limit(None).is_empty());
        for offset in 2..10 {
            assert!(buffers.append(record(0, offset, 20_000, 1000), now).1.is_none());
        }
    }

    #[test]
    fn a_pressure_limit_seals_the_buffers_that_already_reached_it() {
        let now = Instant::now();
        let mut buffers = OpenBuffers::new(policy(usize::MAX, usize::MAX, 60_000));
        let one = record(0, 0, 20_000, 1000).charged_bytes();
        for offset in 0..5 {
            buffers.append(record(0, offset, 20_000, 1000), now);
        }
        buffers.append(record(1, 0, 20_000, 1000), now);
        let sealed = buffers.set_pressure_limit(Some(3 * one));
        assert_eq!(
            sealed
                .iter()
                .map(|u| (u.partition, u.records.len()))
                .collect::<Vec<_>>(),
            [(0, 5)],
            "partition 0 is over the new limit, partition 1 is not"
        );
        assert_eq!(buffers.bytes(), one);
        assert!(
            buffers.set_pressure_limit(Some(3 * one)).is_empty(),
            "the same limit again seals nothing"
        );
    }

    #[test]
    fn rotates_by_age() {
        let start = Instant::now();
        let mut buffers = OpenBuffers::new(policy(100, usize::MAX, 1000));
        buffers.append(record(0, 0, 20_000, 1), start);
        assert!(
            buffers
                .seal_expired(start + Duration::from_millis(999))
                .is_empty()
        );
        assert_eq!(buffers.next_deadline(), Some(start + Duration::from_millis(1000)));
        assert_eq!(buffers.seal_expired(start + Duration::from_millis(1000)).len(), 1);
        assert!(buffers.is_empty());
    }

    #[test]
    fn separate_buffers_per_partition_and_date() {
        let now = Instant::now();
        let mut buffers = OpenBuffers::new(policy(100, usize::MAX, 60_000));
        let (a, _) = buffers.append(record(0, 0, 20_000, 1), now);
        let (b, _) = buffers.append(record(0, 1, 20_001, 1), now);
        let (c, _) = buffers.append(record(1, 0, 20_000, 1), now);
        let (a2, _) = buffers.append(record(0, 2, 20_000, 1), now);
        assert_eq!(a, a2);
        assert!(a != b && a != c && b != c);
        let sealed = buffers.seal_partitions(&[0]);
        assert_eq!(sealed.len(), 2);
        assert_eq!(sealed.iter().map(|u| u.records.len()).sum::<usize>(), 3);
        assert!(!buffers.is_empty(), "partition 1 stays open");
    }

    #[test]
    fn each_unit_has_the_date_of_its_records() {
        let now = Instant::now();
        let mut buffers = OpenBuffers::new(policy(1, usize::MAX, 60_000));
        let timestamps = [
            Some(20_000 * DAY_MS - 1),
            Some(20_000 * DAY_MS),
            Some(20_000 * DAY_MS - 1),
            None,
            Some(-1),
            Some(i64::MAX),
            Some(i64::MAX - 1),
            Some(0),
        ];
        for (offset, timestamp) in timestamps.into_iter().enumerate() {
            let mut record = record(0, offset as i64, 0, 1);
            record.timestamp = timestamp;
            let expected = record.ingestion_date();
            let (_, sealed) = buffers.append(record, now);
            let unit = sealed.expect("one record per unit");
            assert_eq!(unit.date, expected, "timestamp {timestamp:?}");
        }
    }

    #[test]
    fn discarding_releases_the_bytes() {
        let now = Instant::now();
        let mut buffers = OpenBuffers::new(policy(100, usize::MAX, 60_000));
        buffers.append(record(0, 0, 20_000, 100), now);
        buffers.append(record(1, 0, 20_000, 100), now);
        buffers.discard_partitions(&[0]);
        assert_eq!(buffers.bytes(), record(1, 0, 20_000, 100).charged_bytes());
    }
}
