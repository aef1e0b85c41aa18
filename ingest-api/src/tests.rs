//! Router tests that need no broker: the producer points at a closed port, so a valid event waits for
//! its delivery timeout (3 s) and then fails, which is what the overload and outage tests rely on.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use streamlake_core::contract::ContractRegistry;
use streamlake_core::kafka::{KafkaArgs, ProducerArgs, producer_config};
use tower::ServiceExt;

use super::*;
use crate::producer::KafkaSink;

fn state() -> AppState {
    state_with(IngestSettings {
        dead_letter_invalid: false,
        max_event_bytes: 2048,
        max_batch_bytes: 4096,
        max_batch_records: 3,
        ..IngestSettings::default()
    })
}

/// A valid order: with no broker behind the producer, its request waits for the delivery timeout.
const ORDER: &str = r#"{"order_id": "o-1", "customer_id": "c", "line_items": [{"sku": "s", "quantity": 1,
    "unit_price": "1"}], "amount": "1", "currency": "EUR", "created_at": "2026-11-22T10:00:00Z"}"#;

fn state_with(settings: IngestSettings) -> AppState {
    let contracts =
        ContractRegistry::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts"))
            .expect("shipped contracts");
    let producer = ProducerArgs {
        message_timeout_ms: 3_000,
        ..ProducerArgs::default()
    };
    let config = producer_config(&KafkaArgs::for_bootstrap("127.0.0.1:1"), &producer).expect("config");
    AppState::new(contracts, KafkaSink::new(&config).expect("producer"), settings)
}

async fn call(
    method: Method,
    uri: &str,
    body: impl Into<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(body.into())
        .expect("request");
    let response = app(state()).oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, json)
}

#[tokio::test]
async fn unknown_datasets_and_routes_answer_404_in_json() {
    let (status, headers, body) = call(Method::POST, "/ingest/nope", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "unknown_dataset");
    assert!(
        headers.contains_key("x-request-id"),
        "every answer carries a request id"
    );
    let (status, _, body) = call(Method::GET, "/nowhere", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn a_wrong_method_is_405_in_json_with_allow() {
    let (status, headers, body) = call(Method::GET, "/ingest/orders", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
    assert_eq!(
        headers.get(header::ALLOW).map(|v| v.as_bytes()),
        Some(&b"POST"[..])
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_in_json() {
    let (status, _, body) = call(Method::POST, "/ingest/orders", vec![b' '; 2049]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
    let (status, _, body) = call(Method::POST, "/ingest/orders/batch", vec![b' '; 4097]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn invalid_json_and_violations_are_answered_without_kafka_when_dlq_is_off() {
    let (status, _, body) = call(Method::POST, "/ingest/orders", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_json");
    let (status, _, body) = call(Method::POST, "/ingest/orders", r#"{"order_id": 5}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "contract_violation");
    let pointers: Vec<&str> = body["error"]["violations"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v["pointer"].as_str())
        .collect();
    assert!(pointers.contains(&"/order_id"), "{pointers:?}");
    assert!(
        pointers.contains(&""),
        "missing fields are reported at the root: {pointers:?}"
    );
}

#[tokio::test]
async fn batch_shape_errors_are_400_or_413() {
    let (status, _, body) = call(Method::POST, "/ingest/orders/batch", "[1,").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (status, _, body) = call(Method::POST, "/ingest/orders/batch", "\n \n").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("empty_batch"))
    );
    let (status, _, body) = call(Method::POST, "/ingest/orders/batch", "[1,2,3,4]").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_many_records"))
    );
}

#[tokio::test]
async fn a_bad_idempotency_key_is_400() {
    let request = Request::post("/ingest/orders")
        .header("idempotency-key", "x".repeat(300))
        .body(Body::from("{}"))
        .expect("request");
    let response = app(state()).oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_source_or_key_with_inner_spaces_is_400_as_the_openapi_pattern_says() {
    for (header, value) in [("x-streamlake-source", "3kI 'o"), ("idempotency-key", "a b")] {
        let request = Request::post("/ingest/orders")
            .header(header, value)
            .body(Body::from("{}"))
            .expect("request");
        let response = app(state()).oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{header}: {value}");
    }
}

#[tokio::test]
async fn health_metrics_and_openapi_are_served() {
    let (status, _, body) = call(Method::GET, "/healthz", "").await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));

    let (status, _, doc) = call(Method::GET, "/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let order_schema = &doc["components"]["schemas"]["orders_v1"];
    assert_eq!(order_schema["x-streamlake-partition-key"], "order_id");
    assert!(order_schema.get("$id").is_none());
    for path in [
        "/ingest/orders",
        "/ingest/orders/batch",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    for path in ["/ingest/orders", "/ingest/orders/batch"] {
        let parameters = doc["paths"][path]["post"]["parameters"]
            .as_array()
            .expect("parameters");
        let pin = parameters
            .iter()
            .find(|p| p["name"] == "X-StreamLake-Schema-Version")
            .expect("the version pin is documented");
        assert_eq!(
            pin["schema"]["enum"],
            serde_json::json!(["1"]),
            "the versions orders has"
        );
    }

    let app = app(state());
    let request = Request::get("/metrics").body(Body::empty()).expect("request");
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf-8");
    assert!(text.contains("streamlake_ingest_producer_queue_depth"), "{text}");
}

#[tokio::test]
async fn readiness_fails_without_a_broker() {
    let state = state();
    let settings = IngestSettings {
        readiness_timeout: std::time::Duration::from_millis(300),
        ..(*state.settings).clone()
    };
    let state = AppState::new(
        ContractRegistry::clone(&state.contracts),
        state.sink.clone(),
        settings,
    );
    let response = app(state)
        .oneshot(Request::get("/readyz").body(Body::empty()).expect("request"))
        .await
        .expect("ok");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn an_unreachable_broker_is_503_with_retry_after_never_2xx() {
    let (status, headers, body) = call(Method::POST, "/ingest/orders", ORDER).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "kafka_unavailable");
    assert_eq!(body["error"]["retryable"], true);
    assert!(headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_are_shed_with_503() {
    let app = app(state_with(IngestSettings {
        concurrency_limit: 1,
        ..IngestSettings::default()
    }));
    let post = || {
        Request::post("/ingest/orders")
            .body(Body::from(ORDER))
            .expect("request")
    };
    let first = tokio::spawn(app.clone().oneshot(post()));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let shed = app.oneshot(post()).await.expect("infallible");
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(shed.headers().contains_key(header::RETRY_AFTER));
    let body: Value =
        serde_json::from_slice(&shed.into_body().collect().await.expect("body").to_bytes()).expect("json");
    assert_eq!(body["error"]["code"], "overloaded");
    first.abort();
}

#[tokio::test]
async fn a_request_over_its_deadline_is_503_timeout() {
    let settings = IngestSettings {
        request_timeout: std::time::Duration::from_millis(300),
        ..IngestSettings::default()
    };
    let request = Request::post("/ingest/orders")
        .body(Body::from(ORDER))
        .expect("request");
    let response = app(state_with(settings))
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = serde_json::from_slice(&response.into_body().collect().await.expect("body").to_bytes())
        .expect("json");
    assert_eq!(body["error"]["code"], "timeout");
}
