//! `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::health::Health;
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct HttpState {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    /// `/healthz` fails once the poll loop has not turned for this long (`--max-poll-stall`).
    pub max_poll_stall: Duration,
}

pub fn app(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

fn status(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "unavailable", "reason": reason })),
        )
            .into_response(),
    }
}

async fn healthz(State(state): State<HttpState>) -> Response {
    status(state.health.liveness(state.max_poll_stall))
}

async fn readyz(State(state): State<HttpState>) -> Response {
    status(state.health.readiness())
}

async fn metrics(State(state): State<HttpState>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], state.metrics.encode()).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get_path(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("call");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8(body.to_vec()).expect("utf8"))
    }

    #[tokio::test]
    async fn readyz_follows_storage_health_and_metrics_are_exposed() {
        let state = HttpState {
            health: Arc::new(Health::new()),
            metrics: Arc::new(Metrics::new()),
            max_poll_stall: Duration::from_secs(60),
        };
        state.health.polled(std::time::Instant::now());
        let app = app(state.clone());
        assert_eq!(get_path(app.clone(), "/healthz").await.0, StatusCode::OK);
        assert_eq!(get_path(app.clone(), "/readyz").await.0, StatusCode::OK);
        state.health.landing_failed(1, "connection refused".into());
        let (code, body) = get_path(app.clone(), "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("connection refused"), "{body}");
        let (code, body) = get_path(app, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            body.contains("streamlake_consumer_records_written_total"),
            "{body}"
        );
    }
}
