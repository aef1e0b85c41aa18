use serde_json::{Value, json};

use crate::contract::Contract;
use crate::names::DatasetName;

fn keyed_by_id() -> Contract {
    let schema = json!({
        "x-streamlake-partition-key": "id", "type": "object", "required": ["id"],
        "properties": {"id": {"type": ["string", "integer"]}}
    });
    Contract::from_schema(DatasetName::new("k").expect("name"), 1, schema).expect("contract")
}

/// The key the full path finds: parse, then `partition_key`.
fn full_path_key(contract: &Contract, payload: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|event| contract.partition_key(&event))
}

/// Asserts both readings agree; returns the key.
fn agreed(contract: &Contract, payload: &[u8]) -> Option<String> {
    let fast = contract.partition_key_from_bytes(payload);
    assert_eq!(
        fast,
        full_path_key(contract, payload),
        "{}",
        String::from_utf8_lossy(payload)
    );
    fast
}

/// Key values as JSON text: strings with escapes, integers at the edges of i64/u64, and non-keys.
const VALUES: [&str; 24] = [
    r#""o-1""#,
    r#""""#,
    r#""a\"b\\c\/d\u00e9\n\t""#,
    r#""\ud83d\ude00 é""#,
    "42",
    "0",
    "-0",
    "-7",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "1.0",
    "4.5",
    "1e3",
    "-1E-2",
    "null",
    "true",
    "false",
    "{}",
    r#"{"id":"inner","x":[1,{"id":2}]}"#,
    r#"[1,"id",{"id":"x"}]"#,
    r#""\ud800""#,
    r#""bad \q escape""#,
];

/// Events around one key value `{v}`: alone, among other fields, escaped field names, repeated, nested.
const LAYOUTS: [&str; 14] = [
    r#"{"id":{v}}"#,
    r#" { "id" : {v} } "#,
    r#"{"a":1,"id":{v},"b":[true,null,{"c":"d"}]}"#,
    r#"{"b":{"id":"nested"},"id":{v}}"#,
    r#"{"i\u0064":{v}}"#,
    r#"{"id ":{v}}"#,
    r#"{"ID":{v}}"#,
    r#"{"id":"first","id":{v}}"#,
    r#"{"id":{v},"id":"last"}"#,
    r#"{"id":{v},"id":7}"#,
    r#"{"id":{v},"id":null}"#,
    r#"{"x":{"id":{v}}}"#,
    r#"{"id":{v}}{}"#,
    r#"[{"id":{v}}]"#,
];

#[test]
fn the_key_read_from_bytes_is_the_key_of_the_parsed_event() {
    let contract = keyed_by_id();
    let mut keyed = 0;
    for layout in LAYOUTS {
        for value in VALUES {
            let event = layout.replace("{v}", value);
            keyed += usize::from(agreed(&contract, event.as_bytes()).is_some());
        }
    }
    // Not vacuous: 9 keying values in 5 plain layouts and 1 repeat, and the 2 layouts repeating a key last.
    assert_eq!(keyed, 9 * 6 + 2 * 22, "events with a key");
}

#[test]
fn strings_are_unescaped_integers_are_decimal_text_and_the_last_repeat_counts() {
    let contract = keyed_by_id();
    let key = |text: &str| agreed(&contract, text.as_bytes());
    assert_eq!(key(r#"{"id":"a\"b\u00e9"}"#).as_deref(), Some("a\"bé"));
    assert_eq!(
        key(r#"{"i\u0064":"escaped name"}"#).as_deref(),
        Some("escaped name")
    );
    assert_eq!(
        key(r#"{"id":18446744073709551615}"#).as_deref(),
        Some("18446744073709551615")
    );
    assert_eq!(
        key(r#"{"id":-9223372036854775808}"#).as_deref(),
        Some("-9223372036854775808")
    );
    assert_eq!(key(r#"{"id":"first","id":12}"#).as_deref(), Some("12"));
    assert_eq!(key(r#"{"id":"first","id":null}"#), None);
    for none in [
        r#"{"id":4.0}"#,
        r#"{"id":18446744073709551616}"#,
        r#"{"id":null}"#,
        r#"{"x":{"id":"nested"}}"#,
        r#"{}"#,
        r#"["id"]"#,
        r#""id""#,
        r#"{"id":"a"} trailing"#,
        r#"{"id":"a""#,
        "",
    ] {
        assert_eq!(key(none), None, "{none}");
    }
}

#[test]
fn a_payload_the_full_path_cannot_parse_has_no_key() {
    let contract = keyed_by_id();
    for payload in [
        &br#"{"id":"a","other":"\ud800"}"#[..],
        b"{\"id\":\"a\",\"other\":\"\xff\"}",
        b"{\"id\":\"a\",\"\xc3\":1}",
        br#"{"id":"a","other":[1,{"x":"\udc00"}]}"#,
        br#"{"id":"a","other":01}"#,
    ] {
        assert_eq!(contract.partition_key_from_bytes(payload), None);
        assert!(serde_json::from_slice::<Value>(payload).is_err());
    }
}

#[test]
fn the_shipped_orders_contract_keys_by_order_id() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../contracts/orders.v1.json");
    let schema = serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("json");
    let orders =
        Contract::from_schema(DatasetName::new("orders").expect("name"), 1, schema).expect("compiles");
    let order = json!({
        "order_id": "o-\u{e9}\"1", "customer_id": "c-9",
        "line_items": [{"sku": "order_id", "quantity": 2, "unit_price": "9.99"}],
        "amount": "19.98", "currency": "EUR", "created_at": "2026-11-22T10:00:00Z"
    });
    let bytes = serde_json::to_vec(&order).expect("json");
    assert_eq!(agreed(&orders, &bytes).as_deref(), Some("o-é\"1"));
}
