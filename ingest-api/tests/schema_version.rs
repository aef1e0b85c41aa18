//! `X-StreamLake-Schema-Version`: a producer that still sends an older contract version after a newer one
//! was published pins it; the events are checked against it and stamped with it, on the real broker.

mod common;

use axum::http::StatusCode;
use common::{Harness, RAW_PARTITIONS, harness, header, order};
use serde_json::{Value, json};
use streamlake_core::kafka::ProducerArgs;
use streamlake_ingest_api::IngestSettings;

const PIN: &str = "x-streamlake-schema-version";

/// The orders contract as v1, and a v2 that requires a `channel` the v1 orders do not have.
async fn two_versions() -> Harness {
    let h = harness(ProducerArgs::default(), IngestSettings::default()).await;
    let mut v2: Value = serde_json::from_str(include_str!("../../contracts/orders.v1.json")).expect("json");
    v2["properties"]["channel"] = json!({ "type": "string", "enum": ["web", "store"] });
    v2["required"]
        .as_array_mut()
        .expect("required")
        .push(json!("channel"));
    h.with_contract_version(2, v2)
}

fn position(answer: &Value) -> (i32, i64) {
    let partition = answer["partition"].as_i64().expect("partition") as i32;
    (partition, answer["offset"].as_i64().expect("offset"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_version_checks_and_stamps_that_version() {
    let h = two_versions().await;
    let v1_order = order("o-pinned").to_string();

    // Unpinned, the newest version applies: a v1 order lacks `channel`.
    let newest = h.post(&h.single_path(), &[], v1_order.clone()).await;
    assert_eq!(newest.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", newest.body);
    assert_eq!(newest.body["error"]["violations"][0]["keyword"], "required");

    let pinned = h.post(&h.single_path(), &[(PIN, "1")], v1_order.clone()).await;
    assert_eq!(pinned.status, StatusCode::OK, "{}", pinned.body);
    assert_eq!(pinned.body["schema_version"], 1);
    let (partition, offset) = position(&pinned.body);
    let record = h.record_at(&h.dataset.raw_topic(), partition, offset).await;
    assert_eq!(header(&record, "schema_version"), Some("1"));

    let mut v2_order = order("o-v2");
    v2_order["channel"] = json!("web");
    let pinned_v2 = h
        .post(&h.single_path(), &[(PIN, "2")], v2_order.to_string())
        .await;
    assert_eq!(pinned_v2.status, StatusCode::OK, "{}", pinned_v2.body);
    assert_eq!(pinned_v2.body["schema_version"], 2);

    // A batch pinned to v1: every record checked against v1 and stamped with it.
    let batch = format!("{}\n{}\n", order("o-b1"), json!({ "order_id": "o-b2" }));
    let answer = h.post(&h.batch_path(), &[(PIN, "1")], batch).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["schema_version"], 1);
    assert_eq!(
        (answer.body["accepted"].as_u64(), answer.body["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    let accepted = &answer.body["results"][0];
    let record = h
        .record_at(&h.dataset.raw_topic(), position(accepted).0, position(accepted).1)
        .await;
    assert_eq!(header(&record, "schema_version"), Some("1"));
    let dlq = &answer.body["results"][1]["dlq"];
    let rejected = h
        .record_at(
            &h.dataset.dlq_topic(),
            dlq["partition"].as_i64().expect("partition") as i32,
            dlq["offset"].as_i64().expect("offset"),
        )
        .await;
    assert_eq!(
        header(&rejected, "schema_version"),
        Some("1"),
        "the DLQ record names the version it failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_the_dataset_lacks_or_a_malformed_one_is_400_and_nothing_is_written() {
    let h = two_versions().await;
    let body = order("o-1").to_string();
    let unknown = h.post(&h.single_path(), &[(PIN, "3")], body.clone()).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);
    assert_eq!(unknown.body["error"]["code"], "unknown_schema_version");
    let message = unknown.body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("no contract version 3") && message.contains("[1, 2]"),
        "{message}"
    );
    let batch = h.post(&h.batch_path(), &[(PIN, "3")], format!("{body}\n")).await;
    assert_eq!(batch.body["error"]["code"], "unknown_schema_version");

    for bad in ["0", "01", "x", "1.0", "-1", "4294967296"] {
        let answer = h.post(&h.single_path(), &[(PIN, bad)], body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {}", answer.body);
        assert_eq!(answer.body["error"]["code"], "invalid_header", "{bad}");
    }
    let written =
        h.records_in(&h.dataset.raw_topic(), RAW_PARTITIONS) + h.records_in(&h.dataset.dlq_topic(), 1);
    assert_eq!(written, 0, "refused requests write nothing, not even to the DLQ");
}
