//! SIGKILL in the middle of landing, several times, then a clean run: every (partition, offset) lands
//! exactly once, although records that had landed but were not committed are read again.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_then_restart_lands_every_offset_exactly_once() {
    let dataset = TestDataset::create("crash", 3).await;
    let topic = dataset.name.raw_topic();
    let group = dataset.name.consumer_group();
    let records: Vec<TestRecord> = (0..80_000).map(|i| TestRecord::order(i, 3, 300)).collect();
    produce(&topic, &records).await;
    let ends = end_offsets(&topic, 3);
    let location = format!("file://{}", dataset.local_raw_zone().display());
    let store = open_store(&location).await;
    // Small files and a slow commit interval: at any moment some landed records are not committed yet.
    // A short session timeout lets the group hand the partitions of a killed member on quickly.
    let flags = [
        "--max-file-records",
        "100",
        "--commit-interval",
        "1s",
        "--max-concurrent-landings",
        "2",
        "--kafka-property",
        "session.timeout.ms=6000,heartbeat.interval.ms=1000",
    ];
    let total: i64 = ends.values().sum();

    let mut kills = 0;
    let mut landed_beyond_commit = 0usize;
    for round in 0..5 {
        let before: i64 = committed_offsets(&group, &topic, 3).values().sum();
        let left = total - before;
        if left == 0 || (kills >= 2 && left < 20_000) {
            // A fast machine got through most of the topic already: what is left goes to the clean run.
            break;
        }
        let mut consumer = ConsumerProcess::start(&dataset, &location, &format!("run-{round}"), &flags);
        // Kill without warning once this round has committed some progress of its own, early enough
        // that the kill lands mid-way (the check polls the group with a CLI, so it lags a few seconds).
        let target = before + (left / 8).clamp(1, 3_000);
        streamlake_testkit::wait_until(
            &format!("the consumer commits {target} records"),
            Duration::from_secs(90),
            || {
                let now: i64 = committed_offsets(&group, &topic, 3).values().sum();
                async move { now > target }
            },
        )
        .await;
        consumer.sigkill();

        let committed = committed_offsets(&group, &topic, 3);
        let contents = read_raw_zone(&store, &dataset.layout(), &test_dates()).await;
        contents.assert_at_most_once();
        let ahead = contents
            .rows
            .iter()
            .filter(|(p, o)| *o >= committed.get(&(*p as i32)).copied().unwrap_or(0))
            .count();
        landed_beyond_commit += ahead;
        let committed_total: i64 = committed.values().sum();
        println!(
            "kill in round {round}: committed {committed_total} of {total}; {ahead} records landed but not \
             committed"
        );
        // Only a kill before the end tests anything; one that came too late is not counted.
        if committed_total < total {
            kills += 1;
        }
    }
    assert!(
        kills >= 2,
        "the consumer must be killed mid-way at least twice, was {kills} times"
    );
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
