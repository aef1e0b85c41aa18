//! The broker goes away for longer than the group session: the consumer drops out of its group, is a member
//! again once the broker is back, and lands what was produced meanwhile — every offset exactly once. With a
//! short `--max-out-of-group` it replaces its Kafka client while the broker is away, so this also covers the
//! replacement (librdkafka has been seen to never rejoin by itself after such an outage: see
//! `membership.rs`). On a broker of the test's own, since it is stopped.

mod common;

use std::time::Duration;

use common::*;
use streamlake_testkit::PrivateBroker;

/// A two-partition dataset on a broker of the test's own, landing into a local raw zone.
struct Outage {
    broker: PrivateBroker,
    dataset: TestDataset,
    topic: String,
    group: String,
    bootstrap: String,
    location: String,
}

impl Outage {
    async fn start(broker_label: &str, dataset_prefix: &str) -> Self {
        let broker = tokio::task::block_in_place(|| PrivateBroker::start(broker_label));
        let dataset = TestDataset::create_on(broker.bootstrap(), dataset_prefix, 2).await;
        Self {
            topic: dataset.name.raw_topic(),
            group: dataset.name.consumer_group(),
            bootstrap: dataset.bootstrap.clone(),
            location: format!("file://{}", dataset.local_raw_zone().display()),
            broker,
            dataset,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_longer_than_the_session_ends_with_the_consumer_back_in_its_group() {
    let o = Outage::start("consumer-outage", "broker-outage").await;
    let consumer = ConsumerProcess::start(
        &o.dataset,
        &o.location,
        "consumer",
        &[
            "--max-out-of-group",
            "5s",
            "--kafka-property",
            "session.timeout.ms=6000,heartbeat.interval.ms=1000",
        ],
    );

    let before: Vec<TestRecord> = (0..200).map(|i| TestRecord::order(i, 2, 300)).collect();
    produce_on(&o.bootstrap, &o.topic, &before).await;
    let ends = end_offsets_on(&o.bootstrap, &o.topic, 2);
    wait_committed_on(&o.bootstrap, &o.group, &o.topic, &ends, Duration::from_secs(60)).await;

    // Down for longer than the session (6 s) and than the consumer may stay out of its group (5 s).
    tokio::task::block_in_place(|| o.broker.stop());
    tokio::time::sleep(Duration::from_secs(15)).await;
    tokio::task::block_in_place(|| o.broker.up());

    let after: Vec<TestRecord> = (200..400).map(|i| TestRecord::order(i, 2, 300)).collect();
    produce_on(&o.bootstrap, &o.topic, &after).await;
    let ends = end_offsets_on(&o.bootstrap, &o.topic, 2);
    assert_eq!(ends.values().sum::<i64>(), 400);
    wait_committed_on(&o.bootstrap, &o.group, &o.topic, &ends, Duration::from_secs(120)).await;

    let replaced = consumer
        .metric("streamlake_consumer_kafka_client_replacements_total")
        .await
        .expect("the consumer serves its metrics");
    assert!(
        replaced >= 1.0,
        "out of its group for 15 s with --max-out-of-group 5s, the consumer replaced its client"
    );
    consumer
        .wait_for_log("replacing the Kafka client", Duration::from_secs(1))
        .await;
    assert!(consumer.terminate(Duration::from_secs(30)).success());

    let store = open_store(&o.location).await;
    let contents = read_raw_zone(&store, &o.dataset.layout(), &test_dates()).await;
    contents.assert_exactly_once(&ends);
    println!("client replacements during the outage: {replaced}");
}

/// Records become durable while the broker is away (but for less than the group session): committing them
/// has to wait for the coordinator, and the poll loop must not wait with it — `/healthz` fails once the
/// loop has not turned for `--max-poll-stall`, and the kubelet would restart a consumer that did nothing
/// wrong. Once the broker is back, the offsets are committed without further records, and every record is
/// in the raw zone once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_waiting_for_the_coordinator_does_not_stall_the_poll_loop() {
    let o = Outage::start("consumer-commit-wait", "commit-wait").await;
    // Files land 12 s after their first record: after the broker has stopped, while it is away. The
    // session (90 s) outlasts the outage with room to spare — a broker that restarts slowly on a busy
    // machine must not turn this into the other test's session timeout.
    let consumer = ConsumerProcess::start(
        &o.dataset,
        &o.location,
        "consumer",
        &[
            "--max-poll-stall",
            "3s",
            "--drain-timeout",
            "2s",
            "--max-file-age",
            "12s",
            "--kafka-property",
            "session.timeout.ms=90000",
        ],
    );
    consumer
        .wait_for_log("partitions assigned", Duration::from_secs(60))
        .await;

    let before: Vec<TestRecord> = (0..200).map(|i| TestRecord::order(i, 2, 300)).collect();
    produce_on(&o.bootstrap, &o.topic, &before).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // read, and held until the files are old enough
    tokio::task::block_in_place(|| o.broker.stop());
    let files = || consumer.metric("streamlake_consumer_files_written_total");
    assert_eq!(
        files().await,
        Some(0.0),
        "nothing may have landed before the broker was down (it took longer to stop than the file age)"
    );

    let stopped = std::time::Instant::now();
    let mut landed: Option<std::time::Instant> = None;
    while landed.is_none_or(|at| at.elapsed() < Duration::from_secs(5)) {
        let (status, body) = consumer.get("/healthz").await.expect("the consumer answers");
        assert_eq!(
            status, 200,
            "the poll loop stalled while a commit waited for the broker: {body}"
        );
        if landed.is_none() && files().await.is_some_and(|n| n >= 1.0) {
            landed = Some(std::time::Instant::now());
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "the held files did not land while the broker was away"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::task::block_in_place(|| o.broker.up());

    // Nothing new arrives: what landed during the outage is committed all the same.
    let ends = end_offsets_on(&o.bootstrap, &o.topic, 2);
    assert_eq!(ends.values().sum::<i64>(), 200);
    wait_committed_on(&o.bootstrap, &o.group, &o.topic, &ends, Duration::from_secs(120)).await;
    assert_eq!(
        consumer
            .metric("streamlake_consumer_kafka_client_replacements_total")
            .await,
        Some(0.0),
        "the consumer stayed in its group: the outage was shorter than the session"
    );
    assert!(consumer.terminate(Duration::from_secs(30)).success());

    let store = open_store(&o.location).await;
    let contents = read_raw_zone(&store, &o.dataset.layout(), &test_dates()).await;
    contents.assert_exactly_once(&ends);
}

/// SIGTERM while the broker is away: the consumer lands what it holds, cannot have its final commit
/// confirmed, and exits anyway soon after its drain deadline — not when the group session times out (45 s),
/// which would outlast a pod's grace period (45 s, after the drain). What it held is in the raw zone; the
/// next owner reads it again from the last committed offsets and skips it (`crash.rs` covers that part).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_broker_is_away_ends_within_the_grace_period() {
    let o = Outage::start("consumer-sigterm", "sigterm-outage").await;
    let consumer = ConsumerProcess::start(
        &o.dataset,
        &o.location,
        "consumer",
        &["--max-file-age", "60s", "--drain-timeout", "5s"],
    );
    consumer
        .wait_for_log("partitions assigned", Duration::from_secs(60))
        .await;
    let records: Vec<TestRecord> = (0..200).map(|i| TestRecord::order(i, 2, 300)).collect();
    produce_on(&o.bootstrap, &o.topic, &records).await;
    let ends = end_offsets_on(&o.bootstrap, &o.topic, 2);
    streamlake_testkit::wait_until(
        "the consumer holds the records",
        Duration::from_secs(30),
        || async {
            consumer
                .metric("streamlake_consumer_buffered_bytes")
                .await
                .is_some_and(|bytes| bytes > 0.0)
        },
    )
    .await;
    tokio::task::block_in_place(|| o.broker.stop());

    let log = consumer.log.clone();
    let asked = std::time::Instant::now();
    let status = tokio::task::block_in_place(|| consumer.terminate(Duration::from_secs(90)));
    let took = asked.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_secs(20),
        "SIGTERM took {took:?} with a 5 s drain deadline while the broker was away"
    );
    let text = std::fs::read_to_string(&log).expect("the consumer's log");
    assert!(
        text.contains("the final commit was not confirmed"),
        "{}",
        log.display()
    );

    let store = open_store(&o.location).await;
    let contents = read_raw_zone(&store, &o.dataset.layout(), &test_dates()).await;
    contents.assert_exactly_once(&ends);
    println!("SIGTERM with the broker away: exited after {took:?}");
}
