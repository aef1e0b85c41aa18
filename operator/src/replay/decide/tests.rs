use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;
use streamlake_core::offsets::{GroupDescription, GroupMember, PartitionOffsets};

use super::*;
use crate::replay::observation::{Autoscalers, Claim, DeploymentView, ReplayView, ScaledObjectView};

fn t(seconds: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1_700_000_000 + seconds)
}

fn spec(extra: serde_json::Value) -> crate::crd::ReplaySpec {
    let mut value = json!({"dataset": "orders", "from": {"position": "earliest"}});
    if let (Some(base), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    serde_json::from_value(value).expect("spec")
}

fn consumer(replicas: i32) -> DeploymentView {
    DeploymentView {
        name: "orders-consumer".into(),
        replicas,
        autoscalers: Autoscalers {
            hpas: vec!["orders-consumer".into()],
            scaled_objects: vec![ScaledObjectView {
                name: "orders-lag".into(),
                paused_replicas: None,
            }],
        },
    }
}

fn saved() -> SavedScale {
    SavedScale {
        replicas: 3,
        hpas: vec!["orders-consumer".into()],
        scaled_objects: vec![SavedScaledObject {
            name: "orders-lag".into(),
            paused_replicas: None,
        }],
    }
}

fn target() -> ReplayTarget {
    ReplayTarget {
        topic: "streamlake.orders.raw".into(),
        consumer_group: "streamlake-orders-sink".into(),
        deployment: "orders-consumer".into(),
    }
}

/// A fresh Replay `orders-replay` created at t(0), observed at t(10).
fn fresh() -> Observation {
    let view = ReplayView {
        namespace: "lake".into(),
        name: "orders-replay".into(),
        generation: Some(1),
        created: Some(t(0)),
        spec: spec(json!({})),
        status: ReplayStatus::default(),
    };
    let mut obs = Observation::of(view, t(10));
    obs.candidates = vec![consumer(3)];
    obs
}

/// The Replay in `phase` since t(100), holding the consumers as a real run would have recorded.
fn in_phase(phase: ReplayPhase) -> Observation {
    let mut obs = fresh();
    obs.candidates.clear();
    obs.now = t(110);
    let status = &mut obs.replay.status;
    status.common.phase = Some(phase);
    status.phase_since = Some(Time(t(100)));
    status.target = Some(target());
    status.saved = Some(saved());
    obs.deployment = Some(consumer(0));
    obs
}

fn group(members: usize) -> GroupDescription {
    GroupDescription {
        group: "streamlake-orders-sink".into(),
        state: if members == 0 {
            "Empty".into()
        } else {
            "Stable".into()
        },
        members: (0..members)
            .map(|i| GroupMember {
                id: format!("m{i}"),
                client_id: format!("consumer-{i}"),
                host: "/127.0.0.1".into(),
            })
            .collect(),
    }
}

/// Two partitions: p0 [0, 100) committed at 80, p1 [0, 40) committed at 40.
fn inputs() -> PlanInputs {
    PlanInputs {
        partitions: vec![
            PartitionOffsets {
                partition: 0,
                low: 0,
                high: 100,
                committed: Some(80),
            },
            PartitionOffsets {
                partition: 1,
                low: 0,
                high: 40,
                committed: Some(40),
            },
        ],
        from_lookup: None,
        to_lookup: None,
    }
}

fn status_plan() -> Vec<PartitionPlan> {
    vec![
        PartitionPlan {
            partition: 0,
            committed: Some(80),
            new_offset: 0,
            end_offset: 100,
            clamped: false,
        },
        PartitionPlan {
            partition: 1,
            committed: Some(40),
            new_offset: 0,
            end_offset: 40,
            clamped: false,
        },
    ]
}

fn restore_actions(replicas: i32) -> Vec<Action> {
    vec![
        Action::Scale {
            deployment: "orders-consumer".into(),
            replicas,
        },
        Action::RestoreAutoscalers { saved: saved() },
    ]
}

fn condition<'a>(
    d: &'a Decision,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    d.status
        .common
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("condition present")
}

#[test]
fn a_new_replay_records_what_to_restore_before_touching_anything() {
    let d = decide(&fresh());
    assert_eq!(d.status.common.phase, Some(ReplayPhase::ScalingDown));
    assert!(
        d.actions.is_empty(),
        "nothing is scaled until the saved scale is in status"
    );
    assert_eq!(d.status.saved, Some(saved()));
    assert_eq!(d.status.target, Some(target()));
    assert_eq!(d.status.common.started_at, Some(Time(t(10))));
    assert_eq!(d.status.phase_since, Some(Time(t(10))));
    assert_eq!(d.status.common.observed_generation, Some(1));
    assert_eq!(d.requeue, Some(Duration::ZERO));
    let event = d.event.expect("transition event");
    assert_eq!((event.warning, event.reason.as_str()), (false, "ScalingDown"));
    assert!(
        event.message.contains("from 3 to 0 replicas"),
        "{}",
        event.message
    );
}

#[test]
fn a_missing_or_ambiguous_consumer_deployment_fails_without_actions() {
    let mut obs = fresh();
    obs.candidates.clear();
    let d = decide(&obs);
    assert_eq!(d.status.common.phase, Some(ReplayPhase::Failed));
    assert_eq!(
        d.status.common.reason.as_deref(),
        Some("ConsumerDeploymentNotFound")
    );
    assert!(
        d.status
            .common
            .message
            .as_deref()
            .is_some_and(|m| m.contains("streamlake.io/dataset=orders"))
    );
    assert!(d.actions.is_empty());
    assert_eq!(d.requeue, None);
    let event = d.event.expect("event");
    assert!(event.warning);
    assert_eq!(event.reason, "ConsumerDeploymentNotFound");

    obs.candidates = vec![
        consumer(1),
        DeploymentView {
            name: "other".into(),
            ..consumer(1)
        },
    ];
    let d = decide(&obs);
    assert_eq!(
        d.status.common.reason.as_deref(),
        Some("ConsumerDeploymentAmbiguous")
    );
    assert!(
        d.status
            .common
            .message
            .as_deref()
            .is_some_and(|m| m.contains("orders-consumer, other"))
    );
}

#[test]
fn consumers_at_zero_replicas_without_keda_are_refused() {
    let mut obs = fresh();
    obs.candidates = vec![DeploymentView {
        autoscalers: Autoscalers::default(),
        ..consumer(0)
    }];
    assert_eq!(
        decide(&obs).status.common.reason.as_deref(),
        Some("ConsumersNotRunning")
    );
    // KEDA scales idle consumers to zero and back up once there is lag: that is fine.
    obs.candidates = vec![consumer(0)];
    assert_eq!(decide(&obs).status.common.phase, Some(ReplayPhase::ScalingDown));
}

#[test]
fn a_replay_queues_behind_the_one_holding_its_group() {
    let mut obs = fresh();
    obs.claims = vec![Claim {
        key: "lake/first".into(),
        created: Some(t(5)),
        phase: ReplayPhase::Replaying,
    }];
    let d = decide(&obs);
    assert_eq!(d.status.common.phase, Some(ReplayPhase::Queued));
    assert_eq!(d.status.waiting_for.as_deref(), Some("lake/first"));
    assert!(
        d.status
            .common
            .message
            .as_deref()
            .is_some_and(|m| m.contains("lake/first (Replaying)"))
    );
    assert!(d.actions.is_empty());
    assert_eq!(d.requeue, Some(QUEUE_POLL));
    assert_eq!(d.event.map(|e| e.reason), Some("Queued".into()));

    // Still queued on the next look: no second event; once released, it starts and forgets the queue.
    obs.replay.status = d.status;
    assert_eq!(decide(&obs).event, None);
    obs.claims.clear();
    let d = decide(&obs);
    assert_eq!(d.status.common.phase, Some(ReplayPhase::ScalingDown));
    assert_eq!(d.status.waiting_for, None);
}

#[test]
fn waiting_replays_start_oldest_first_so_concurrent_reconciles_agree() {
    let mut obs = fresh();
    obs.claims = vec![Claim {
        key: "lake/older".into(),
        created: Some(t(-5)),
        phase: ReplayPhase::Pending,
    }];
    assert_eq!(decide(&obs).status.waiting_for.as_deref(), Some("lake/older"));
    obs.claims = vec![Claim {
        key: "lake/younger".into(),
        created: Some(t(5)),
        phase: ReplayPhase::Queued,
    }];
    assert_eq!(decide(&obs).status.common.phase, Some(ReplayPhase::ScalingDown));
    // Same second: the name breaks the tie.
    obs.claims = vec![Claim {
        key: "lake/a-replay".into(),
        created: Some(t(0)),
        phase: ReplayPhase::Pending,
    }];
    assert_eq!(decide(&obs).status.waiting_for.as_deref(), Some("lake/a-replay"));
}

#[test]
fn a_dry_run_stores_the_plan_and_changes_nothing() {
    let mut obs = fresh();
    obs.replay.spec = spec(json!({"dryRun": true}));
    obs.plan_inputs = Some(Ok(inputs()));
    obs.claims = vec![Claim {
        key: "lake/busy".into(),
        created: Some(t(-5)),
        phase: ReplayPhase::Replaying,
    }];
    let d = decide(&obs);
    assert_eq!(d.status.common.phase, Some(ReplayPhase::Succeeded));
    assert!(d.actions.is_empty());
    assert_eq!(d.status.plan, status_plan());
    assert_eq!(d.status.records_total, Some(140));
    assert_eq!(d.status.saved, None);
    assert!(
        d.status
            .common
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("dry run") && m.contains("140 records"))
    );
    assert_eq!(condition(&d, "OffsetsReset").reason, "DryRun");
    assert_eq!(condition(&d, "ConsumersScaledDown").status, "False");
    assert_eq!(condition(&d, "Complete").status, "True");
}

#[test]
fn scaling_down_pauses_autoscalers_then_scales_to_zero() {
    let mut obs = in_phase(ReplayPhase::ScalingDown);
    obs.deployment = Some(consumer(3));
    let d = decide(&obs);
    assert_eq!(
        d.actions,
        [
            Action::PauseAutoscalers { saved: saved() },
            Action::Scale {
                deployment: "orders-consumer".into(),
                replicas: 0
            }
        ]
    );
    assert_eq!(d.status.common.phase, Some(ReplayPhase::WaitingForGroupEmpty));
    assert_eq!(
        d.status.phase_since,
        Some(Time(t(110))),
        "the group-empty time-out starts now"
    );
    assert_eq!(condition(&d, "ConsumersScaledDown").status, "True");
}

#[test]
fn waiting_for_members_to_leave_keeps_the_deployment_at_zero() {
    let mut obs = in_phase(ReplayPhase::WaitingForGroupEmpty);
    obs.group = Some(group(2));
    let d = decide(&obs);
    assert_eq!(d.status.common.phase, Some(ReplayPhase::WaitingForGroupEmpty));
    assert!(d.actions.is_empty());
    assert_eq!(d.requeue, Some(POLL));
    assert!(
        d.status
            .common
            .message
            .as_deref()
            .is_some_and(|m| m.contains("2 members (consumer-0@/127.0.0.1"))
    );
    assert_eq!(d.event, None);
    // Someone scaled the consumers back up meanwhile: scale them down again.
    obs.deployment = Some(consumer(2));
    assert_eq!(
        d_actions(&obs),
        [Action::Scale {
            deployment: "orders-consumer".into(),
            replicas: 0
        }]
    );
}

fn d_actions(obs: &Observation) -> Vec<Action> {
    decide(obs).actions
}

#[test]
fn a_group_that_never_empties_fails_after_the_timeout_and_restores_the_consumers() {
    let mut obs = in_phase(ReplayPhase::WaitingForGroupEmpty);
    obs.replay.spec = spec(json!({"groupEmptyTimeout": "1m"}));
    obs.group = Some(group(1));
    obs.now = t(100 + 59);
    assert_eq!(
        decide(&obs).status.common.phase,
        Some(ReplayPhase::WaitingForGroupEmpty)
    );
    obs.now = t(100 + 60);
    let d = decide(&obs);
    assert_eq!(d.status.common.phase, Some(ReplayPhase::Failed));
    assert_eq!(d.status.common.reason.as_deref(), Some("GroupNotEmptyTimeout"));
    assert_eq!(d.actions, restore_actions(3));
    let message = d.status.common.message.clone().unwrap_or_default();
    assert!(
        message.contains("1 member (consumer-0@/127.0.0.1) after 1m"),
        "{message}"
    );
    assert!(message.ends_with("consumers restored to 3 replicas"), "{message}");
    assert_eq!(condition(&d, "ConsumersScaledDown").reason, "Restored");
    assert_eq!(condition(&d, "Complete").reason, "GroupNotEmptyTimeout");
    assert!(
        d.event
            .is_some_and(|e| e.warning && e.reason == "GroupNotEmptyTimeout")
    );
}

#[test]
fn an_empty_group_moves_on_to_the_offset_reset() {
    let mut obs = in_phase(ReplayPhase::WaitingForGroupEmpty);
    obs.group = Some(group(0));
    let d = decide(&obs);
    assert_eq!(d.status.common.phase, Some(ReplayPhase::ResettingOffsets));
    assert!(d.actions.is_empty());
}

#[test]
fn the_plan_is_stored_before_it_is_committed_and_a_resumed_reset_commits_the_same_plan() {
    let mut obs = in_phase(ReplayPhase::ResettingOffsets);
    obs.group = Some(group(0));
    obs.plan_inputs = Some(Ok(inputs()));
    let d = decide(&obs);
    assert_eq!(d.status.common.phase, Some(ReplayPhase::ResettingOffsets));
    assert!(d.actions.is_empty(), "no commit before the plan is in status");
    assert_eq!(d.status.plan, status_plan());

    // Next look (or a restarted operator): commit exactly the stored plan, whatever Kafka says now.
    obs.replay.status = d.status;
    obs.plan_inputs = None;
    let d = decide(&obs);
    let commit = Action::CommitOffsets {
        group: "streamlake-orders-sink".into(),
        topic: "streamlake.orders.raw".into(),
        offsets: BTreeMap::from([(0, 0), (1, 0)]),
    };
    assert_eq!(d.actions, [commit]);
    assert_eq!(d.status.common.phase, Some(ReplayPhase::ScalingUp));
    assert_eq!(d.status.offsets_reset_at, Some(Time(t(110))));
    assert_eq!(condition(&d, "OffsetsReset").status, "True");
}

#[test]
fn a_member_rejoining_before_the_commit_sends_the_replay_back_to_waiting() {
    let mut obs = in_phase(ReplayPhase::ResettingOffsets);
    obs.replay.status.plan = status_plan();
    obs.group = Some(group(1));
    obs.deployment = Some(consumer(1));
    let d = decide(&obs);
    assert_eq!(d.status.common.phase, Some(ReplayPhase::WaitingForGroupEmpty));
    assert_eq!(
        d.actions,
        [Action::Scale {
            deployment: "orders-consumer".into(),
            replicas: 0
        }]
    );
}

#[test]
fn a_plan_naming_a_missing_partition_fails_and_restores() {
    let mut obs = in_phase(ReplayPhase::ResettingOffsets);
    obs.replay.spec = spec(json!({"from": {"offsets": [{"partition": 7, "offset": 0}]}}));
    obs.group = Some(group(0));
    obs.plan_inputs = Some(Ok(inputs()));
    let d = decide(&obs);
    assert_eq!(d.status.common.reason.as_deref(), Some("InvalidOffsetPlan"));
    assert!(
        d.status
            .common
            .message
            .as_deref()
            .is_some_and(|m| m.contains("partition 7"))
    );
    assert_eq!(d.actions, restore_actions(3));
}

#[test]
fn scaling_up_restores_replicas_and_autoscalers_then_follows_progress() {
    let mut obs = in_phase(ReplayPhase::ScalingUp);
    obs.replay.status.plan = status_plan();
    obs.replay.status.records_total = Some(140);
    let d = decide(&obs);
    assert_eq!(d.actions, restore_actions(3));
    assert_eq!(d.status.common.phase, Some(ReplayPhase::Replaying));
    assert_eq!(d.status.progress.as_deref(), Some("0%"));
    assert_eq!(condition(&d, "ConsumersScaledDown").reason, "Restored");

    let mut obs = in_phase(ReplayPhase::Replaying);
    obs.replay.status.plan = status_plan();
    obs.committed = Some(Ok(BTreeMap::from([(0, 50), (1, 20)])));
    let d = decide(&obs);
    assert_eq!(d.status.common.phase, Some(ReplayPhase::Replaying));
    assert_eq!(
        (d.status.records_replayed, d.status.records_total),
        (Some(70), Some(140))
    );
    assert_eq!(d.status.progress.as_deref(), Some("50%"));
    assert!(d.actions.is_empty());
    assert_eq!(d.requeue, Some(PROGRESS_POLL));

    obs.committed = Some(Ok(BTreeMap::from([(0, 100), (1, 41)])));
    let d = decide(&obs);
    assert_eq!(d.status.common.phase, Some(ReplayPhase::Succeeded));
    assert_eq!(d.status.progress.as_deref(), Some("100%"));
    assert_eq!(d.status.common.completed_at, Some(Time(t(110))));
    assert_eq!(d.requeue, None);
    assert_eq!(condition(&d, "Complete").status, "True");
}

#[test]
fn a_vanished_deployment_fails_and_still_restores_the_autoscalers() {
    let mut obs = in_phase(ReplayPhase::WaitingForGroupEmpty);
    obs.deployment = None;
    let d = decide(&obs);
    assert_eq!(
        d.status.common.reason.as_deref(),
        Some("ConsumerDeploymentNotFound")
    );
    assert_eq!(d.actions, [Action::RestoreAutoscalers { saved: saved() }]);
}

#[test]
fn an_invalid_spec_mid_way_fails_and_restores() {
    let mut obs = in_phase(ReplayPhase::WaitingForGroupEmpty);
    obs.replay.spec = spec(json!({"from": {"shiftBy": 0}}));
    let d = decide(&obs);
    assert_eq!(d.status.common.reason.as_deref(), Some("InvalidSpec"));
    assert_eq!(d.actions, restore_actions(3));
}

#[test]
fn deletion_restores_only_what_the_replay_holds() {
    for phase in [
        ReplayPhase::ScalingDown,
        ReplayPhase::WaitingForGroupEmpty,
        ReplayPhase::ResettingOffsets,
        ReplayPhase::ScalingUp,
    ] {
        let d = cleanup(&in_phase(phase));
        assert_eq!(d.actions, restore_actions(3), "{phase}");
        assert!(
            d.event
                .is_some_and(|e| e.reason == "Restored" && e.message.contains(phase.as_str()))
        );
    }
    for phase in [
        ReplayPhase::Pending,
        ReplayPhase::Queued,
        ReplayPhase::Replaying,
        ReplayPhase::Succeeded,
        ReplayPhase::Failed,
    ] {
        let d = cleanup(&in_phase(phase));
        assert!(d.actions.is_empty(), "{phase}");
        assert_eq!(d.event, None);
    }
    assert!(
        cleanup(&fresh()).actions.is_empty(),
        "cleanup works even if apply never ran"
    );
}

#[test]
fn finished_replays_are_left_alone() {
    for phase in [ReplayPhase::Succeeded, ReplayPhase::Failed] {
        let d = decide(&in_phase(phase));
        assert!(d.actions.is_empty());
        assert_eq!((d.requeue, d.event), (None, None));
    }
}

#[test]
fn conditions_keep_their_transition_time_while_nothing_changes() {
    let mut obs = in_phase(ReplayPhase::WaitingForGroupEmpty);
    obs.group = Some(group(1));
    let first = decide(&obs);
    obs.replay.status = first.status.clone();
    obs.now = t(130);
    let second = decide(&obs);
    assert_eq!(
        second.status, first.status,
        "nothing changed, so nothing needs writing"
    );
    assert!(
        second
            .status
            .common
            .conditions
            .iter()
            .all(|c| c.last_transition_time == Time(t(110)))
    );

    obs.group = Some(group(0));
    let third = decide(&obs);
    assert_eq!(
        condition(&third, "ConsumersScaledDown").last_transition_time,
        Time(t(110)),
        "still True"
    );
    assert_eq!(condition(&third, "Complete").reason, "ResettingOffsets");
}

#[test]
fn a_topic_deleted_while_replaying_fails_the_replay_instead_of_retrying_forever() {
    let mut obs = in_phase(ReplayPhase::Replaying);
    obs.replay.status.plan = status_plan();
    obs.committed = Some(Err("topic streamlake.orders.raw does not exist".into()));
    let d = decide(&obs);
    assert_eq!(d.status.common.reason.as_deref(), Some("OffsetsUnavailable"));
    assert!(d.actions.is_empty(), "the consumers were already restored");
}

#[test]
fn a_replay_that_cannot_be_planned_fails_before_the_consumers_stop() {
    let mut obs = fresh();
    obs.replay.spec = spec(json!({"from": {"offsets": [{"partition": 9, "offset": 0}]}}));
    obs.plan_inputs = Some(Ok(inputs()));
    let d = decide(&obs);
    assert_eq!(d.status.common.reason.as_deref(), Some("InvalidOffsetPlan"));
    assert!(d.actions.is_empty());
    assert_eq!(d.status.saved, None, "nothing was scaled");

    obs.replay.spec = spec(json!({}));
    obs.plan_inputs = Some(Err("topic streamlake.orders.raw does not exist".into()));
    let d = decide(&obs);
    assert_eq!(d.status.common.reason.as_deref(), Some("OffsetsUnavailable"));
    assert!(
        d.status
            .common
            .message
            .is_some_and(|m| m.contains("does not exist"))
    );
}
