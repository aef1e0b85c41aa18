//! Prometheus metrics of the sink, served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub partition: i32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorTypeLabel {
    pub error_type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabel {
    pub stage: &'static str,
    pub kind: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub records_written: Counter,
    pub bytes_written: Counter,
    pub files_written: Counter,
    pub records_already_landed: Counter,
    pub metadata_races: Counter,
    pub write_seconds: Histogram,
    pub dlq_records: Family<ErrorTypeLabel, Counter>,
    pub landing_failures: Family<FailureLabel, Counter>,
    pub committed_offset: Family<PartitionLabel, Gauge>,
    pub high_watermark: Family<PartitionLabel, Gauge>,
    pub lag: Family<PartitionLabel, Gauge>,
    pub buffered_bytes: Gauge,
    pub paused: Gauge,
    pub dlq_producer_replacements: Counter,
    pub kafka_client_replacements: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("streamlake_consumer");
        let metrics = Self {
            records_written: Counter::default(),
            bytes_written: Counter::default(),
            files_written: Counter::default(),
            records_already_landed: Counter::default(),
            metadata_races: Counter::default(),
            write_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            dlq_records: Family::default(),
            landing_failures: Family::default(),
            committed_offset: Family::default(),
            high_watermark: Family::default(),
            lag: Family::default(),
            buffered_bytes: Gauge::default(),
            paused: Gauge::default(),
            dlq_producer_replacements: Counter::default(),
            kafka_client_replacements: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "records_written",
            "Records written to raw-zone files",
            metrics.records_written.clone(),
        );
        registry.register(
            "bytes_written",
            "Bytes of raw-zone files written",
            metrics.bytes_written.clone(),
        );
        registry.register(
            "files_written",
            "Raw-zone files listed in _metadata.json",
            metrics.files_written.clone(),
        );
        registry.register(
            "records_already_landed",
            "Records re-read that the metadata already listed (skipped, not duplicated)",
            metrics.records_already_landed.clone(),
        );
        registry.register(
            "metadata_races",
            "_metadata.json updates that lost a compare-and-swap to another writer and were re-applied",
            metrics.metadata_races.clone(),
        );
        registry.register(
            "write_duration_seconds",
            "Time to land one file: DLQ sends, upload and metadata commit",
            metrics.write_seconds.clone(),
        );
        registry.register(
            "dlq_records",
            "Records sent to the DLQ topic",
            metrics.dlq_records.clone(),
        );
        registry.register(
            "landing_failures",
            "Failed landing attempts (retried with backoff)",
            metrics.landing_failures.clone(),
        );
        registry.register(
            "committed_offset",
            "Last offset committed to the consumer group",
            metrics.committed_offset.clone(),
        );
        registry.register(
            "high_watermark",
            "High watermark of the partition",
            metrics.high_watermark.clone(),
        );
        registry.register(
            "lag",
            "High watermark minus committed offset",
            metrics.lag.clone(),
        );
        registry.register(
            "buffered_bytes",
            "Bytes of records held in memory (open and landing)",
            metrics.buffered_bytes.clone(),
        );
        registry.register(
            "paused",
            "1 while consumption is paused (memory budget or storage failing)",
            metrics.paused.clone(),
        );
        registry.register(
            "dlq_producer_replacements",
            "DLQ producers replaced by a fresh one after a failed send",
            metrics.dlq_producer_replacements.clone(),
        );
        registry.register(
            "kafka_client_replacements",
            "Kafka consumer clients replaced after being out of the group too long",
            metrics.kafka_client_replacements.clone(),
        );
        Self { registry, ..metrics }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn set_committed(&self, partition: i32, offset: i64) {
        self.committed_offset
            .get_or_create(&PartitionLabel { partition })
            .set(offset);
        self.update_lag(partition);
    }

    pub fn set_high_watermark(&self, partition: i32, offset: i64) {
        self.high_watermark
            .get_or_create(&PartitionLabel { partition })
            .set(offset);
        self.update_lag(partition);
    }

    /// Lag is exported once both ends of a partition are known: a committed offset not yet read (a pod
    /// that just started) is not 0, and a lag computed from it would overstate it by the whole topic.
    fn update_lag(&self, partition: i32) {
        let label = PartitionLabel { partition };
        let high = self.high_watermark.get(&label).map(|g| g.get());
        let committed = self.committed_offset.get(&label).map(|g| g.get());
        if let (Some(high), Some(committed)) = (high, committed) {
            self.lag.get_or_create(&label).set((high - committed).max(0));
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_sink_metrics_with_partition_labels() {
        let m = Metrics::new();
        m.records_written.inc_by(3);
        m.set_high_watermark(2, 100);
        m.set_committed(2, 60);
        m.dlq_records
            .get_or_create(&ErrorTypeLabel {
                error_type: "invalid_json".into(),
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains("streamlake_consumer_records_written_total 3"),
            "{text}"
        );
        assert!(
            text.contains("streamlake_consumer_lag{partition=\"2\"} 40"),
            "{text}"
        );
        assert!(
            text.contains("streamlake_consumer_dlq_records_total{error_type=\"invalid_json\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn lag_waits_for_the_committed_offset() {
        let m = Metrics::new();
        m.set_high_watermark(4, 500);
        let text = m.encode();
        assert!(
            !text.contains("streamlake_consumer_lag{")
                && !text.contains("streamlake_consumer_committed_offset{"),
            "no committed offset, no lag: {text}"
        );
        m.set_committed(4, 480);
        let text = m.encode();
        assert!(
            text.contains("streamlake_consumer_lag{partition=\"4\"} 20"),
            "{text}"
        );
    }
}
