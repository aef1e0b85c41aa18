//! Prometheus metrics of the operator: reconciles, failures by error, reconcile durations, phase
//! transitions and leadership; served on `/metrics` by [`crate::http`].

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FailureLabels {
    pub kind: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TransitionLabels {
    pub kind: String,
    pub phase: String,
}

type DurationFamily = Family<KindLabels, Histogram, fn() -> Histogram>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    durations: DurationFamily,
    transitions: Family<TransitionLabels, Counter>,
    leader: Gauge,
}

fn duration_histogram() -> Histogram {
    // 1 ms .. ~16 s: a reconcile is a few API and Kafka calls, bounded by their timeouts.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("streamlake_operator");
        let reconciles = Family::<KindLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let durations = DurationFamily::new_with_constructor(duration_histogram);
        let transitions = Family::<TransitionLabels, Counter>::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles by kind", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Failed reconciles by kind and error",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind",
            durations.clone(),
        );
        registry.register(
            "phase_transitions",
            "Phases entered, by kind and phase",
            transitions.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            durations,
            transitions,
            leader,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    pub fn reconciled(&self, kind: &str, took: Duration) {
        let labels = KindLabels {
            kind: kind.to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.durations.get_or_create(&labels).observe(took.as_secs_f64());
    }

    pub fn failed(&self, kind: &str, error: &str) {
        let labels = FailureLabels {
            kind: kind.to_owned(),
            error: error.to_owned(),
        };
        self.failures.get_or_create(&labels).inc();
    }

    pub fn entered(&self, kind: &str, phase: &str) {
        let labels = TransitionLabels {
            kind: kind.to_owned(),
            phase: phase.to_owned(),
        };
        self.transitions.get_or_create(&labels).inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_labelled_by_kind_and_error() {
        let metrics = Metrics::default();
        metrics.reconciled("Replay", Duration::from_millis(20));
        metrics.failed("Replay", "CommitOffsets");
        metrics.entered("Replay", "Queued");
        metrics.set_leader(true);
        let text = metrics.encode().expect("encodes");
        assert!(
            text.contains("streamlake_operator_reconciles_total{kind=\"Replay\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "streamlake_operator_reconcile_failures_total{kind=\"Replay\",error=\"CommitOffsets\"} 1"
        ));
        assert!(text.contains("streamlake_operator_reconcile_duration_seconds_count{kind=\"Replay\"} 1"));
        assert!(
            text.contains("streamlake_operator_phase_transitions_total{kind=\"Replay\",phase=\"Queued\"} 1")
        );
        assert!(text.contains("streamlake_operator_leader 1"));
    }
}
