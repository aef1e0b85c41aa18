//! Two replicas share a 6-partition topic and write the same date partitions at once: `_metadata.json`
//! lists every file (no lost update), and its counts add up to the records produced. The second replica's
//! arrival is a rebalance: incremental with the default assignor (cooperative-sticky), eager with `range`.

mod common;

use std::time::Duration;

use common::*;

async fn two_replicas(prefix: &str, raw_zone: impl Fn(&TestDataset) -> String, extra: &[&str]) {
    let dataset = TestDataset::create(prefix, 6).await;
    let topic = dataset.name.raw_topic();
    let location = raw_zone(&dataset);
    let flags = [&["--max-file-records", "200", "--format", "jsonl.zst"], extra].concat();

    // Both replicas join first, so that the records are split between them.
    let a = ConsumerProcess::start(&dataset, &location, "replica-a", &flags);
    a.wait_for_log("partitions assigned", Duration::from_secs(60))
        .await;
    let b = ConsumerProcess::start(&dataset, &location, "replica-b", &flags);
    b.wait_for_log("partitions assigned", Duration::from_secs(60))
        .await;
    let records: Vec<TestRecord> = (0..24_000).map(|i| TestRecord::order(i, 6, 300)).collect();
    produce(&topic, &records).await;
    let ends = end_offsets(&topic, 6);
    wait_committed(
        &dataset.name.consumer_group(),
        &topic,
        &ends,
        Duration::from_secs(240),
    )
    .await;
    let files_a = a
        .metric("streamlake_consumer_files_written_total")
        .await
        .unwrap_or(0.0);
    let files_b = b
        .metric("streamlake_consumer_files_written_total")
        .await
        .unwrap_or(0.0);
    let races = a
        .metric("streamlake_consumer_metadata_races_total")
        .await
        .unwrap_or(0.0)
        + b.metric("streamlake_consumer_metadata_races_total")
            .await
            .unwrap_or(0.0);
    let refused = |log: &std::path::Path| {
        std::fs::read_to_string(log).is_ok_and(|text| text.contains("the group refused"))
    };
    assert!(
        !refused(&a.log) && !refused(&b.log),
        "no assign or unassign call was refused"
    );
    assert!(a.terminate(Duration::from_secs(30)).success());
    assert!(b.terminate(Duration::from_secs(30)).success());
    assert!(
        files_a > 0.0 && files_b > 0.0,
        "both replicas must have landed files ({files_a}, {files_b})"
    );

    assert!(
        races > 0.0,
        "the replicas must have raced on _metadata.json for this test to prove anything"
    );
    let store = open_store(&location).await;
    let contents = read_raw_zone(&store, &dataset.layout(), &test_dates()).await;
    contents.assert_exactly_once(&ends);
    assert_eq!(
        contents.listed_records(),
        24_000,
        "record counts of the listed files add up"
    );
    assert_eq!(
        contents.file_count() as f64,
        files_a + files_b,
        "every file a replica listed is still listed"
    );
    let revisions: u64 = contents.metadata.values().map(|m| m.revision).sum();
    println!(
        "two replicas listed {files_a} + {files_b} files in {revisions} metadata revisions ({races} lost \
         compare-and-swaps re-applied); {} records exactly once",
        contents.rows.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_a_local_raw_zone_lose_no_metadata_update() {
    two_replicas("replicas-local", local, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_an_eager_assignor_lose_no_metadata_update() {
    let eager = ["--kafka-property", "partition.assignment.strategy=range"];
    two_replicas("replicas-eager", local, &eager).await;
}

fn local(dataset: &TestDataset) -> String {
    format!("file://{}", dataset.local_raw_zone().display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_gcs_lose_no_metadata_update() {
    emulator();
    two_replicas(
        "replicas-gcs",
        |d| format!("gs://{}/tests/{}", bucket(), d.name),
        &[],
    )
    .await;
}
