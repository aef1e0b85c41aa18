//! Kafka calls behind a replay: group membership, watermarks, committed offsets, offsets for a
//! timestamp, and committing offsets as the group. Every call blocks: run it on a blocking thread.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::plan::PartitionOffsets;

/// A consumer group as the coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    /// `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance` or `Dead` (unknown group).
    pub state: String,
    pub members: Vec<GroupMember>,
}

impl GroupDescription {
    /// No member is connected, so nobody can commit over a reset.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && matches!(self.state.as_str(), "Empty" | "Dead")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub id: String,
    pub client_id: String,
    pub host: String,
}

/// First offset in the log and the offset of the next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    pub low: i64,
    pub high: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("creating a Kafka client: {0}")]
    Client(#[source] KafkaError),
    #[error("reading metadata of topic {topic}: {source}")]
    Metadata { topic: String, source: KafkaError },
    #[error("topic {topic} does not exist")]
    UnknownTopic { topic: String },
    #[error("describing consumer group {group}: {source}")]
    DescribeGroup { group: String, source: KafkaError },
    #[error("reading the watermarks of {topic}/{partition}: {source}")]
    Watermarks {
        topic: String,
        partition: i32,
        source: KafkaError,
    },
    #[error("reading the committed offsets of group {group} on {topic}: {source}")]
    Committed {
        group: String,
        topic: String,
        source: Box<KafkaError>,
    },
    #[error("looking up offsets for timestamp {timestamp_ms} ms in {topic}: {source}")]
    OffsetsForTimes {
        topic: String,
        timestamp_ms: i64,
        source: KafkaError,
    },
    #[error(
        "consumer group {group} has {} member(s) (state {state}): offsets are only reset while it has none",
        members.len()
    )]
    GroupNotEmpty {
        group: String,
        state: String,
        members: Vec<GroupMember>,
    },
    #[error("committing offsets as group {group} on {topic}: {source}")]
    Commit {
        group: String,
        topic: String,
        source: Box<KafkaError>,
    },
    #[error("after the commit, group {group} reads {found:?} for {topic}/{partition} instead of {expected}")]
    CommitNotVisible {
        group: String,
        topic: String,
        partition: i32,
        expected: i64,
        found: Option<i64>,
    },
}

/// Reads and resets a consumer group's offsets. Holds one metadata client; group-scoped calls use a
/// short-lived consumer carrying the group's id, which never subscribes and so never joins the group.
pub struct OffsetClient {
    config: ClientConfig,
    metadata: BaseConsumer,
    timeout: Duration,
}

impl std::fmt::Debug for OffsetClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl OffsetClient {
    /// `config` holds the connection settings (e.g. from `KafkaArgs::client_config`); `timeout` bounds each call.
    pub fn new(config: ClientConfig, timeout: Duration) -> Result<Self, OffsetError> {
        let metadata = config.create().map_err(OffsetError::Client)?;
        Ok(Self {
            config,
            metadata,
            timeout,
        })
    }

    /// The group's state and members (DescribeGroups; StreamLake consumers use the classic protocol).
    pub fn describe_group(&self, group: &str) -> Result<GroupDescription, OffsetError> {
        let err = |source| OffsetError::DescribeGroup {
            group: group.to_owned(),
            source,
        };
        let list = self
            .metadata
            .fetch_group_list(Some(group), self.timeout)
            .map_err(err)?;
        let info = list.groups().iter().find(|g| g.name() == group);
        Ok(match info {
            None => GroupDescription {
                group: group.to_owned(),
                state: "Dead".into(),
                members: Vec::new(),
            },
            Some(info) => GroupDescription {
                group: group.to_owned(),
                state: info.state().to_owned(),
                members: info
                    .members()
                    .iter()
                    .map(|m| GroupMember {
                        id: m.id().to_owned(),
                        client_id: m.client_id().to_owned(),
                        host: m.client_host().to_owned(),
                    })
                    .collect(),
            },
        })
    }

    /// The partition ids of a topic, ascending.
    pub fn partitions(&self, topic: &str) -> Result<Vec<i32>, OffsetError> {
        let metadata = self
            .metadata
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(|source| OffsetError::Metadata {
                topic: topic.to_owned(),
                source,
            })?;
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                ids.sort_unstable();
                Ok(ids)
            }
            _ => Err(OffsetError::UnknownTopic {
                topic: topic.to_owned(),
            }),
        }
    }

    pub fn watermarks(&self, topic: &str) -> Result<BTreeMap<i32, Watermarks>, OffsetError> {
        let mut marks = BTreeMap::new();
        for partition in self.partitions(topic)? {
            let (low, high) = self
                .metadata
                .fetch_watermarks(topic, partition, self.timeout)
                .map_err(|source| OffsetError::Watermarks {
                    topic: topic.to_owned(),
                    partition,
                    source,
                })?;
            marks.insert(partition, Watermarks { low, high });
        }
        Ok(marks)
    }

    /// The group's committed offsets on every partition of `topic`; partitions without one are absent.
    pub fn committed(&self, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>, OffsetError> {
        let err = |source| OffsetError::Committed {
            group: group.to_owned(),
            topic: topic.to_owned(),
            source: Box::new(source),
        };
        let partitions = self.partitions(topic)?;
        let consumer = self.group_consumer(group)?;
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition(topic, *p);
        }
        let answer = consumer.committed_offsets(tpl, self.timeout).map_err(err)?;
        let mut committed = BTreeMap::new();
        for elem in answer.elements() {
            if let Err(source) = elem.error() {
                return Err(err(source));
            }
            if let Offset::Offset(o) = elem.offset() {
                committed.insert(elem.partition(), o);
            }
        }
        Ok(committed)
    }

    /// Per partition, the first offset whose record timestamp is at or after `timestamp_ms`;
    /// `None` when no record is that recent.
    pub fn offsets_for_timestamp(
        &self,
        topic: &str,
        timestamp_ms: i64,
    ) -> Result<BTreeMap<i32, Option<i64>>, OffsetError> {
        let err = |source| OffsetError::OffsetsForTimes {
            topic: topic.to_owned(),
            timestamp_ms,
            source,
        };
        let mut tpl = TopicPartitionList::new();
        for p in self.partitions(topic)? {
            tpl.add_partition_offset(topic, p, Offset::Offset(timestamp_ms))
                .map_err(err)?;
        }
        let answer = self.metadata.offsets_for_times(tpl, self.timeout).map_err(err)?;
        let mut offsets = BTreeMap::new();
        for elem in answer.elements() {
            if let Err(source) = elem.error() {
                return Err(err(source));
            }
            let offset = match elem.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            };
            offsets.insert(elem.partition(), offset);
        }
        Ok(offsets)
    }

    /// Watermarks and committed offsets of every partition, the input of an `OffsetResetPlan`.
    pub fn partition_offsets(&self, group: &str, topic: &str) -> Result<Vec<PartitionOffsets>, OffsetError> {
        let committed = self.committed(group, topic)?;
        Ok(self
            .watermarks(topic)?
            .into_iter()
            .map(|(partition, w)| PartitionOffsets {
                partition,
                low: w.low,
                high: w.high,
                committed: committed.get(&partition).copied(),
            })
            .collect())
    }

    /// Commits `offsets` for `group` on `topic`, as the group, and reads them back. Refuses with
    /// [`OffsetError::GroupNotEmpty`] while the group has members: a live member would commit over it.
    pub fn commit_as_group(
        &self,
        group: &str,
        topic: &str,
        offsets: &BTreeMap<i32, i64>,
    ) -> Result<(), OffsetError> {
        let description = self.describe_group(group)?;
        if !description.is_empty() {
            return Err(OffsetError::GroupNotEmpty {
                group: group.to_owned(),
                state: description.state,
                members: description.members,
            });
        }
        let err = |source| OffsetError::Commit {
            group: group.to_owned(),
            topic: topic.to_owned(),
            source: Box::new(source),
        };
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(err)?;
        }
        let consumer = self.group_consumer(group)?;
        // The broker itself refuses a member-less commit while the group has members, closing the race
        // between the check above and this call.
        consumer.commit(&tpl, CommitMode::Sync).map_err(err)?;
        let now = self.committed(group, topic)?;
        for (partition, expected) in offsets {
            let found = now.get(partition).copied();
            if found != Some(*expected) {
                return Err(OffsetError::CommitNotVisible {
                    group: group.to_owned(),
                    topic: topic.to_owned(),
                    partition: *partition,
                    expected: *expected,
                    found,
                });
            }
        }
        Ok(())
    }

    fn group_consumer(&self, group: &str) -> Result<BaseConsumer, OffsetError> {
        let mut config = self.config.clone();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        config.create().map_err(OffsetError::Client)
    }
}
