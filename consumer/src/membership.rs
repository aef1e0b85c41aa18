//! Whether the consumer is in its group, from the group handler's state in librdkafka's statistics.
//!
//! After its session timed out during a broker outage, librdkafka's group handler has been seen to stay out
//! of the group for good once the broker was back (in state `up`, join state `init`, for minutes): no
//! assignment, nothing read, while the poll loop turns and every probe passes. Out of the group for longer
//! than a rebalance can take, the poll loop replaces its Kafka client ([`crate::run`]). Pure, so that it can
//! be tested.

use std::time::{Duration, Instant};

/// The group handler's state as the statistics report it (`cgrp.state`, `cgrp.join_state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub state: String,
    pub join_state: String,
}

impl GroupState {
    /// In the group with a settled assignment (possibly empty: more members than partitions).
    pub fn is_member(&self) -> bool {
        self.state == "up" && self.join_state == "steady"
    }
}

impl std::fmt::Display for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "state {}, join state {}", self.state, self.join_state)
    }
}

#[derive(Debug, Clone)]
pub struct Membership {
    /// Since when the statistics have shown the consumer outside its group (first seen at construction).
    out_since: Option<Instant>,
    last: Option<GroupState>,
}

impl Membership {
    /// Starts out of the group: joining is the first thing a subscribed client does.
    pub fn new(now: Instant) -> Self {
        Self {
            out_since: Some(now),
            last: None,
        }
    }

    /// The statistics reported `group` at `now`.
    pub fn observe(&mut self, group: GroupState, now: Instant) {
        if group.is_member() {
            self.out_since = None;
        } else if self.out_since.is_none() {
            self.out_since = Some(now);
        }
        self.last = Some(group);
    }

    /// Why the client must be replaced: out of the group for longer than `max_out`.
    pub fn stuck(&self, now: Instant, max_out: Duration) -> Option<String> {
        let since = self.out_since?;
        let out = now.saturating_duration_since(since);
        (out > max_out).then(|| {
            let last = self
                .last
                .as_ref()
                .map_or_else(|| "no group statistics yet".to_owned(), ToString::to_string);
            format!(
                "not a member of the consumer group for {}s ({last})",
                out.as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(state: &str, join_state: &str) -> GroupState {
        GroupState {
            state: state.into(),
            join_state: join_state.into(),
        }
    }

    const MAX: Duration = Duration::from_secs(120);

    #[test]
    fn a_member_is_never_stuck_and_joining_counts_from_the_start() {
        let t0 = Instant::now();
        let mut m = Membership::new(t0);
        assert_eq!(m.stuck(t0 + MAX, MAX), None, "not longer than the limit");
        let stuck = m
            .stuck(t0 + MAX + Duration::from_secs(1), MAX)
            .expect("never joined");
        assert!(stuck.contains("no group statistics yet"), "{stuck}");
        m.observe(group("up", "steady"), t0 + Duration::from_secs(3));
        assert_eq!(
            m.stuck(t0 + MAX * 10, MAX),
            None,
            "a member, with or without partitions"
        );
    }

    #[test]
    fn out_of_the_group_counts_from_the_first_report_and_a_rejoin_resets_it() {
        let t0 = Instant::now();
        let mut m = Membership::new(t0);
        m.observe(group("up", "steady"), t0);
        m.observe(group("up", "wait-join"), t0 + Duration::from_secs(10));
        m.observe(group("query-coord", "init"), t0 + Duration::from_secs(60));
        assert_eq!(m.stuck(t0 + Duration::from_secs(130), MAX), None, "out for 120 s");
        let stuck = m
            .stuck(t0 + Duration::from_secs(131), MAX)
            .expect("out for 121 s");
        assert!(
            stuck.contains("for 121s (state query-coord, join state init)"),
            "{stuck}"
        );
        m.observe(group("up", "steady"), t0 + Duration::from_secs(131));
        assert_eq!(m.stuck(t0 + Duration::from_secs(500), MAX), None);
        m.observe(group("up", "wait-sync"), t0 + Duration::from_secs(500));
        assert_eq!(m.stuck(t0 + Duration::from_secs(620), MAX), None, "a fresh count");
    }
}
