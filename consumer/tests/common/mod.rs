//! Helpers of the consumer's integration tests: real Kafka, real raw zones, the real `consumer` binary.
#![allow(dead_code)] // each test binary uses a different subset

pub mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use streamlake_core::headers::RecordMetadata;
use streamlake_core::kafka::topics::{TopicSpec, ensure_topics};
use streamlake_core::kafka::{KafkaArgs, ProducerArgs, producer_config};
use streamlake_core::names::DatasetName;
use streamlake_core::rawzone::readback::{read_rows, row_positions};
use streamlake_core::rawzone::store::GcsOptions;
use streamlake_core::rawzone::{
    DataFileName, DatePartitionMetadata, IngestionDate, RawZoneLayout, RawZoneStore, StoreLocation,
    load_metadata,
};
use streamlake_testkit::{require_env, unique_name};

/// 2025-01-02T23:59:50Z: records around it fall on two ingestion dates.
pub const BASE_TIMESTAMP_MS: i64 = 1_735_862_390_000;

pub fn bootstrap() -> String {
    require_env("KAFKA_BOOTSTRAP_SERVERS")
}

pub fn emulator() -> String {
    require_env("STORAGE_EMULATOR_HOST")
}

pub fn bucket() -> String {
    std::env::var("STREAMLAKE_GCS_BUCKET").unwrap_or_else(|_| "streamlake-dev".into())
}

/// A dataset with its own topics, contract and scratch directory.
pub struct TestDataset {
    pub name: DatasetName,
    /// The broker its topics are on: the shared one, or a test's own.
    pub bootstrap: String,
    pub partitions: i32,
    pub dir: PathBuf,
    pub contracts_dir: PathBuf,
}

impl TestDataset {
    pub async fn create(prefix: &str, partitions: i32) -> Self {
        Self::create_on(bootstrap(), prefix, partitions).await
    }

    /// [`TestDataset::create`] on the broker at `bootstrap`.
    pub async fn create_on(bootstrap: String, prefix: &str, partitions: i32) -> Self {
        let name = DatasetName::new(unique_name(prefix)).expect("unique names are valid dataset names");
        let dir = std::env::temp_dir().join(format!("streamlake-consumer-tests/{name}"));
        let contracts_dir = dir.join("contracts");
        std::fs::create_dir_all(&contracts_dir).expect("scratch dir");
        let orders = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/orders.v1.json");
        std::fs::copy(&orders, contracts_dir.join(format!("{name}.v1.json")))
            .expect("copy the orders contract");
        let specs = [
            TopicSpec {
                name: name.raw_topic(),
                partitions,
                replication_factor: 1,
                retention_ms: -1,
            },
            TopicSpec {
                name: name.dlq_topic(),
                partitions: 1,
                replication_factor: 1,
                retention_ms: -1,
            },
        ];
        let admin = KafkaArgs::for_bootstrap(&bootstrap)
            .client_config()
            .expect("client config");
        ensure_topics(&admin, &specs, Duration::from_secs(30))
            .await
            .expect("create topics");
        Self {
            name,
            bootstrap,
            partitions,
            dir,
            contracts_dir,
        }
    }

    pub fn local_raw_zone(&self) -> PathBuf {
        self.dir.join("lake")
    }

    pub fn layout(&self) -> RawZoneLayout {
        RawZoneLayout::new(self.name.clone())
    }
}

/// A valid `orders` event of about `size` bytes.
pub fn order(i: u64, size: usize) -> Vec<u8> {
    let mut event = serde_json::json!({
        "order_id": format!("o-{i}"),
        "customer_id": format!("c-{}", i % 97),
        "line_items": [{ "sku": "sku-1", "quantity": 1 + (i % 5), "unit_price": "9.99" }],
        "amount": "9.99",
        "currency": "EUR",
        "created_at": "2025-01-02T10:00:00Z",
    });
    let base = serde_json::to_vec(&event).expect("json").len();
    if size > base + 40 {
        // Pad with more line items until the event is about the requested size.
        let item = serde_json::json!({ "sku": "sku-padding-000000", "quantity": 1, "unit_price": "0.01" });
        let step = serde_json::to_vec(&item).expect("json").len() + 1;
        let items = event["line_items"].as_array_mut().expect("array");
        for _ in 0..(size - base) / step {
            items.push(item.clone());
        }
    }
    serde_json::to_vec(&event).expect("json")
}

/// One record to produce.
pub struct TestRecord {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub timestamp: i64,
    pub with_headers: bool,
}

impl TestRecord {
    /// Valid order `i` on partition `i % partitions`, with the API's headers.
    pub fn order(i: u64, partitions: i32, size: usize) -> Self {
        Self {
            partition: (i % partitions as u64) as i32,
            key: Some(format!("o-{i}").into_bytes()),
            payload: order(i, size),
            timestamp: BASE_TIMESTAMP_MS + (i as i64 * 7) % 20_000,
            with_headers: true,
        }
    }
}

pub fn producer() -> FutureProducer {
    producer_on(&bootstrap())
}

pub fn producer_on(bootstrap: &str) -> FutureProducer {
    producer_config(&KafkaArgs::for_bootstrap(bootstrap), &ProducerArgs::default())
        .expect("producer config")
        .create()
        .expect("producer")
}

/// Produces the records and waits for every acknowledgement.
pub async fn produce(topic: &str, records: &[TestRecord]) {
    produce_on(&bootstrap(), topic, records).await;
}

/// [`produce`] to the broker at `bootstrap`.
pub async fn produce_on(bootstrap: &str, topic: &str, records: &[TestRecord]) {
    produce_version(bootstrap, topic, records, 1).await;
}

/// [`produce_on`], the records with headers stamped with contract version `schema_version`.
pub async fn produce_version(bootstrap: &str, topic: &str, records: &[TestRecord], schema_version: u32) {
    let producer = producer_on(bootstrap);
    for chunk in records.chunks(5_000) {
        let sends = chunk.iter().map(|r| {
            let headers = RecordMetadata {
                event_id: uuid::Uuid::new_v4(),
                schema_version,
                ingested_at: Utc::now(),
                source: "consumer-tests".into(),
                content_type: "application/json".into(),
            }
            .to_headers();
            let mut record = FutureRecord::<[u8], [u8]>::to(topic)
                .partition(r.partition)
                .payload(&r.payload)
                .timestamp(r.timestamp);
            if let Some(key) = &r.key {
                record = record.key(key);
            }
            if r.with_headers {
                record = record.headers(headers);
            }
            producer.send(record, Duration::from_secs(30))
        });
        for result in futures::future::join_all(sends).await {
            result.expect("record acknowledged");
        }
    }
}

/// The high watermark of every partition.
pub fn end_offsets(topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    end_offsets_on(&bootstrap(), topic, partitions)
}

pub fn end_offsets_on(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = plain_client(bootstrap).create().expect("consumer");
    (0..partitions)
        .map(|p| {
            (
                p,
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .expect("watermarks")
                    .1,
            )
        })
        .collect()
}

/// The offsets committed by a group (absent partitions: nothing committed).
pub fn committed_offsets(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    committed_offsets_on(&bootstrap(), group, topic, partitions)
}

pub fn committed_offsets_on(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = plain_client(bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

fn plain_client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// Polls until the group has committed every partition up to its end offset.
pub async fn wait_committed(group: &str, topic: &str, ends: &BTreeMap<i32, i64>, timeout: Duration) {
    wait_committed_on(&bootstrap(), group, topic, ends, timeout).await;
}

pub async fn wait_committed_on(
    bootstrap: &str,
    group: &str,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
    timeout: Duration,
) {
    let partitions = ends.len() as i32;
    streamlake_testkit::wait_until("the consumer group committed every record", timeout, || {
        let committed = committed_offsets_on(bootstrap, group, topic, partitions);
        let done = ends
            .iter()
            .all(|(p, end)| committed.get(p).copied().unwrap_or(0) >= *end);
        async move { done }
    })
    .await;
}

pub use streamlake_testkit::free_port;

/// A running `consumer` process.
pub struct ConsumerProcess {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl ConsumerProcess {
    /// Starts the binary with the dataset's defaults plus `extra` flags; its log goes to `<dir>/<label>.log`.
    pub fn start(dataset: &TestDataset, raw_zone: &str, label: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let log = dataset.dir.join(format!("{label}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_consumer"));
        command
            .args(["--dataset", dataset.name.as_str(), "--raw-zone", raw_zone])
            .arg("--contracts-dir")
            .arg(&dataset.contracts_dir)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--kafka-bootstrap-servers",
                &dataset.bootstrap,
            ])
            .args(extra)
            .env("RUST_LOG", "info,streamlake_consumer=debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out);
        // Test defaults: quick rotation, commits and retries; a flag given in `extra` wins.
        let defaults = [
            ("--max-file-age", "1s"),
            ("--commit-interval", "500ms"),
            ("--retry-initial", "100ms"),
            ("--retry-max", "1s"),
            ("--drain-timeout", "20s"),
        ];
        for (flag, value) in defaults.iter().filter(|(flag, _)| !extra.contains(flag)) {
            command.args([flag, value]);
        }
        let child = command.spawn().expect("start the consumer binary");
        Self { child, port, log }
    }

    /// Waits until the consumer's log contains `needle` (e.g. "partitions assigned").
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let log = self.log.clone();
        streamlake_testkit::wait_until(&format!("{} logs {needle:?}", log.display()), timeout, || {
            let found = std::fs::read_to_string(&log).is_ok_and(|text| text.contains(needle));
            async move { found }
        })
        .await;
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        self.wait(timeout)
    }

    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the consumer did not exit within {timeout:?}; log: {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A plain HTTP/1.0 GET of the consumer's own endpoints: (status, body), or `None` if it does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Some((status, body))
    }

    /// The sum of a metric over its label sets (`name` or `name{...}` lines), if exposed.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        let values: Vec<f64> = body
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a raw zone holds for a dataset, read the way a downstream job would: from the metadata.
#[derive(Debug, Default)]
pub struct RawZoneContents {
    pub metadata: BTreeMap<IngestionDate, DatePartitionMetadata>,
    /// (partition, offset) of every row of every listed file.
    pub rows: Vec<(i64, i64)>,
    /// Every row of every listed file, as JSON.
    pub records: Vec<serde_json::Map<String, serde_json::Value>>,
    /// (partition, offset) of every DLQ entry.
    pub dlq: Vec<(i64, i64)>,
    /// Row count per listed file, to compare with its entry.
    pub files_checked: usize,
}

impl RawZoneContents {
    /// Asserts that every offset below `ends` is in a file or the DLQ exactly once, and nothing else is.
    pub fn assert_exactly_once(&self, ends: &BTreeMap<i32, i64>) {
        for (date, meta) in &self.metadata {
            assert!(
                meta.problems().is_empty(),
                "metadata of {date} is unsound: {:?}",
                meta.problems()
            );
        }
        let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        for position in self.rows.iter().chain(&self.dlq) {
            *seen.entry(*position).or_default() += 1;
        }
        let doubles: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(10).collect();
        assert!(doubles.is_empty(), "records landed more than once: {doubles:?}");
        let expected: BTreeSet<(i64, i64)> = ends
            .iter()
            .flat_map(|(p, end)| (0..*end).map(move |o| (i64::from(*p), o)))
            .collect();
        let landed: BTreeSet<(i64, i64)> = seen.keys().copied().collect();
        let missing: Vec<_> = expected.difference(&landed).take(10).collect();
        let unexpected: Vec<_> = landed.difference(&expected).take(10).collect();
        assert!(
            missing.is_empty(),
            "records never landed: {missing:?} (of {})",
            expected.len()
        );
        assert!(
            unexpected.is_empty(),
            "records landed that were never produced: {unexpected:?}"
        );
    }

    /// Asserts that no (partition, offset) is listed twice (some may still be missing).
    pub fn assert_at_most_once(&self) {
        let mut seen = BTreeSet::new();
        let doubles: Vec<_> = self
            .rows
            .iter()
            .chain(&self.dlq)
            .filter(|p| !seen.insert(**p))
            .take(10)
            .collect();
        assert!(doubles.is_empty(), "records landed more than once: {doubles:?}");
    }

    pub fn file_count(&self) -> usize {
        self.metadata.values().map(|m| m.files.len()).sum()
    }

    pub fn listed_records(&self) -> u64 {
        self.metadata
            .values()
            .flat_map(|m| &m.files)
            .map(|f| f.record_count)
            .sum()
    }
}

pub async fn open_store(location: &str) -> RawZoneStore {
    let location: StoreLocation = location.parse().expect("raw zone location");
    let options = GcsOptions {
        endpoint: Some(emulator_or_default()),
        anonymous: true,
        ..Default::default()
    };
    RawZoneStore::open(&location, &options)
        .await
        .expect("open the raw zone")
}

fn emulator_or_default() -> String {
    std::env::var("STORAGE_EMULATOR_HOST").unwrap_or_else(|_| "http://127.0.0.1:14443".into())
}

/// Reads the metadata of `dates` and every file it lists; checks each file against its entry.
pub async fn read_raw_zone(
    store: &RawZoneStore,
    layout: &RawZoneLayout,
    dates: &[IngestionDate],
) -> RawZoneContents {
    let mut contents = RawZoneContents::default();
    for date in dates {
        let snapshot = load_metadata(store, layout, *date).await.expect("metadata");
        if snapshot.version.is_none() {
            continue;
        }
        for entry in &snapshot.doc.files {
            let key = layout.data_file_key(*date, &entry.path);
            let object = store
                .get(&key)
                .await
                .expect("read file")
                .unwrap_or_else(|| panic!("{key} is listed but missing"));
            check_file(&entry.path, &object.data, entry);
            let name: DataFileName = entry.path.parse().expect("file name");
            let rows = read_rows(name.format, object.data.clone()).expect("decode file");
            assert_eq!(
                rows.len() as u64,
                entry.record_count,
                "{key}: row count differs from its entry"
            );
            contents.rows.extend(row_positions(&rows));
            contents.records.extend(rows);
            contents.files_checked += 1;
        }
        contents.dlq.extend(
            snapshot
                .doc
                .dlq
                .iter()
                .map(|d| (i64::from(d.partition), d.offset)),
        );
        contents.metadata.insert(*date, snapshot.doc);
    }
    contents
}

fn check_file(path: &str, data: &Bytes, entry: &streamlake_core::rawzone::FileEntry) {
    assert_eq!(
        entry.checksum,
        format!("crc32c:{:08x}", crc32c::crc32c(data)),
        "{path}: checksum differs from its entry"
    );
    assert_eq!(
        entry.bytes as usize,
        data.len(),
        "{path}: size differs from its entry"
    );
}

/// The ingestion dates of [`TestRecord::order`] records.
pub fn test_dates() -> Vec<IngestionDate> {
    vec![
        "2025-01-02".parse().expect("date"),
        "2025-01-03".parse().expect("date"),
    ]
}

/// Names of local data files (not metadata, locks or temporaries) under a dataset's raw zone.
pub fn local_data_files(root: &Path, layout: &RawZoneLayout) -> Vec<String> {
    let mut names = Vec::new();
    let dataset_dir = root.join(layout.dataset_prefix());
    for date_dir in std::fs::read_dir(dataset_dir).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(date_dir.path()).into_iter().flatten().flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if streamlake_core::rawzone::layout::is_data_file(&name) {
                names.push(name);
            }
        }
    }
    names
}
