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
    let topic = dataset.name.raw_topic();
    let group = dataset.name.consumer_group();
    let location = format!("gs://{}/tests/{}", bucket(), dataset.name);

    let first: Vec<TestRecord> = (0..2_000).map(|i| TestRecord::order(i, 2, 300)).collect();
    produce(&topic, &first).await;
    let first_ends = end_offsets(&topic, 2);
    let consumer = ConsumerProcess::start(
        &dataset,
        &location,
        "consumer",
        &[
            "--gcs-endpoint",
            &proxy.endpoint(),
            "--gcs-anonymous",
            "--max-file-records",
            "250",
        ],
    );
    wait_committed(&group, &topic, &first_ends, Duration::from_secs(120)).await;

    proxy.set_up(false);
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

    proxy.set_up(true);
    wait_committed(&group, &topic, &ends, Duration::from_secs(120)).await;
    streamlake_testkit::wait_until("/readyz is ready again", Duration::from_secs(30), || async {
        matches!(consumer.get("/readyz").await, Some((200, _)))
    })
    .await;
    assert!(consumer.terminate(Duration::from_secs(30)).success());

    let store = open_store(&location).await;
    let contents = read_raw_zone(&store, &dataset.layout(), &test_dates()).await;
    contents.assert_exactly_once(&ends);
    println!(
        "outage survived: {} failed landing attempts retried, {} records landed exactly once in {} files",
        failures,
        contents.rows.len(),
        contents.file_count()
    );
}
