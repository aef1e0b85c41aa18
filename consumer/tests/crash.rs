//! SIGKILL in the middle of landing, several times, then a clean run: every (partition, offset) lands
//! exactly once, although records that had landed but were not committed are read again.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_then_restart_lands_every_offset_exactly_once() {
    let dataset = TestDataset::create("crash", 3).await;
    let topic = dataset.name.raw_topic();
    let group = dataset.name.consumer_group();
    let records: Vec<TestRecord> = (0..30_000).map(|i| TestRecord::order(i, 3, 300)).collect();
    produce(&topic, &records).await;
    let ends = end_offsets(&topic, 3);
    let location = format!("file://{}", dataset.local_raw_zone().display());
    let store = open_store(&location).await;
    // Small files and a slow commit interval: at any moment some landed records are not committed yet.
    let flags = [
        "--max-file-records",
        "150",
        "--commit-interval",
        "1s",
        "--max-concurrent-landings",
        "2",
    ];

    let mut kills = 0;
    let mut landed_beyond_commit = 0i64;
    for round in 0..4 {
        let mut consumer = ConsumerProcess::start(&dataset, &location, &format!("run-{round}"), &flags);
        // Wait for some progress in this round, then kill without warning.
        let before: i64 = committed_offsets(&group, &topic, 3).values().sum();
        streamlake_testkit::wait_until(
            "the consumer commits more records",
            Duration::from_secs(60),
            || {
                let now: i64 = committed_offsets(&group, &topic, 3).values().sum();
                async move { now > before + 1_000 }
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300 + 200 * round)).await;
        consumer.sigkill();
        kills += 1;

        let committed = committed_offsets(&group, &topic, 3);
        let contents = read_raw_zone(&store, &dataset.layout(), &test_dates()).await;
        let landed = max_landed(&contents.rows);
        let ahead: i64 = landed
            .iter()
            .map(|(p, max)| (max + 1 - committed.get(p).copied().unwrap_or(0)).max(0))
            .sum();
        landed_beyond_commit += ahead;
        println!("kill {kills}: committed {committed:?}, {ahead} records landed but not committed");
        let committed_total: i64 = committed.values().sum();
        assert!(
            committed_total < ends.values().sum::<i64>(),
            "the kill must come mid-way, not after the end"
        );
    }
    assert!(
        landed_beyond_commit > 0,
        "some kill must leave landed-but-uncommitted records to re-read"
    );

    let consumer = ConsumerProcess::start(&dataset, &location, "final", &flags);
    wait_committed(&group, &topic, &ends, Duration::from_secs(180)).await;
    let skipped = consumer
        .metric("streamlake_consumer_records_already_landed_total")
        .await
        .unwrap_or(0.0);
    assert!(consumer.terminate(Duration::from_secs(30)).success());

    let contents = read_raw_zone(&store, &dataset.layout(), &test_dates()).await;
    contents.assert_exactly_once(&ends);
    let orphans =
        local_data_files(&dataset.local_raw_zone(), &dataset.layout()).len() - contents.file_count();
    println!(
        "after {kills} SIGKILLs: {} records in {} listed files, exactly once; the last run skipped {skipped} \
         already-landed records; {orphans} unlisted files left by kills",
        contents.rows.len(),
        contents.file_count()
    );
}

fn max_landed(rows: &[(i64, i64)]) -> BTreeMap<i32, i64> {
    let mut max = BTreeMap::new();
    for (p, o) in rows {
        let entry = max.entry(*p as i32).or_insert(*o);
        *entry = (*entry).max(*o);
    }
    max
}
