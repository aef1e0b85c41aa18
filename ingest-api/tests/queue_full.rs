//! A full producer queue on the real binary and broker: the records that do not fit get 503 with
//! Retry-After and a `queue_full` body, the others 2xx; exactly the 2xx records are in Kafka, and the
//! refused ones land once they are retried.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::api_process::ApiProcess;
use common::{Harness, harness, order};
use rdkafka::Message;
use reqwest::StatusCode;
use serde_json::Value;
use streamlake_core::headers::RecordMetadata;
use streamlake_core::kafka::ProducerArgs;
use streamlake_ingest_api::IngestSettings;
use streamlake_ingest_api::event::event_id;

/// librdkafka's queue.buffering.max.messages for these tests: records handed over and not yet acknowledged.
const QUEUE: usize = 4;
/// A long linger keeps the first records in the queue while the rest of the burst arrives.
const LINGER_MS: u64 = 1500;

async fn tiny_queue_api(h: &Harness) -> ApiProcess {
    let queue = format!("--kafka-queue-max-messages={QUEUE}");
    let linger = format!("--kafka-linger-ms={LINGER_MS}");
    ApiProcess::start(h, &[&queue, &linger]).await
}

/// The event ids in the raw topic, once `expected` records arrived (and a quiet second for extras).
async fn event_ids_in_kafka(h: &Harness, expected: usize) -> BTreeSet<String> {
    let records = h
        .all_records(&h.dataset.raw_topic(), common::RAW_PARTITIONS, expected)
        .await;
    let ids: BTreeSet<String> = records
        .iter()
        .map(|r| {
            let meta = RecordMetadata::from_headers(r.headers().expect("headers")).expect("metadata");
            meta.event_id.to_string()
        })
        .collect();
    assert_eq!(ids.len(), records.len(), "no record is in Kafka twice");
    ids
}

/// Posts one order per key at once; answers (status, Retry-After, body) in key order.
async fn post_all(url: &str, keys: &[String]) -> Vec<(StatusCode, Option<String>, Value)> {
    let http = streamlake_testkit::http_client();
    let requests = keys.iter().map(|key| {
        let request = http
            .post(url)
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(order(key).to_string());
        async move {
            let response = request.send().await.expect("answered");
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().expect("ascii").to_owned());
            let body: Value = response.json().await.expect("a JSON answer");
            (status, retry_after, body)
        }
    });
    futures::future::join_all(requests).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_events_beyond_the_producer_queue_get_503_and_nothing_else_is_lost() {
    let h = harness(ProducerArgs::default(), IngestSettings::default()).await;
    let api = tiny_queue_api(&h).await;
    let url = format!("{}/ingest/{}", api.base, h.dataset);
    let keys: Vec<String> = (0..8 * QUEUE).map(|i| format!("burst-{i}")).collect();
    let id_of = |key: &str| event_id(h.dataset.as_str(), Some(key), None).to_string();

    let (mut accepted, mut refused) = (BTreeSet::new(), Vec::new());
    for (key, (status, retry_after, body)) in keys.iter().zip(post_all(&url, &keys).await) {
        match status {
            StatusCode::OK => {
                assert_eq!(body["event_id"], id_of(key), "{body}");
                accepted.insert(id_of(key));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(
                    retry_after.as_deref(),
                    Some("1"),
                    "503 without Retry-After: {body}"
                );
                let error = &body["error"];
                assert_eq!(error["code"], "queue_full", "{body}");
                assert_eq!(error["retryable"], true, "{body}");
                let message = error["message"].as_str().expect("message");
                assert!(message.contains("queue is full"), "{message}");
                refused.push(key.clone());
            }
            other => panic!("{key}: unexpected {other}: {body}"),
        }
    }
    println!("accepted {}, refused with 503 {}", accepted.len(), refused.len());
    assert!(!accepted.is_empty(), "no request got through");
    assert!(
        !refused.is_empty(),
        "{} concurrent requests fit in a queue of {QUEUE}",
        keys.len()
    );
    assert_eq!(
        event_ids_in_kafka(&h, accepted.len()).await,
        accepted,
        "exactly the 2xx records are in Kafka: none of the 503 ones, none missing"
    );

    // Retried as a client honouring Retry-After would, a queue's worth at a time, they land with the same ids.
    for chunk in refused.chunks(QUEUE) {
        let mut pending = chunk.to_vec();
        for _attempt in 0..5 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut still_refused = Vec::new();
            for (key, (status, _, body)) in pending.iter().zip(post_all(&url, &pending).await) {
                match status {
                    StatusCode::OK => {
                        accepted.insert(id_of(key));
                    }
                    StatusCode::SERVICE_UNAVAILABLE => still_refused.push(key.clone()),
                    other => panic!("retry of {key}: unexpected {other}: {body}"),
                }
            }
            pending = still_refused;
            if pending.is_empty() {
                break;
            }
        }
        assert!(pending.is_empty(), "still refused after 5 retries: {pending:?}");
    }
    assert_eq!(accepted.len(), keys.len());
    assert_eq!(event_ids_in_kafka(&h, keys.len()).await, accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_the_producer_queue_answers_queue_full_per_record() {
    let h = harness(ProducerArgs::default(), IngestSettings::default()).await;
    let api = tiny_queue_api(&h).await;
    let url = format!("{}/ingest/{}/batch", api.base, h.dataset);
    let lines: Vec<String> = (0..3 * QUEUE)
        .map(|i| order(&format!("b-{i}")).to_string())
        .collect();
    let response = streamlake_testkit::http_client()
        .post(&url)
        .header("content-type", "application/x-ndjson")
        .header("idempotency-key", "batch")
        .body(lines.join("\n"))
        .send()
        .await
        .expect("answered");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON answer");
    // Some records got through, so the batch as a whole is answered 200 with per-record results.
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut accepted = BTreeSet::new();
    for (index, result) in body["results"].as_array().expect("results").iter().enumerate() {
        let id = event_id(h.dataset.as_str(), Some("batch"), Some(index)).to_string();
        assert_eq!(result["event_id"], id, "{result}");
        match result["status"].as_str() {
            Some("accepted") => {
                accepted.insert(id);
            }
            Some("failed") => {
                assert_eq!(result["error"]["code"], "queue_full", "{result}");
                assert_eq!(result["retryable"], true, "{result}");
            }
            _ => panic!("record {index}: {result}"),
        }
    }
    assert_eq!(body["accepted"], accepted.len(), "{body}");
    assert_eq!(body["failed"], lines.len() - accepted.len(), "{body}");
    assert!(
        (1..=QUEUE).contains(&accepted.len()),
        "a queue of {QUEUE} took {} records of one batch",
        accepted.len()
    );
    assert_eq!(
        event_ids_in_kafka(&h, accepted.len()).await,
        accepted,
        "exactly the accepted records are in Kafka"
    );
}
