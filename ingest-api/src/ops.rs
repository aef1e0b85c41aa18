//! Operational endpoints and fallbacks.

use axum::Json;
use axum::extract::State;
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// Live unless the producer failed for good: then every send fails until the process restarts, and
/// failing liveness is what gets it restarted.
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    producer_works(&state)?;
    Ok(Json(json!({ "status": "ok" })))
}

fn producer_works(state: &AppState) -> Result<(), ApiError> {
    match state.sink.fatal_error() {
        Some(reason) => Err(ApiError::ProducerFailed {
            reason,
            retry_after_secs: state.settings.retry_after_secs,
        }),
        None => Ok(()),
    }
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::NotReady("shutting down".into()));
    }
    producer_works(&state)?;
    state
        .sink
        .check_broker(state.settings.readiness_timeout)
        .await
        .map_err(ApiError::NotReady)?;
    Ok(Json(json!({ "status": "ready" })))
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.queue_depth.set(i64::from(state.sink.in_flight()));
    match state.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(crate::openapi::document(&state.contracts, &state.settings))
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
