//! The platform `dev/up` deploys really runs: an order sent to the deployed ingest API (STREAMLAKE_API_URL)
//! is landed by the deployed `orders` consumer in the raw zone (the emulator's bucket), in a data file whose
//! name carries the acknowledged partition and offset; an invalid order is refused with its violations.

use std::time::Duration;

use serde_json::{Value, json};
use streamlake_testkit::{http_client, require_env, unique_name, wait_until};

fn order(order_id: &str) -> Value {
    json!({
        "order_id": order_id,
        "customer_id": "customer-deploy-test",
        "line_items": [{"sku": "sku-1", "quantity": 2, "unit_price": "3.50"}],
        "amount": "7.00",
        "currency": "EUR",
        "created_at": "2026-01-02T03:04:05Z"
    })
}

/// Data files (not `_metadata.json`) of the orders raw zone, with every page of the listing.
async fn raw_zone_files(http: &reqwest::Client, emulator: &str, bucket: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let mut query = vec![("prefix", "raw/dataset=orders/".to_owned())];
        if let Some(token) = &page {
            query.push(("pageToken", token.clone()));
        }
        let Ok(answer) = http
            .get(format!("{emulator}/storage/v1/b/{bucket}/o"))
            .query(&query)
            .send()
            .await
        else {
            return names;
        };
        let Ok(listing) = answer.json::<Value>().await else {
            return names;
        };
        for item in listing["items"].as_array().into_iter().flatten() {
            if let Some(name) = item["name"].as_str().filter(|n| !n.ends_with("/_metadata.json")) {
                names.push(name.to_owned());
            }
        }
        match listing["nextPageToken"].as_str() {
            Some(token) => page = Some(token.to_owned()),
            None => return names,
        }
    }
}

/// `p<partition>-o<first>-o<last>-<hash>.<ext>` → (partition, first, last).
fn lineage(file: &str) -> Option<(u64, u64, u64)> {
    let base = file.rsplit('/').next()?;
    let mut parts = base.split('-');
    let partition = parts.next()?.strip_prefix('p')?.parse().ok()?;
    let first = parts.next()?.strip_prefix('o')?.parse().ok()?;
    let last = parts.next()?.strip_prefix('o')?.parse().ok()?;
    Some((partition, first, last))
}

#[tokio::test]
async fn an_order_sent_to_the_deployed_api_lands_in_the_raw_zone() {
    let api = require_env("STREAMLAKE_API_URL");
    let emulator = require_env("STORAGE_EMULATOR_HOST");
    let bucket = require_env("STREAMLAKE_GCS_BUCKET");
    let http = http_client();
    let order_id = unique_name("deploy-order");

    let answer = http
        .post(format!("{api}/ingest/orders"))
        .json(&order(&order_id))
        .send()
        .await;
    let ack: Value = answer
        .expect("the deployed ingest API answers (dev/platform/up records its pod address)")
        .error_for_status()
        .expect("a valid order is accepted")
        .json()
        .await
        .expect("a JSON acknowledgement");
    assert_eq!(ack["topic"], "streamlake.orders.raw");
    let partition = ack["partition"].as_u64().expect("partition");
    let offset = ack["offset"].as_u64().expect("offset");

    let found = std::sync::Mutex::new(None);
    wait_until(
        "the deployed consumer lands the order in the raw zone",
        Duration::from_secs(90),
        || async {
            for file in raw_zone_files(&http, &emulator, &bucket).await {
                let Some((p, first, last)) = lineage(&file) else {
                    continue;
                };
                if p != partition || !(first..=last).contains(&offset) {
                    continue;
                }
                let encoded = file.replace('/', "%2F");
                let url = format!("{emulator}/storage/v1/b/{bucket}/o/{encoded}?alt=media");
                let Ok(body) = http.get(url).send().await else {
                    continue;
                };
                if body.text().await.is_ok_and(|text| text.contains(&order_id)) {
                    *found.lock().expect("lock") = Some(file);
                    return true;
                }
            }
            false
        },
    )
    .await;
    let file = found.lock().expect("lock").clone().expect("a file");
    assert!(
        file.starts_with("raw/dataset=orders/ingestion_date="),
        "landed at {file}"
    );
}

#[tokio::test]
async fn the_deployed_api_refuses_an_invalid_order_with_its_violations() {
    let api = require_env("STREAMLAKE_API_URL");
    let mut invalid = order(&unique_name("deploy-invalid"));
    invalid["currency"] = json!("euros");
    let answer = http_client()
        .post(format!("{api}/ingest/orders"))
        .json(&invalid)
        .send()
        .await
        .expect("the deployed ingest API answers");
    assert_eq!(answer.status().as_u16(), 422);
    let body: Value = answer.json().await.expect("a JSON error");
    let violations = body["error"]["violations"].to_string();
    assert!(
        violations.contains("/currency"),
        "the violation names /currency: {body}"
    );
}
