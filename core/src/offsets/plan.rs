//! The pure part of a replay: which offset each partition restarts from and where the re-read ends,
//! and how far the group has come. No I/O: the inputs are what [`super::OffsetClient`] read.

use std::collections::BTreeMap;

/// What Kafka knows about one partition of the topic, as far as the group is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: i32,
    /// First offset still in the log.
    pub low: i64,
    /// Offset the next record will get (the log end).
    pub high: i64,
    /// The group's committed offset, if it has one.
    pub committed: Option<i64>,
}

impl PartitionOffsets {
    /// Where the group reads this partition from now: its committed offset, or the earliest offset when it
    /// has none (StreamLake consumers start from the earliest record, Kafka being the system of record).
    pub fn position(&self) -> i64 {
        self.committed.unwrap_or(self.low)
    }
}

/// Where the group restarts reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    Earliest,
    Latest,
    /// The answer of an offsets-for-timestamp lookup: per partition, the first offset at or after the time,
    /// `None` when no record is that recent (the partition then restarts at its end).
    Timestamp(BTreeMap<i32, Option<i64>>),
    /// Explicit offsets; partitions not listed keep their position.
    Offsets(BTreeMap<i32, i64>),
    /// Every partition's position moved by N (negative re-reads the last N records).
    ShiftBy(i64),
}

/// Where the re-read is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndPosition {
    /// The log end at the time of the plan.
    LogEnd,
    /// An offsets-for-timestamp lookup: every record before the time; `None` means the log end.
    Timestamp(BTreeMap<i32, Option<i64>>),
    /// Explicit end offsets; partitions not listed end at the log end.
    Offsets(BTreeMap<i32, i64>),
}

/// One partition of an [`OffsetResetPlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionPlan {
    pub partition: i32,
    /// The committed offset before the reset.
    pub committed: Option<i64>,
    /// The offset to commit for the group.
    pub new_offset: i64,
    /// The re-read is complete on this partition once the group has committed this offset.
    pub end_offset: i64,
    /// A requested offset lay outside `[low, high]` (or the end before the start) and was moved.
    pub clamped: bool,
}

impl PartitionPlan {
    pub fn records(&self) -> i64 {
        self.end_offset - self.new_offset
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the topic has no partitions")]
    NoPartitions,
    #[error("{which} names partition {partition}, which the topic does not have (it has {count})")]
    UnknownPartition {
        which: &'static str,
        partition: i32,
        count: usize,
    },
    #[error("the timestamp lookup has no answer for partition {partition}")]
    MissingTimestampOffset { partition: i32 },
}

/// Per partition: the committed offset before, the offset to commit, and the end of the re-read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetResetPlan {
    pub partitions: Vec<PartitionPlan>,
}

impl OffsetResetPlan {
    /// The plan for `partitions` (every partition of the topic). New offsets are clamped to the
    /// watermarks; end offsets to `[new offset, high]`.
    pub fn compute(
        partitions: &[PartitionOffsets],
        from: &StartPosition,
        to: &EndPosition,
    ) -> Result<Self, PlanError> {
        if partitions.is_empty() {
            return Err(PlanError::NoPartitions);
        }
        let known = |which, map: &BTreeMap<i32, i64>| match map
            .keys()
            .find(|p| !partitions.iter().any(|o| o.partition == **p))
        {
            Some(&partition) => Err(PlanError::UnknownPartition {
                which,
                partition,
                count: partitions.len(),
            }),
            None => Ok(()),
        };
        if let StartPosition::Offsets(map) = from {
            known("from.offsets", map)?;
        }
        if let EndPosition::Offsets(map) = to {
            known("to.offsets", map)?;
        }
        let mut plans = Vec::with_capacity(partitions.len());
        for p in partitions {
            let (wanted, start_may_clamp) = match from {
                StartPosition::Earliest => (p.low, false),
                StartPosition::Latest => (p.high, false),
                StartPosition::Timestamp(map) => (lookup(map, p)?.unwrap_or(p.high), true),
                StartPosition::Offsets(map) => (map.get(&p.partition).copied().unwrap_or(p.position()), true),
                StartPosition::ShiftBy(n) => (p.position().saturating_add(*n), true),
            };
            let new_offset = wanted.clamp(p.low, p.high);
            let wanted_end = match to {
                EndPosition::LogEnd => p.high,
                EndPosition::Timestamp(map) => lookup(map, p)?.unwrap_or(p.high),
                EndPosition::Offsets(map) => map.get(&p.partition).copied().unwrap_or(p.high),
            };
            let end_offset = wanted_end.clamp(new_offset, p.high);
            plans.push(PartitionPlan {
                partition: p.partition,
                committed: p.committed,
                new_offset,
                end_offset,
                clamped: (start_may_clamp && new_offset != wanted) || end_offset != wanted_end,
            });
        }
        plans.sort_by_key(|p| p.partition);
        Ok(Self { partitions: plans })
    }

    /// The offsets to commit for the group.
    pub fn new_offsets(&self) -> BTreeMap<i32, i64> {
        self.partitions
            .iter()
            .map(|p| (p.partition, p.new_offset))
            .collect()
    }

    /// How far a group with these committed offsets has come through the plan.
    pub fn progress(&self, committed: &BTreeMap<i32, i64>) -> Progress {
        let mut progress = Progress {
            replayed: 0,
            total: 0,
            partitions_done: 0,
            partitions: 0,
        };
        for p in &self.partitions {
            let at = committed.get(&p.partition).copied().unwrap_or(p.new_offset);
            progress.replayed += at.clamp(p.new_offset, p.end_offset) - p.new_offset;
            progress.total += p.records();
            progress.partitions += 1;
            if at >= p.end_offset {
                progress.partitions_done += 1;
            }
        }
        progress
    }
}

fn lookup(map: &BTreeMap<i32, Option<i64>>, p: &PartitionOffsets) -> Result<Option<i64>, PlanError> {
    map.get(&p.partition)
        .copied()
        .ok_or(PlanError::MissingTimestampOffset {
            partition: p.partition,
        })
}

/// Records re-read against the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub replayed: i64,
    pub total: i64,
    pub partitions_done: usize,
    pub partitions: usize,
}

impl Progress {
    /// Every partition's committed offset has reached its end offset.
    pub fn is_complete(&self) -> bool {
        self.partitions_done == self.partitions
    }

    /// Whole percent, rounded down; 100 only when complete.
    pub fn percent(&self) -> u8 {
        if self.is_complete() {
            return 100;
        }
        if self.total <= 0 {
            return 0;
        }
        let pct = (i128::from(self.replayed) * 100 / i128::from(self.total)).clamp(0, 99);
        u8::try_from(pct).unwrap_or(99)
    }
}

#[cfg(test)]
mod tests;
