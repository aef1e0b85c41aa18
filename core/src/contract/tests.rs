use serde_json::json;

use super::*;

fn orders_schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/orders.v1.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("orders.v1.json readable")).expect("json")
}

fn orders() -> Contract {
    Contract::from_schema(DatasetName::new("orders").expect("name"), 1, orders_schema()).expect("compiles")
}

fn valid_order() -> Value {
    json!({
        "order_id": "o-1", "customer_id": "c-9",
        "line_items": [{"sku": "sku-1", "quantity": 2, "unit_price": "9.99"}],
        "amount": "19.98", "currency": "EUR", "created_at": "2026-11-22T10:00:00Z"
    })
}

#[test]
fn a_valid_order_has_no_violations_and_is_keyed_by_order_id() {
    let contract = orders();
    assert_eq!(contract.violations(&valid_order()), vec![]);
    assert_eq!(contract.partition_key_field(), "order_id");
    assert_eq!(contract.partition_key(&valid_order()).as_deref(), Some("o-1"));
}

#[test]
fn every_violation_is_reported_with_its_pointer() {
    let mut order = valid_order();
    order["line_items"][0]["quantity"] = json!(0);
    order["currency"] = json!("euro");
    order["created_at"] = json!("yesterday");
    order.as_object_mut().expect("object").remove("customer_id");
    let violations = orders().violations(&order);
    let found: Vec<(&str, &str)> = violations
        .iter()
        .map(|v| (v.pointer.as_str(), v.keyword.as_str()))
        .collect();
    for expected in [
        ("", "required"),
        ("/line_items/0/quantity", "minimum"),
        ("/currency", "pattern"),
        ("/created_at", "format"),
    ] {
        assert!(found.contains(&expected), "missing {expected:?} in {found:?}");
    }
    assert_eq!(violations.len(), 4, "{violations:?}");
    assert!(violations.iter().any(|v| v.message.contains("customer_id")));
}

#[test]
fn a_non_object_event_is_a_type_violation() {
    let violations = orders().violations(&json!([1, 2]));
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].keyword, "type");
    assert_eq!(violations[0].pointer, "");
}

#[test]
fn integer_keys_become_text_and_other_values_no_key() {
    let schema = json!({
        "x-streamlake-partition-key": "id", "type": "object", "required": ["id"],
        "properties": {"id": {"type": ["integer", "string"]}}
    });
    let c = Contract::from_schema(DatasetName::new("n").expect("name"), 1, schema).expect("compiles");
    assert_eq!(c.partition_key(&json!({"id": 42})).as_deref(), Some("42"));
    assert_eq!(c.partition_key(&json!({"id": 4.5})), None);
    assert_eq!(c.partition_key(&json!({})), None);
}

#[test]
fn a_contract_without_a_usable_partition_key_is_refused() {
    let ds = || DatasetName::new("x").expect("name");
    let cases = [
        json!({"type": "object"}),
        json!({"x-streamlake-partition-key": "id", "type": "object", "properties": {"id": {"type": "string"}}}),
        json!({"x-streamlake-partition-key": "id", "required": ["id"], "properties": {"id": {"type": "object"}}}),
        json!({"x-streamlake-partition-key": "id", "required": ["id"]}),
    ];
    for schema in cases {
        let err = Contract::from_schema(ds(), 1, schema.clone()).expect_err("must be refused");
        assert!(
            matches!(err, ContractError::PartitionKey { .. }),
            "{schema}: {err}"
        );
    }
}

#[test]
fn an_invalid_schema_is_refused() {
    let schema = json!({"x-streamlake-partition-key": "id", "type": "not-a-type"});
    let err = Contract::from_schema(DatasetName::new("x").expect("name"), 1, schema).expect_err("invalid");
    assert!(matches!(err, ContractError::InvalidSchema { .. }), "{err}");
}

#[test]
fn file_names_carry_dataset_and_version() {
    assert_eq!(parse_file_name("orders.v1.json"), Some(("orders", 1)));
    assert_eq!(
        parse_file_name("click-stream.v12.json"),
        Some(("click-stream", 12))
    );
    for bad in [
        "orders.json",
        "orders.v0.json",
        "orders.vx.json",
        ".v1.json",
        "orders.v1.yaml",
    ] {
        assert_eq!(parse_file_name(bad), None, "{bad}");
    }
}

#[test]
fn the_registry_loads_the_shipped_contracts_and_picks_the_latest_version() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts");
    let mut registry = ContractRegistry::load_dir(&dir).expect("shipped contracts load");
    assert_eq!(registry.latest("orders").map(|c| c.version()), Some(1));
    let mut v2 = orders_schema();
    v2["required"] = json!(["order_id"]);
    let orders = DatasetName::new("orders").expect("name");
    registry
        .insert(Contract::from_schema(orders.clone(), 2, v2).expect("v2"))
        .expect("insert v2");
    assert_eq!(registry.latest("orders").map(|c| c.version()), Some(2));
    assert_eq!(registry.get("orders", 1).map(|c| c.version()), Some(1));
    assert!(registry.latest("unknown").is_none());
    let again = Contract::from_schema(orders, 2, orders_schema()).expect("compiles");
    assert!(matches!(
        registry.insert(again),
        Err(ContractError::Duplicate { .. })
    ));
}

#[test]
fn a_misnamed_json_file_in_the_contracts_dir_is_an_error() {
    let dir = std::env::temp_dir().join(format!("sl-contracts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    std::fs::write(dir.join("orders.json"), "{}").expect("write");
    let err = ContractRegistry::load_dir(&dir).expect_err("misnamed");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert!(matches!(err, ContractError::FileName { .. }), "{err}");
}
