//! Offset operations against the real local broker: group membership, watermarks, committed offsets,
//! offsets for a timestamp, and a reset that is refused while the group has members and seen by a
//! real consumer once it has none.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use streamlake_core::kafka::topics::{TopicSpec, ensure_topics};
use streamlake_core::offsets::{
    EndPosition, OffsetClient, OffsetError, OffsetResetPlan, StartPosition, Watermarks,
};
use streamlake_testkit::{kafka_bootstrap, unique_name, wait_until};

const PARTITIONS: i32 = 3;
const PER_PARTITION: i64 = 10;
const STEP_MS: i64 = 1_000;

fn config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", kafka_bootstrap());
    config
}

fn offsets() -> Arc<OffsetClient> {
    Arc::new(OffsetClient::new(config(), Duration::from_secs(10)).expect("offset client"))
}

/// A topic whose partition p holds records 0..10 with timestamps base + i seconds.
async fn seeded_topic(base_ms: i64) -> String {
    let topic = unique_name("offsets");
    let spec = TopicSpec {
        name: topic.clone(),
        partitions: PARTITIONS,
        replication_factor: 1,
        retention_ms: -1,
    };
    ensure_topics(&config(), &[spec], Duration::from_secs(10))
        .await
        .expect("topic created");
    let producer: FutureProducer = config().set("acks", "all").create().expect("producer");
    for p in 0..PARTITIONS {
        for i in 0..PER_PARTITION {
            let payload = format!("p{p}-r{i}");
            let record = FutureRecord::to(&topic)
                .partition(p)
                .key("k")
                .payload(&payload)
                .timestamp(base_ms + i * STEP_MS);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .expect("delivered");
        }
    }
    topic
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("fits")
}

/// A real member of `group`, polling on its own thread until told to stop; stopping leaves the group.
struct Member {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(i32, i64)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn join(group: &str, topic: &str) -> Self {
        let consumer: BaseConsumer = config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("member consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (flag, record) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                    record
                        .lock()
                        .expect("not poisoned")
                        .push((m.partition(), m.offset()));
                }
            }
            consumer.unsubscribe();
        });
        Self {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn read_count(&self) -> usize {
        self.seen.lock().expect("not poisoned").len()
    }

    /// Leaves the group; returns the (partition, offset) of every record it read.
    fn leave(mut self) -> Vec<(i32, i64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("member thread");
        std::mem::take(&mut *self.seen.lock().expect("not poisoned"))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test]
async fn reads_watermarks_timestamps_and_an_unknown_group() {
    let base = now_ms() - 3_600_000;
    let topic = seeded_topic(base).await;
    let client = offsets();
    let group = unique_name("offsets-nobody");

    let (marks, committed, description, at_5, future, missing) = blocking({
        let topic = topic.clone();
        move || {
            (
                client.watermarks(&topic).expect("watermarks"),
                client.committed(&group, &topic).expect("committed"),
                client.describe_group(&group).expect("describe"),
                client
                    .offsets_for_timestamp(&topic, base + 5 * STEP_MS)
                    .expect("lookup"),
                client
                    .offsets_for_timestamp(&topic, now_ms() + 3_600_000)
                    .expect("future lookup"),
                client.partitions("streamlake.no-such-topic.raw"),
            )
        }
    })
    .await;

    let expected: BTreeMap<i32, Watermarks> = (0..PARTITIONS)
        .map(|p| {
            (
                p,
                Watermarks {
                    low: 0,
                    high: PER_PARTITION,
                },
            )
        })
        .collect();
    assert_eq!(marks, expected);
    assert!(
        committed.is_empty(),
        "a fresh group has no committed offsets: {committed:?}"
    );
    assert!(
        description.is_empty(),
        "an unknown group has no members: {description:?}"
    );
    assert_eq!(description.state, "Dead");
    assert_eq!(
        at_5,
        (0..PARTITIONS).map(|p| (p, Some(5))).collect::<BTreeMap<_, _>>()
    );
    assert_eq!(
        future,
        (0..PARTITIONS).map(|p| (p, None)).collect::<BTreeMap<_, _>>()
    );
    assert!(
        matches!(missing, Err(OffsetError::UnknownTopic { .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_reset_is_refused_while_the_group_has_members_and_seen_by_the_next_consumer() {
    let base = now_ms() - 3_600_000;
    let topic = seeded_topic(base).await;
    let group = unique_name("offsets-group");
    let client = offsets();

    // A real member reads everything and commits nothing; wait until the coordinator lists it.
    let member = Member::join(&group, &topic);
    wait_until("the member has joined the group", Duration::from_secs(30), || {
        let (client, group) = (client.clone(), group.clone());
        async move { blocking(move || client.describe_group(&group).is_ok_and(|d| d.members.len() == 1)).await }
    })
    .await;
    let (description, refused) = blocking({
        let (client, group, topic) = (client.clone(), group.clone(), topic.clone());
        move || {
            let d = client.describe_group(&group).expect("describe");
            (
                d,
                client.commit_as_group(&group, &topic, &BTreeMap::from([(0, 2)])),
            )
        }
    })
    .await;
    assert!(!description.is_empty());
    assert_eq!(description.state, "Stable");
    match refused {
        Err(OffsetError::GroupNotEmpty { members, .. }) => assert_eq!(members.len(), 1),
        other => panic!("the commit must be refused while a member is connected, got {other:?}"),
    }

    // The member may still be fetching when the refusal comes back; let it read everything first.
    let total = (PER_PARTITION * i64::from(PARTITIONS)) as usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while member.read_count() < total && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let read_before = member.leave();
    assert_eq!(read_before.len(), total);
    wait_until("the group is empty", Duration::from_secs(30), || {
        let (client, group) = (client.clone(), group.clone());
        async move { blocking(move || client.describe_group(&group).is_ok_and(|d| d.is_empty())).await }
    })
    .await;

    // Plan "from base + 7 s": partition by partition, offset 7 on; then commit it as the group.
    let plan = blocking({
        let (client, group, topic) = (client.clone(), group.clone(), topic.clone());
        move || {
            let lookup = client
                .offsets_for_timestamp(&topic, base + 7 * STEP_MS)
                .expect("lookup");
            let partitions = client
                .partition_offsets(&group, &topic)
                .expect("partition offsets");
            let plan = OffsetResetPlan::compute(
                &partitions,
                &StartPosition::Timestamp(lookup),
                &EndPosition::LogEnd,
            )
            .expect("plan");
            client
                .commit_as_group(&group, &topic, &plan.new_offsets())
                .expect("commit while empty");
            let committed = client.committed(&group, &topic).expect("committed");
            (plan, committed)
        }
    })
    .await;
    let (plan, committed) = plan;
    assert_eq!(
        committed,
        (0..PARTITIONS).map(|p| (p, 7)).collect::<BTreeMap<_, _>>()
    );
    assert!(
        plan.partitions
            .iter()
            .all(|p| p.committed.is_none() && p.end_offset == PER_PARTITION)
    );
    assert_eq!(plan.progress(&committed).replayed, 0);
    assert_eq!(plan.progress(&committed).total, 9);

    // The next member of the group starts where the reset put it, not at the earliest offset.
    let member = Member::join(&group, &topic);
    wait_until(
        "the new member has read the 9 records after the reset",
        Duration::from_secs(30),
        || {
            let done = member.read_count() >= 9;
            async move { done }
        },
    )
    .await;
    // Anything it read beyond those 9 would show below.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut read_after = member.leave();
    read_after.sort_unstable();
    let expected: Vec<(i32, i64)> = (0..PARTITIONS)
        .flat_map(|p| (7..PER_PARTITION).map(move |o| (p, o)))
        .collect();
    assert_eq!(read_after, expected);
}
