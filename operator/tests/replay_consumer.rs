//! The whole replay with the real consumer: records land in a local raw zone through a two-replica
//! consumer Deployment on the process kubelet; a Replay from a timestamp stops the consumers (SIGTERM,
//! drain, commit), resets the group, starts them again; they re-read the records and the raw zone still
//! holds every (partition, offset) exactly once; the Replay ends Succeeded at 100%.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::ResourceExt;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use streamlake_core::headers::RecordMetadata;
use streamlake_core::names::DatasetName;
use streamlake_core::rawzone::{DatePartitionMetadata, IngestionDate, RawZoneLayout};
use streamlake_operator::crd::ReplayPhase;
use streamlake_testkit::{require_env, wait_until};

use common::dataset::TestDataset;
use common::kafka;
use common::*;

const PARTITIONS: i32 = 3;
const RECORDS: i64 = 300;
/// 2025-01-02T10:00:00Z: record i has this timestamp plus i seconds, all on one ingestion date.
const BASE_MS: i64 = 1_735_812_000_000;

/// A valid `orders` event (contracts/orders.v1.json).
fn order(i: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "order_id": format!("o-{i}"),
        "customer_id": format!("c-{}", i % 97),
        "line_items": [{"sku": "sku-1", "quantity": 1 + i % 5, "unit_price": "9.99"}],
        "amount": "9.99",
        "currency": "EUR",
        "created_at": "2025-01-02T10:00:00Z",
    }))
    .expect("json")
}

/// Record i goes to partition i % 3 with timestamp BASE + i s and the headers the ingest API sets.
async fn produce_orders(topic: &str) {
    let producer: FutureProducer = kafka::config().set("acks", "all").create().expect("producer");
    for i in 0..RECORDS {
        let headers = RecordMetadata {
            event_id: uuid_like(i),
            schema_version: 1,
            ingested_at: chrono::Utc::now(),
            source: "operator-tests".into(),
            content_type: "application/json".into(),
        }
        .to_headers();
        let payload = order(i);
        let key = format!("o-{i}");
        let partition = i32::try_from(i % i64::from(PARTITIONS)).expect("small");
        let record = FutureRecord::to(topic)
            .partition(partition)
            .key(&key)
            .payload(&payload)
            .timestamp(BASE_MS + i * 1000)
            .headers(headers);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("delivered");
    }
}

fn uuid_like(i: i64) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x5157_0000_0000_4000_8000_0000_0000_0000 | u128::try_from(i).expect("positive"))
}

/// Every (partition, offset) the raw zone holds for the date, from `_metadata.json` and the files it lists.
fn landed(lake: &Path, dataset: &DatasetName) -> (Vec<(i64, i64)>, usize) {
    let layout = RawZoneLayout::new(dataset.clone());
    let date = IngestionDate::from_timestamp_millis(BASE_MS).expect("date");
    let dir = lake.join(layout.date_prefix(date));
    let Ok(text) = std::fs::read(dir.join("_metadata.json")) else {
        return (Vec::new(), 0);
    };
    let metadata: DatePartitionMetadata = serde_json::from_slice(&text).expect("_metadata.json");
    assert!(
        metadata.problems().is_empty(),
        "unsound metadata: {:?}",
        metadata.problems()
    );
    let mut rows = Vec::new();
    for file in &metadata.files {
        let data = std::fs::read_to_string(dir.join(&file.path)).expect("listed file exists");
        for line in data.lines().filter(|l| !l.is_empty()) {
            let row: serde_json::Value = serde_json::from_str(line).expect("a JSON row");
            rows.push((
                row["_partition"].as_i64().expect("_partition"),
                row["_offset"].as_i64().expect("_offset"),
            ));
        }
    }
    rows.extend(metadata.dlq.iter().map(|d| (i64::from(d.partition), d.offset)));
    (rows, metadata.files.len())
}

fn assert_exactly_once(rows: &[(i64, i64)]) {
    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for r in rows {
        *seen.entry(*r).or_default() += 1;
    }
    let doubles: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(doubles.is_empty(), "records landed more than once: {doubles:?}");
    let expected: BTreeSet<(i64, i64)> = (0..i64::from(PARTITIONS))
        .flat_map(|p| (0..RECORDS / i64::from(PARTITIONS)).map(move |o| (p, o)))
        .collect();
    let got: BTreeSet<(i64, i64)> = seen.keys().copied().collect();
    assert_eq!(got, expected, "every record landed, nothing else");
}

fn pod_logs(ns: &str, uid: &str) -> String {
    let state = PathBuf::from(require_env("KUBECONFIG"))
        .parent()
        .expect("state dir")
        .join("pods");
    let dir = std::fs::read_dir(&state)
        .expect("pod dirs")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(ns) && n.ends_with(uid))
        });
    dir.and_then(|d| std::fs::read_to_string(d.join("consumer.log")).ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_from_a_timestamp_rereads_through_the_real_consumer_without_duplicates() {
    let test = TestDataset::create("replay-consumer", "orders").await;
    let (topic, group) = (test.name.raw_topic(), test.name.consumer_group());
    kafka::create_topic(&topic, PARTITIONS).await;
    kafka::create_topic(&test.name.dlq_topic(), 1).await;
    produce_orders(&topic).await;

    let drain = json!({"name": "STREAMLAKE_DRAIN_TIMEOUT", "value": "20s"});
    let consumer = test.consumer(2, &[drain]);
    let name = consumer.name_any();
    create_deployment(&test.ns, &consumer).await;
    wait_replicas(&test.ns, &name, 2, Duration::from_secs(120)).await;
    let ends: BTreeMap<i32, i64> = (0..PARTITIONS)
        .map(|p| (p, RECORDS / i64::from(PARTITIONS)))
        .collect();
    wait_until(
        "the consumers landed and committed every record",
        Duration::from_secs(180),
        || async { kafka::committed(&group, &topic).await == ends },
    )
    .await;
    let (before, files_before) = landed(&test.lake, &test.name);
    assert_exactly_once(&before);
    let old_pods = pod_uids(&test.ns, &name).await;

    let operator = Operator::start(&test.kubeconfig, &test.ns.name, "operator");
    let from = k8s_openapi::jiff::Timestamp::from_millisecond(BASE_MS + 150_000)
        .expect("ts")
        .to_string();
    create_replay(
        &test.ns,
        "since-10-02-30",
        json!({"dataset": test.dataset, "from": {"timestamp": from}}),
    )
    .await;
    let done = wait_phase(
        &test.ns,
        "since-10-02-30",
        ReplayPhase::Succeeded,
        Duration::from_secs(240),
    )
    .await;

    let status = done.status.expect("status");
    // Records 150.. (i = 3k + p): offset 50 on every partition.
    assert_eq!(
        plan_rows(&status),
        (0..PARTITIONS)
            .map(|p| (p, Some(100), 50, 100))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        (status.progress.as_deref(), status.records_replayed),
        (Some("100%"), Some(150))
    );
    assert_eq!(
        kafka::cli_offsets(&group),
        ends,
        "kafka-consumer-groups: the group is back at the end"
    );

    // The consumers were stopped the Kubernetes way (SIGTERM, drain, commit) and started again.
    wait_replicas(&test.ns, &name, 2, Duration::from_secs(60)).await;
    let new_pods = pod_uids(&test.ns, &name).await;
    for uid in &old_pods {
        assert!(!new_pods.contains(uid), "pod {uid} was replaced");
        let log = pod_logs(&test.ns.name, uid);
        assert!(
            log.contains("SIGTERM: draining and committing") && log.contains("stopped"),
            "pod {uid}: {log}"
        );
    }
    // They re-read the 150 records since the timestamp, and the raw zone still has each record once.
    let (after, files_after) = landed(&test.lake, &test.name);
    assert_exactly_once(&after);
    assert_eq!(
        files_after, files_before,
        "the re-read wrote no new file (every record was already landed)"
    );
    let table = kubectl(&["get", "replays", "-n", &test.ns.name]);
    assert!(
        table
            .lines()
            .any(|l| l.contains("since-10-02-30") && l.contains("Succeeded") && l.contains("100%"))
    );
    println!("{table}");

    remove_replays(&test.ns).await;
    drop(operator);
    test.ns.delete().await;
}
