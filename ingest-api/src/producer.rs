//! The Kafka side of the API: one idempotent, acks=all producer; a send resolves only with the
//! delivery report, so an answer never claims more than Kafka confirmed.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Serialize;

/// Every answer waits for its record's acknowledgement, so produce requests go out without Nagle's delay
/// (librdkafka's default keeps it on; the Java client turns it off). Extra properties may still set it.
pub const LATENCY_DEFAULTS: [(&str, &str); 1] = [("socket.nagle.disable", "true")];

/// `config` with [`LATENCY_DEFAULTS`] where it sets nothing: what the operator configured wins.
fn with_latency_defaults(config: &ClientConfig) -> ClientConfig {
    let mut config = config.clone();
    for (key, value) in LATENCY_DEFAULTS {
        if config.get(key).is_none() {
            config.set(key, value);
        }
    }
    config
}

/// Where Kafka stored a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivered {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Why a record was not acknowledged, classified once: retryable or permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    /// The local queue is full: back-pressure, retry shortly.
    #[error("the producer queue is full")]
    QueueFull,
    /// The broker or topic cannot be reached now; the record may be retried.
    #[error("{0}")]
    Unavailable(String),
    #[error("the record is larger than the producer's limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// Kafka refused the record for good.
    #[error("{0}")]
    Rejected(String),
    /// The producer failed for good ([`KafkaSink::fatal_error`]): this record and every later one.
    #[error("{0}")]
    Failed(String),
}

impl ProduceError {
    fn classify(err: &KafkaError, topic: &str, max_message_bytes: usize) -> Self {
        use RDKafkaErrorCode as C;
        match err.rdkafka_error_code() {
            Some(C::QueueFull) => Self::QueueFull,
            Some(C::MessageSizeTooLarge) => Self::TooLarge {
                limit: max_message_bytes,
            },
            Some(C::UnknownTopic | C::UnknownTopicOrPartition) => Self::Unavailable(format!(
                "topic {topic} does not exist; create it with `ingest-api topics`"
            )),
            Some(
                C::InvalidMessage
                | C::InvalidRecord
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::InvalidTopic,
            ) => Self::Rejected(err.to_string()),
            Some(C::Fatal) => Self::Failed(err.to_string()),
            // Timeouts, transport errors and anything else transient: the record is not acknowledged.
            _ => Self::Unavailable(err.to_string()),
        }
    }
}

/// The one producer of the API process.
#[derive(Clone)]
pub struct KafkaSink {
    producer: FutureProducer,
    max_message_bytes: usize,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl KafkaSink {
    /// A producer on `config`, with [`LATENCY_DEFAULTS`] for the properties it leaves unset.
    pub fn new(config: &ClientConfig) -> Result<Self, KafkaError> {
        let max_message_bytes = config
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        Ok(Self {
            producer: with_latency_defaults(config).create()?,
            max_message_bytes,
        })
    }

    /// Hands the record to the producer and waits for its delivery report.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<Delivered, ProduceError> {
        let mut record = FutureRecord::to(topic).payload(payload).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        let classify = |e: &KafkaError| match ProduceError::classify(e, topic, self.max_message_bytes) {
            ProduceError::Failed(generic) => ProduceError::Failed(self.fatal_error().unwrap_or(generic)),
            other => other,
        };
        let delivery = self.producer.send_result(record).map_err(|(e, _)| classify(&e))?;
        match delivery.await {
            Ok(Ok(d)) => Ok(Delivered {
                topic: topic.to_owned(),
                partition: d.partition,
                offset: d.offset,
            }),
            Ok(Err((e, _))) => Err(classify(&e)),
            Err(_canceled) => Err(ProduceError::Unavailable("the producer shut down".into())),
        }
    }

    /// The fatal error the producer hit, if it did. librdkafka raises one when an idempotent producer can no
    /// longer guarantee order and once-ness (a state it cannot reconcile with the broker's); every later
    /// send fails with it, and only a new producer — a restart of the process — clears it.
    pub fn fatal_error(&self) -> Option<String> {
        self.producer
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("the Kafka producer failed for good ({code}): {reason}"))
    }

    /// Records handed to the producer and not yet acknowledged or failed.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Whether broker metadata can be fetched within `timeout`.
    pub async fn check_broker(&self, timeout: Duration) -> Result<(), String> {
        let producer = self.producer.clone();
        let fetched =
            tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout).map(|_| ()));
        match fetched.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("Kafka metadata unavailable: {e}")),
            Err(e) => Err(format!("metadata check did not complete: {e}")),
        }
    }

    /// Waits until every record handed to the producer is acknowledged or failed.
    pub async fn flush(&self, timeout: Duration) -> Result<(), String> {
        let producer = self.producer.clone();
        match tokio::task::spawn_blocking(move || producer.flush(timeout)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{e}; {} records still in flight", self.in_flight())),
            Err(e) => Err(format!("flush did not complete: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};

    use super::{ProduceError, with_latency_defaults};

    #[test]
    fn nagle_is_off_unless_the_configuration_says_otherwise() {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", "b:9092");
        assert_eq!(
            with_latency_defaults(&config).get("socket.nagle.disable"),
            Some("true")
        );
        config.set("socket.nagle.disable", "false");
        assert_eq!(
            with_latency_defaults(&config).get("socket.nagle.disable"),
            Some("false")
        );
    }

    #[test]
    fn produce_errors_are_classified_once() {
        let classify = |code| ProduceError::classify(&KafkaError::MessageProduction(code), "t", 100);
        assert_eq!(classify(C::QueueFull), ProduceError::QueueFull);
        assert_eq!(
            classify(C::MessageSizeTooLarge),
            ProduceError::TooLarge { limit: 100 }
        );
        assert!(matches!(
            classify(C::MessageTimedOut),
            ProduceError::Unavailable(_)
        ));
        assert!(matches!(
            classify(C::AllBrokersDown),
            ProduceError::Unavailable(_)
        ));
        let missing = classify(C::UnknownTopicOrPartition);
        assert!(
            matches!(&missing, ProduceError::Unavailable(m) if m.contains("ingest-api topics")),
            "{missing}"
        );
        assert!(matches!(
            classify(C::TopicAuthorizationFailed),
            ProduceError::Rejected(_)
        ));
        assert!(matches!(classify(C::Fatal), ProduceError::Failed(_)));
    }
}
