use std::collections::BTreeSet;
use std::sync::Arc;

use rdkafka::message::{Header, OwnedHeaders};
use serde_json::{Value, json};
use streamlake_consumer::classify::Classifier;
use streamlake_consumer::encode::Encoder;
use streamlake_consumer::record::SourceRecord;
use streamlake_core::contract::{Contract, ContractRegistry};
use streamlake_core::names::DatasetName;
use streamlake_core::rawzone::FileFormat;
use streamlake_core::rawzone::readback::read_back;

use super::{event_of_row, json_text_columns_of};

fn schema() -> Value {
    json!({
        "x-streamlake-partition-key": "id",
        "type": "object",
        "required": ["id", "coupon"],
        "properties": {
            "id": { "type": "string" },
            "qty": { "type": "integer" },
            "price": { "type": "number" },
            "paid": { "type": "boolean" },
            "tags": { "type": "array" },
            "coupon": { "type": ["string", "null"] }
        }
    })
}

fn registry() -> Arc<ContractRegistry> {
    let dataset = DatasetName::new("items").expect("valid");
    // In v1 qty was free text: such records land, but do not fit v2's integer column (they go to _extra).
    // And tags were one string: it lands in v2's JSON-text column as JSON text (with its quotes).
    let mut v1 = schema();
    v1["properties"]["qty"] = json!({ "type": "string" });
    v1["properties"]["tags"] = json!({ "type": "string" });
    let mut registry = ContractRegistry::default();
    for (version, schema) in [(1, v1), (2, schema())] {
        registry
            .insert(Contract::from_schema(dataset.clone(), version, schema).expect("contract"))
            .expect("insert");
    }
    Arc::new(registry)
}

const PAYLOADS: [(&str, &str); 3] = [
    (
        "2",
        r#"{"id":"a","qty":1,"price":2.5,"paid":true,"tags":["x",{"y":1}],"coupon":null}"#,
    ),
    (
        "1",
        r#"{"id":"b","qty":"many","tags":"x,y","coupon":"SAVE","note":"extra field"}"#,
    ),
    ("2", r#"{"id":"c","coupon":"X"}"#),
];

fn records() -> Vec<SourceRecord> {
    PAYLOADS
        .iter()
        .enumerate()
        .map(|(i, (version, payload))| {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "event_id",
                    value: Some("e"),
                })
                .insert(Header {
                    key: "schema_version",
                    value: Some(*version),
                });
            SourceRecord {
                partition: 0,
                offset: i as i64,
                timestamp: Some(1_735_862_400_000),
                key: Some(bytes::Bytes::from_static(b"k")),
                payload: Some(bytes::Bytes::copy_from_slice(payload.as_bytes())),
                headers: Some(headers.into()),
            }
        })
        .collect()
}

/// Rows of a file the consumer's own encoder wrote, as the events DqCheck validates.
fn landed_events(format: FileFormat) -> Vec<(u32, Value)> {
    let registry = registry();
    let dataset = DatasetName::new("items").expect("valid");
    let classifier = Classifier::new(dataset, registry.clone(), 1 << 20).expect("classifier");
    let latest = registry.latest("items").expect("contract").clone();
    let encoder = Encoder::new(format, &latest, "test".into(), 0).expect("encoder");
    let records = records();
    let refs: Vec<&SourceRecord> = records.iter().collect();
    let run = encoder.encode_run(0, &refs, &classifier).expect("encode");
    assert!(run.rejected.is_empty(), "{format}: {:?}", run.rejected);
    let data = run.file.expect("a file").data.expect("built in memory");
    let read = read_back(format, data).expect("readable");
    let json_text = match format {
        FileFormat::Parquet => {
            let described = read.json_text_columns;
            // The file names its JSON-text column itself: `tags`, an array in v2, the newest.
            assert_eq!(described, Some(BTreeSet::from(["tags".to_owned()])));
            assert_eq!(
                described,
                Some(json_text_columns_of(&latest)),
                "as the newest maps them"
            );
            described.expect("described")
        }
        _ => BTreeSet::new(),
    };
    read.rows
        .into_iter()
        .map(|row| {
            let version = row["_schema_version"].as_u64().expect("version") as u32;
            let contract = registry.get("items", version).expect("contract");
            (
                version,
                event_of_row(format, row, contract, &json_text).expect("rebuilt"),
            )
        })
        .collect()
}

#[test]
fn every_format_gives_back_the_events_the_consumer_landed() {
    for format in FileFormat::ALL {
        let events = landed_events(format);
        assert_eq!(events.len(), PAYLOADS.len(), "{format}");
        let registry = registry();
        for ((version, event), (_, payload)) in events.iter().zip(PAYLOADS) {
            let original: Value = serde_json::from_str(payload).expect("json");
            assert_eq!(event, &original, "{format}");
            let contract = registry.get("items", *version).expect("contract");
            assert!(contract.violations(event).is_empty(), "{format}: {event}");
        }
    }
}

#[test]
fn a_parquet_row_missing_a_field_the_contract_requires_is_invalid() {
    let mut stricter = schema();
    stricter["required"] = json!(["id", "coupon", "price"]);
    let contract =
        Contract::from_schema(DatasetName::new("items").expect("valid"), 2, stricter).expect("contract");
    let (_, event) = landed_events(FileFormat::Parquet).remove(2);
    assert_eq!(event, json!({"id": "c", "coupon": "X"}));
    let rebuilt = event_of_row(
        FileFormat::Parquet,
        event.as_object().expect("object").clone(),
        &contract,
        &json_text_columns_of(&contract),
    )
    .expect("rebuilt");
    assert_eq!(contract.violations(&rebuilt).len(), 1, "{rebuilt}");
}

#[test]
fn a_parquet_row_with_a_broken_extra_column_is_an_error() {
    let registry = registry();
    let contract = registry.get("items", 2).expect("contract");
    let row = json!({"id": "a", "coupon": null, "_extra": "{not json"});
    let error = event_of_row(
        FileFormat::Parquet,
        row.as_object().expect("object").clone(),
        contract,
        &json_text_columns_of(contract),
    )
    .expect_err("broken _extra");
    assert!(error.contains("_extra"), "{error}");
}
