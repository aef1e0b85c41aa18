use bytes::Bytes;
use rdkafka::message::{Header, OwnedHeaders};
use serde_json::json;
use streamlake_core::contract::Contract;

use super::*;

fn registry() -> Arc<ContractRegistry> {
    let dataset = DatasetName::new("orders").expect("valid");
    let v1 = json!({
        "x-streamlake-partition-key": "order_id",
        "type": "object",
        "required": ["order_id", "amount"],
        "properties": { "order_id": { "type": "string" }, "amount": { "type": "integer" } }
    });
    let mut v2 = v1.clone();
    v2["properties"]["note"] = json!({ "type": "string" });
    v2["additionalProperties"] = json!(true);
    let mut registry = ContractRegistry::default();
    registry
        .insert(Contract::from_schema(dataset.clone(), 1, v1).expect("v1"))
        .expect("insert");
    registry
        .insert(Contract::from_schema(dataset, 2, v2).expect("v2"))
        .expect("insert");
    Arc::new(registry)
}

fn classifier() -> Classifier {
    Classifier::new(DatasetName::new("orders").expect("valid"), registry(), 1024).expect("classifier")
}

fn record(payload: &[u8], headers: &[(&str, &str)]) -> SourceRecord {
    let mut owned = OwnedHeaders::new();
    for (key, value) in headers {
        owned = owned.insert(Header {
            key,
            value: Some(*value),
        });
    }
    SourceRecord {
        partition: 0,
        offset: 7,
        timestamp: Some(1_735_862_400_000),
        key: Some(Bytes::from_static(b"o-1")),
        payload: Some(Bytes::copy_from_slice(payload)),
        headers: Some(owned.into()),
    }
}

fn rejection(r: &SourceRecord) -> Rejection {
    classifier().classify(r).expect_err("should be rejected")
}

#[test]
fn a_valid_record_keeps_its_key_event_id_and_version() {
    let r = record(
        br#"{"order_id":"o-1","amount":3}"#,
        &[("schema_version", "1"), ("event_id", "e-1")],
    );
    let event = classifier().classify(&r).expect("valid");
    assert_eq!(event.schema_version, 1);
    assert_eq!(event.key, Some("o-1"));
    assert_eq!(event.event_id, Some("e-1"));
    // An integral float is an integer to JSON Schema: the full validator decides what the fast check cannot.
    let r = record(br#"{"order_id":"o-1","amount":3.0}"#, &[("schema_version", "1")]);
    assert_eq!(classifier().classify(&r).expect("valid").schema_version, 1);
}

#[test]
fn records_without_headers_are_checked_against_the_latest_contract() {
    let mut r = record(br#"{"order_id":"o-1","amount":3,"note":"x"}"#, &[]);
    r.headers = None;
    assert_eq!(classifier().classify(&r).expect("valid").schema_version, 2);
}

#[test]
fn the_header_version_selects_the_contract() {
    // v1 has no additionalProperties rule either, so `extra` passes; a wrong type does not.
    let r = record(
        br#"{"order_id":"o-1","amount":"three"}"#,
        &[("schema_version", "1")],
    );
    let err = rejection(&r);
    assert_eq!(err.error_type, "contract_violation");
    assert!(
        err.message.contains("/amount") && err.message.contains("orders v1"),
        "{}",
        err.message
    );
}

#[test]
fn only_a_version_newer_than_every_contract_is_marked_as_such() {
    let event = br#"{"order_id":"o","amount":1}"#;
    let newer = rejection(&record(event, &[("schema_version", "3")]));
    assert_eq!(newer.error_type, "unknown_schema_version");
    assert_eq!(newer.newer_version, Some(3));
    assert!(newer.message.contains("up to v2"), "{}", newer.message);
    // Below the newest: a contract that is missing, not one still to come.
    let missing = rejection(&record(event, &[("schema_version", "0")]));
    assert_eq!(missing.error_type, "unknown_schema_version");
    assert_eq!(missing.newer_version, None);
    for other in [
        record(b"not json", &[]),
        record(event, &[("schema_version", "x")]),
    ] {
        assert_eq!(rejection(&other).newer_version, None);
    }
}

#[test]
fn poison_pills_get_stable_error_types() {
    let cases: Vec<(SourceRecord, &str)> = vec![
        (record(b"not json", &[]), "invalid_json"),
        (record(br#"{"order_id":"o-1"}"#, &[]), "contract_violation"),
        (record(&[b' '; 2000], &[]), "record_too_large"),
        (
            record(br#"{"order_id":"o","amount":1}"#, &[("schema_version", "9")]),
            "unknown_schema_version",
        ),
        (
            record(br#"{"order_id":"o","amount":1}"#, &[("schema_version", "x")]),
            "invalid_headers",
        ),
        (
            record(br#"{"order_id":"o","amount":1,"_offset":1}"#, &[]),
            "reserved_field",
        ),
    ];
    for (r, expected) in cases {
        assert_eq!(rejection(&r).error_type, expected);
    }
    let mut tombstone = record(b"", &[]);
    tombstone.payload = None;
    assert_eq!(rejection(&tombstone).error_type, "empty_payload");
    let mut no_time = record(br#"{"order_id":"o","amount":1}"#, &[]);
    no_time.timestamp = None;
    assert_eq!(rejection(&no_time).error_type, "missing_timestamp");
    let mut bad_key = record(br#"{"order_id":"o","amount":1}"#, &[]);
    bad_key.key = Some(Bytes::from_static(&[0xff, 0xfe]));
    assert_eq!(rejection(&bad_key).error_type, "invalid_key");
}

#[test]
fn a_dataset_without_contract_is_refused_up_front() {
    let err =
        Classifier::new(DatasetName::new("clicks").expect("valid"), registry(), 10).expect_err("no contract");
    assert!(err.contains("clicks"));
}

#[test]
fn usable_timestamps_are_those_chrono_can_represent() {
    let (min, max) = (*USABLE_TIMESTAMPS.start(), *USABLE_TIMESTAMPS.end());
    for t in [
        i64::MIN,
        min - 1,
        min,
        min + 1,
        -1,
        0,
        1_735_862_400_000,
        max - 1,
        max,
        max + 1,
        i64::MAX,
    ] {
        assert_eq!(
            USABLE_TIMESTAMPS.contains(&t),
            chrono::DateTime::from_timestamp_millis(t).is_some(),
            "{t}"
        );
    }
}

#[test]
fn the_last_header_of_a_name_counts_and_a_non_utf8_one_is_refused() {
    let with = |headers: &[(&str, Option<&[u8]>)]| {
        let owned = (headers.iter()).fold(OwnedHeaders::new(), |h, &(key, value)| {
            h.insert(Header { key, value })
        });
        let mut r = record(br#"{"order_id":"o-1","amount":3.0}"#, &[]);
        r.headers = Some(owned.into());
        classifier()
            .classify(&r)
            .map(|e| (e.schema_version, e.event_id.map(str::to_owned)))
    };
    let event = with(&[
        ("event_id", Some(b"first")),
        ("schema_version", Some(b"2")),
        ("source", Some(b"web")),
        ("event_id", Some(b"last")),
        ("schema_version", Some(b"1")),
    ])
    .expect("valid");
    assert_eq!(event, (1, Some("last".to_owned())));
    // A null value: no version (the latest contract), no event id.
    let event = with(&[("schema_version", None), ("event_id", None)]).expect("valid");
    assert_eq!(event, (2, None));
    let refused = with(&[("event_id", Some(&[0xff, 0xfe]))]).expect_err("not UTF-8");
    assert_eq!(refused.error_type, "invalid_headers");
    assert!(refused.message.contains("event_id"), "{}", refused.message);
}
