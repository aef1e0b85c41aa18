//! A producer that failed for good fails liveness, so the process is restarted instead of answering 503 to
//! every request from then on.
//!
//! librdkafka raises a fatal error when an idempotent producer can no longer guarantee order and once-ness;
//! every later send fails with it and only a new producer clears it. A real broker cannot be driven into
//! that state on demand (a topic deleted and re-created under an idempotent producer was tried: librdkafka
//! recovers), so this test — alone in the suite — talks to librdkafka's mock cluster, used here only to
//! inject the broker answer that causes the fatal error: OUT_OF_ORDER_SEQUENCE_NUMBER for the first
//! in-flight produce request. Every other behaviour of the API is tested against the real broker.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{RAW_PARTITIONS, harness_without_topics, order};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use streamlake_core::kafka::ProducerArgs;
use streamlake_ingest_api::IngestSettings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_fails_liveness_and_readiness() {
    let cluster = MockCluster::new(1).expect("librdkafka's mock cluster starts");
    let producer = ProducerArgs {
        message_timeout_ms: 5_000,
        ..ProducerArgs::default()
    };
    let h = harness_without_topics(cluster.bootstrap_servers(), producer, IngestSettings::default());
    for (topic, partitions) in [
        (h.dataset.raw_topic(), RAW_PARTITIONS),
        (h.dataset.dlq_topic(), 1),
    ] {
        cluster.create_topic(&topic, partitions, 1).expect("mock topic");
    }

    let accepted = h.post(&h.single_path(), &[], order("o-before").to_string()).await;
    assert!(
        accepted.status.is_success(),
        "{:?}: {}",
        accepted.status,
        accepted.body
    );
    assert_eq!(h.get("/healthz").await.status, StatusCode::OK);

    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    let refused = h.post(&h.single_path(), &[], order("o-desync").to_string()).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    println!("the send that met the desynchronisation: {}", refused.body);

    // The error reaches the client's state once librdkafka has handled the answer.
    let mut live = h.get("/healthz").await;
    for _ in 0..50 {
        if live.status != StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        live = h.get("/healthz").await;
    }
    assert_eq!(live.status, StatusCode::SERVICE_UNAVAILABLE, "{}", live.body);
    assert_eq!(live.body["error"]["code"], "producer_failed", "{}", live.body);
    println!("/healthz: {}", live.body);
    let message = live.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("must restart"), "{message}");
    let ready = h.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.body);
    assert_eq!(ready.body["error"]["code"], "producer_failed", "{}", ready.body);

    // Sends after it fail too, the state does not clear by itself, and the client is told to retry (with
    // the same Idempotency-Key) once the process has restarted.
    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    let after = h.post(&h.single_path(), &[], order("o-after").to_string()).await;
    assert_eq!(after.status, StatusCode::SERVICE_UNAVAILABLE, "{}", after.body);
    assert_eq!(after.body["error"]["code"], "producer_failed", "{}", after.body);
    assert_eq!(after.body["error"]["retryable"], true, "{}", after.body);
    assert!(after.headers.contains_key("retry-after"), "{:?}", after.headers);
    assert_eq!(h.get("/healthz").await.status, StatusCode::SERVICE_UNAVAILABLE);
}
