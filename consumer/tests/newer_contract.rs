//! Records stamped with a contract version newer than every one the consumer has: during a rollout the
//! API may run the new version first. They are held — nothing committed past them, nothing dead-lettered,
//! `/readyz` says why — until a consumer that has the version lands them; only after
//! `--newer-contract-wait` do they go to the DLQ.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

/// Three v1 orders, then three v2 orders, on each of two partitions: the v2 records are offsets 3..6.
async fn produce_v1_then_v2(dataset: &TestDataset) -> BTreeMap<i32, i64> {
    let topic = dataset.name.raw_topic();
    let v1: Vec<TestRecord> = (0..6).map(|i| TestRecord::order(i, 2, 300)).collect();
    let v2: Vec<TestRecord> = (6..12).map(|i| TestRecord::order(i, 2, 300)).collect();
    produce(&topic, &v1).await;
    produce_version(&dataset.bootstrap, &topic, &v2, 2).await;
    end_offsets(&topic, 2)
}

/// The DLQ topic's record count.
fn dlq_records(dataset: &TestDataset) -> i64 {
    end_offsets(&dataset.name.dlq_topic(), 1).values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_a_newer_contract_wait_for_a_consumer_that_has_it() {
    let dataset = TestDataset::create("newer-held", 2).await;
    let ends = produce_v1_then_v2(&dataset).await;
    let group = dataset.name.consumer_group();
    let topic = dataset.name.raw_topic();
    let location = format!("file://{}", dataset.local_raw_zone().display());

    let old = ConsumerProcess::start(&dataset, &location, "v1-only", &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let readiness = loop {
        match old.get("/readyz").await {
            Some((503, body)) if body.contains("v2") => break body,
            other if std::time::Instant::now() > deadline => {
                panic!("the v1-only consumer never said it holds v2 records: /readyz {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert!(
        readiness.contains("has versions up to v1") && readiness.contains("then they go to the DLQ"),
        "{readiness}"
    );
    // Retried for a while: the hold lasts, and the landings before the v2 records are committed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = old
        .metric("streamlake_consumer_landing_failures_total")
        .await
        .unwrap_or(0.0);
    assert!(held >= 2.0, "the landing was retried ({held} failures)");
    let committed = committed_offsets(&group, &topic, 2);
    for (partition, end) in &ends {
        let at = committed.get(partition).copied().unwrap_or(-1);
        assert!(
            at <= 3,
            "partition {partition} committed {at}, past its first v2 record (3); end {end}"
        );
    }
    assert_eq!(dlq_records(&dataset), 0, "nothing was dead-lettered while held");
    assert!(old.terminate(Duration::from_secs(40)).success());

    // The rollout: a consumer that has v2 (here the same schema under version 2).
    std::fs::copy(
        dataset.contracts_dir.join(format!("{}.v1.json", dataset.name)),
        dataset.contracts_dir.join(format!("{}.v2.json", dataset.name)),
    )
    .expect("add the v2 contract");
    let new = ConsumerProcess::start(&dataset, &location, "with-v2", &[]);
    wait_committed(&group, &topic, &ends, Duration::from_secs(60)).await;
    assert!(new.terminate(Duration::from_secs(30)).success());

    let contents = read_raw_zone(&open_store(&location).await, &dataset.layout(), &test_dates()).await;
    contents.assert_exactly_once(&ends);
    assert!(
        contents.dlq.is_empty(),
        "no record in the DLQ: {:?}",
        contents.dlq
    );
    assert_eq!(dlq_records(&dataset), 0);
    let versions: BTreeMap<String, usize> = contents.records.iter().fold(BTreeMap::new(), |mut n, r| {
        *n.entry(r["_schema_version"].to_string()).or_default() += 1;
        n
    });
    assert_eq!(versions, BTreeMap::from([("1".into(), 6), ("2".into(), 6)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_a_newer_contract_go_to_the_dlq_once_the_wait_is_over() {
    let dataset = TestDataset::create("newer-expired", 2).await;
    let ends = produce_v1_then_v2(&dataset).await;
    let location = format!("file://{}", dataset.local_raw_zone().display());

    let consumer = ConsumerProcess::start(&dataset, &location, "consumer", &["--newer-contract-wait", "3s"]);
    let (group, topic) = (dataset.name.consumer_group(), dataset.name.raw_topic());
    wait_committed(&group, &topic, &ends, Duration::from_secs(60)).await;
    let held = consumer
        .metric("streamlake_consumer_landing_failures_total")
        .await
        .unwrap_or(0.0);
    assert!(
        held >= 1.0,
        "the records were held before they were dead-lettered"
    );
    assert!(consumer.terminate(Duration::from_secs(30)).success());

    let contents = read_raw_zone(&open_store(&location).await, &dataset.layout(), &test_dates()).await;
    contents.assert_exactly_once(&ends);
    let dlq: Vec<(i64, i64, String)> = contents
        .metadata
        .values()
        .flat_map(|m| &m.dlq)
        .map(|d| (i64::from(d.partition), d.offset, d.error_type.clone()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let expected: Vec<(i64, i64, String)> = [0, 1]
        .into_iter()
        .flat_map(|p| (3..6).map(move |o| (p, o, "unknown_schema_version".to_owned())))
        .collect();
    assert_eq!(dlq, expected);
    assert_eq!(
        dlq_records(&dataset),
        6,
        "each v2 record is in the DLQ topic once"
    );
}
