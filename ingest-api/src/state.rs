//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use streamlake_core::contract::ContractRegistry;

use crate::metrics::Metrics;
use crate::producer::KafkaSink;

/// Behaviour of the HTTP edge; built from the command line in `main`, directly in tests.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// `source` header value when the client sends no `X-StreamLake-Source`.
    pub default_source: String,
    /// Write rejected events to the dataset's DLQ topic.
    pub dead_letter_invalid: bool,
    /// Largest body of the single-event endpoint, and largest record of a batch.
    pub max_event_bytes: usize,
    /// Largest body of the batch endpoint.
    pub max_batch_bytes: usize,
    pub max_batch_records: usize,
    /// Deadline of one request; it must exceed the producer's message timeout.
    pub request_timeout: Duration,
    /// Requests handled at once on the ingest routes; more are shed with 503.
    pub concurrency_limit: usize,
    pub retry_after_secs: u64,
    pub readiness_timeout: Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            default_source: "ingest-api".into(),
            dead_letter_invalid: true,
            max_event_bytes: 1_000_000,
            max_batch_bytes: 16 * 1024 * 1024,
            max_batch_records: 10_000,
            request_timeout: Duration::from_secs(30),
            concurrency_limit: 1024,
            retry_after_secs: 1,
            readiness_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub contracts: Arc<ContractRegistry>,
    pub sink: KafkaSink,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<IngestSettings>,
    shutting_down: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(contracts: ContractRegistry, sink: KafkaSink, settings: IngestSettings) -> Self {
        Self {
            contracts: Arc::new(contracts),
            sink,
            metrics: Arc::new(Metrics::default()),
            settings: Arc::new(settings),
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From now on /readyz answers 503, so load balancers stop sending new requests.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
