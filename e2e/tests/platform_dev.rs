//! The platform `dev/up` deploys really runs: an order sent to the deployed ingest API (STREAMLAKE_API_URL)
//! is landed by the deployed `orders` consumer in the raw zone its configuration names (a host directory or
//! the emulator's bucket), in a data file whose name carries the acknowledged partition and offset; an invalid
//! order is refused with its violations.

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

/// Where the deployed consumer writes: its live `streamlake-config` ConfigMap's STREAMLAKE_RAW_ZONE.
fn deployed_raw_zone() -> String {
    let kubectl = |args: &[&str]| -> String {
        let state = require_env("STREAMLAKE_STATE");
        let out = std::process::Command::new(std::path::Path::new(&state).join("bin/kubectl"))
            .args(["-n", "streamlake"])
            .args(args)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let sources = kubectl(&[
        "get",
        "deployment/streamlake-consumer-orders",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].envFrom[*].configMapRef.name}",
    ]);
    let config = sources
        .split_whitespace()
        .find(|n| n.starts_with("streamlake-config-"))
        .expect("the deployed consumer reads streamlake-config (run dev/up)")
        .to_owned();
    kubectl(&[
        "get",
        &format!("configmap/{config}"),
        "-o",
        "jsonpath={.data.STREAMLAKE_RAW_ZONE}",
    ])
}

/// The orders raw zone of a file:// or gs:// (emulator) location: its data files, and reading one.
#[derive(Debug)]
enum RawZone {
    Local(std::path::PathBuf),
    Emulator {
        endpoint: String,
        bucket: String,
        prefix: String,
    },
}

impl RawZone {
    fn at(location: &str) -> Self {
        if let Some(path) = location.strip_prefix("file://") {
            return RawZone::Local(path.into());
        }
        let rest = location
            .strip_prefix("gs://")
            .expect("a file:// or gs:// raw zone");
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", prefix.trim_end_matches('/'))
        };
        let endpoint = require_env("STORAGE_EMULATOR_HOST");
        RawZone::Emulator {
            endpoint,
            bucket: bucket.to_owned(),
            prefix,
        }
    }

    /// Data files (not `_metadata.json`) under raw/dataset=orders/, as paths relative to the zone.
    async fn data_files(&self, http: &reqwest::Client) -> Vec<String> {
        let dataset = "raw/dataset=orders/";
        let mut names = Vec::new();
        match self {
            RawZone::Local(root) => {
                for day in std::fs::read_dir(root.join(dataset))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    for file in std::fs::read_dir(day.path()).into_iter().flatten().flatten() {
                        let name = format!(
                            "{dataset}{}/{}",
                            day.file_name().to_string_lossy(),
                            file.file_name().to_string_lossy()
                        );
                        names.push(name);
                    }
                }
            }
            RawZone::Emulator {
                endpoint,
                bucket,
                prefix,
            } => {
                let mut page: Option<String> = None;
                loop {
                    let mut query = vec![("prefix", format!("{prefix}{dataset}"))];
                    if let Some(token) = &page {
                        query.push(("pageToken", token.clone()));
                    }
                    let url = format!("{endpoint}/storage/v1/b/{bucket}/o");
                    let Ok(answer) = http.get(url).query(&query).send().await else {
                        break;
                    };
                    let Ok(listing) = answer.json::<Value>().await else {
                        break;
                    };
                    for item in listing["items"].as_array().into_iter().flatten() {
                        if let Some(name) = item["name"]
                            .as_str()
                            .and_then(|n| n.strip_prefix(prefix.as_str()))
                        {
                            names.push(name.to_owned());
                        }
                    }
                    match listing["nextPageToken"].as_str() {
                        Some(token) => page = Some(token.to_owned()),
                        None => break,
                    }
                }
            }
        }
        names.retain(|n| !n.ends_with("/_metadata.json"));
        names
    }

    async fn read(&self, http: &reqwest::Client, name: &str) -> Option<String> {
        match self {
            RawZone::Local(root) => std::fs::read_to_string(root.join(name)).ok(),
            RawZone::Emulator {
                endpoint,
                bucket,
                prefix,
            } => {
                let encoded = format!("{prefix}{name}").replace('/', "%2F");
                let url = format!("{endpoint}/storage/v1/b/{bucket}/o/{encoded}?alt=media");
                http.get(url).send().await.ok()?.text().await.ok()
            }
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
    let zone = RawZone::at(&deployed_raw_zone());
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
            for file in zone.data_files(&http).await {
                let Some((p, first, last)) = lineage(&file) else {
                    continue;
                };
                if p != partition || !(first..=last).contains(&offset) {
                    continue;
                }
                if zone
                    .read(&http, &file)
                    .await
                    .is_some_and(|text| text.contains(&order_id))
                {
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
