//! The benchmark's records: valid orders of about 1 KiB, the same bytes for the API and the perf test.

use serde_json::{Value, json};

/// An order whose JSON is close to `target` bytes (line items added until it is reached).
pub fn order(n: u64, target: usize) -> String {
    let mut items: Vec<Value> = Vec::new();
    let mut event = build(n, &items);
    while event.len() < target {
        let i = items.len();
        items.push(json!({"sku": format!("sku-{n:08}-{i:04}-abcdefghijklmnop"), "quantity": i + 1, "unit_price": "12.345"}));
        event = build(n, &items);
    }
    event
}

fn build(n: u64, items: &[Value]) -> String {
    let items = if items.is_empty() {
        vec![json!({"sku": "sku-0", "quantity": 1, "unit_price": "1.00"})]
    } else {
        items.to_vec()
    };
    json!({
        "order_id": format!("bench-order-{n:012}"),
        "customer_id": format!("customer-{:06}", n % 100_000),
        "line_items": items,
        "amount": "1234.56",
        "currency": "EUR",
        "created_at": "2026-11-22T10:00:00.000Z"
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn orders_are_about_the_target_size_and_distinct() {
        let a = super::order(1, 1024);
        assert!((1024..1200).contains(&a.len()), "{}", a.len());
        assert_ne!(a, super::order(2, 1024));
    }
}
