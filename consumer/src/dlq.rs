//! Sending poison pills to `streamlake.<dataset>.dlq`, with the original key, bytes and headers plus
//! the error headers of DESIGN.md. A send counts only once the broker acknowledged it (acks=all).

use std::time::Duration;

use chrono::Utc;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use streamlake_core::headers::{DlqError, ErrorStage};

use crate::classify::Rejection;
use crate::record::{RecordHeaders, SourceRecord};

pub struct DlqWriter {
    producer: FutureProducer,
    topic: String,
    source_topic: String,
    timeout: Duration,
}

impl std::fmt::Debug for DlqWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DlqWriter")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl DlqWriter {
    /// `config` must be a durable producer configuration (see `streamlake_core::kafka::producer_config`).
    pub fn new(
        config: &ClientConfig,
        topic: String,
        source_topic: String,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: config.create()?,
            topic,
            source_topic,
            timeout,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends one rejected record and waits for the broker's acknowledgement.
    pub async fn send(&self, record: &SourceRecord, rejection: &Rejection) -> Result<(), KafkaError> {
        let error = DlqError {
            stage: ErrorStage::Consumer,
            error_type: rejection.error_type.to_owned(),
            message: rejection.message.clone(),
            source_topic: self.source_topic.clone(),
            source_partition: Some(record.partition),
            source_offset: Some(record.offset),
            failed_at: Utc::now(),
        };
        let headers = error.append_to(
            record
                .headers
                .as_ref()
                .map_or_else(OwnedHeaders::new, RecordHeaders::to_owned_headers),
        );
        let mut message = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
        if let Some(key) = record.key.as_deref() {
            message = message.key(key);
        }
        if let Some(payload) = record.payload.as_deref() {
            message = message.payload(payload);
        }
        if let Some(timestamp) = record.timestamp {
            message = message.timestamp(timestamp);
        }
        self.producer
            .send(message, self.timeout)
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}
