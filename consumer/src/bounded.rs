//! The bounded mode of backfill Jobs: resolve per-partition [start, end) offsets from the flags.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::BoundedArgs;

const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BoundedError {
    #[error("reading the metadata of {topic}: {source}")]
    Metadata { topic: String, source: KafkaError },
    #[error("topic {0} does not exist")]
    NoTopic(String),
    #[error("partition {partition} is not a partition of {topic} (it has {count})")]
    NoPartition {
        topic: String,
        partition: i32,
        count: usize,
    },
    #[error("looking up offsets of {topic}: {source}")]
    Offsets { topic: String, source: KafkaError },
}

/// The range of one partition: records with `start <= offset < end` are landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRange {
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

/// Turns the flags into concrete ranges, using the topic's watermarks and time index.
pub fn resolve<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    args: &BoundedArgs,
) -> Result<Vec<PartitionRange>, BoundedError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|source| BoundedError::Metadata {
            topic: topic.to_owned(),
            source,
        })?;
    let existing: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .ok_or_else(|| BoundedError::NoTopic(topic.to_owned()))?;
    let partitions = if args.partitions.is_empty() {
        existing.clone()
    } else {
        args.partitions.clone()
    };
    for partition in &partitions {
        if !existing.contains(partition) {
            return Err(BoundedError::NoPartition {
                topic: topic.into(),
                partition: *partition,
                count: existing.len(),
            });
        }
    }
    let offsets_err = |source| BoundedError::Offsets {
        topic: topic.to_owned(),
        source,
    };
    let mut watermarks = BTreeMap::new();
    for partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *partition, METADATA_TIMEOUT)
            .map_err(offsets_err)?;
        watermarks.insert(*partition, (low, high));
    }
    let starts = match args.start_time {
        Some(t) => offsets_at_time(consumer, topic, &partitions, t, &watermarks)?,
        None => BTreeMap::new(),
    };
    let ends = match args.end_time {
        Some(t) => offsets_at_time(consumer, topic, &partitions, t, &watermarks)?,
        None => BTreeMap::new(),
    };
    let explicit = |list: &[(i32, i64)], partition: i32| {
        list.iter().rev().find(|(p, _)| *p == partition).map(|(_, o)| *o)
    };
    Ok(partitions
        .iter()
        .map(|&partition| {
            let (low, high) = watermarks[&partition];
            let start = explicit(&args.start_offsets, partition)
                .or(starts.get(&partition).copied())
                .unwrap_or(low);
            let end = explicit(&args.end_offsets, partition)
                .or(ends.get(&partition).copied())
                .unwrap_or(high);
            PartitionRange {
                partition,
                start: start.max(low),
                end,
            }
        })
        .collect())
}

/// The first offset at or after `millis` in each partition; the high watermark if there is none.
fn offsets_at_time<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
    millis: i64,
    watermarks: &BTreeMap<i32, (i64, i64)>,
) -> Result<BTreeMap<i32, i64>, BoundedError> {
    let mut query = TopicPartitionList::new();
    for partition in partitions {
        query
            .add_partition_offset(topic, *partition, Offset::Offset(millis))
            .map_err(|source| BoundedError::Offsets {
                topic: topic.into(),
                source,
            })?;
    }
    let found = consumer
        .offsets_for_times(query, METADATA_TIMEOUT)
        .map_err(|source| BoundedError::Offsets {
            topic: topic.into(),
            source,
        })?;
    Ok(partitions
        .iter()
        .map(|p| {
            let offset = found
                .find_partition(topic, *p)
                .and_then(|e| e.offset().to_raw())
                .filter(|o| *o >= 0);
            (*p, offset.unwrap_or(watermarks[p].1))
        })
        .collect())
}

/// The assignment that starts each partition at its range start.
pub fn assignment(topic: &str, ranges: &[PartitionRange]) -> Result<TopicPartitionList, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for range in ranges {
        tpl.add_partition_offset(topic, range.partition, Offset::Offset(range.start))?;
    }
    Ok(tpl)
}
