//! StreamLake's HTTP edge: `POST /ingest/{dataset}` and `/ingest/{dataset}/batch` validate events against
//! the dataset's contract and produce them to `streamlake.<dataset>.raw`, answering only after Kafka's
//! acknowledgement. See [`app`] for the routes and layers.

pub mod body;
pub mod config;
pub mod error;
pub mod event;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod producer;
pub mod state;

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::{get, post};
use tower::{BoxError, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use state::{AppState, IngestSettings};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP surface. Ingest routes get a body limit, a timeout and load shedding; every route gets
/// a request id, a tracing span and metrics.
pub fn app(state: AppState) -> Router {
    let settings = state.settings.clone();
    let retry_after_secs = settings.retry_after_secs;
    let guard = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |err: BoxError| async move {
            overload_error(&err, retry_after_secs)
        }))
        .load_shed()
        .concurrency_limit(settings.concurrency_limit)
        .timeout(settings.request_timeout);
    let ingest = Router::new()
        .route(
            "/ingest/{dataset}",
            // The handler reads the body itself (`body::read_event`): an event over the limit is still
            // dead-lettered.
            post(ingest::ingest_one),
        )
        .route(
            "/ingest/{dataset}/batch",
            post(ingest::ingest_batch).layer(DefaultBodyLimit::max(settings.max_batch_bytes)),
        )
        .layer(guard);
    let ops = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi));
    Router::new()
        .merge(ingest)
        .merge(ops)
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                    let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = id)
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        .with_state(state)
}

/// Errors of the guard layers, in the API's own JSON format.
fn overload_error(err: &BoxError, retry_after_secs: u64) -> ApiError {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout { retry_after_secs }
    } else {
        // load_shed's Overloaded, and nothing else can come out of these layers.
        ApiError::Overloaded { retry_after_secs }
    }
}

/// How long to wait for in-flight requests and the producer on shutdown.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests;
