//! Shared by the integration tests: a fresh dataset with its own topics on the real local broker, the
//! API in-process (`tower::ServiceExt::oneshot`) or as its real binary ([`api_process::ApiProcess`]), and readers of
//! what landed in Kafka.
#![allow(dead_code)] // each test binary uses its own subset

pub mod api_process;

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use streamlake_core::contract::{Contract, ContractRegistry};
use streamlake_core::kafka::topics::{TopicArgs, ensure_topics};
use streamlake_core::kafka::{KafkaArgs, ProducerArgs, producer_config};
use streamlake_core::names::DatasetName;
use streamlake_ingest_api::producer::KafkaSink;
use streamlake_ingest_api::{AppState, IngestSettings, app};
use tower::ServiceExt;

pub const RAW_PARTITIONS: i32 = 3;

pub struct Harness {
    pub dataset: DatasetName,
    pub state: AppState,
    pub bootstrap: String,
}

/// The shipped orders contract under a dataset name of its own, with freshly created topics.
pub async fn harness(producer: ProducerArgs, settings: IngestSettings) -> Harness {
    harness_on(streamlake_testkit::kafka_bootstrap(), producer, settings).await
}

/// [`harness`] on the broker at `bootstrap` (a test's own [`streamlake_testkit::PrivateBroker`]).
pub async fn harness_on(bootstrap: String, producer: ProducerArgs, settings: IngestSettings) -> Harness {
    let h = harness_without_topics(bootstrap, producer, settings);
    let topics = TopicArgs {
        raw_partitions: RAW_PARTITIONS,
        dlq_partitions: 1,
        replication_factor: 1,
        raw_retention_ms: 3_600_000,
        dlq_retention_ms: 3_600_000,
    };
    let client = KafkaArgs::for_bootstrap(&h.bootstrap)
        .client_config()
        .expect("client config");
    ensure_topics(&client, &topics.specs_for(&h.dataset), Duration::from_secs(30))
        .await
        .expect("topics created");
    h
}

/// The API on the broker at `bootstrap`, whose topics the caller creates (librdkafka's mock cluster does
/// not create topics through the Admin API).
pub fn harness_without_topics(
    bootstrap: String,
    producer: ProducerArgs,
    settings: IngestSettings,
) -> Harness {
    let dataset =
        DatasetName::new(streamlake_testkit::unique_name("orders")).expect("testkit names are valid");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../contracts/orders.v1.json");
    let schema =
        serde_json::from_str(&std::fs::read_to_string(path).expect("contract readable")).expect("json");
    let mut contracts = ContractRegistry::default();
    contracts
        .insert(Contract::from_schema(dataset.clone(), 1, schema).expect("compiles"))
        .expect("insert");
    let kafka = KafkaArgs::for_bootstrap(&bootstrap);
    let sink =
        KafkaSink::new(&producer_config(&kafka, &producer).expect("producer config")).expect("producer");
    Harness {
        state: AppState::new(contracts, sink, settings),
        dataset,
        bootstrap,
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Harness {
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Answer {
        let mut request = Request::post(path);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        self.call(request.body(body.into()).expect("request")).await
    }

    async fn call(&self, request: Request<Body>) -> Answer {
        let response = app(self.state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Request::get(path).body(Body::empty()).expect("request"))
            .await
    }

    pub fn single_path(&self) -> String {
        format!("/ingest/{}", self.dataset)
    }

    pub fn batch_path(&self) -> String {
        format!("/ingest/{}/batch", self.dataset)
    }

    /// How many records the topic's first `partitions` partitions hold (high minus low watermark).
    pub fn records_in(&self, topic: &str, partitions: i32) -> i64 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("consumer");
        (0..partitions)
            .map(|p| {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .expect("watermarks");
                high - low
            })
            .sum()
    }

    /// Adds version `version` of the dataset's contract, with `schema`, to what the API knows.
    pub fn with_contract_version(mut self, version: u32, schema: Value) -> Self {
        let mut contracts = (*self.state.contracts).clone();
        contracts
            .insert(Contract::from_schema(self.dataset.clone(), version, schema).expect("compiles"))
            .expect("insert");
        self.state.contracts = std::sync::Arc::new(contracts);
        self
    }

    /// The record at exactly (topic, partition, offset).
    pub async fn record_at(&self, topic: &str, partition: i32, offset: i64) -> OwnedMessage {
        let records = self.read(topic, &[(partition, offset)], 1).await;
        let record = records.into_iter().next().expect("one record");
        assert_eq!(
            (record.partition(), record.offset()),
            (partition, offset),
            "read the asked position"
        );
        record
    }

    /// Every record of a topic, reading until `expected` arrived (and a little longer, to see extras).
    pub async fn all_records(&self, topic: &str, partitions: i32, expected: usize) -> Vec<OwnedMessage> {
        let starts: Vec<(i32, i64)> = (0..partitions).map(|p| (p, 0)).collect();
        self.read(topic, &starts, expected).await
    }

    async fn read(&self, topic: &str, starts: &[(i32, i64)], expected: usize) -> Vec<OwnedMessage> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", streamlake_testkit::unique_name("reader"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .expect("consumer");
        let mut assignment = TopicPartitionList::new();
        for (partition, offset) in starts {
            assignment
                .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .expect("offset");
        }
        consumer.assign(&assignment).expect("assign");
        let one_record = starts.len() == 1 && expected == 1;
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let mut quiet_until = None;
            while std::time::Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => out.push(m.detach()),
                    Some(Err(e)) => panic!("reading {e}"),
                    None if out.len() >= expected => {
                        // Stop after a quiet second once the expected count arrived; extras would show up.
                        let until = *quiet_until
                            .get_or_insert_with(|| std::time::Instant::now() + Duration::from_secs(1));
                        if std::time::Instant::now() >= until {
                            break;
                        }
                    }
                    None => {}
                }
                if one_record && !out.is_empty() {
                    break;
                }
            }
            out
        })
        .await
        .expect("reader thread")
    }
}

pub fn order(id: &str) -> Value {
    json!({
        "order_id": id,
        "customer_id": "customer-1",
        "line_items": [{"sku": "sku-1", "quantity": 2, "unit_price": "10.25"}],
        "amount": "20.50",
        "currency": "EUR",
        "created_at": "2026-11-22T10:00:00Z"
    })
}

pub fn header<'m>(record: &'m OwnedMessage, name: &str) -> Option<&'m str> {
    use rdkafka::message::Headers;
    let headers = record.headers()?;
    headers
        .iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}
