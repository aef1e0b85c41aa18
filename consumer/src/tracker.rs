//! Which offset of a Kafka partition may be committed.
//!
//! Every record read is attached to the unit that will make it durable (a data file plus its DLQ
//! records). Units finish in any order; the commit position only moves over a prefix of records whose
//! units are all durable, so a later success never carries the offset past an earlier record that is
//! still in flight or failing.

use std::collections::{HashMap, HashSet, VecDeque};

/// Identifies a unit of landing (one sealed file buffer) within the process.
pub type UnitId = u64;

/// A run of consecutive records (by arrival) that belong to the same unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    first: i64,
    last: i64,
    unit: UnitId,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("offset {offset} arrived after offset {last}: a partition's offsets must increase")]
pub struct OutOfOrder {
    pub offset: i64,
    pub last: i64,
}

#[derive(Debug, Default)]
pub struct OffsetTracker {
    runs: VecDeque<Run>,
    /// Runs still queued per unit, so a unit can be forgotten once its last run is passed.
    runs_per_unit: HashMap<UnitId, usize>,
    durable: HashSet<UnitId>,
    last_seen: Option<i64>,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `offset` was read and belongs to `unit`.
    pub fn record(&mut self, offset: i64, unit: UnitId) -> Result<(), OutOfOrder> {
        if let Some(last) = self.last_seen.filter(|last| offset <= *last) {
            return Err(OutOfOrder { offset, last });
        }
        self.last_seen = Some(offset);
        match self.runs.back_mut() {
            Some(run) if run.unit == unit => run.last = offset,
            _ => {
                self.runs.push_back(Run {
                    first: offset,
                    last: offset,
                    unit,
                });
                *self.runs_per_unit.entry(unit).or_default() += 1;
            }
        }
        Ok(())
    }

    /// Records that a unit's records are all durable (in the raw zone or the DLQ).
    pub fn mark_durable(&mut self, unit: UnitId) {
        if self.runs_per_unit.contains_key(&unit) {
            self.durable.insert(unit);
        }
    }

    /// The offset to commit (the next one to read): the first record not yet durable, or one past the
    /// last record read when everything is durable. `None` before any record was read.
    pub fn commit_position(&mut self) -> Option<i64> {
        while let Some(run) = self.runs.front().copied() {
            if !self.durable.contains(&run.unit) {
                return Some(run.first);
            }
            self.runs.pop_front();
            if let Some(count) = self.runs_per_unit.get_mut(&run.unit) {
                *count -= 1;
                if *count == 0 {
                    self.runs_per_unit.remove(&run.unit);
                    self.durable.remove(&run.unit);
                }
            }
        }
        self.last_seen.map(|last| last + 1)
    }

    /// Whether every record read is durable.
    pub fn is_settled(&mut self) -> bool {
        self.commit_position();
        self.runs.is_empty()
    }

    /// The last offset read, if any.
    pub fn last_seen(&self) -> Option<i64> {
        self.last_seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_commit_before_the_first_record() {
        let mut t = OffsetTracker::new();
        assert_eq!(t.commit_position(), None);
        assert!(t.is_settled());
    }

    #[test]
    fn commit_waits_for_the_earliest_unit() {
        let mut t = OffsetTracker::new();
        for offset in 100..110 {
            t.record(offset, 1).expect("in order");
        }
        for offset in 110..120 {
            t.record(offset, 2).expect("in order");
        }
        t.mark_durable(2);
        assert_eq!(
            t.commit_position(),
            Some(100),
            "a later success must not move past unit 1"
        );
        t.mark_durable(1);
        assert_eq!(t.commit_position(), Some(120));
        assert!(t.is_settled());
    }

    #[test]
    fn interleaved_units_commit_only_over_a_durable_prefix() {
        // Two dates interleave within one partition: unit 1 (day A) and unit 2 (day B).
        let mut t = OffsetTracker::new();
        let layout = [(0, 1), (1, 1), (2, 2), (3, 1), (4, 2), (5, 2)];
        for (offset, unit) in layout {
            t.record(offset, unit).expect("in order");
        }
        t.mark_durable(1);
        assert_eq!(t.commit_position(), Some(2));
        t.mark_durable(2);
        assert_eq!(t.commit_position(), Some(6));
    }

    #[test]
    fn gaps_in_offsets_do_not_hold_the_commit() {
        // Transaction markers and compaction leave holes; the commit goes past the last record read.
        let mut t = OffsetTracker::new();
        t.record(10, 7).expect("in order");
        t.record(15, 7).expect("in order");
        t.mark_durable(7);
        assert_eq!(t.commit_position(), Some(16));
    }

    #[test]
    fn offsets_must_increase() {
        let mut t = OffsetTracker::new();
        t.record(5, 1).expect("first");
        assert_eq!(t.record(5, 1), Err(OutOfOrder { offset: 5, last: 5 }));
        assert_eq!(t.record(3, 1), Err(OutOfOrder { offset: 3, last: 5 }));
    }

    #[test]
    fn durable_marks_for_unknown_units_are_ignored() {
        let mut t = OffsetTracker::new();
        t.record(0, 1).expect("first");
        t.mark_durable(99);
        assert_eq!(t.commit_position(), Some(0));
    }

    #[test]
    fn a_failed_unit_holds_the_commit_however_many_later_units_succeed() {
        let mut t = OffsetTracker::new();
        for unit in 0..50u64 {
            for k in 0..10 {
                t.record(unit as i64 * 10 + k, unit).expect("in order");
            }
        }
        for unit in (0..50u64).filter(|u| *u != 3) {
            t.mark_durable(unit);
        }
        assert_eq!(t.commit_position(), Some(30));
        t.mark_durable(3);
        assert_eq!(t.commit_position(), Some(500));
    }
}
