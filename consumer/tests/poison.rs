//! Poison pills go to the DLQ topic with the error headers and their original key and bytes; the
//! records after them land; the metadata lists each DLQ'd offset.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use prometheus_client::metrics::counter::Counter;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use streamlake_consumer::classify::Rejection;
use streamlake_consumer::dlq::DlqWriter;
use streamlake_consumer::record::SourceRecord;
use streamlake_core::headers::{self, DLQ_EXCERPT_BYTES, DlqError, ErrorStage};
use streamlake_core::kafka::topics::{TopicSpec, ensure_topics};
use streamlake_core::kafka::{KafkaArgs, ProducerArgs, producer_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_pills_go_to_the_dlq_with_headers_and_later_records_land() {
    let dataset = TestDataset::create("poison", 1).await;
    let topic = dataset.name.raw_topic();
    let poison = |payload: Vec<u8>| TestRecord {
        partition: 0,
        key: Some(b"bad-key".to_vec()),
        payload,
        timestamp: BASE_TIMESTAMP_MS,
        with_headers: true,
    };
    let mut records: Vec<TestRecord> = (0..10).map(|i| TestRecord::order(i, 1, 200)).collect();
    records.push(poison(b"{not json".to_vec())); // offset 10
    records.push(poison(br#"{"order_id":"o-x","currency":"euro"}"#.to_vec())); // 11
    records.push(poison(order(99, 4_000))); // 12: over --max-record-bytes
    records.extend((10..20).map(|i| TestRecord::order(i, 1, 200))); // 13..=22
    produce(&topic, &records).await;
    let ends = end_offsets(&topic, 1);
    let location = format!("file://{}", dataset.local_raw_zone().display());

    let consumer = ConsumerProcess::start(&dataset, &location, "consumer", &["--max-record-bytes", "2KiB"]);
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
    assert_eq!(contents.dlq, vec![(0, 10), (0, 11), (0, 12)]);
    let listed: BTreeMap<i64, String> = contents
        .metadata
        .values()
        .flat_map(|m| &m.dlq)
        .map(|d| (d.offset, d.error_type.clone()))
        .collect();
    let expected: BTreeMap<i64, String> = [
        (10, "invalid_json"),
        (11, "contract_violation"),
        (12, "record_too_large"),
    ]
    .map(|(o, t)| (o, t.to_owned()))
    .into();
    assert_eq!(listed, expected);

    let dlq = read_dlq(&dataset.name.dlq_topic(), 3);
    assert_eq!(dlq.len(), 3, "each poison pill is in the DLQ topic once");
    for (record, (offset, error_type)) in dlq.iter().zip(&expected) {
        let error = &record.error;
        assert_eq!(error.stage, ErrorStage::Consumer);
        assert_eq!(&error.error_type, error_type);
        assert_eq!(error.source_topic, topic);
        assert_eq!(
            (error.source_partition, error.source_offset),
            (Some(0), Some(*offset))
        );
        assert!(!error.message.is_empty());
        assert_eq!(
            record.key.as_deref(),
            Some(&b"bad-key"[..]),
            "the original key is kept"
        );
        assert_eq!(
            record.payload, records[*offset as usize].payload,
            "the original bytes are kept"
        );
        assert!(record.kept_original_headers, "the original headers are kept");
    }
    println!(
        "DLQ: {:?}",
        dlq.iter()
            .map(|r| (&r.error.error_type, &r.error.message))
            .collect::<Vec<_>>()
    );
}

/// A DLQ send that fails replaces the DLQ producer, and the landing's retry sends through the fresh one
/// (an idempotent producer can be left unusable; one that cannot send would stop the whole consumer).
/// Here the first send fails because the DLQ topic does not exist yet (the broker creates no topics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dlq_send_replaces_the_producer_and_the_retry_lands() {
    let dataset = TestDataset::create("dlq-replace", 1).await;
    let missing = format!("{}.not-yet", dataset.name.dlq_topic());
    let replacements = Counter::default();
    let config = producer_config(
        &KafkaArgs::for_bootstrap(bootstrap()),
        &ProducerArgs {
            message_timeout_ms: 3_000,
            ..ProducerArgs::default()
        },
    )
    .expect("producer config");
    let writer = DlqWriter::new(
        &config,
        missing.clone(),
        dataset.name.raw_topic(),
        Duration::from_secs(3),
        replacements.clone(),
    )
    .expect("DLQ writer");
    let record = SourceRecord {
        partition: 0,
        offset: 41,
        timestamp: Some(BASE_TIMESTAMP_MS),
        key: Some(Bytes::from_static(b"bad-key")),
        payload: Some(Bytes::from_static(b"{not json")),
        headers: None,
    };
    let rejection = Rejection::new("invalid_json", "expected value at line 1 column 2");

    let error = writer
        .send(&record, &rejection)
        .await
        .expect_err("no such topic yet");
    assert_eq!(
        replacements.get(),
        1,
        "the failed send replaced the producer ({error})"
    );

    let admin = KafkaArgs::for_bootstrap(bootstrap())
        .client_config()
        .expect("client config");
    let spec = TopicSpec {
        name: missing.clone(),
        partitions: 1,
        replication_factor: 1,
        retention_ms: -1,
    };
    ensure_topics(&admin, &[spec], Duration::from_secs(30))
        .await
        .expect("create the DLQ topic");
    writer
        .send(&record, &rejection)
        .await
        .expect("the retry is acknowledged");
    assert_eq!(replacements.get(), 1, "a send that works replaces nothing");

    let dlq = read_dlq(&missing, 1);
    assert_eq!(dlq.len(), 1, "the retried record, once");
    assert_eq!(dlq[0].error.error_type, "invalid_json");
    assert_eq!(
        (dlq[0].error.source_partition, dlq[0].error.source_offset),
        (Some(0), Some(41))
    );
    assert_eq!(dlq[0].payload, b"{not json");
}

/// A pill too large for the DLQ is sent as its first 64 KiB with its length: at once when it is over the
/// record limit, and after the DLQ topic refused it whole otherwise (its `max.message.bytes` here is below
/// the pill's size) — a pill the DLQ never takes would hold its partition forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pill_too_large_for_the_dlq_is_sent_as_an_excerpt_with_its_length() {
    let dataset = TestDataset::create("dlq-excerpt", 1).await;
    let dlq_topic = format!("{}.small", dataset.name.dlq_topic());
    let admin: AdminClient<DefaultClientContext> = KafkaArgs::for_bootstrap(bootstrap())
        .client_config()
        .expect("client config")
        .create()
        .expect("admin client");
    let small = NewTopic::new(&dlq_topic, 1, TopicReplication::Fixed(1)).set("max.message.bytes", "80000");
    let created = admin
        .create_topics([&small], &AdminOptions::new())
        .await
        .expect("create topics");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let config = producer_config(&KafkaArgs::for_bootstrap(bootstrap()), &ProducerArgs::default())
        .expect("producer config");
    let replacements = Counter::default();
    let writer = DlqWriter::new(
        &config,
        dlq_topic.clone(),
        dataset.name.raw_topic(),
        Duration::from_secs(10),
        replacements.clone(),
    )
    .expect("DLQ writer");
    let pill = |offset: i64, len: usize| SourceRecord {
        partition: 0,
        offset,
        timestamp: Some(BASE_TIMESTAMP_MS),
        key: Some(Bytes::from_static(b"bad-key")),
        payload: Some(Bytes::from(letters(len))),
        headers: None,
    };
    let sends = [
        (pill(1, 100_000), Rejection::new("invalid_json", "expected value")),
        (
            pill(2, 100_000),
            Rejection::new("record_too_large", "the value is 100000 bytes"),
        ),
        (pill(3, 5_000), Rejection::new("invalid_json", "expected value")),
    ];
    for (record, rejection) in &sends {
        writer.send(record, rejection).await.expect("acknowledged");
    }
    assert_eq!(
        replacements.get(),
        1,
        "only the refused whole send replaced the producer"
    );

    let dlq = read_dlq(&dlq_topic, 3);
    let kept: Vec<(Option<i64>, usize, Option<&str>)> = (dlq.iter())
        .map(|r| {
            (
                r.error.source_offset,
                r.payload.len(),
                r.original_bytes.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            (Some(1), DLQ_EXCERPT_BYTES, Some("100000")),
            (Some(2), DLQ_EXCERPT_BYTES, Some("100000")),
            (Some(3), 5_000, None),
        ],
        "each pill once: the two large ones as excerpts, the small one whole"
    );
    for (record, (sent, _)) in dlq.iter().zip(&sends) {
        let original = sent.payload.as_deref().expect("payload");
        assert_eq!(
            record.payload,
            original[..record.payload.len()],
            "the excerpt is the record's start"
        );
    }
    assert!(
        dlq[0].error.message.contains("keeps its first 65536 bytes"),
        "{}",
        dlq[0].error.message
    );
}

/// `len` letters in no order (an LCG), which the producer's lz4 cannot shrink much.
fn letters(len: usize) -> Vec<u8> {
    let mut state: u64 = 42;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            b'a' + ((state >> 33) % 26) as u8
        })
        .collect()
}

struct DlqRecord {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    error: DlqError,
    kept_original_headers: bool,
    /// `payload.original_bytes`: the DLQ record is an excerpt of a record this long.
    original_bytes: Option<String>,
}

fn read_dlq(topic: &str, expected: usize) -> Vec<DlqRecord> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", streamlake_testkit::unique_name("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Read a little past the expected count, so a duplicate would show.
    let mut quiet_since = None;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) => {
                let headers = message.headers().expect("DLQ records carry headers");
                out.push(DlqRecord {
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    error: DlqError::from_headers(headers).expect("DLQ headers parse"),
                    kept_original_headers: headers.iter().any(|h| h.key == "event_id"),
                    original_bytes: (headers.iter())
                        .find(|h| h.key == headers::PAYLOAD_ORIGINAL_BYTES)
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                });
                quiet_since = None;
            }
            Some(Err(e)) => panic!("reading the DLQ: {e}"),
            None if out.len() >= expected => {
                let since = *quiet_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > Duration::from_secs(3) {
                    break;
                }
            }
            None => {}
        }
    }
    out.sort_by_key(|r| r.error.source_offset);
    out
}
