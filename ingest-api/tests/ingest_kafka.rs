//! The ingest API against the real local broker: what the API answers is what Kafka holds.

mod common;

use axum::http::StatusCode;
use common::{Harness, harness, header, order};
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::OwnedMessage;
use serde_json::Value;
use streamlake_core::headers::{self, DlqError, ErrorStage, RecordMetadata};
use streamlake_core::kafka::{KafkaArgs, ProducerArgs};
use streamlake_ingest_api::IngestSettings;
use streamlake_ingest_api::event::event_id;

async fn fresh() -> Harness {
    harness(ProducerArgs::default(), IngestSettings::default()).await
}

async fn with_event_limit(max_event_bytes: usize) -> Harness {
    let settings = IngestSettings {
        max_event_bytes,
        ..IngestSettings::default()
    };
    harness(ProducerArgs::default(), settings).await
}

/// An order padded with a field of `padding` bytes (size comes first: it is never checked).
fn padded_order(id: &str, padding: usize) -> String {
    let mut order = order(id);
    order["note"] = "x".repeat(padding).into();
    order.to_string()
}

fn metadata(record: &OwnedMessage) -> RecordMetadata {
    RecordMetadata::from_headers(record.headers().expect("headers")).expect("metadata headers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_event_lands_in_the_raw_topic_with_its_key_and_headers() {
    let h = fresh().await;
    let body = order("order-42").to_string();
    let headers = [
        ("idempotency-key", "checkout-7"),
        ("x-streamlake-source", "checkout"),
    ];
    let answer = h.post(&h.single_path(), &headers, body.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let expected_id = event_id(h.dataset.as_str(), Some("checkout-7"), None);
    assert_eq!(answer.body["event_id"], expected_id.to_string());
    assert_eq!(answer.body["topic"], h.dataset.raw_topic());

    let (partition, offset) = position(&answer.body);
    let record = h.record_at(&h.dataset.raw_topic(), partition, offset).await;
    assert_eq!(
        record.key(),
        Some(&b"order-42"[..]),
        "keyed by the contract's partition key"
    );
    assert_eq!(
        record.payload(),
        Some(body.as_bytes()),
        "the original bytes, untransformed"
    );
    let meta = metadata(&record);
    assert_eq!(meta.event_id, expected_id);
    assert_eq!((meta.schema_version, meta.source.as_str()), (1, "checkout"));
    assert_eq!(meta.content_type, "application/json");
    assert!((chrono::Utc::now() - meta.ingested_at).num_seconds().abs() < 60);

    // A retry with the same key carries the same event id, so downstream can drop the duplicate.
    let again = h.post(&h.single_path(), &headers, body).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["event_id"], expected_id.to_string());
    let retried = h.record_at(&h.dataset.raw_topic(), partition, offset + 1).await;
    assert_eq!(
        metadata(&retried).event_id,
        expected_id,
        "same key → same partition, same event id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_event_is_422_with_every_violation_and_is_dead_lettered() {
    let h = fresh().await;
    let mut event = order("order-9");
    event["currency"] = "euros".into();
    event["line_items"][0]["quantity"] = 0.into();
    event.as_object_mut().expect("object").remove("created_at");
    let body = event.to_string();
    let answer = h.post(&h.single_path(), &[], body.clone()).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    let error = &answer.body["error"];
    assert_eq!(error["code"], "contract_violation");
    let mut pointers: Vec<&str> = error["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["pointer"].as_str().expect("str"))
        .collect();
    pointers.sort_unstable();
    assert_eq!(pointers, ["", "/currency", "/line_items/0/quantity"]);

    let dlq = &error["dlq"];
    assert_eq!(dlq["topic"], h.dataset.dlq_topic());
    let record = h
        .record_at(&h.dataset.dlq_topic(), position(dlq).0, position(dlq).1)
        .await;
    assert_eq!(
        record.payload(),
        Some(body.as_bytes()),
        "the DLQ keeps the original bytes"
    );
    assert_eq!(record.key(), Some(&b"order-9"[..]), "and the key");
    let why = DlqError::from_headers(record.headers().expect("headers")).expect("error headers");
    assert_eq!(why.stage, ErrorStage::Api);
    assert_eq!(why.error_type, "contract_violation");
    assert_eq!(why.source_topic, h.dataset.raw_topic());
    assert!(why.message.contains("/currency"), "{}", why.message);
    assert_eq!(
        header(&record, headers::SOURCE_PARTITION),
        None,
        "never reached the raw topic"
    );
    metadata(&record);

    // Not JSON at all: 400, and dead-lettered too.
    let answer = h.post(&h.single_path(), &[], "{\"order_id\": ").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"]["code"], "invalid_json");
    let dlq = &answer.body["error"]["dlq"];
    let record = h
        .record_at(&h.dataset.dlq_topic(), position(dlq).0, position(dlq).1)
        .await;
    assert_eq!(record.payload(), Some(&b"{\"order_id\": "[..]));
    assert_eq!(header(&record, headers::ERROR_TYPE), Some("invalid_json"));

    let raw = h
        .all_records(&h.dataset.raw_topic(), common::RAW_PARTITIONS, 0)
        .await;
    assert!(
        raw.is_empty(),
        "nothing invalid reached the raw topic: {} records",
        raw.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_answers_per_record_and_matches_the_topics() {
    let h = fresh().await;
    let mut invalid = order("order-b2");
    invalid["amount"] = 3.into();
    let lines = [
        order("order-b1").to_string(),
        invalid.to_string(),
        "not json".to_owned(),
        order("order-b4").to_string(),
    ];
    let body = lines.join("\n") + "\n\n";
    let answer = h
        .post(
            &h.batch_path(),
            &[("content-type", "application/x-ndjson"), ("idempotency-key", "b")],
            body,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let counts = (
        &answer.body["accepted"],
        &answer.body["rejected"],
        &answer.body["failed"],
    );
    assert_eq!(counts, (&Value::from(2), &Value::from(2), &Value::from(0)));
    let results = answer.body["results"].as_array().expect("results");
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["accepted", "rejected", "rejected", "accepted"]);
    assert_eq!(results[1]["error"]["code"], "contract_violation");
    assert_eq!(results[2]["error"]["code"], "invalid_json");

    for (index, result) in results.iter().enumerate() {
        let expected_id = event_id(h.dataset.as_str(), Some("b"), Some(index)).to_string();
        assert_eq!(result["event_id"], expected_id);
        let (topic, at) = if result["status"] == "accepted" {
            (h.dataset.raw_topic(), position(result))
        } else {
            (h.dataset.dlq_topic(), position(&result["dlq"]))
        };
        let record = h.record_at(&topic, at.0, at.1).await;
        assert_eq!(
            record.payload(),
            Some(lines[index].as_bytes()),
            "record {index} in {topic}"
        );
        assert_eq!(header(&record, headers::EVENT_ID), Some(expected_id.as_str()));
    }
    assert_eq!(
        h.all_records(&h.dataset.raw_topic(), common::RAW_PARTITIONS, 2)
            .await
            .len(),
        2
    );
    assert_eq!(h.all_records(&h.dataset.dlq_topic(), 1, 2).await.len(), 2);

    // The same as a JSON array; every record of it is accepted.
    let array = format!("[{}, {}]", order("order-c1"), order("order-c2"));
    let answer = h
        .post(&h.batch_path(), &[("content-type", "application/json")], array)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["accepted"], 2);
    assert_eq!(
        h.all_records(&h.dataset.raw_topic(), common::RAW_PARTITIONS, 4)
            .await
            .len(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_record_over_the_limit_is_dead_lettered_as_an_excerpt_with_its_length() {
    let h = with_event_limit(50_000).await;
    // Over the record limit and over what the DLQ keeps of one (64 KiB); one a little over the limit but
    // under that excerpt is kept whole.
    let lines = [
        order("order-ok").to_string(),
        padded_order("order-huge", 150_000),
        padded_order("order-large", 60_000),
    ];
    let body = lines.join("\n");
    let answer = h
        .post(
            &h.batch_path(),
            &[
                ("content-type", "application/x-ndjson"),
                ("idempotency-key", "big"),
            ],
            body,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        (&answer.body["accepted"], &answer.body["rejected"]),
        (&1.into(), &2.into())
    );
    let results = answer.body["results"].as_array().expect("results");

    // Where record `i` of the batch was dead-lettered, as the answer says.
    let dead_lettered_at = |i: usize| {
        assert_eq!(results[i]["error"]["code"], "record_too_large", "record {i}");
        position(&results[i]["dlq"])
    };
    let (partition, offset) = dead_lettered_at(1);
    let excerpt = h.record_at(&h.dataset.dlq_topic(), partition, offset).await;
    assert_eq!(
        excerpt.payload(),
        Some(&lines[1].as_bytes()[..64 * 1024]),
        "the DLQ keeps the record's first 64 KiB"
    );
    let length = lines[1].len().to_string();
    assert_eq!(
        header(&excerpt, headers::PAYLOAD_ORIGINAL_BYTES),
        Some(length.as_str())
    );
    let why = DlqError::from_headers(excerpt.headers().expect("headers")).expect("error headers");
    assert_eq!(
        (why.stage, why.error_type.as_str()),
        (ErrorStage::Api, "record_too_large")
    );
    assert!(why.message.contains(&length), "{}", why.message);
    let expected_id = event_id(h.dataset.as_str(), Some("big"), Some(1)).to_string();
    assert_eq!(metadata(&excerpt).event_id.to_string(), expected_id);

    let (partition, offset) = dead_lettered_at(2);
    let whole = h.record_at(&h.dataset.dlq_topic(), partition, offset).await;
    assert_eq!(
        whole.payload(),
        Some(lines[2].as_bytes()),
        "under 64 KiB: kept whole"
    );
    assert_eq!(header(&whole, headers::PAYLOAD_ORIGINAL_BYTES), None);
    assert_eq!(
        h.all_records(&h.dataset.raw_topic(), common::RAW_PARTITIONS, 1)
            .await
            .len(),
        1,
        "only the record within the limit reached the raw topic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_event_over_the_limit_is_413_and_dead_lettered_as_an_excerpt() {
    let h = with_event_limit(50_000).await;
    let body = padded_order("order-huge", 150_000);
    let length = body.len().to_string();
    // Declared by Content-Length (read only as far as its excerpt), and streamed without it (counted).
    for declared in [true, false] {
        let key = format!("huge-{declared}");
        let mut headers = vec![("idempotency-key", key.as_str())];
        if declared {
            headers.push(("content-length", length.as_str()));
        }
        let answer = h.post(&h.single_path(), &headers, body.clone()).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", answer.body);
        let error = &answer.body["error"];
        assert_eq!(error["code"], "payload_too_large");
        let (partition, offset) = position(&error["dlq"]);
        let excerpt = h.record_at(&h.dataset.dlq_topic(), partition, offset).await;
        assert_eq!(excerpt.payload(), Some(&body.as_bytes()[..64 * 1024]));
        assert_eq!(
            header(&excerpt, headers::PAYLOAD_ORIGINAL_BYTES),
            Some(length.as_str()),
            "declared: {declared}"
        );
        assert_eq!(header(&excerpt, headers::ERROR_TYPE), Some("record_too_large"));
        let expected_id = event_id(h.dataset.as_str(), Some(&key), None);
        assert_eq!(metadata(&excerpt).event_id, expected_id);
    }
    assert!(
        h.all_records(&h.dataset.raw_topic(), common::RAW_PARTITIONS, 0)
            .await
            .is_empty(),
        "nothing reached the raw topic"
    );
}

/// A rejected event the DLQ topic refuses whole as too large (its `max.message.bytes` is below the event,
/// which is within the API's limit) is dead-lettered as its first 64 KiB; the producer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reject_the_dlq_refuses_whole_is_dead_lettered_as_an_excerpt() {
    let h = fresh().await;
    let admin: AdminClient<DefaultClientContext> = KafkaArgs::for_bootstrap(&h.bootstrap)
        .client_config()
        .expect("client config")
        .create()
        .expect("admin client");
    let dlq_topic = h.dataset.dlq_topic();
    let smaller = AlterConfig::new(ResourceSpecifier::Topic(&dlq_topic)).set("max.message.bytes", "80000");
    let altered = admin
        .alter_configs([&smaller], &AdminOptions::new())
        .await
        .expect("alter configs");
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    // ~100 KB that lz4 cannot shrink below the DLQ topic's limit, in a field the contract forbids.
    let mut state: u64 = 7;
    let noise: String = (0..100_000)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(b'a' + ((state >> 33) % 26) as u8)
        })
        .collect();
    let mut event = order("order-noisy");
    event["note"] = noise.into();
    let body = event.to_string();

    let answer = h.post(&h.single_path(), &[], body.clone()).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    let (partition, offset) = position(&answer.body["error"]["dlq"]);
    let record = h.record_at(&dlq_topic, partition, offset).await;
    assert_eq!(record.payload(), Some(&body.as_bytes()[..64 * 1024]));
    assert_eq!(record.key(), Some(&b"order-noisy"[..]), "the key is kept");
    let length = body.len().to_string();
    assert_eq!(
        header(&record, headers::PAYLOAD_ORIGINAL_BYTES),
        Some(length.as_str())
    );
    assert_eq!(header(&record, headers::ERROR_TYPE), Some("contract_violation"));

    let answer = h
        .post(&h.single_path(), &[], order("order-after").to_string())
        .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the producer goes on: {}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_sees_the_broker() {
    let h = fresh().await;
    let ready = h.state.sink.check_broker(std::time::Duration::from_secs(5)).await;
    assert_eq!(ready, Ok(()));
}

fn position(v: &Value) -> (i32, i64) {
    let partition = v["partition"]
        .as_i64()
        .unwrap_or_else(|| panic!("partition in {v}"));
    let offset = v["offset"].as_i64().unwrap_or_else(|| panic!("offset in {v}"));
    (i32::try_from(partition).expect("partition fits"), offset)
}
