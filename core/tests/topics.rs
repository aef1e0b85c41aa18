//! Topic bootstrap against the real local broker: creating twice creates once.

use std::time::Duration;

use rdkafka::ClientConfig;
use streamlake_core::kafka::KafkaArgs;
use streamlake_core::kafka::topics::{TopicArgs, TopicOutcome, ensure_topics};
use streamlake_core::names::DatasetName;

#[tokio::test]
async fn ensure_topics_creates_missing_topics_and_leaves_existing_ones() {
    let kafka = KafkaArgs::for_bootstrap(streamlake_testkit::kafka_bootstrap());
    let client: ClientConfig = kafka.client_config().expect("client config");
    let dataset = DatasetName::new(streamlake_testkit::unique_name("topics")).expect("valid name");
    let args = TopicArgs {
        raw_partitions: 4,
        dlq_partitions: 1,
        replication_factor: 1,
        raw_retention_ms: 3_600_000,
        dlq_retention_ms: 7_200_000,
    };
    let specs = args.specs_for(&dataset);
    assert_eq!(specs[0].name, format!("streamlake.{dataset}.raw"));
    assert_eq!(specs[1].name, format!("streamlake.{dataset}.dlq"));

    let first = ensure_topics(&client, &specs, Duration::from_secs(30))
        .await
        .expect("created");
    assert!(
        first.iter().all(|(_, o)| *o == TopicOutcome::Created),
        "{first:?}"
    );

    let second = ensure_topics(&client, &specs, Duration::from_secs(30))
        .await
        .expect("idempotent");
    let outcomes: Vec<&TopicOutcome> = second.iter().map(|(_, o)| o).collect();
    assert_eq!(
        outcomes,
        [
            &TopicOutcome::Existed { partitions: 4 },
            &TopicOutcome::Existed { partitions: 1 }
        ]
    );
}
