//! Reading offset ranges of a topic with a consumer that is assigned partitions and never joins a
//! group or commits: the DLQ window, and the raw topic when a resumed redrive looks for what it wrote.
//! Blocking: run it on a blocking thread.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use streamlake_core::headers::{self, get_str};

use crate::crd::PartitionRange;

use super::summary::DlqRecordView;

/// Header counting how many times a record was redriven: the loop guard.
pub const REDRIVE_ATTEMPTS: &str = "redrive.attempts";
/// Header naming the inspection (its uid) that redrove a record.
pub const REDRIVE_ID: &str = "redrive.id";
/// Headers naming the DLQ record a redriven record came from.
pub const REDRIVE_DLQ_TOPIC: &str = "redrive.dlq.topic";
pub const REDRIVE_DLQ_PARTITION: &str = "redrive.dlq.partition";
pub const REDRIVE_DLQ_OFFSET: &str = "redrive.dlq.offset";

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("creating a Kafka consumer: {0}")]
    Client(#[source] KafkaError),
    #[error("assigning {topic}: {source}")]
    Assign { topic: String, source: KafkaError },
    #[error("reading {topic}: {source}")]
    Consume { topic: String, source: KafkaError },
    #[error("reading {topic}: no progress for {idle:?} with {pending} partition(s) short of their end")]
    Stalled {
        topic: String,
        idle: Duration,
        pending: usize,
    },
}

/// Reads every range to its end, handing each record to `each` until it returns `false` or `max`
/// records were handed over. Returns the number handed over.
pub fn read_ranges(
    config: &ClientConfig,
    topic: &str,
    ranges: &[PartitionRange],
    max: u64,
    idle_limit: Duration,
    mut each: impl FnMut(OwnedMessage) -> bool,
) -> Result<u64, ReadError> {
    let mut pending: BTreeMap<i32, i64> = ranges
        .iter()
        .filter(|r| r.end > r.start)
        .map(|r| (r.partition, r.end))
        .collect();
    if pending.is_empty() || max == 0 {
        return Ok(0);
    }
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", "streamlake-operator-dlq-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(ReadError::Client)?;
    let mut assignment = TopicPartitionList::new();
    for r in ranges.iter().filter(|r| pending.contains_key(&r.partition)) {
        assignment
            .add_partition_offset(topic, r.partition, Offset::Offset(r.start))
            .map_err(|source| assign_error(topic, source))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|source| assign_error(topic, source))?;
    let mut handed = 0u64;
    let mut last_progress = Instant::now();
    while !pending.is_empty() && handed < max {
        let owned = match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => message.detach(),
            Some(Err(source)) => {
                return Err(ReadError::Consume {
                    topic: topic.to_owned(),
                    source,
                });
            }
            None => {
                // Offsets a control record or compaction left out never arrive: the position says so.
                drop_finished(&consumer, topic, &mut pending);
                if last_progress.elapsed() > idle_limit && !pending.is_empty() {
                    return Err(ReadError::Stalled {
                        topic: topic.to_owned(),
                        idle: idle_limit,
                        pending: pending.len(),
                    });
                }
                continue;
            }
        };
        let (partition, offset) = (owned.partition(), owned.offset());
        let Some(&end) = pending.get(&partition) else {
            continue;
        };
        // Progress is a record of an unfinished range, not new records past a finished one.
        last_progress = Instant::now();
        if offset >= end {
            pending.remove(&partition);
            continue;
        }
        if offset + 1 >= end {
            pending.remove(&partition);
        }
        handed += 1;
        if !each(owned) {
            break;
        }
    }
    Ok(handed)
}

fn assign_error(topic: &str, source: KafkaError) -> ReadError {
    ReadError::Assign {
        topic: topic.to_owned(),
        source,
    }
}

fn drop_finished(consumer: &BaseConsumer, topic: &str, pending: &mut BTreeMap<i32, i64>) {
    let Ok(position) = consumer.position() else {
        return;
    };
    for elem in position.elements_for_topic(topic) {
        if let Offset::Offset(next) = elem.offset()
            && pending.get(&elem.partition()).is_some_and(|end| next >= *end)
        {
            pending.remove(&elem.partition());
        }
    }
}

/// The header value as text, if present and UTF-8.
pub fn header(message: &OwnedMessage, name: &'static str) -> Option<String> {
    let headers = message.headers()?;
    get_str(headers, name).ok().flatten().map(str::to_owned)
}

/// What the summary needs from a DLQ record.
pub fn view(message: &OwnedMessage) -> DlqRecordView {
    DlqRecordView {
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        error_type: header(message, headers::ERROR_TYPE),
        error_stage: header(message, headers::ERROR_STAGE),
        error_message: header(message, headers::ERROR_MESSAGE),
        source: header(message, headers::SOURCE),
        failed_at: header(message, headers::FAILED_AT),
        source_partition: header(message, headers::SOURCE_PARTITION).and_then(|p| p.parse().ok()),
        source_offset: header(message, headers::SOURCE_OFFSET).and_then(|o| o.parse().ok()),
        // An unreadable count is treated as exhausted: the guard errs on the side of not looping.
        attempts: header(message, REDRIVE_ATTEMPTS).map_or(0, |a| a.parse().unwrap_or(u32::MAX)),
        // Present but unreadable still marks an excerpt: the guard errs on the side of not redriving it.
        original_bytes: header(message, headers::PAYLOAD_ORIGINAL_BYTES)
            .map(|n| n.parse().unwrap_or(u64::MAX)),
    }
}

/// Every header of a message, in order, as owned pairs.
pub fn all_headers(message: &OwnedMessage) -> Vec<(String, Option<Vec<u8>>)> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default()
}
