//! Events posted to the ingest API (its real router and Kafka producer, in process) land in the raw
//! zone with the metadata the API stamped: event id, key, schema version. Local directory and GCS.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::Value;
use streamlake_core::contract::ContractRegistry;
use streamlake_core::kafka::{KafkaArgs, ProducerArgs, producer_config};
use streamlake_core::rawzone::IngestionDate;
use streamlake_ingest_api::producer::KafkaSink;
use streamlake_ingest_api::{AppState, IngestSettings, app};
use tower::ServiceExt;

const BATCHES: u64 = 4;
const BATCH: u64 = 250;

/// Posts `BATCHES` batches of orders; returns the event id the API gave each (partition, offset).
async fn post_orders(dataset: &TestDataset) -> BTreeMap<(i64, i64), (String, String)> {
    let contracts = ContractRegistry::load_dir(&dataset.contracts_dir).expect("contracts");
    let producer = producer_config(&KafkaArgs::for_bootstrap(bootstrap()), &ProducerArgs::default())
        .expect("producer config");
    let state = AppState::new(
        contracts,
        KafkaSink::new(&producer).expect("producer"),
        IngestSettings::default(),
    );
    let mut landed = BTreeMap::new();
    for batch in 0..BATCHES {
        let events: Vec<Value> = (0..BATCH)
            .map(|i| serde_json::from_slice(&order(batch * BATCH + i, 400)).expect("json"))
            .collect();
        let request = Request::post(format!("/ingest/{}/batch", dataset.name))
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&events).expect("json")))
            .expect("request");
        let response = app(state.clone()).oneshot(request).await.expect("infallible");
        let status = response.status();
        let body: Value =
            serde_json::from_slice(&response.into_body().collect().await.expect("body").to_bytes())
                .expect("json");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["accepted"], BATCH, "{body}");
        for (event, result) in events.iter().zip(body["results"].as_array().expect("results")) {
            let position = (
                result["partition"].as_i64().expect("partition"),
                result["offset"].as_i64().expect("offset"),
            );
            let event_id = result["event_id"].as_str().expect("event id").to_owned();
            let order_id = event["order_id"].as_str().expect("order id").to_owned();
            landed.insert(position, (event_id, order_id));
        }
    }
    landed
}

async fn api_events_land(prefix: &str, format: &str, raw_zone: impl Fn(&TestDataset) -> String) {
    let dataset = TestDataset::create(prefix, 3).await;
    let topic = dataset.name.raw_topic();
    let accepted = post_orders(&dataset).await;
    let ends = end_offsets(&topic, 3);
    assert_eq!(accepted.len() as i64, ends.values().sum::<i64>());

    let location = raw_zone(&dataset);
    let consumer = ConsumerProcess::start(&dataset, &location, "consumer", &["--format", format]);
    wait_committed(
        &dataset.name.consumer_group(),
        &topic,
        &ends,
        Duration::from_secs(120),
    )
    .await;
    assert!(consumer.terminate(Duration::from_secs(30)).success());

    // The API stamps the produce time: today's date (or yesterday's, right after midnight).
    let today = chrono::Utc::now().date_naive();
    let dates = [today.pred_opt().expect("yesterday"), today].map(IngestionDate::new);
    let store = open_store(&location).await;
    let contents = read_raw_zone(&store, &dataset.layout(), &dates).await;
    contents.assert_exactly_once(&ends);
    for row in &contents.records {
        let position = (
            row["_partition"].as_i64().expect("partition"),
            row["_offset"].as_i64().expect("offset"),
        );
        let (event_id, order_id) = &accepted[&position];
        assert_eq!(
            row["_event_id"].as_str(),
            Some(event_id.as_str()),
            "event id of {position:?}"
        );
        assert_eq!(
            row["_key"].as_str(),
            Some(order_id.as_str()),
            "the key is the contract's partition key"
        );
        assert_eq!(row["order_id"].as_str(), Some(order_id.as_str()));
        assert_eq!(row["_schema_version"], 1);
    }
    for meta in contents.metadata.values() {
        assert!(
            meta.files
                .iter()
                .all(|f| f.schema_versions == [1] && f.record_count > 0)
        );
    }
    println!(
        "{} events posted to the ingest API landed once each ({format} at {location}), event ids and keys intact",
        contents.records.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_posted_to_the_api_land_in_a_local_raw_zone() {
    api_events_land("api-local", "jsonl", |d| {
        format!("file://{}", d.local_raw_zone().display())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_posted_to_the_api_land_in_the_gcs_emulator() {
    emulator();
    api_events_land("api-gcs", "parquet", |d| {
        format!("gs://{}/tests/{}", bucket(), d.name)
    })
    .await;
}
