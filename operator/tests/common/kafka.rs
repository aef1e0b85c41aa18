//! Kafka side of the tests: topics, records with chosen timestamps, real group members, and what the
//! upstream `kafka-consumer-groups` tool reports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use streamlake_core::kafka::topics::{TopicSpec, ensure_topics};
use streamlake_core::offsets::OffsetClient;
use streamlake_testkit::{kafka_bootstrap, require_env, wait_until};

pub fn bootstrap() -> String {
    kafka_bootstrap()
}

pub fn config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap());
    config
}

pub fn offsets() -> Arc<OffsetClient> {
    Arc::new(OffsetClient::new(config(), Duration::from_secs(10)).expect("offset client"))
}

/// A tool of the local environment (`kubectl`, `kafka-consumer-groups`): on PATH, or in
/// `$SL_STATE/bin` next to the kubeconfig that `dev/up` wrote.
pub fn tool(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        let kubeconfig = PathBuf::from(require_env("KUBECONFIG"));
        kubeconfig
            .parent()
            .expect("kubeconfig dir")
            .join("bin")
            .join(name)
    })
}

pub async fn create_topic(topic: &str, partitions: i32) {
    let spec = TopicSpec {
        name: topic.to_owned(),
        partitions,
        replication_factor: 1,
        retention_ms: -1,
    };
    ensure_topics(&config(), &[spec], Duration::from_secs(30))
        .await
        .expect("topic created");
}

/// Produces `per_partition` records to each partition; record i of a partition has timestamp
/// `base_ms + i * 1000`.
pub async fn produce_timed(topic: &str, partitions: i32, per_partition: i64, base_ms: i64) {
    let producer: FutureProducer = config().set("acks", "all").create().expect("producer");
    for p in 0..partitions {
        for i in 0..per_partition {
            let payload = format!("record {i} of partition {p}");
            let record = FutureRecord::to(topic)
                .partition(p)
                .key("k")
                .payload(&payload)
                .timestamp(base_ms + i * 1000);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .expect("delivered");
        }
    }
}

/// Commits offsets for an empty group, as a consumer finishing its work would have.
pub async fn commit(group: &str, topic: &str, offsets: BTreeMap<i32, i64>) {
    let client = self::offsets();
    let (group, topic) = (group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || client.commit_as_group(&group, &topic, &offsets))
        .await
        .expect("blocking task")
        .expect("commit as the group");
}

pub async fn committed(group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let client = self::offsets();
    let (group, topic) = (group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || client.committed(&group, &topic))
        .await
        .expect("blocking task")
        .expect("committed offsets")
}

pub async fn members(group: &str) -> usize {
    let client = self::offsets();
    let group = group.to_owned();
    tokio::task::spawn_blocking(move || {
        client
            .describe_group(&group)
            .map(|d| d.members.len())
            .unwrap_or(usize::MAX)
    })
    .await
    .expect("blocking task")
}

/// CURRENT-OFFSET per partition of `group`, as `kafka-consumer-groups --describe` prints it.
pub fn cli_offsets(group: &str) -> BTreeMap<i32, i64> {
    let output = Command::new(tool("kafka-consumer-groups"))
        .args(["--bootstrap-server", &bootstrap(), "--describe", "--group", group])
        .output()
        .expect("run kafka-consumer-groups");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kafka-consumer-groups failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            match cols.as_slice() {
                [g, _topic, partition, current, ..] if *g == group => {
                    Some((partition.parse().ok()?, current.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

/// A real member of a group, outside Kubernetes: it keeps the group non-empty until it leaves.
pub struct GroupMember {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GroupMember {
    pub async fn join(group: &str, topic: &str) -> Self {
        Self::join_with(group, topic, "range,roundrobin", 0).await
    }

    /// Joins next to `others` members already in the group, with their assignment `strategy` (a member
    /// with no strategy in common is refused; the StreamLake consumer's is `cooperative-sticky`).
    pub async fn join_with(group: &str, topic: &str, strategy: &str, others: usize) -> Self {
        let consumer: BaseConsumer = config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "latest")
            .set("partition.assignment.strategy", strategy)
            .create()
            .expect("member consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                // Polling keeps the membership alive; what it reads does not matter.
                let _ = consumer.poll(Duration::from_millis(100));
            }
            consumer.unsubscribe();
        });
        let member = Self {
            stop,
            thread: Some(thread),
        };
        wait_until(
            "the test's member has joined the group",
            Duration::from_secs(30),
            || async { members(group).await > others },
        )
        .await;
        member
    }

    pub fn leave(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("member thread");
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
