//! Records produced to the raw topic land in the raw zone with correct metadata: local directory and
//! the GCS emulator, JSON lines and Parquet, streaming and bounded mode.

mod common;

use std::time::Duration;

use common::proxy::OutageProxy;
use common::*;
use streamlake_core::rawzone::FileFormat;

const RECORDS: u64 = 3_000;

async fn land_and_check(prefix: &str, format: &str, raw_zone: impl Fn(&TestDataset) -> String) {
    let dataset = TestDataset::create(prefix, 3).await;
    let topic = dataset.name.raw_topic();
    let records: Vec<TestRecord> = (0..RECORDS).map(|i| TestRecord::order(i, 3, 300)).collect();
    produce(&topic, &records).await;
    let ends = end_offsets(&topic, 3);
    assert_eq!(ends.values().sum::<i64>(), RECORDS as i64);

    let location = raw_zone(&dataset);
    let consumer = ConsumerProcess::start(
        &dataset,
        &location,
        "consumer",
        &["--format", format, "--max-file-records", "400"],
    );
    wait_committed(
        &dataset.name.consumer_group(),
        &topic,
        &ends,
        Duration::from_secs(120),
    )
    .await;
    let (status, body) = consumer.get("/readyz").await.expect("readyz answers");
    assert_eq!(status, 200, "{body}");
    let written = consumer
        .metric("streamlake_consumer_records_written_total")
        .await
        .expect("metric");
    assert_eq!(written, RECORDS as f64);
    let status = consumer.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "SIGTERM must end the consumer cleanly: {status}"
    );

    let store = open_store(&location).await;
    let contents = read_raw_zone(&store, &dataset.layout(), &test_dates()).await;
    contents.assert_exactly_once(&ends);
    assert_eq!(contents.listed_records(), RECORDS);
    assert_eq!(
        contents.metadata.len(),
        2,
        "records straddle midnight: two date partitions"
    );
    let expected_format: FileFormat = format.parse().expect("format");
    for meta in contents.metadata.values() {
        for file in &meta.files {
            assert_eq!(file.format, expected_format);
            assert!(file.record_count <= 400, "rotation by record count");
            assert_eq!(file.schema_versions, vec![1]);
            assert!(file.writer_version.starts_with("streamlake-consumer/"));
            let date = meta.ingestion_date.to_string();
            for t in [file.min_timestamp, file.max_timestamp] {
                assert_eq!(
                    t.date_naive().to_string(),
                    date,
                    "a file holds only records of its date"
                );
            }
        }
    }
    println!(
        "landed {} records in {} files over {} dates ({format} at {location})",
        contents.rows.len(),
        contents.file_count(),
        contents.metadata.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_lands_in_a_local_raw_zone_with_correct_metadata() {
    land_and_check("e2e-jsonl", "jsonl", |d| {
        format!("file://{}", d.local_raw_zone().display())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_jsonl_and_parquet_land_locally() {
    land_and_check("e2e-gzip", "jsonl.gz", |d| {
        format!("file://{}", d.local_raw_zone().display())
    })
    .await;
    land_and_check("e2e-parquet", "parquet", |d| {
        format!("file://{}", d.local_raw_zone().display())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_lands_in_the_gcs_emulator() {
    emulator();
    land_and_check("e2e-gcs", "parquet", |d| {
        format!("gs://{}/tests/{}", bucket(), d.name)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_larger_than_one_upload_chunk_round_trips_through_the_emulator() {
    emulator();
    let dataset = TestDataset::create("e2e-chunks", 1).await;
    let topic = dataset.name.raw_topic();
    // ~1 MiB of JSON lines in one file, uploaded in 256 KiB resumable chunks.
    let records: Vec<TestRecord> = (0..1_000)
        .map(|i| TestRecord {
            timestamp: BASE_TIMESTAMP_MS,
            ..TestRecord::order(i, 1, 1_000)
        })
        .collect();
    produce(&topic, &records).await;
    let ends = end_offsets(&topic, 1);
    let location = format!("gs://{}/tests/{}", bucket(), dataset.name);
    let port_80 = OutageProxy::start_on_port_80(emulator().trim_start_matches("http://").to_owned()).await;
    let endpoint = port_80.endpoint();
    let consumer = ConsumerProcess::start(
        &dataset,
        &location,
        "consumer",
        &[
            "--gcs-endpoint",
            &endpoint,
            "--gcs-anonymous",
            "--gcs-upload-chunk",
            "256KiB",
            "--max-file-records",
            "100000",
            "--max-file-age",
            "3s",
        ],
    );
    wait_committed(
        &dataset.name.consumer_group(),
        &topic,
        &ends,
        Duration::from_secs(120),
    )
    .await;
    assert!(consumer.terminate(Duration::from_secs(30)).success());

    let store = open_store(&location).await;
    let contents = read_raw_zone(&store, &dataset.layout(), &test_dates()).await;
    contents.assert_exactly_once(&ends);
    let largest = contents
        .metadata
        .values()
        .flat_map(|m| &m.files)
        .map(|f| f.bytes)
        .max()
        .expect("a file");
    assert!(
        largest > 3 * 256 * 1024,
        "the file ({largest} bytes) must span several 256 KiB chunks"
    );
    let chunks = port_80.chunk_requests();
    assert!(
        chunks >= largest / (256 * 1024),
        "{chunks} chunk requests cannot carry {largest} bytes in 256 KiB"
    );
    println!(
        "a {largest}-byte file went up in {chunks} resumable chunk requests and read back with a matching checksum"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_mode_lands_exactly_the_requested_ranges_and_exits_zero() {
    let dataset = TestDataset::create("e2e-bounded", 2).await;
    let topic = dataset.name.raw_topic();
    let records: Vec<TestRecord> = (0..400).map(|i| TestRecord::order(i, 2, 200)).collect();
    produce(&topic, &records).await;
    let location = format!("file://{}", dataset.local_raw_zone().display());

    // First [10, 60) of partition 0 and [0, 30) of partition 1.
    let mut first = ConsumerProcess::start(
        &dataset,
        &location,
        "bounded-1",
        &[
            "--bounded",
            "--start-offset",
            "0=10,1=0",
            "--end-offset",
            "0=60,1=30",
        ],
    );
    let status = first.wait(Duration::from_secs(60));
    assert!(status.success(), "bounded mode exits 0 when done: {status}");
    let store = open_store(&location).await;
    let contents = read_raw_zone(&store, &dataset.layout(), &test_dates()).await;
    let mut rows = contents.rows.clone();
    rows.sort();
    let expected: Vec<(i64, i64)> = (10..60).map(|o| (0, o)).chain((0..30).map(|o| (1, o))).collect();
    assert_eq!(rows, expected);

    // Then everything (a backfill over what already landed): no duplicates, nothing missing.
    let mut second = ConsumerProcess::start(&dataset, &location, "bounded-2", &["--bounded"]);
    assert!(second.wait(Duration::from_secs(60)).success());
    let contents = read_raw_zone(&store, &dataset.layout(), &test_dates()).await;
    contents.assert_exactly_once(&end_offsets(&topic, 2));
    let committed = committed_offsets(&dataset.name.consumer_group(), &topic, 2);
    assert!(
        committed.is_empty(),
        "bounded mode has no group and commits nothing: {committed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_reports_the_groups_offsets_and_no_lag_before_it_commits() {
    let dataset = TestDataset::create("e2e-lag", 1).await;
    let topic = dataset.name.raw_topic();
    let records: Vec<TestRecord> = (0..50).map(|i| TestRecord::order(i, 1, 200)).collect();
    produce(&topic, &records).await;
    let ends = end_offsets(&topic, 1);
    let location = format!("file://{}", dataset.local_raw_zone().display());
    let first = ConsumerProcess::start(&dataset, &location, "first", &[]);
    wait_committed(
        &dataset.name.consumer_group(),
        &topic,
        &ends,
        Duration::from_secs(60),
    )
    .await;
    assert!(first.terminate(Duration::from_secs(30)).success());

    // Nothing is left to land, so the second process never commits: what it reports comes from the group.
    let second = ConsumerProcess::start(&dataset, &location, "second", &[]);
    let mut seen = (None, None);
    for _ in 0..60 {
        seen = (
            second.metric("streamlake_consumer_committed_offset").await,
            second.metric("streamlake_consumer_lag").await,
        );
        if seen == (Some(50.0), Some(0.0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        seen,
        (Some(50.0), Some(0.0)),
        "(committed offset, lag) of partition 0"
    );
    let written = second.metric("streamlake_consumer_records_written_total").await;
    assert_eq!(written, Some(0.0), "the second process landed nothing");
    assert!(second.terminate(Duration::from_secs(30)).success());
}
