//! The Kafka consumer context: rebalance callbacks drain and commit, statistics feed the lag metric and
//! the group membership check.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use tracing::{error, warn};

use crate::membership::{GroupState, Membership};
use crate::metrics::Metrics;
use crate::sink::{SinkCore, lock};

pub struct SinkContext {
    core: Arc<Mutex<SinkCore>>,
    metrics: Arc<Metrics>,
    topic: String,
    /// Whether the client is configured with an incremental (cooperative) assignor.
    cooperative: bool,
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
    /// `cooperative`: the client's `partition.assignment.strategy` is `cooperative-sticky`.
    pub fn new(core: Arc<Mutex<SinkCore>>, metrics: Arc<Metrics>, topic: String, cooperative: bool) -> Self {
        Self {
            core,
            metrics,
            topic,
            cooperative,
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
    /// As rdkafka's own, except for which call hands the partitions over and what a refused call does.
    /// rdkafka picks eager or incremental by the rebalance protocol librdkafka reports, which is NONE
    /// whenever the group has no assignor at hand (node-rdkafka, with the same logic, hangs on that around a
    /// closing group: its issue #1144), and it drops the call's error, so a refused call leaves the group
    /// handler waiting for one that never comes. Here the configured assignor decides, and a refused call
    /// is logged.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            other => Rebalance::Error(rdkafka::error::KafkaError::Rebalance(other.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let assign = matches!(rebalance, Rebalance::Assign(_));
        let handed: KafkaResult<()> = match (assign, self.cooperative) {
            (true, true) => consumer.incremental_assign(tpl),
            (true, false) => consumer.assign(tpl),
            (false, true) => consumer.incremental_unassign(tpl),
            (false, false) => consumer.unassign(),
        };
        if let Err(e) = handed {
            let what = if assign { "assign" } else { "unassign" };
            error!(
                cooperative = self.cooperative,
                "the group refused to {what} partitions: {e}"
            );
        }
        self.post_rebalance(consumer, &rebalance);
    }

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
