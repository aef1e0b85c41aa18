//! Sending poison pills to `streamlake.<dataset>.dlq`, with the original key, bytes and headers plus
//! the error headers of DESIGN.md. A send counts only once the broker acknowledged it (acks=all).
//!
//! A failed send replaces the producer before the landing retries it. An idempotent librdkafka producer
//! can be left unusable — a fatal error, or a sequence or epoch state it does not recover from — and a
//! DLQ producer that cannot send stops the whole consumer: the landing holding the pill fails, and a
//! failing landing pauses every partition. Sends are rare, so a fresh producer (new connections, a new
//! producer id) per failed one costs nothing that matters, also during a broker outage.
//!
//! A record over the size limit (`record_too_large`) is sent as its first
//! [`DLQ_EXCERPT_BYTES`], with its length in `payload.original_bytes`; and so is any record the DLQ
//! topic refuses whole as too large (its `max.message.bytes` may be below the raw topic's): a pill the
//! DLQ can never take would otherwise hold its partition forever.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use prometheus_client::metrics::counter::Counter;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use streamlake_core::headers::{DLQ_EXCERPT_BYTES, DlqError, ErrorStage};
use tracing::warn;

use crate::classify::Rejection;
use crate::record::{RecordHeaders, SourceRecord};

pub struct DlqWriter {
    config: ClientConfig,
    producer: Mutex<Arc<FutureProducer>>,
    /// Producers replaced after a failed send.
    replacements: Counter,
    topic: String,
    source_topic: String,
    timeout: Duration,
}

impl std::fmt::Debug for DlqWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DlqWriter")
            .field("topic", &self.topic)
            .field("replacements", &self.replacements.get())
            .finish_non_exhaustive()
    }
}

impl DlqWriter {
    /// `config` must be a durable producer configuration (see `streamlake_core::kafka::producer_config`).
    /// `replacements` counts the producers replaced after a failed send.
    pub fn new(
        config: &ClientConfig,
        topic: String,
        source_topic: String,
        timeout: Duration,
        replacements: Counter,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: Mutex::new(Arc::new(config.create()?)),
            config: config.clone(),
            replacements,
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
        let length = record.payload.as_ref().map_or(0, |p| p.len());
        let keep = if rejection.error_type == "record_too_large" {
            DLQ_EXCERPT_BYTES
        } else {
            length
        };
        match self.send_kept(record, rejection, keep).await {
            Err(error) if too_large(&error) && keep > DLQ_EXCERPT_BYTES => {
                warn!(
                    topic = %self.topic,
                    partition = record.partition,
                    offset = record.offset,
                    "the DLQ topic refused a {length}-byte record whole: sending its first {DLQ_EXCERPT_BYTES} bytes"
                );
                self.send_kept(record, rejection, DLQ_EXCERPT_BYTES).await
            }
            sent => sent,
        }
    }

    /// [`Self::send`] with the record's first `keep` bytes (all of them if it has no more).
    async fn send_kept(
        &self,
        record: &SourceRecord,
        rejection: &Rejection,
        keep: usize,
    ) -> Result<(), KafkaError> {
        let payload = record.payload.as_deref().map(|p| &p[..p.len().min(keep)]);
        let length = record.payload.as_ref().map_or(0, |p| p.len());
        let error = DlqError {
            stage: ErrorStage::Consumer,
            error_type: rejection.error_type.to_owned(),
            message: rejection.message.clone(),
            source_topic: self.source_topic.clone(),
            source_partition: Some(record.partition),
            source_offset: Some(record.offset),
            failed_at: Utc::now(),
            original_bytes: None,
        };
        let error = match payload {
            Some(kept) if kept.len() < length => error.excerpt(kept.len(), length as u64),
            _ => error,
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
        if let Some(payload) = payload {
            message = message.payload(payload);
        }
        if let Some(timestamp) = record.timestamp {
            message = message.timestamp(timestamp);
        }
        let producer = self.current();
        let sent = producer.send(message, self.timeout).await;
        sent.map(|_| ()).map_err(|(error, _)| {
            self.replace(&producer, &error);
            error
        })
    }

    fn current(&self) -> Arc<FutureProducer> {
        self.producer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces `failed` with a fresh producer, unless a concurrent failure replaced it already.
    fn replace(&self, failed: &Arc<FutureProducer>, error: &KafkaError) {
        let mut current = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&current, failed) {
            return;
        }
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                let old = std::mem::replace(&mut *current, Arc::new(fresh));
                drop(current);
                self.replacements.inc();
                warn!(topic = %self.topic, "a DLQ send failed ({error}); the next one uses a fresh producer");
                // Destroying a client joins its threads: not on the runtime's workers.
                tokio::task::spawn_blocking(move || drop(old));
            }
            Err(e) => warn!(
                topic = %self.topic,
                "a DLQ send failed ({error}) and a fresh producer could not be created: {e}"
            ),
        }
    }
}

/// Whether a send failed because the record is larger than the producer or the DLQ topic takes.
fn too_large(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge)
}
