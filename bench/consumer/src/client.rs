//! The consumer's Kafka client configuration, as `streamlake_consumer::run` builds it in bounded mode.

use rdkafka::ClientConfig;
use streamlake_consumer::config::Config;
use streamlake_core::names::DatasetName;

/// A copy of the private `streamlake_consumer::run::consumer_config`, made from the same parsed [`Config`]
/// (defaults, environment, `--kafka-property`). Replace it by a call once that function is public.
pub fn consumer_client(config: &Config, dataset: &DatasetName) -> anyhow::Result<ClientConfig> {
    let fetch_kib = (config.limits.fetch_buffer_bytes / 1024).max(1024);
    let fetch_request_bytes = (fetch_kib * 1024 / 2).max(1 << 20);
    let mut client = ClientConfig::new();
    client
        .set("group.id", dataset.consumer_group())
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000")
        .set("queued.max.messages.kbytes", fetch_kib.to_string())
        .set("fetch.max.bytes", fetch_request_bytes.to_string())
        .set("fetch.queue.backoff.ms", "10")
        .set(
            "enable.partition.eof",
            if config.bounded.bounded { "true" } else { "false" },
        );
    for (key, value) in config.kafka.properties()? {
        client.set(key, value);
    }
    client
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    Ok(client)
}
