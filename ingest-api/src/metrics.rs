//! Prometheus metrics of the API: requests by route and status, latency, records produced and
//! dead-lettered, and the producer's queue depth.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DatasetLabels {
    pub dataset: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub dataset: String,
    pub error_type: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: LatencyFamily,
    pub produced: Family<DatasetLabels, Counter>,
    pub dead_lettered: Family<OutcomeLabels, Counter>,
    pub failed: Family<OutcomeLabels, Counter>,
    pub queue_depth: Gauge,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s: the single-event target is a 10 ms p99, the produce timeout is seconds.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("streamlake_ingest");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = LatencyFamily::new_with_constructor(latency_histogram);
        let produced = Family::<DatasetLabels, Counter>::default();
        let dead_lettered = Family::<OutcomeLabels, Counter>::default();
        let failed = Family::<OutcomeLabels, Counter>::default();
        let queue_depth = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "records_produced",
            "Records acknowledged by Kafka in raw topics",
            produced.clone(),
        );
        registry.register(
            "records_dead_lettered",
            "Rejected records written to DLQ topics, by error type",
            dead_lettered.clone(),
        );
        registry.register(
            "records_failed",
            "Records neither acknowledged nor dead-lettered",
            failed.clone(),
        );
        registry.register(
            "producer_queue_depth",
            "Records handed to the Kafka producer and not yet acknowledged",
            queue_depth.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            produced,
            dead_lettered,
            failed,
            queue_depth,
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

    pub fn count_produced(&self, dataset: &str, n: u64) {
        self.produced
            .get_or_create(&DatasetLabels {
                dataset: dataset.to_owned(),
            })
            .inc_by(n);
    }

    pub fn count_dead_lettered(&self, dataset: &str, error_type: &str) {
        let labels = OutcomeLabels {
            dataset: dataset.to_owned(),
            error_type: error_type.to_owned(),
        };
        self.dead_lettered.get_or_create(&labels).inc();
    }

    pub fn count_failed(&self, dataset: &str, error_type: &str) {
        let labels = OutcomeLabels {
            dataset: dataset.to_owned(),
            error_type: error_type.to_owned(),
        };
        self.failed.get_or_create(&labels).inc();
    }
}

/// Middleware: counts and times every request under its route template (never the raw path).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method()).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .latency
        .get_or_create(&RouteLabels { route: route.clone() })
        .observe(started.elapsed().as_secs_f64());
    let labels = RequestLabels {
        route,
        method,
        status: response.status().as_u16(),
    };
    metrics.requests.get_or_create(&labels).inc();
    response
}

/// Standard methods by name, anything else as `other`: clients must not grow the label set.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::PATCH => "PATCH",
        M::TRACE => "TRACE",
        _ => "other",
    }
}
