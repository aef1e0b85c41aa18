use axum::http::HeaderValue;
use serde_json::json;
use streamlake_core::names::DatasetName;

use super::*;

fn orders() -> Contract {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../contracts/orders.v1.json");
    let schema = serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("json");
    Contract::from_schema(DatasetName::new("orders").expect("name"), 1, schema).expect("compiles")
}

fn order(id: &str) -> String {
    json!({
        "order_id": id, "customer_id": "c-1",
        "line_items": [{"sku": "s", "quantity": 1, "unit_price": "1.50"}],
        "amount": "1.50", "currency": "USD", "created_at": "2026-11-22T10:00:00Z"
    })
    .to_string()
}

#[test]
fn idempotency_keys_give_the_same_event_id_per_dataset_and_position() {
    let a = event_id("orders", Some("k1"), None);
    assert_eq!(a, event_id("orders", Some("k1"), None));
    assert_eq!(a.get_version_num(), 5);
    assert_ne!(a, event_id("payments", Some("k1"), None));
    assert_ne!(a, event_id("orders", Some("k2"), None));
    assert_ne!(
        event_id("orders", Some("k1"), Some(0)),
        event_id("orders", Some("k1"), Some(1))
    );
    let fresh = event_id("orders", None, None);
    assert_eq!(fresh.get_version_num(), 7);
    assert_ne!(fresh, event_id("orders", None, None));
}

#[test]
fn a_pinned_schema_version_is_a_positive_integer_without_leading_zeros() {
    let mut headers = HeaderMap::new();
    assert_eq!(schema_version(&headers).expect("absent"), None);
    for (text, expected) in [("1", 1), (" 12 ", 12), ("999999999", 999_999_999)] {
        headers.insert(SCHEMA_VERSION_HEADER, HeaderValue::from_str(text).expect("ascii"));
        assert_eq!(schema_version(&headers).expect(text), Some(expected));
    }
    for text in ["0", "007", "+1", "1e3", "v1", "", "1000000000"] {
        headers.insert(SCHEMA_VERSION_HEADER, HeaderValue::from_str(text).expect("ascii"));
        assert!(
            matches!(schema_version(&headers), Err(ApiError::InvalidHeader { .. })),
            "{text:?} is refused"
        );
    }
}

#[test]
fn client_headers_are_checked() {
    let mut headers = HeaderMap::new();
    assert_eq!(source(&headers, "dflt").expect("default"), "dflt");
    assert_eq!(idempotency_key(&headers).expect("absent"), None);
    headers.insert(SOURCE_HEADER, HeaderValue::from_static("checkout-service"));
    headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static(" abc-123 "));
    assert_eq!(source(&headers, "dflt").expect("given"), "checkout-service");
    assert_eq!(idempotency_key(&headers).expect("given"), Some("abc-123"));
    headers.insert(
        IDEMPOTENCY_KEY,
        HeaderValue::from_str(&"x".repeat(257)).expect("ascii"),
    );
    assert!(matches!(
        idempotency_key(&headers),
        Err(ApiError::InvalidHeader { .. })
    ));
    headers.insert(
        IDEMPOTENCY_KEY,
        HeaderValue::from_bytes(b"caf\xc3\xa9").expect("opaque bytes"),
    );
    assert!(matches!(
        idempotency_key(&headers),
        Err(ApiError::InvalidHeader { .. })
    ));
    headers.insert(SOURCE_HEADER, HeaderValue::from_static("   "));
    assert!(matches!(
        source(&headers, "d"),
        Err(ApiError::InvalidHeader { .. })
    ));
}

#[test]
fn a_batch_is_a_json_array_or_ndjson_and_keeps_original_bytes() {
    let array = br#" [ {"a": 1},  {"b" : [2]} ]"#;
    assert_eq!(
        split_batch(array, None).expect("array"),
        vec![&br#"{"a": 1}"#[..], br#"{"b" : [2]}"#]
    );
    let ndjson = b"{\"a\":1}\r\n\n  \n{\"b\":2}\nnot json";
    let lines = split_batch(ndjson, Some("application/x-ndjson; charset=utf-8")).expect("ndjson");
    assert_eq!(lines, vec![&b"{\"a\":1}"[..], b"{\"b\":2}", b"not json"]);
    assert_eq!(
        split_batch(b"{\"a\":1}\n{\"b\":2}", None).expect("sniffed").len(),
        2
    );
    assert_eq!(
        split_batch(b"[1]\n[2]", Some("application/x-ndjson"))
            .expect("forced")
            .len(),
        2
    );
    assert!(matches!(
        split_batch(b"[{\"a\":1},", None),
        Err(ApiError::InvalidJson { .. })
    ));
    assert!(split_batch(b" \n ", None).expect("blank").is_empty());
    let object_as_json = split_batch(b"{\"a\":1}", Some("application/json"));
    assert!(
        matches!(object_as_json, Err(ApiError::InvalidJson { .. })),
        "JSON batches are arrays"
    );
}

#[test]
fn check_returns_the_key_or_the_reason() {
    let contract = orders();
    assert_eq!(check(&contract, order("o-7").as_bytes()), Ok("o-7".to_owned()));

    let not_json = check(&contract, b"{oops").expect_err("not json");
    assert_eq!(not_json.error_type, "invalid_json");

    let mut bad: Value = serde_json::from_str(&order("o-8")).expect("json");
    bad["amount"] = json!(12.5);
    let rejected = check(&contract, bad.to_string().as_bytes()).expect_err("violation");
    assert_eq!(rejected.error_type, "contract_violation");
    assert_eq!(
        rejected.key.as_deref(),
        Some("o-8"),
        "the DLQ record keeps the key"
    );
    assert_eq!(rejected.violations.len(), 1);
    assert_eq!(rejected.violations[0].pointer, "/amount");
    assert!(rejected.message.contains("/amount"), "{}", rejected.message);
}

#[test]
fn valid_events_take_the_fast_path_and_every_event_gets_the_full_paths_answer() {
    let contract = orders();
    let valid = order("o-\u{e9}\"9");
    assert!(
        contract.certainly_valid(valid.as_bytes(), &[]),
        "a plain valid order takes the fast path"
    );
    let with = |pointer: &str, value: Value| {
        let mut event: Value = serde_json::from_str(&order("o-1")).expect("json");
        *event.pointer_mut(pointer).expect("field") = value;
        event.to_string().into_bytes()
    };
    let events = [
        valid.clone().into_bytes(),
        format!(" \n{valid}\r\n ").into_bytes(),
        with("/order_id", json!("a\\b\u{1F600}")),
        with("/order_id", json!(42)),
        with("/order_id", json!(null)),
        with("/amount", json!(12.5)),
        with("/line_items/0/quantity", json!(2.0)),
        valid.replacen("{", r#"{"order_id":"dup","#, 1).into_bytes(),
        valid
            .replacen("\"order_id\"", "\"order\\u005fid\"", 1)
            .into_bytes(),
        valid.replacen("\"c-1\"", "\"\\ud800\"", 1).into_bytes(),
        valid.replacen("\"c-1\"", "\"c-\u{7f}\"", 1).into_bytes(),
        format!("{valid} {valid}").into_bytes(),
        b"[1]".to_vec(),
        b"{oops".to_vec(),
    ];
    for event in &events {
        assert_eq!(
            check(&contract, event),
            check_in_full(&contract, event),
            "{}",
            String::from_utf8_lossy(event)
        );
    }
    assert_eq!(check(&contract, valid.as_bytes()), Ok("o-\u{e9}\"9".to_owned()));
}
