//! The broker is stopped under load and started again: no request is answered 2xx unless its record is
//! in Kafka afterwards, and requests during the outage get 503 with Retry-After.
//!
//! The broker is one of the test's own ([`PrivateBroker`]): stopping the shared one for as long as this
//! takes on a slow machine outlived the session of the deployed consumer's group, and tests after this one
//! found that consumer out of its group.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use common::{harness_on, order};
use rdkafka::Message;
use rdkafka::producer::Producer;
use streamlake_core::headers::RecordMetadata;
use streamlake_core::kafka::ProducerArgs;
use streamlake_ingest_api::IngestSettings;
use streamlake_testkit::PrivateBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_acknowledged_that_is_not_in_kafka_across_a_broker_outage() {
    // Short delivery timeout so the outage is seen quickly; the request deadline stays above it.
    let producer = ProducerArgs {
        message_timeout_ms: 3_000,
        ..ProducerArgs::default()
    };
    let settings = IngestSettings {
        request_timeout: Duration::from_secs(10),
        ..IngestSettings::default()
    };
    let broker = tokio::task::block_in_place(|| PrivateBroker::start("api-outage"));
    let h = Arc::new(harness_on(broker.bootstrap(), producer, settings).await);

    // Load across the whole outage: four clients posting one event at a time.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (h, stop) = (h.clone(), stop.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let answer = h
                        .post(
                            &h.single_path(),
                            &[],
                            order(&format!("o-{client}-{n}")).to_string(),
                        )
                        .await;
                    answers.push(answer);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                answers
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| broker.stop());
    let ready = h.state.sink.check_broker(Duration::from_secs(1)).await;
    assert!(ready.is_err(), "readiness must fail while the broker is down");
    tokio::time::sleep(Duration::from_secs(8)).await;
    tokio::task::block_in_place(|| broker.up()); // waits until the broker answers
    // First a fresh client, then the API's own producer: a failure says which of the two did not recover.
    let bootstrap = h.bootstrap.clone();
    streamlake_testkit::wait_until(
        "a fresh client sees the restarted broker",
        Duration::from_secs(120),
        || {
            let bootstrap = bootstrap.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let client: Result<rdkafka::producer::BaseProducer, _> = rdkafka::ClientConfig::new()
                        .set("bootstrap.servers", &bootstrap)
                        .create();
                    client.is_ok_and(|c| c.client().fetch_metadata(None, Duration::from_secs(2)).is_ok())
                })
                .await
                .unwrap_or(false)
            }
        },
    )
    .await;
    let state = h.state.clone();
    streamlake_testkit::wait_until(
        "the API's producer sees the broker again",
        Duration::from_secs(120),
        || {
            let state = state.clone();
            async move { state.sink.check_broker(Duration::from_secs(5)).await.is_ok() }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::SeqCst);

    let mut acknowledged = HashSet::new();
    let (mut unavailable, mut after_outage_ok) = (0, 0);
    for client in clients {
        let answers = client.await.expect("client task");
        let last_ok = answers
            .iter()
            .rev()
            .take_while(|a| a.status == StatusCode::OK)
            .count();
        after_outage_ok += last_ok;
        for answer in answers {
            match answer.status {
                StatusCode::OK => {
                    acknowledged.insert(answer.body["event_id"].as_str().expect("event_id").to_owned());
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    unavailable += 1;
                    assert!(
                        answer.headers.contains_key("retry-after"),
                        "503 without Retry-After"
                    );
                    let code = answer.body["error"]["code"].as_str().expect("code");
                    assert!(
                        ["kafka_unavailable", "timeout", "queue_full"].contains(&code),
                        "{code}"
                    );
                }
                other => panic!("unexpected status {other}: {}", answer.body),
            }
        }
    }
    assert!(unavailable > 0, "the outage was never observed as 503");
    assert!(
        after_outage_ok > 0,
        "nothing was accepted after the broker came back"
    );

    let records = h
        .all_records(&h.dataset.raw_topic(), common::RAW_PARTITIONS, acknowledged.len())
        .await;
    let in_kafka: HashSet<String> = records
        .iter()
        .map(|r| {
            RecordMetadata::from_headers(r.headers().expect("headers"))
                .expect("metadata")
                .event_id
                .to_string()
        })
        .collect();
    let missing: Vec<_> = acknowledged.difference(&in_kafka).collect();
    println!(
        "acknowledged {}, answered 503 {unavailable}, records in Kafka {} (503'd records may land: not acknowledged)",
        acknowledged.len(),
        records.len()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged records are not in Kafka: {missing:?}",
        missing.len()
    );
}
