//! Backfill against the real API server, broker and process kubelet. Isolated: the operator resolves a
//! day into offsets and runs the real consumer once, bounded, as a Job; a failing Job ends it Failed.
//! Replay: the live consumer group is reset to the day through a child Replay and the live consumer
//! re-lands the deleted day. A Backfill of a topic that does not exist ends Failed at once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use streamlake_core::headers::RecordMetadata;
use streamlake_core::names::DatasetName;
use streamlake_core::rawzone::{DatePartitionMetadata, IngestionDate, RawZoneLayout};
use streamlake_operator::crd::backfill::{BackfillPhase, BackfillStatus};
use streamlake_operator::crd::{Backfill, Replay, ReplayPhase};
use streamlake_testkit::{unique_name, wait_until};

use common::dataset::TestDataset;
use common::{Operator, TestNamespace, kafka, message_says};

const DAY: &str = "2026-11-01";
/// 2026-11-01T10:00:00Z; record i of a partition is i seconds later.
const BASE_MS: i64 = 1_793_527_200_000;
const PER_PARTITION: i64 = 10;

/// Valid orders with the headers the ingest API sets, on `DAY`, plus one record the day after.
async fn produce(topic: &str) {
    let producer: FutureProducer = kafka::config().set("acks", "all").create().expect("producer");
    for p in 0..2 {
        for i in 0..=PER_PARTITION {
            let id = format!("o-{p}-{i}");
            let payload = serde_json::to_vec(&json!({
                "order_id": id, "customer_id": "c-1",
                "line_items": [{"sku": "sku-1", "quantity": 1, "unit_price": "9.99"}],
                "amount": "9.99", "currency": "EUR", "created_at": "2026-11-01T10:00:00Z",
            }))
            .expect("json");
            let headers = RecordMetadata {
                event_id: uuid::Uuid::new_v4(),
                schema_version: 1,
                ingested_at: chrono::Utc::now(),
                source: "operator-tests".into(),
                content_type: "application/json".into(),
            }
            .to_headers();
            // The last record of each partition is on the next day: outside the backfilled range.
            let ts = if i == PER_PARTITION {
                BASE_MS + 86_400_000
            } else {
                BASE_MS + i * 1000
            };
            let record = FutureRecord::to(topic)
                .partition(p)
                .key(&id)
                .payload(&payload)
                .timestamp(ts)
                .headers(headers);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .expect("delivered");
        }
    }
}

/// Every row line of the files, as a set: file boundaries depend on batching, rows do not.
fn lines(files: &[LandedFile]) -> BTreeSet<String> {
    files
        .iter()
        .flat_map(|(_, data)| {
            String::from_utf8_lossy(data)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A data file's name and bytes.
type LandedFile = (String, Vec<u8>);

/// The day's files and every (partition, offset) their rows hold.
fn landed(lake: &Path, dataset: &DatasetName) -> (Vec<LandedFile>, Vec<(i64, i64)>) {
    let layout = RawZoneLayout::new(dataset.clone());
    let dir = lake.join(layout.date_prefix(DAY.parse::<IngestionDate>().expect("date")));
    let text = std::fs::read(dir.join("_metadata.json")).expect("_metadata.json");
    let metadata: DatePartitionMetadata = serde_json::from_slice(&text).expect("metadata");
    let mut files = Vec::new();
    let mut rows = Vec::new();
    for file in &metadata.files {
        let data = std::fs::read(dir.join(&file.path)).expect("listed file exists");
        for line in String::from_utf8_lossy(&data).lines().filter(|l| !l.is_empty()) {
            let row: Value = serde_json::from_str(line).expect("row");
            rows.push((
                row["_partition"].as_i64().expect("p"),
                row["_offset"].as_i64().expect("o"),
            ));
        }
        files.push((file.path.clone(), data));
    }
    rows.sort_unstable();
    (files, rows)
}

async fn run_backfill(ns: &TestNamespace, name: &str, spec: Value) -> BackfillStatus {
    run_backfill_within(ns, name, spec, Duration::from_secs(120)).await
}

async fn run_backfill_within(
    ns: &TestNamespace,
    name: &str,
    spec: Value,
    timeout: Duration,
) -> BackfillStatus {
    let backfill: Backfill = serde_json::from_value(json!({
        "apiVersion": "streamlake.io/v1alpha1", "kind": "Backfill",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("backfill");
    let api: Api<Backfill> = ns.api();
    api.create(&PostParams::default(), &backfill)
        .await
        .expect("Backfill created");
    wait_until(&format!("Backfill {name} finishes"), timeout, || async {
        api.get(name)
            .await
            .ok()
            .and_then(|b| b.status)
            .and_then(|s| s.common.phase)
            .is_some_and(|p| matches!(p, BackfillPhase::Succeeded | BackfillPhase::Failed))
    })
    .await;
    api.get(name).await.expect("Backfill").status.expect("status")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_restores_a_deleted_day_exactly_and_a_failed_job_fails_it() {
    let test = TestDataset::create("bf", "bf").await;
    kafka::create_topic(&test.name.raw_topic(), 2).await;
    produce(&test.name.raw_topic()).await;
    test.ns
        .api::<Deployment>()
        .create(
            &PostParams::default(),
            // At zero replicas: the Isolated Backfill only borrows its pod template.
            &test.consumer(0, &[]),
        )
        .await
        .expect("consumer Deployment");
    // The operator reads the Jobs' run summaries from the same raw zone the consumer writes.
    let _operator = Operator::start_with_env(
        &test.kubeconfig,
        &test.ns.name,
        "bf-operator",
        &[("STREAMLAKE_RAW_ZONE", &test.lake)],
    );
    let day = json!({"dataset": test.dataset, "startDate": DAY, "endDate": DAY});

    let first = run_backfill(&test.ns, "first", day.clone()).await;
    assert_eq!(first.common.phase, Some(BackfillPhase::Succeeded), "{first:?}");
    let ranges: Vec<(i32, i64, i64)> = first
        .ranges
        .iter()
        .map(|r| (r.partition, r.start, r.end))
        .collect();
    assert_eq!(ranges, [(0, 0, PER_PARTITION), (1, 0, PER_PARTITION)]);
    assert_eq!(first.records_written, Some(2 * PER_PARTITION), "{first:?}");
    assert_eq!(first.records_already_landed, Some(0), "{first:?}");
    assert!(first.files_written.is_some_and(|f| f > 0), "{first:?}");
    assert_eq!(first.job_name.as_deref(), Some("backfill-first"));
    let (files, rows) = landed(&test.lake, &test.name);
    let expected: Vec<(i64, i64)> = (0..2)
        .flat_map(|p| (0..PER_PARTITION).map(move |o| (p, o)))
        .collect();
    assert_eq!(
        rows, expected,
        "every record of the day once, none of the next day"
    );

    let layout = RawZoneLayout::new(test.name.clone());
    let day_dir = test
        .lake
        .join(layout.date_prefix(DAY.parse::<IngestionDate>().expect("date")));
    std::fs::remove_dir_all(&day_dir).expect("day deleted");
    let restore = run_backfill(&test.ns, "restore", day.clone()).await;
    assert_eq!(
        restore.common.phase,
        Some(BackfillPhase::Succeeded),
        "{restore:?}"
    );
    let (restored_files, restored_rows) = landed(&test.lake, &test.name);
    assert_eq!(restored_rows, expected, "same records, no duplicates");
    let restored = i64::try_from(restored_rows.len()).expect("count");
    assert_eq!(restore.records_written, Some(restored), "{restore:?}");
    assert_eq!(
        restore.files_written,
        Some(i64::try_from(restored_files.len()).expect("count")),
        "{restore:?}"
    );
    // File boundaries depend on batching; the records in them must be byte-for-byte the same rows.
    assert_eq!(
        lines(&restored_files),
        lines(&files),
        "the same rows as the first landing"
    );

    let again = run_backfill(&test.ns, "again", day).await;
    assert_eq!(again.common.phase, Some(BackfillPhase::Succeeded), "{again:?}");
    assert_eq!(again.records_written, Some(0), "the day is complete: {again:?}");
    assert_eq!(again.records_already_landed, Some(2 * PER_PARTITION), "{again:?}");
    assert_eq!(again.files_written, Some(0), "{again:?}");
    assert_eq!(landed(&test.lake, &test.name).1, expected, "still no duplicates");

    let other_topic = run_backfill(
        &test.ns,
        "other-topic",
        json!({"dataset": test.dataset, "topic": "streamlake.other.raw", "startDate": DAY, "endDate": DAY}),
    )
    .await;
    assert_eq!(
        other_topic.common.phase,
        Some(BackfillPhase::Failed),
        "{other_topic:?}"
    );
    assert_eq!(other_topic.common.reason.as_deref(), Some("TopicNotSupported"));

    let broken = run_backfill(
        &test.ns,
        "broken",
        json!({"dataset": test.dataset, "offsets": [{"partition": 7, "start": 0, "end": 5}]}),
    )
    .await;
    assert_eq!(broken.common.phase, Some(BackfillPhase::Failed), "{broken:?}");
    assert_eq!(broken.common.reason.as_deref(), Some("JobFailed"));
    assert!(
        message_says(&broken.common, "Job backfill-broken failed"),
        "{broken:?}"
    );

    test.ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_backfill_resets_the_live_group_and_the_live_consumer_restores_the_day() {
    let test = TestDataset::create("bf-replay", "bfr").await;
    let (topic, group) = (test.name.raw_topic(), test.name.consumer_group());
    kafka::create_topic(&topic, 2).await;
    kafka::create_topic(&test.name.dlq_topic(), 1).await;
    produce(&topic).await;
    // Running: the Replay Backfill resets its group and it re-lands the day.
    let deployment = test.consumer(1, &[]);
    common::create_deployment(&test.ns, &deployment).await;
    let log_end: BTreeMap<i32, i64> = (0..2).map(|p| (p, PER_PARTITION + 1)).collect();
    wait_until(
        "the live consumer landed and committed every record",
        Duration::from_secs(180),
        || async { kafka::committed(&group, &topic).await == log_end },
    )
    .await;
    let (files, rows) = landed(&test.lake, &test.name);
    let expected: Vec<(i64, i64)> = (0..2)
        .flat_map(|p| (0..PER_PARTITION).map(move |o| (p, o)))
        .collect();
    assert_eq!(rows, expected, "the live consumer landed the day once");

    let layout = RawZoneLayout::new(test.name.clone());
    let day_dir = test
        .lake
        .join(layout.date_prefix(DAY.parse::<IngestionDate>().expect("date")));
    std::fs::remove_dir_all(&day_dir).expect("day deleted");
    let _operator = Operator::start(&test.kubeconfig, &test.ns.name, "bf-replay-operator");
    let status = run_backfill_within(
        &test.ns,
        "day",
        json!({"dataset": test.dataset, "startDate": DAY, "endDate": DAY, "mode": "Replay"}),
        Duration::from_secs(240),
    )
    .await;
    assert_eq!(status.common.phase, Some(BackfillPhase::Succeeded), "{status:?}");
    assert_eq!(status.replay_name.as_deref(), Some("backfill-day"));
    assert_eq!(status.job_name, None, "no Job: the live consumers re-read");
    assert_eq!(status.progress.as_deref(), Some("100%"));
    let ranges: Vec<(i32, i64, i64)> = status
        .ranges
        .iter()
        .map(|r| (r.partition, r.start, r.end))
        .collect();
    assert_eq!(ranges, [(0, 0, PER_PARTITION), (1, 0, PER_PARTITION)]);

    // The child Replay reset the group to the day's start and ended at the day's end.
    let replay: Replay = test
        .ns
        .api::<Replay>()
        .get("backfill-day")
        .await
        .expect("child Replay");
    let replay_status = replay.status.expect("Replay status");
    assert_eq!(replay_status.common.phase, Some(ReplayPhase::Succeeded));
    let plan: Vec<(i32, i64, i64)> = replay_status
        .plan
        .iter()
        .map(|p| (p.partition, p.new_offset, p.end_offset))
        .collect();
    assert_eq!(plan, [(0, 0, PER_PARTITION), (1, 0, PER_PARTITION)]);
    let owner = replay.metadata.owner_references.unwrap_or_default();
    assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("Backfill"));

    let (restored_files, restored_rows) = landed(&test.lake, &test.name);
    assert_eq!(restored_rows, expected, "same records, no duplicates");
    assert_eq!(
        lines(&restored_files),
        lines(&files),
        "the same rows as the first landing"
    );
    wait_until(
        "the group is back at the original end",
        Duration::from_secs(60),
        || async { kafka::committed(&group, &topic).await == log_end },
    )
    .await;
    assert_eq!(
        kafka::cli_offsets(&group),
        log_end,
        "kafka-consumer-groups agrees"
    );
    common::wait_replicas(&test.ns, &deployment.name_any(), 1, Duration::from_secs(60)).await;

    // Deleted mid-way (a member outside Kubernetes keeps the group from emptying): the Backfill's
    // Replay goes with it, and the Replay's finalizer gives the consumers back.
    let holder = kafka::GroupMember::join_with(&group, &topic, "cooperative-sticky", 1).await;
    let held: Backfill = serde_json::from_value(json!({
        "apiVersion": "streamlake.io/v1alpha1", "kind": "Backfill", "metadata": {"name": "held"},
        "spec": {"dataset": test.dataset, "startDate": DAY, "endDate": DAY, "mode": "Replay"}
    }))
    .expect("backfill");
    let backfills: Api<Backfill> = test.ns.api();
    backfills
        .create(&PostParams::default(), &held)
        .await
        .expect("Backfill created");
    wait_until(
        "the held Backfill mirrors its Replay waiting for the group, with the consumers at 0",
        Duration::from_secs(60),
        || async {
            let mirrored = backfills
                .get("held")
                .await
                .ok()
                .and_then(|b| b.status)
                .and_then(|s| s.common.message)
                .is_some_and(|m| m.contains("Replay backfill-held is WaitingForGroupEmpty"));
            mirrored && common::spec_replicas(&test.ns, &deployment.name_any()).await == Some(0)
        },
    )
    .await;
    backfills
        .delete("held", &Default::default())
        .await
        .expect("Backfill deleted");
    let replays: Api<Replay> = test.ns.api();
    wait_until(
        "the Replay is deleted with its Backfill",
        Duration::from_secs(60),
        || async { replays.get_opt("backfill-held").await.ok().flatten().is_none() },
    )
    .await;
    common::wait_replicas(&test.ns, &deployment.name_any(), 1, Duration::from_secs(60)).await;
    holder.leave();

    let missing = run_backfill(
        &test.ns,
        "no-topic",
        json!({"dataset": unique_name("nosuch"), "startDate": DAY, "endDate": DAY, "mode": "Replay"}),
    )
    .await;
    assert_eq!(missing.common.phase, Some(BackfillPhase::Failed), "{missing:?}");
    assert_eq!(missing.common.reason.as_deref(), Some("TopicNotFound"));
    assert!(message_says(&missing.common, "does not exist"), "{missing:?}");

    test.ns.delete().await;
}
