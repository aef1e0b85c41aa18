//! DqCheck against the real API server and broker: the operator (on its ServiceAccount token) checks a
//! local raw zone written with core's raw-zone writer from records really produced to Kafka, against
//! the group's really committed offsets.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use streamlake_consumer::classify::Classifier;
use streamlake_consumer::encode::Encoder;
use streamlake_consumer::record::SourceRecord;
use streamlake_core::contract::ContractRegistry;
use streamlake_core::headers;
use streamlake_core::names::DatasetName;
use streamlake_core::rawzone::store::{GcsOptions, LocalStore};
use streamlake_core::rawzone::{
    CommitOutcome, DataFileName, FileEntry, FileFormat, IngestionDate, Landing, RawZoneLayout, RawZoneStore,
    StoreLocation, commit_landing, file_checksum, load_metadata,
};
use streamlake_operator::crd::DqCheck;
use streamlake_operator::crd::dq_check::{CheckResult, DqCheckPhase, DqCheckStatus};
use streamlake_testkit::{require_env, unique_name};

use common::dataset::TestDataset;
use common::{Operator, TestNamespace, kafka, message_says};

const DAY: &str = "2026-11-01";
const PER_PARTITION: i64 = 20;

fn order(id: &str) -> Value {
    json!({
        "order_id": id, "customer_id": "c-1",
        "line_items": [{"sku": "sku-1", "quantity": 2, "unit_price": "1.25"}],
        "amount": "2.50", "currency": "EUR", "created_at": "2026-11-01T10:00:00Z"
    })
}

/// Produces `PER_PARTITION` orders to each of two partitions on `DAY`, and returns per partition the
/// (offset, timestamp ms, order) of each.
async fn produce(topic: &str) -> BTreeMap<i32, Vec<(i64, i64, Value)>> {
    let producer: FutureProducer = kafka::config().set("acks", "all").create().expect("producer");
    let base: DateTime<Utc> = format!("{DAY}T10:00:00Z").parse().expect("time");
    let mut produced: BTreeMap<i32, Vec<(i64, i64, Value)>> = BTreeMap::new();
    for p in 0..2 {
        for i in 0..PER_PARTITION {
            let id = format!("o-{p}-{i}");
            let payload = order(&id).to_string();
            let ts = base.timestamp_millis() + i * 1000;
            let record = FutureRecord::to(topic)
                .partition(p)
                .key(&id)
                .payload(&payload)
                .timestamp(ts);
            let delivered = producer
                .send(record, Duration::from_secs(10))
                .await
                .expect("delivered");
            produced
                .entry(p)
                .or_default()
                .push((delivered.offset, ts, order(&id)));
        }
    }
    produced
}

/// Lands records the way the consumer does: a JSON-lines file named by its lineage, then the index.
async fn land(store: &RawZoneStore, layout: &RawZoneLayout, partition: i32, rows: &[(i64, i64, Value)]) {
    let date: IngestionDate = DAY.parse().expect("date");
    let mut body = Vec::new();
    for (offset, ts, row) in rows {
        let mut line = json!({
            "_partition": partition, "_offset": offset,
            "_timestamp": DateTime::from_timestamp_millis(*ts).expect("ts").to_rfc3339(),
            "_key": row["order_id"], "_event_id": format!("e-{partition}-{offset}"), "_schema_version": 1,
        });
        for (k, v) in row.as_object().expect("object") {
            line[k] = v.clone();
        }
        body.extend(serde_json::to_vec(&line).expect("json"));
        body.push(b'\n');
    }
    let checksum = file_checksum(&body);
    let (first, last) = (rows[0].0, rows[rows.len() - 1].0);
    let name = DataFileName::new(partition, first, last, &checksum, FileFormat::Jsonl);
    let entry = FileEntry {
        path: name.to_string(),
        partition,
        first_offset: first,
        last_offset: last,
        record_count: rows.len() as u64,
        bytes: body.len() as u64,
        checksum,
        format: FileFormat::Jsonl,
        schema_versions: vec![1],
        min_timestamp: DateTime::from_timestamp_millis(rows[0].1).expect("ts"),
        max_timestamp: DateTime::from_timestamp_millis(rows[rows.len() - 1].1).expect("ts"),
        writer_version: "operator-tests/dqcheck".into(),
        written_at: Utc::now(),
    };
    store
        .put_immutable(
            &layout.data_file_key(date, &entry.path),
            body.into(),
            "application/x-ndjson",
        )
        .await
        .expect("data file written");
    let mut snapshot = load_metadata(store, layout, date).await.expect("metadata");
    let landing = Landing {
        files: vec![entry],
        dlq: vec![],
    };
    let outcome = commit_landing(store, layout, &mut snapshot, &landing)
        .await
        .expect("metadata committed");
    assert!(matches!(outcome, CommitOutcome::Committed { .. }), "{outcome:?}");
}

/// Lands records with the consumer's own encoder in `format` (Parquet, compressed JSON lines), then the
/// index, as the consumer does.
async fn land_encoded(
    store: &RawZoneStore,
    layout: &RawZoneLayout,
    contracts: &Path,
    format: FileFormat,
    partition: i32,
    rows: &[(i64, i64, Value)],
) {
    let registry = Arc::new(ContractRegistry::load_dir(contracts).expect("contracts"));
    let contract = registry
        .latest(layout.dataset().as_str())
        .expect("contract")
        .clone();
    let classifier = Classifier::new(layout.dataset().clone(), registry, 1 << 20).expect("classifier");
    let records: Vec<SourceRecord> = rows
        .iter()
        .map(|(offset, ts, row)| SourceRecord {
            partition,
            offset: *offset,
            timestamp: Some(*ts),
            key: row["order_id"]
                .as_str()
                .map(|k| bytes::Bytes::copy_from_slice(k.as_bytes())),
            payload: Some(bytes::Bytes::from(row.to_string())),
            headers: Some(
                OwnedHeaders::new()
                    .insert(Header {
                        key: headers::EVENT_ID,
                        value: Some(&format!("e-{partition}-{offset}")),
                    })
                    .insert(Header {
                        key: headers::SCHEMA_VERSION,
                        value: Some("1"),
                    })
                    .into(),
            ),
        })
        .collect();
    let encoder = Encoder::new(format, &contract, "operator-tests/dqcheck".into(), 0).expect("encoder");
    let refs: Vec<&SourceRecord> = records.iter().collect();
    let run = encoder
        .encode_run(partition, &refs, &classifier)
        .expect("encoded");
    assert!(run.rejected.is_empty(), "{:?}", run.rejected);
    let file = run.file.expect("a file");
    let date: IngestionDate = DAY.parse().expect("date");
    store
        .put_immutable(
            &layout.data_file_key(date, &file.entry.path),
            file.data.expect("built in memory"),
            format.content_type(),
        )
        .await
        .expect("data file written");
    let mut snapshot = load_metadata(store, layout, date).await.expect("metadata");
    let landing = Landing {
        files: vec![file.entry],
        dlq: vec![],
    };
    let outcome = commit_landing(store, layout, &mut snapshot, &landing)
        .await
        .expect("metadata committed");
    assert!(matches!(outcome, CommitOutcome::Committed { .. }), "{outcome:?}");
}

/// The day's records produced to a new topic, landed in two JSON-lines files per partition and
/// committed by the dataset's group, as a healthy consumer leaves them.
async fn seed_day(store: &RawZoneStore, layout: &RawZoneLayout, name: &DatasetName) {
    let land_half =
        async |partition, _, rows: &[(i64, i64, Value)]| land(store, layout, partition, rows).await;
    seed_day_with(name, land_half).await;
}

/// The day's records produced to a new topic, each partition landed in two files by `land_half`
/// (partition, first or second half, its rows), and committed by the dataset's group.
async fn seed_day_with(name: &DatasetName, land_half: impl AsyncFn(i32, usize, &[(i64, i64, Value)])) {
    kafka::create_topic(&name.raw_topic(), 2).await;
    let produced = produce(&name.raw_topic()).await;
    for (partition, rows) in &produced {
        let half = rows.len() / 2;
        land_half(*partition, 0, &rows[..half]).await;
        land_half(*partition, 1, &rows[half..]).await;
    }
    kafka::commit(
        &name.consumer_group(),
        &name.raw_topic(),
        produced
            .iter()
            .map(|(p, rows)| (*p, rows[rows.len() - 1].0 + 1))
            .collect(),
    )
    .await;
}

/// The operator, on its ServiceAccount, reading the raw zone at `raw_zone` with the test's contracts.
fn start_operator(test: &TestDataset, identity: &str, raw_zone: &Path) -> Operator {
    let env = [
        ("STREAMLAKE_RAW_ZONE", raw_zone),
        ("STREAMLAKE_CONTRACTS_DIR", test.contracts.as_path()),
    ];
    Operator::start_with_env(&test.kubeconfig, &test.ns.name, identity, &env)
}

async fn run_check(ns: &TestNamespace, name: &str, spec: Value) -> DqCheckStatus {
    let check: DqCheck = common::run_to_end(ns, name, spec, Duration::from_secs(60)).await;
    check.status.expect("status")
}

fn all_checks(dataset: &str, date: &str) -> Value {
    json!({
        "dataset": dataset, "date": date,
        "checks": {
            "filesExist": true, "minRowCount": 40, "metadataConsistent": true, "noEmptyPartitions": true,
            "offsetContinuity": true, "contractSample": {"size": 25}, "freshness": {"maxAge": "100000h"}
        }
    })
}

fn check<'a>(status: &'a DqCheckStatus, name: &str) -> &'a CheckResult {
    status
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("check {name} in {status:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn dq_check_passes_a_healthy_day_and_names_the_check_that_breaks() {
    let test = TestDataset::create("dq", "dq").await;

    let store = RawZoneStore::Local(LocalStore::new(test.lake.clone()));
    let layout = RawZoneLayout::new(test.name.clone());
    seed_day(&store, &layout, &test.name).await;

    let _operator = start_operator(&test, "dq-operator", &test.lake);

    let healthy = run_check(&test.ns, "healthy", all_checks(&test.dataset, DAY)).await;
    assert_eq!(healthy.common.phase, Some(DqCheckPhase::Passed), "{healthy:?}");
    assert_eq!(healthy.checks.len(), 7);
    assert!(healthy.checks.iter().all(|c| c.passed), "{:?}", healthy.checks);
    assert_eq!(check(&healthy, "minRowCount").observed, "40 rows");
    assert_eq!(
        check(&healthy, "contractSample").observed,
        "25 rows checked, 0 invalid"
    );
    assert_eq!(
        check(&healthy, "offsetContinuity").observed,
        "40 offsets landed once each"
    );
    let report = healthy.report.clone().expect("report location");
    let report_path = report.strip_prefix("file://").expect("local report");
    assert!(report_path.contains("/reports/dq/"), "{report}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(report_path).expect("report written")).expect("report json");
    assert_eq!(report["passed"], true);

    let empty = run_check(&test.ns, "empty-day", all_checks(&test.dataset, "2026-10-27")).await;
    assert_eq!(empty.common.phase, Some(DqCheckPhase::Failed), "{empty:?}");
    assert!(
        empty.checks.iter().all(|c| !c.passed),
        "an empty day passes nothing: {:?}",
        empty.checks
    );
    assert!(message_says(&empty.common, "filesExist"), "{empty:?}");

    let date: IngestionDate = DAY.parse().expect("date");
    let doc = load_metadata(&store, &layout, date).await.expect("metadata").doc;
    let removed = doc.partition_files(0)[1].clone();
    std::fs::remove_file(test.lake.join(layout.data_file_key(date, &removed.path))).expect("file removed");
    let missing = run_check(&test.ns, "missing-file", all_checks(&test.dataset, DAY)).await;
    assert_eq!(missing.common.phase, Some(DqCheckPhase::Failed), "{missing:?}");
    let continuity = check(&missing, "offsetContinuity");
    assert!(!continuity.passed);
    assert_eq!(
        continuity.observed,
        format!(
            "{DAY}: gap at partition 0 offsets {}..={}",
            removed.first_offset, removed.last_offset
        )
    );
    assert!(message_says(&missing.common, "offsetContinuity"));

    std::fs::remove_file(test.lake.join(layout.metadata_key(date))).expect("metadata removed");
    let no_metadata = run_check(&test.ns, "no-metadata", all_checks(&test.dataset, DAY)).await;
    assert_eq!(
        no_metadata.common.phase,
        Some(DqCheckPhase::Failed),
        "{no_metadata:?}"
    );
    let consistent = check(&no_metadata, "metadataConsistent");
    assert!(!consistent.passed);
    assert_eq!(consistent.observed, format!("{DAY}: _metadata.json is missing"));

    // A dataset with no raw topic ends Failed at once, saying so, instead of being retried forever.
    let nosuch = unique_name("nosuch");
    let no_topic = run_check(&test.ns, "no-topic", all_checks(&nosuch, DAY)).await;
    assert_eq!(no_topic.common.phase, Some(DqCheckPhase::Failed), "{no_topic:?}");
    assert_eq!(
        no_topic.common.message.as_deref(),
        Some(
            format!("topic streamlake.{nosuch}.raw does not exist: dataset {nosuch} has no raw topic to check against")
                .as_str()
        )
    );

    test.ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dq_check_reads_a_gs_raw_zone_on_the_gcs_emulator() {
    let emulator = require_env("STORAGE_EMULATOR_HOST");
    let bucket = require_env("STREAMLAKE_GCS_BUCKET");
    let test = TestDataset::create("dq-gcs", "dqg").await;
    let location = format!("gs://{bucket}/operator-tests/{}", test.ns.name);
    let options = GcsOptions {
        endpoint: Some(emulator.clone()),
        anonymous: true,
        ..GcsOptions::default()
    };
    let store = RawZoneStore::open(&location.parse::<StoreLocation>().expect("location"), &options)
        .await
        .expect("a store on the GCS emulator");
    let layout = RawZoneLayout::new(test.name.clone());
    seed_day(&store, &layout, &test.name).await;

    // The operator finds the emulator through STORAGE_EMULATOR_HOST, inherited like the consumer's.
    let _operator = start_operator(&test, "dq-gcs-operator", Path::new(&location));
    let healthy = run_check(&test.ns, "healthy", all_checks(&test.dataset, DAY)).await;
    assert_eq!(healthy.common.phase, Some(DqCheckPhase::Passed), "{healthy:?}");
    assert_eq!(check(&healthy, "minRowCount").observed, "40 rows");
    assert_eq!(
        check(&healthy, "offsetContinuity").observed,
        "40 offsets landed once each"
    );
    let report = healthy.report.clone().expect("report location");
    let key = report
        .strip_prefix(&format!("{location}/"))
        .unwrap_or_else(|| panic!("the report {report} is in the gs:// raw zone"));
    assert!(key.starts_with("reports/dq/"), "{report}");
    let written = store
        .get(key)
        .await
        .expect("report read")
        .expect("report in the bucket");
    let report: Value = serde_json::from_slice(&written.data).expect("report json");
    assert_eq!(report["passed"], true);

    // A data file removed from the bucket: the check reads GCS, so it sees the gap.
    let date: IngestionDate = DAY.parse().expect("date");
    let doc = load_metadata(&store, &layout, date).await.expect("metadata").doc;
    let removed = doc.partition_files(1)[0].clone();
    store
        .delete(&layout.data_file_key(date, &removed.path))
        .await
        .expect("delete from the bucket");
    assert!(
        store
            .get(&layout.data_file_key(date, &removed.path))
            .await
            .expect("read")
            .is_none()
    );
    let missing = run_check(&test.ns, "missing-file", all_checks(&test.dataset, DAY)).await;
    assert_eq!(missing.common.phase, Some(DqCheckPhase::Failed), "{missing:?}");
    assert_eq!(
        check(&missing, "offsetContinuity").observed,
        format!(
            "{DAY}: gap at partition 1 offsets {}..={}",
            removed.first_offset, removed.last_offset
        )
    );

    test.ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dq_check_samples_parquet_and_compressed_json_lines_days() {
    let test = TestDataset::create("dq-formats", "dqf").await;
    let store = RawZoneStore::Local(LocalStore::new(test.lake.clone()));
    let layout = RawZoneLayout::new(test.name.clone());

    // Partition 0 lands as Parquet, partition 1 as zstd then gzip JSON lines: every format in one day.
    let format = |partition, half| match (partition, half) {
        (0, _) => FileFormat::Parquet,
        (_, 0) => FileFormat::JsonlZstd,
        _ => FileFormat::JsonlGzip,
    };
    let land_half = async |partition, half, rows: &[(i64, i64, Value)]| {
        let format = format(partition, half);
        land_encoded(&store, &layout, &test.contracts, format, partition, rows).await;
    };
    seed_day_with(&test.name, land_half).await;

    let _operator = start_operator(&test, "dq-operator", &test.lake);
    let mut spec = all_checks(&test.dataset, DAY);
    spec["checks"]["contractSample"]["size"] = json!(40);
    let status = run_check(&test.ns, "formats", spec).await;
    assert_eq!(status.common.phase, Some(DqCheckPhase::Passed), "{status:?}");
    assert!(status.checks.iter().all(|c| c.passed), "{:?}", status.checks);
    assert_eq!(check(&status, "minRowCount").observed, "40 rows");
    assert_eq!(
        check(&status, "contractSample").observed,
        "40 rows checked, 0 invalid"
    );
}
