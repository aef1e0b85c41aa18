//! The local Kafka is a real broker: records round-trip and consumer-group offsets show in the upstream CLI.

use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use streamlake_testkit::{kafka_bootstrap, unique_name};

fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", kafka_bootstrap());
    config
}

async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client_config().create().expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics request");
    for result in results {
        result.expect("topic created");
    }
}

#[tokio::test]
async fn a_produced_record_is_consumed_back_and_its_group_offset_is_listed_by_the_cli() {
    let topic = unique_name("env-roundtrip");
    let group = unique_name("env-group");
    create_topic(&topic, 1).await;

    let producer: FutureProducer = client_config().set("acks", "all").create().expect("producer");
    let delivery = producer
        .send(
            FutureRecord::to(&topic).key("k1").payload("hello streamlake"),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    assert_eq!((delivery.partition, delivery.offset), (0, 0));

    let consumer: BaseConsumer = client_config()
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let message = (0..30)
        .find_map(|_| consumer.poll(Duration::from_secs(1)))
        .expect("a record within 30 s")
        .expect("a record");
    assert_eq!(message.key(), Some(&b"k1"[..]));
    assert_eq!(message.payload(), Some(&b"hello streamlake"[..]));
    consumer
        .commit_message(&message, CommitMode::Sync)
        .expect("commit");
    drop(message);
    drop(consumer);

    let output = Command::new("kafka-consumer-groups")
        .args([
            "--bootstrap-server",
            &kafka_bootstrap(),
            "--describe",
            "--group",
            &group,
        ])
        .output()
        .expect("kafka-consumer-groups on PATH (source .streamlake/env)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kafka-consumer-groups failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = stdout
        .lines()
        .find(|line| line.split_whitespace().nth(1) == Some(topic.as_str()))
        .unwrap_or_else(|| panic!("no row for {topic} in:\n{stdout}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG …
    assert_eq!(&columns[2..6], &["0", "1", "1", "0"], "row: {row}");
}
