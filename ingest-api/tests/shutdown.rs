//! SIGTERM on the real binary: in-flight requests are drained and answered, the producer is flushed,
//! the process exits 0, and every acknowledged record is in Kafka.

mod common;

use std::time::Duration;

use common::api_process::ApiProcess;
use common::{harness, order};
use nix::sys::signal::{Signal, kill};
use rdkafka::Message;
use streamlake_core::headers::RecordMetadata;
use streamlake_core::kafka::ProducerArgs;
use streamlake_ingest_api::IngestSettings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_flushes_the_producer() {
    let h = harness(ProducerArgs::default(), IngestSettings::default()).await;
    // A long linger keeps every record in the producer when the signal arrives.
    let api = ApiProcess::start(&h, &["--kafka-linger-ms=1500"]).await;
    let http = streamlake_testkit::http_client();
    let base = api.base.clone();
    let ready = format!("{base}/readyz");

    let url = format!("{base}/ingest/{}", h.dataset);
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let response = http
                    .post(&url)
                    .body(order(&format!("o-{i}")).to_string())
                    .send()
                    .await?;
                let status = response.status();
                let body: serde_json::Value = response.json().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(api.pid(), Signal::SIGTERM).expect("SIGTERM sent");

    let mut acknowledged = Vec::new();
    for request in requests {
        let (status, body) = request
            .await
            .expect("task")
            .expect("every in-flight request is answered");
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        acknowledged.push(body["event_id"].as_str().expect("event_id").to_owned());
    }
    let exit = tokio::task::spawn_blocking(move || {
        let mut api = api;
        api.wait()
    })
    .await
    .expect("join");
    assert!(exit.success(), "ingest-api exited with {exit} after SIGTERM");
    assert!(
        http.get(&ready).send().await.is_err(),
        "nothing listens after shutdown"
    );

    let records = h
        .all_records(&h.dataset.raw_topic(), common::RAW_PARTITIONS, acknowledged.len())
        .await;
    let mut in_kafka: Vec<String> = records
        .iter()
        .map(|r| {
            RecordMetadata::from_headers(r.headers().expect("headers"))
                .expect("meta")
                .event_id
                .to_string()
        })
        .collect();
    in_kafka.sort();
    acknowledged.sort();
    assert_eq!(
        in_kafka, acknowledged,
        "exactly the acknowledged records are in Kafka"
    );
}
