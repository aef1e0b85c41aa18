//! The Kafka consumer context: rebalance callbacks drain and commit, statistics feed the lag metric.

use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Statistics};
use tracing::warn;

use crate::metrics::Metrics;
use crate::sink::{SinkCore, lock};

pub struct SinkContext {
    core: Arc<Mutex<SinkCore>>,
    metrics: Arc<Metrics>,
    topic: String,
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
        Self { core, metrics, topic }
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
        match rebalance {
            Rebalance::Revoke(tpl) => lock(&self.core).revoke(consumer, &self.partitions(tpl)),
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => warn!("rebalance error: {e}"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            lock(&self.core).assign(consumer, &self.partitions(tpl));
        }
    }
}
