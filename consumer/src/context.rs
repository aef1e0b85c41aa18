//! The Kafka consumer context: rebalance callbacks drain and commit, statistics feed the lag metric and
//! the group membership check.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Statistics};
use tracing::warn;

use crate::membership::{GroupState, Membership};
use crate::metrics::Metrics;
use crate::sink::{SinkCore, lock};

pub struct SinkContext {
    core: Arc<Mutex<SinkCore>>,
    metrics: Arc<Metrics>,
    topic: String,
    membership: Mutex<Membership>,
    /// Set once the client was replaced: its callbacks (it may still run some while it closes) touch
    /// nothing that belongs to the new client's partitions.
    retired: AtomicBool,
}

impl std::fmt::Debug for SinkContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkContext")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl SinkContext {
    pub fn new(core: Arc<Mutex<SinkCore>>, metrics: Arc<Metrics>, topic: String) -> Self {
        Self {
            core,
            metrics,
            topic,
            membership: Mutex::new(Membership::new(Instant::now())),
            retired: AtomicBool::new(false),
        }
    }

    /// Why this client must be replaced: out of its group for longer than `max_out`.
    pub fn out_of_group(&self, now: Instant, max_out: Duration) -> Option<String> {
        self.membership
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stuck(now, max_out)
    }

    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    fn retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    fn partitions(&self, tpl: &rdkafka::TopicPartitionList) -> Vec<i32> {
        tpl.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect()
    }
}

impl ClientContext for SinkContext {
    fn stats(&self, statistics: Statistics) {
        if self.retired() {
            return;
        }
        if let Some(group) = &statistics.cgrp {
            let group = GroupState {
                state: group.state.clone(),
                join_state: group.join_state.clone(),
            };
            self.membership
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .observe(group, Instant::now());
        }
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (partition, stats) in &topic.partitions {
            if *partition >= 0 && stats.hi_offset >= 0 {
                self.metrics.set_high_watermark(*partition, stats.hi_offset);
            }
            // The group's committed offset as the broker knows it: right before this process commits
            // (after a restart or a rebalance) as well as after.
            if *partition >= 0 && stats.committed_offset >= 0 {
                self.metrics.set_committed(*partition, stats.committed_offset);
            }
        }
    }
}

impl ConsumerContext for SinkContext {
    // Runs inside `poll` on the poll thread, before librdkafka gives the partitions away: draining here
    // means the next owner starts from an offset whose records are all durable.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if self.retired() {
            return;
        }
        match rebalance {
            Rebalance::Revoke(tpl) => lock(&self.core).revoke(consumer, &self.partitions(tpl)),
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => warn!("rebalance error: {e}"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if self.retired() {
            return;
        }
        if let Rebalance::Assign(tpl) = rebalance {
            lock(&self.core).assign(consumer, &self.partitions(tpl));
        }
    }
}
