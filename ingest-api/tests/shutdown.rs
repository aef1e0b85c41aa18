//! SIGTERM on the real binary: in-flight requests are drained and answered, the producer is flushed,
//! the process exits 0, and every acknowledged record is in Kafka.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{harness, order};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rdkafka::Message;
use streamlake_core::headers::RecordMetadata;
use streamlake_core::kafka::ProducerArgs;
use streamlake_ingest_api::IngestSettings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_flushes_the_producer() {
    let h = harness(ProducerArgs::default(), IngestSettings::default()).await;
    let contracts = std::env::temp_dir().join(streamlake_testkit::unique_name("contracts"));
    std::fs::create_dir_all(&contracts).expect("contracts dir");
    let contract = concat!(env!("CARGO_MANIFEST_DIR"), "/../contracts/orders.v1.json");
    std::fs::copy(contract, contracts.join(format!("{}.v1.json", h.dataset))).expect("contract copied");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();

    // A long linger keeps every record in the producer when the signal arrives.
    let api = Command::new(env!("CARGO_BIN_EXE_ingest-api"))
        .args([
            "serve",
            &format!("--listen-addr=127.0.0.1:{port}"),
            "--kafka-linger-ms=1500",
        ])
        .arg("--contracts-dir")
        .arg(&contracts)
        .env("KAFKA_BOOTSTRAP_SERVERS", &h.bootstrap)
        .stdout(Stdio::null())
        .spawn()
        .expect("ingest-api starts");
    let api = ApiProcess(api);
    let http = streamlake_testkit::http_client();
    let base = format!("http://127.0.0.1:{port}");
    let ready = format!("{base}/readyz");
    streamlake_testkit::wait_until("ingest-api is ready", Duration::from_secs(30), || {
        let (http, ready) = (http.clone(), ready.clone());
        async move { matches!(http.get(&ready).send().await, Ok(r) if r.status().is_success()) }
    })
    .await;

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
    kill(
        Pid::from_raw(i32::try_from(api.0.id()).expect("pid")),
        Signal::SIGTERM,
    )
    .expect("SIGTERM sent");

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
        api.0.wait()
    })
    .await
    .expect("join")
    .expect("wait");
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
    std::fs::remove_dir_all(&contracts).expect("cleanup");
}

/// Kills the API if the test fails before it exits by itself, so no process outlives the test.
struct ApiProcess(Child);

impl Drop for ApiProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
