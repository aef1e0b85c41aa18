//! Storage unavailable for a while, then back: nothing lost, nothing duplicated, offsets did not move
//! during the outage, `/readyz` said so, and the consumer recovered by itself.

mod common;

use std::time::Duration;

use common::proxy::OutageProxy;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_pauses_without_loss_and_recovers() {
    let emulator = emulator();
    let target = emulator
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = OutageProxy::start(target).await;
    let dataset = TestDataset::create("outage", 2).await;
    let location = format!("gs://{}/tests/{}", bucket(), dataset.name);
    let endpoint = proxy.endpoint();
    let flags = ["--gcs-endpoint", &endpoint, "--gcs-anonymous"];
    survive_outage(&dataset, &location, &flags, |up| proxy.set_up(up)).await;
}

/// The same on a local disk, where JSON lines are streamed to their files as they are encoded: the raw
/// zone's directory is swapped for a plain file for a while, so every write and read fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_storage_outage_pauses_without_loss_and_recovers() {
    let dataset = TestDataset::create("outage-local", 2).await;
    let root = dataset.local_raw_zone();
    std::fs::create_dir_all(&root).expect("raw zone");
    let location = format!("file://{}", root.display());
    let away = root.with_extension("away");
    survive_outage(&dataset, &location, &["--format", "jsonl"], |up| {
        if up {
            std::fs::remove_file(&root).expect("remove the stand-in file");
            std::fs::rename(&away, &root).expect("put the raw zone back");
        } else {
            std::fs::rename(&root, &away).expect("move the raw zone away");
            std::fs::write(&root, b"not a directory").expect("stand-in file");
        }
    })
    .await;
}

/// Lands 2,000 records, takes storage down (`set_up(false)`), produces 2,000 more and checks the
/// consumer holds its offsets, reports it and pauses; then brings storage back and checks every record
/// lands exactly once.
async fn survive_outage(dataset: &TestDataset, location: &str, flags: &[&str], set_up: impl Fn(bool)) {
    let topic = dataset.name.raw_topic();
    let group = dataset.name.consumer_group();
    let first: Vec<TestRecord> = (0..2_000).map(|i| TestRecord::order(i, 2, 300)).collect();
    produce(&topic, &first).await;
    let first_ends = end_offsets(&topic, 2);
    let consumer = ConsumerProcess::start(
        dataset,
        location,
        "consumer",
        &[flags, &["--max-file-records", "250"]].concat(),
    );
    wait_committed(&group, &topic, &first_ends, Duration::from_secs(120)).await;

    set_up(false);
    let second: Vec<TestRecord> = (2_000..4_000).map(|i| TestRecord::order(i, 2, 300)).collect();
    produce(&topic, &second).await;
    let ends = end_offsets(&topic, 2);
    // Let the consumer read the new records and fail to land them for a while.
    let mut saw_unready = false;
    for _ in 0..16 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            committed_offsets(&group, &topic, 2),
            first_ends,
            "offsets must not move while storage is down"
        );
        if let Some((503, body)) = consumer.get("/readyz").await {
            saw_unready = true;
            assert!(body.contains("failing"), "{body}");
        }
    }
    assert!(saw_unready, "/readyz must report the failing storage");
    let paused = consumer.metric("streamlake_consumer_paused").await;
    assert_eq!(
        paused,
        Some(1.0),
        "consumption pauses instead of buffering while storage is down"
    );
    let failures = consumer
        .metric("streamlake_consumer_landing_failures_total")
        .await
        .unwrap_or(0.0);
    assert!(failures > 0.0, "the failed attempts are counted");

    set_up(true);
    wait_committed(&group, &topic, &ends, Duration::from_secs(120)).await;
    streamlake_testkit::wait_until("/readyz is ready again", Duration::from_secs(30), || async {
        matches!(consumer.get("/readyz").await, Some((200, _)))
    })
    .await;
    assert!(consumer.terminate(Duration::from_secs(30)).success());

    let store = open_store(location).await;
    let contents = read_raw_zone(&store, &dataset.layout(), &test_dates()).await;
    contents.assert_exactly_once(&ends);
    println!(
        "outage survived: {} failed landing attempts retried, {} records landed exactly once in {} files",
        failures,
        contents.rows.len(),
        contents.file_count()
    );
}
