//! When the poll loop stops taking records: the hold/pause decision, pure so that it can be tested.
//!
//! A full memory budget first only *holds* the poll loop: librdkafka stops fetching once its own bounded
//! queue is full and carries on without a round trip when the loop polls again. Pausing the partitions
//! drops what was prefetched and costs a refetch, so it is kept for failing storage (which may last) and
//! for holds longer than `max_hold` (rebalance callbacks run only inside `poll`).

use std::time::{Duration, Instant};

/// What the sink must do with the assigned partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
}

#[derive(Debug, Clone)]
pub struct Backpressure {
    /// Bytes of memory for records (open buffers and landings in flight).
    limit: usize,
    max_hold: Duration,
    /// Since when the poll loop has stopped taking records because memory is full.
    holding_since: Option<Instant>,
    paused: bool,
}

impl Backpressure {
    pub fn new(limit: usize, max_hold: Duration) -> Self {
        Self {
            limit,
            max_hold,
            holding_since: None,
            paused: false,
        }
    }

    /// Whether the poll loop may take records now.
    pub fn wants_records(&self) -> bool {
        self.holding_since.is_none()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The partitions were paused or resumed (only once the client accepted it).
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if paused {
            self.holding_since = None;
        }
    }

    /// After a record was taken: hold as soon as the budget is full.
    pub fn after_record(&mut self, buffered: usize, now: Instant) {
        if self.holding_since.is_none() && !self.paused && buffered >= self.limit {
            self.holding_since = Some(now);
        }
    }

    /// How many open buffers to seal now, largest first, with `inflight` of `slots` landings running.
    ///
    /// While memory is short (the budget is full, or the loop holds or is paused for it) and storage
    /// works, every idle landing slot gets one: only landings free memory, and the open buffers — one per
    /// partition and date, each below the size at which pressure seals it — can hold all of it. Waiting
    /// for one of them to reach that size, or its age limit, would stall the loop that fills them.
    pub fn buffers_to_seal(&self, buffered: usize, failing: bool, inflight: usize, slots: usize) -> usize {
        let short = buffered >= self.limit || self.holding_since.is_some() || self.paused;
        if short && !failing {
            slots.saturating_sub(inflight)
        } else {
            0
        }
    }

    /// On every tick: `buffered` bytes are held, `failing` is true while a landing fails.
    pub fn decide(&mut self, buffered: usize, failing: bool, now: Instant) -> Option<Action> {
        if failing {
            return (!self.paused).then_some(Action::Pause);
        }
        if self.paused {
            // Resume with room to spare, so that a resume is not followed at once by another pause.
            return (buffered < self.limit / 2).then_some(Action::Resume);
        }
        match self.holding_since {
            Some(_) if buffered < self.limit / 4 * 3 => self.holding_since = None,
            Some(since) if now.duration_since(since) >= self.max_hold => return Some(Action::Pause),
            None if buffered >= self.limit => self.holding_since = Some(now),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1000;
    const HOLD: Duration = Duration::from_secs(10);

    #[test]
    fn a_full_budget_holds_until_a_quarter_is_free() {
        let t0 = Instant::now();
        let mut bp = Backpressure::new(LIMIT, HOLD);
        bp.after_record(999, t0);
        assert!(bp.wants_records());
        bp.after_record(1000, t0);
        assert!(!bp.wants_records(), "the budget is full");
        assert_eq!(bp.decide(800, false, t0 + Duration::from_secs(1)), None);
        assert!(!bp.wants_records(), "still above three quarters");
        assert_eq!(bp.decide(700, false, t0 + Duration::from_secs(2)), None);
        assert!(
            bp.wants_records(),
            "below three quarters: take records again, nothing was paused"
        );
    }

    #[test]
    fn a_hold_that_lasts_becomes_a_pause_and_resumes_below_half() {
        let t0 = Instant::now();
        let mut bp = Backpressure::new(LIMIT, HOLD);
        assert_eq!(bp.decide(1200, false, t0), None);
        assert!(!bp.wants_records(), "a tick over the budget holds too");
        assert_eq!(bp.decide(1100, false, t0 + HOLD - Duration::from_millis(1)), None);
        assert_eq!(bp.decide(1100, false, t0 + HOLD), Some(Action::Pause));
        bp.set_paused(true);
        assert!(
            bp.wants_records(),
            "paused: the loop polls again (rebalances need it)"
        );
        bp.after_record(1100, t0 + HOLD);
        assert!(
            bp.wants_records(),
            "a record delivered while paused does not hold again"
        );
        assert_eq!(bp.decide(600, false, t0 + HOLD * 2), None, "not yet below half");
        assert_eq!(bp.decide(499, false, t0 + HOLD * 2), Some(Action::Resume));
        bp.set_paused(false);
        assert_eq!(bp.decide(499, false, t0 + HOLD * 3), None);
    }

    #[test]
    fn short_memory_gives_every_idle_landing_slot_an_open_buffer() {
        let t0 = Instant::now();
        let mut bp = Backpressure::new(LIMIT, HOLD);
        assert_eq!(bp.buffers_to_seal(900, false, 0, 4), 0, "memory is not short");
        assert_eq!(bp.buffers_to_seal(1000, false, 1, 4), 3, "a full budget");
        assert_eq!(
            bp.buffers_to_seal(1000, true, 1, 4),
            0,
            "failing storage: more landings would fail too"
        );
        bp.after_record(1000, t0);
        // One landing finished: 800 still held in open buffers, above the three quarters that end a hold.
        assert_eq!(bp.decide(800, false, t0), None);
        assert!(!bp.wants_records());
        assert_eq!(bp.buffers_to_seal(800, false, 0, 4), 4, "holding with idle slots");
        assert_eq!(bp.buffers_to_seal(800, false, 4, 4), 0, "every slot busy");
        assert_eq!(bp.decide(700, false, t0), None);
        assert_eq!(bp.buffers_to_seal(700, false, 0, 4), 0, "no longer holding");
        bp.set_paused(true);
        assert_eq!(bp.buffers_to_seal(700, false, 1, 4), 3, "paused for memory");
    }

    #[test]
    fn failing_storage_pauses_at_once_and_resumes_only_when_it_recovers() {
        let t0 = Instant::now();
        let mut bp = Backpressure::new(LIMIT, HOLD);
        assert_eq!(bp.decide(0, true, t0), Some(Action::Pause));
        assert_eq!(
            bp.decide(0, true, t0),
            Some(Action::Pause),
            "asked again until the pause took"
        );
        bp.set_paused(true);
        assert_eq!(bp.decide(0, true, t0 + HOLD), None);
        assert_eq!(
            bp.decide(900, false, t0 + HOLD),
            None,
            "recovered but memory is still high"
        );
        assert_eq!(bp.decide(100, false, t0 + HOLD), Some(Action::Resume));
    }
}
