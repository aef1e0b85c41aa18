//! Mode `Replay`: the live consumer group is reset to the range's start offsets, the live consumers
//! re-read it (skipping what already landed: the raw zone is exactly-once), and the Backfill is done
//! once the group has committed up to the range's end offsets.
//!
//! The Backfill creates a child Replay (`from.offsets` = the range's starts, `to.offsets` = its ends),
//! owned by the Backfill, and mirrors its status. Why a child resource rather than calling the Replay
//! steps from here: a reset is only safe with everything the Replay controller already holds in one
//! place — one reset per consumer group (its queue sees every Replay), scale-down and scale-up with the
//! autoscalers paused, the group-empty time-out, the finalizer that gives the consumers back when the
//! reset is deleted, a state machine that resumes after an operator restart. Calling its steps from a
//! second controller would have meant a second queue that the first cannot see, a second finalizer and
//! a second state machine. With a child, `kubectl get replays` shows the reset, deleting the Backfill
//! deletes the Replay (whose finalizer restores the consumers), and the Replay's progress is the
//! Backfill's.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use streamlake_core::names::DatasetName;
use streamlake_core::offsets::OffsetError;

use super::{BackfillContext, Error, KIND, announce_running, finish};
use crate::controller;
use crate::crd::backfill::BackfillPhase;
use crate::crd::replay::{ReplayFrom, ReplayPhase, ReplayTo};
use crate::crd::{
    Backfill, BackfillStatus, PartitionOffset, PartitionRange, Replay, ReplaySpec, ReplayStatus,
};
use crate::error::CommonError;
use kube::runtime::controller::Action as Requeue;

/// How often the child Replay is looked at.
const POLL: Duration = Duration::from_secs(3);

/// The child Replay's spec. A partition restarts at its range's start, or at the group's position
/// when that is earlier (a lagging group must not skip records it has not landed yet), and is done at
/// the range's end. Partitions without a range are done at the group's position: nothing to re-read.
pub fn replay_spec(
    dataset: &str,
    topic: Option<&str>,
    ranges: &[PartitionRange],
    positions: &BTreeMap<i32, i64>,
) -> ReplaySpec {
    let from = ranges
        .iter()
        .map(|r| PartitionOffset {
            partition: r.partition,
            offset: positions.get(&r.partition).map_or(r.start, |p| r.start.min(*p)),
        })
        .collect();
    let mut to: Vec<PartitionOffset> = ranges
        .iter()
        .map(|r| PartitionOffset {
            partition: r.partition,
            offset: r.end,
        })
        .collect();
    to.extend(
        positions
            .iter()
            .filter(|(p, _)| !ranges.iter().any(|r| r.partition == **p))
            .map(|(p, at)| PartitionOffset {
                partition: *p,
                offset: *at,
            }),
    );
    to.sort_by_key(|o| o.partition);
    ReplaySpec {
        dataset: dataset.to_owned(),
        topic: topic.map(str::to_owned),
        consumer_group: None,
        deployment: None,
        from: ReplayFrom {
            position: None,
            timestamp: None,
            offsets: Some(from),
            shift_by: None,
        },
        to: Some(ReplayTo {
            timestamp: None,
            offsets: Some(to),
        }),
        dry_run: false,
        group_empty_timeout: None,
    }
}

/// Where the child Replay is, in the Backfill's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// Still going: the Backfill stays Running with this message and progress.
    Running {
        message: String,
        progress: Option<String>,
    },
    Succeeded(String),
    Failed {
        reason: String,
        message: String,
    },
}

/// Reads the child Replay `name`'s status (`None`: it has none yet).
pub fn mirror(name: &str, status: Option<&ReplayStatus>) -> Mirror {
    let phase = status
        .and_then(|s| s.common.phase)
        .unwrap_or(ReplayPhase::Pending);
    let said = status.and_then(|s| s.common.message.clone()).unwrap_or_default();
    match phase {
        ReplayPhase::Succeeded => {
            Mirror::Succeeded(format!("Replay {name}: the group re-read the range: {said}"))
        }
        ReplayPhase::Failed => Mirror::Failed {
            reason: "ReplayFailed".into(),
            message: format!(
                "Replay {name} failed ({}): {said}",
                status
                    .and_then(|s| s.common.reason.as_deref())
                    .unwrap_or("no reason given")
            ),
        },
        phase => Mirror::Running {
            message: if said.is_empty() {
                format!("Replay {name} is {phase}")
            } else {
                format!("Replay {name} is {phase}: {said}")
            },
            progress: status.and_then(|s| s.progress.clone()),
        },
    }
}

/// Reads the group's positions, creates the child Replay and records it in status.
pub(super) async fn start(
    ctx: &BackfillContext,
    backfill: &Backfill,
    mut status: BackfillStatus,
    dataset: &DatasetName,
    topic: &str,
    ranges: Vec<PartitionRange>,
) -> Result<Requeue, Error> {
    let (namespace, name) = (backfill.namespace().unwrap_or_default(), backfill.name_any());
    let (offsets, group, topic_owned) = (ctx.offsets.clone(), dataset.consumer_group(), topic.to_owned());
    let read = tokio::task::spawn_blocking(move || offsets.partition_offsets(&group, &topic_owned))
        .await
        .map_err(CommonError::KafkaTask)?;
    let partitions = match read {
        Err(OffsetError::UnknownTopic { topic }) => {
            let why = format!("topic {topic} does not exist");
            return finish(ctx, backfill, status, Err(("TopicNotFound", why))).await;
        }
        other => other.map_err(CommonError::ReadKafka)?,
    };
    let positions = partitions.iter().map(|p| (p.partition, p.position())).collect();
    let spec = replay_spec(
        dataset.as_str(),
        backfill.spec.topic.as_deref(),
        &ranges,
        &positions,
    );
    let replay_name = super::plan::job_name(&name);
    let owner = json!({
        "apiVersion": Backfill::api_version(&()), "kind": KIND, "name": name,
        "uid": backfill.uid(), "controller": true, "blockOwnerDeletion": true,
    });
    let replay: Replay = serde_json::from_value(json!({
        "apiVersion": Replay::api_version(&()), "kind": Replay::kind(&()),
        "metadata": {
            "name": replay_name,
            "labels": {"streamlake.io/dataset": dataset.as_str(), "streamlake.io/backfill": name},
            "ownerReferences": [owner],
        },
        "spec": spec,
    }))
    .map_err(Error::BuildReplay)?;
    let replays: Api<Replay> = Api::namespaced(ctx.client.clone(), &namespace);
    match replays.create(&PostParams::default(), &replay).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {} // created before a restart
        Err(e) => return Err(Error::CreateReplay(e)),
    }
    let records: i64 = ranges.iter().map(|r| r.end - r.start).sum();
    status.common.phase = Some(BackfillPhase::Running);
    status.common.observed_generation = backfill.metadata.generation;
    status.common.started_at = Some(Time(Timestamp::now()));
    status.progress = Some("0%".into());
    status.common.message = Some(format!(
        "Replay {replay_name} resets group {} to re-read {records} records of {topic}",
        dataset.consumer_group()
    ));
    status.ranges = ranges;
    status.replay_name = Some(replay_name);
    announce_running(ctx, backfill, &status).await?;
    Ok(Requeue::requeue(POLL))
}

/// Mirrors the child Replay into the Backfill's status; finishes with it.
pub(super) async fn watch(
    ctx: &BackfillContext,
    backfill: &Backfill,
    mut status: BackfillStatus,
) -> Result<Requeue, Error> {
    let namespace = backfill.namespace().unwrap_or_default();
    let replay_name = status.replay_name.clone().unwrap_or_default();
    let replays: Api<Replay> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(replay) = replays.get_opt(&replay_name).await.map_err(Error::ReadReplay)? else {
        let why = format!("Replay {replay_name} is gone before it finished");
        return finish(ctx, backfill, status, Err(("ReplayGone", why))).await;
    };
    let owned = replay
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == backfill.metadata.uid.as_ref());
    if !owned {
        let why = format!("Replay {replay_name} exists but is not this Backfill's: delete or rename it");
        return finish(ctx, backfill, status, Err(("ReplayNameTaken", why))).await;
    }
    match mirror(&replay_name, replay.status.as_ref()) {
        Mirror::Succeeded(message) => {
            status.progress = Some("100%".into());
            finish(ctx, backfill, status, Ok(message)).await
        }
        Mirror::Failed { reason, message } => {
            finish(ctx, backfill, status, Err((reason.as_str(), message))).await
        }
        Mirror::Running { message, progress } => {
            let changed = status.common.message.as_ref() != Some(&message)
                || (progress.is_some() && status.progress != progress);
            if changed {
                status.common.message = Some(message);
                status.progress = progress.or(status.progress);
                controller::write_status(&ctx.client, backfill, &status).await?;
            }
            Ok(Requeue::requeue(POLL))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::CommonStatus;

    fn range(partition: i32, start: i64, end: i64) -> PartitionRange {
        PartitionRange {
            partition,
            start,
            end,
        }
    }

    fn offsets(spec: &[PartitionOffset]) -> Vec<(i32, i64)> {
        spec.iter().map(|o| (o.partition, o.offset)).collect()
    }

    #[test]
    fn the_replay_is_bounded_by_the_range_and_never_skips_unlanded_records() {
        // Partition 0 caught up (position 100), partition 1 lags inside the range (position 15),
        // partition 2 has no record in the range.
        let positions = BTreeMap::from([(0, 100), (1, 15), (2, 40)]);
        let spec = replay_spec("orders", None, &[range(0, 10, 30), range(1, 20, 50)], &positions);
        let from = spec.from.offsets.as_deref().expect("from offsets");
        assert_eq!(offsets(from), [(0, 10), (1, 15)]);
        let to = spec
            .to
            .as_ref()
            .and_then(|t| t.offsets.as_deref())
            .expect("to offsets");
        assert_eq!(offsets(to), [(0, 30), (1, 50), (2, 40)]);
        assert_eq!((spec.topic, spec.dry_run), (None, false));
        // What the API server's CEL rule on Replay specs demands: each end after its start.
        assert!(from.iter().all(|f| {
            to.iter()
                .any(|t| t.partition == f.partition && t.offset > f.offset)
        }));
    }

    #[test]
    fn the_child_replay_is_mirrored() {
        let status = |phase, message: &str, progress: Option<&str>| ReplayStatus {
            common: CommonStatus {
                phase: Some(phase),
                message: Some(message.into()),
                reason: (phase == ReplayPhase::Failed).then(|| "GroupNotEmptyTimeout".into()),
                ..Default::default()
            },
            progress: progress.map(Into::into),
            ..Default::default()
        };
        assert_eq!(
            mirror("backfill-day", None),
            Mirror::Running {
                message: "Replay backfill-day is Pending".into(),
                progress: None
            }
        );
        assert_eq!(
            mirror(
                "backfill-day",
                Some(&status(
                    ReplayPhase::Replaying,
                    "re-read 5 of 10 records",
                    Some("50%")
                ))
            ),
            Mirror::Running {
                message: "Replay backfill-day is Replaying: re-read 5 of 10 records".into(),
                progress: Some("50%".into())
            }
        );
        let failed = mirror(
            "backfill-day",
            Some(&status(ReplayPhase::Failed, "group still had 1 member", None)),
        );
        assert_eq!(
            failed,
            Mirror::Failed {
                reason: "ReplayFailed".into(),
                message: "Replay backfill-day failed (GroupNotEmptyTimeout): group still had 1 member".into()
            }
        );
        assert!(matches!(
            mirror("b", Some(&status(ReplayPhase::Succeeded, "done", Some("100%")))),
            Mirror::Succeeded(m) if m.contains("done")
        ));
    }
}
