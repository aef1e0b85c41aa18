//! The Replay state machine, as a pure function from what was observed to what to do and the next
//! status. Whatever must be undone (the replicas, the autoscalers, the offset plan) is written to status
//! one step before the action that needs it, so a restarted operator can always finish or undo.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use streamlake_core::offsets::{self, EndPosition, OffsetResetPlan, StartPosition};

use super::observation::{Observation, PlanInputs};
use super::request::{DeploymentRef, End, ReplayRequest, Start};
use crate::conditions::{ConditionStatus, set_condition};
use crate::crd::replay::{
    PartitionPlan, ReplayPhase, ReplayStatus, ReplayTarget, SavedScale, SavedScaledObject,
};

/// How often a waiting phase looks again.
pub const POLL: Duration = Duration::from_secs(2);
pub const QUEUE_POLL: Duration = Duration::from_secs(5);
pub const PROGRESS_POLL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: ReplayStatus,
    /// Applied in order, before the status is written.
    pub actions: Vec<Action>,
    /// Look again after this long; `None` waits for a change to the object.
    pub requeue: Option<Duration>,
    pub event: Option<Note>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Mark HPAs as paused by this Replay and set KEDA's `paused-replicas` to 0.
    PauseAutoscalers {
        saved: SavedScale,
    },
    Scale {
        deployment: String,
        replicas: i32,
    },
    /// Undo [`Action::PauseAutoscalers`], putting back KEDA annotations as they were.
    RestoreAutoscalers {
        saved: SavedScale,
    },
    CommitOffsets {
        group: String,
        topic: String,
        offsets: BTreeMap<i32, i64>,
    },
}

/// A Kubernetes Event to publish about the Replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

pub fn decide(obs: &Observation) -> Decision {
    let phase = obs.replay.status.common.phase.unwrap_or(ReplayPhase::Pending);
    if phase.is_terminal() {
        return Step::new(obs).done();
    }
    let request = match ReplayRequest::from_spec(&obs.replay.spec) {
        Ok(request) => request,
        Err(e) => return fail(obs, "InvalidSpec", e.to_string()),
    };
    match phase {
        ReplayPhase::Pending | ReplayPhase::Queued => start(obs, &request),
        ReplayPhase::ScalingDown => scale_down(obs),
        ReplayPhase::WaitingForGroupEmpty => wait_for_empty_group(obs, &request),
        ReplayPhase::ResettingOffsets => reset_offsets(obs, &request),
        ReplayPhase::ScalingUp => scale_up(obs),
        ReplayPhase::Replaying => follow(obs),
        ReplayPhase::Succeeded | ReplayPhase::Failed => Step::new(obs).done(),
    }
}

/// What deleting the Replay must undo: the consumers' scale and autoscalers, if it holds them.
pub fn cleanup(obs: &Observation) -> Decision {
    let status = &obs.replay.status;
    let phase = status.common.phase.unwrap_or(ReplayPhase::Pending);
    let mut step = Step::new(obs);
    if let Some((actions, replicas)) = restore(obs) {
        step.actions = actions;
        step.event = Some(Note {
            warning: false,
            reason: "Restored".into(),
            message: format!("deleted during {phase}: consumers restored to {replicas} replicas"),
        });
    }
    step.requeue = None;
    step.done()
}

fn start(obs: &Observation, request: &ReplayRequest) -> Decision {
    let ns = &obs.replay.namespace;
    let deployment = match obs.candidates.as_slice() {
        [one] => one,
        [] => {
            let message = match &request.deployment {
                DeploymentRef::Named(name) => format!("Deployment {name} not found in namespace {ns}"),
                DeploymentRef::Labelled(selector) => format!(
                    "no Deployment labelled {selector} in namespace {ns}; set spec.deployment to name one"
                ),
            };
            return fail(obs, "ConsumerDeploymentNotFound", message);
        }
        several => {
            let names: Vec<&str> = several.iter().map(|d| d.name.as_str()).collect();
            let message = format!(
                "{} Deployments match ({}); set spec.deployment to name one",
                names.len(),
                names.join(", ")
            );
            return fail(obs, "ConsumerDeploymentAmbiguous", message);
        }
    };
    let target = ReplayTarget {
        topic: request.topic.clone(),
        consumer_group: request.group.clone(),
        deployment: deployment.name.clone(),
    };
    if request.dry_run {
        return dry_run(obs, request, target);
    }
    // A plan that cannot be made now (no such topic or partition) fails before the consumers stop.
    // The plan itself is made again once the group is empty, from the offsets committed by then.
    if let Err((reason, message)) = plan(obs, request) {
        return fail(obs, reason, message);
    }
    if let Some((key, phase)) = ahead_in_queue(obs) {
        let message = format!(
            "waiting for Replay {key} ({phase}) to release consumer group {}",
            request.group
        );
        let mut step = Step::new(obs).to(ReplayPhase::Queued, message).after(QUEUE_POLL);
        step.status.waiting_for = Some(key);
        return step.done();
    }
    let autoscalers = &deployment.autoscalers;
    if deployment.replicas == 0 && autoscalers.scaled_objects.is_empty() {
        let message = format!(
            "Deployment {} has 0 replicas, so nothing would re-read the topic; scale it up first",
            deployment.name
        );
        return fail(obs, "ConsumersNotRunning", message);
    }
    let saved = SavedScale {
        replicas: deployment.replicas,
        hpas: autoscalers.hpas.clone(),
        scaled_objects: autoscalers
            .scaled_objects
            .iter()
            .map(|s| SavedScaledObject {
                name: s.name.clone(),
                paused_replicas: s.paused_replicas.clone(),
            })
            .collect(),
    };
    let message = format!(
        "scaling Deployment {} from {} to 0 replicas",
        deployment.name, deployment.replicas
    );
    let mut step = Step::new(obs)
        .to(ReplayPhase::ScalingDown, message)
        .after(Duration::ZERO);
    step.status.waiting_for = None;
    step.status.target = Some(target);
    step.status.saved = Some(saved);
    step.status.common.started_at = Some(Time(obs.now));
    step.done()
}

/// The Replay this one waits for: one holding the group, else an older one waiting to start.
fn ahead_in_queue(obs: &Observation) -> Option<(String, ReplayPhase)> {
    if let Some(holder) = obs.claims.iter().find(|c| c.phase.holds_group()) {
        return Some((holder.key.clone(), holder.phase));
    }
    let me = (obs.replay.created, obs.replay.key());
    obs.claims
        .iter()
        .filter(|c| matches!(c.phase, ReplayPhase::Pending | ReplayPhase::Queued))
        .filter(|c| (c.created, c.key.clone()) < me)
        .min_by_key(|c| (c.created, c.key.clone()))
        .map(|c| (c.key.clone(), c.phase))
}

fn dry_run(obs: &Observation, request: &ReplayRequest, target: ReplayTarget) -> Decision {
    let plan = match planned(obs, request) {
        ControlFlow::Continue(plan) => plan,
        ControlFlow::Break(decision) => return decision,
    };
    let records = plan_records(&plan);
    let message = format!(
        "dry run: would reset group {} on {} partitions of {} and re-read {records} records; nothing was changed",
        target.consumer_group,
        plan.partitions.len(),
        target.topic
    );
    let mut step = Step::new(obs).to(ReplayPhase::Succeeded, message);
    step.status.target = Some(target);
    hold_plan(&mut step.status, &plan);
    step.status.common.completed_at = Some(Time(obs.now));
    step.done()
}

fn scale_down(obs: &Observation) -> Decision {
    let status = &obs.replay.status;
    let (Some(target), Some(saved)) = (&status.target, &status.saved) else {
        return fail(
            obs,
            "StatusIncomplete",
            "status lost its target or saved scale; nothing was scaled".into(),
        );
    };
    if obs.deployment.is_none() {
        return deployment_gone(obs, &target.deployment);
    }
    let message = format!(
        "waiting for consumer group {} to have no members",
        target.consumer_group
    );
    Step::new(obs)
        .act(Action::PauseAutoscalers { saved: saved.clone() })
        .act(Action::Scale {
            deployment: target.deployment.clone(),
            replicas: 0,
        })
        .to(ReplayPhase::WaitingForGroupEmpty, message)
        .after(POLL)
        .done()
}

fn wait_for_empty_group(obs: &Observation, request: &ReplayRequest) -> Decision {
    let Some(deployment) = &obs.deployment else {
        return deployment_gone(obs, &target_deployment(obs));
    };
    let mut step = Step::new(obs).after(POLL);
    if deployment.replicas != 0 {
        step = step.act(Action::Scale {
            deployment: deployment.name.clone(),
            replicas: 0,
        });
    }
    let Some(group) = &obs.group else {
        return step.done();
    };
    if group.is_empty() {
        let message = format!(
            "consumer group {} has no members; computing the offset plan",
            group.group
        );
        return step
            .to(ReplayPhase::ResettingOffsets, message)
            .after(Duration::ZERO)
            .done();
    }
    let members = describe_members(group);
    let waited = obs
        .replay
        .status
        .phase_since
        .as_ref()
        .map(|since| obs.now.duration_since(since.0));
    let timed_out = waited
        .and_then(|w| Duration::try_from(w).ok())
        .is_some_and(|w| w >= request.group_empty_timeout);
    if timed_out {
        let timeout = describe_duration(request.group_empty_timeout);
        let message = format!(
            "consumer group {} still had {members} after {timeout}",
            group.group
        );
        return fail(obs, "GroupNotEmptyTimeout", message);
    }
    step.stay(format!(
        "waiting for consumer group {} to have no members: {members} left",
        group.group
    ))
    .done()
}

fn reset_offsets(obs: &Observation, request: &ReplayRequest) -> Decision {
    let status = &obs.replay.status;
    let Some(deployment) = &obs.deployment else {
        return deployment_gone(obs, &target_deployment(obs));
    };
    if let Some(group) = obs.group.as_ref().filter(|g| !g.is_empty()) {
        let message = format!(
            "consumer group {} has {} again; waiting",
            group.group,
            describe_members(group)
        );
        let mut step = Step::new(obs);
        if deployment.replicas != 0 {
            step = step.act(Action::Scale {
                deployment: deployment.name.clone(),
                replicas: 0,
            });
        }
        return step
            .to(ReplayPhase::WaitingForGroupEmpty, message)
            .after(POLL)
            .done();
    }
    let Some(target) = &status.target else {
        return fail(obs, "StatusIncomplete", "status lost its target".into());
    };
    if status.plan.is_empty() {
        // The plan goes to status first: if the commit below is repeated, it commits the same offsets.
        let plan = match planned(obs, request) {
            ControlFlow::Continue(plan) => plan,
            ControlFlow::Break(decision) => return decision,
        };
        let message = format!(
            "committing offsets of {} partitions ({} records to re-read)",
            plan.partitions.len(),
            plan_records(&plan)
        );
        let mut step = Step::new(obs).stay(message).after(Duration::ZERO);
        hold_plan(&mut step.status, &plan);
        return step.done();
    }
    let offsets = status.plan.iter().map(|p| (p.partition, p.new_offset)).collect();
    let replicas = status.saved.as_ref().map_or(0, |s| s.replicas);
    let message = format!(
        "offsets of group {} reset on {} partitions; scaling Deployment {} back to {replicas} replicas",
        target.consumer_group,
        status.plan.len(),
        target.deployment
    );
    let mut step = Step::new(obs)
        .act(Action::CommitOffsets {
            group: target.consumer_group.clone(),
            topic: target.topic.clone(),
            offsets,
        })
        .to(ReplayPhase::ScalingUp, message)
        .after(Duration::ZERO);
    step.status.offsets_reset_at = Some(Time(obs.now));
    step.done()
}

fn scale_up(obs: &Observation) -> Decision {
    let status = &obs.replay.status;
    let Some(saved) = &status.saved else {
        return fail(obs, "StatusIncomplete", "status lost its saved scale".into());
    };
    let Some(deployment) = &obs.deployment else {
        return deployment_gone(obs, &target_deployment(obs));
    };
    let total = status.records_total.unwrap_or(0);
    let message = format!(
        "re-reading {total} records; consumers restored to {} replicas",
        saved.replicas
    );
    let mut step = Step::new(obs);
    if deployment.replicas != saved.replicas {
        step = step.act(Action::Scale {
            deployment: deployment.name.clone(),
            replicas: saved.replicas,
        });
    }
    let mut step = step
        .act(Action::RestoreAutoscalers { saved: saved.clone() })
        .to(ReplayPhase::Replaying, message)
        .after(PROGRESS_POLL);
    step.status.records_replayed = Some(0);
    step.status.progress = Some(format!("{}%", if total == 0 { 100 } else { 0 }));
    step.done()
}

fn follow(obs: &Observation) -> Decision {
    let status = &obs.replay.status;
    let step = Step::new(obs).after(PROGRESS_POLL);
    let committed = match &obs.committed {
        None => return step.done(),
        Some(Err(problem)) => return fail(obs, "OffsetsUnavailable", problem.clone()),
        Some(Ok(committed)) => committed,
    };
    let plan = OffsetResetPlan {
        partitions: status.plan.iter().map(from_status_plan).collect(),
    };
    let progress = plan.progress(committed);
    let group = status.target.as_ref().map_or("?", |t| t.consumer_group.as_str());
    let mut step = if progress.is_complete() {
        let message = format!(
            "re-read {} records: group {group} reached the end offset on all {} partitions",
            progress.total, progress.partitions
        );
        let mut step = step.to(ReplayPhase::Succeeded, message);
        step.status.common.completed_at = Some(Time(obs.now));
        step.requeue = None;
        step
    } else {
        step.stay(format!(
            "re-read {} of {} records ({} of {} partitions done)",
            progress.replayed, progress.total, progress.partitions_done, progress.partitions
        ))
    };
    step.status.records_replayed = Some(progress.replayed);
    step.status.records_total = Some(progress.total);
    step.status.progress = Some(format!("{}%", progress.percent()));
    step.done()
}

/// The plan; without one, the decision to look again once the offsets are read, or to fail.
fn planned(obs: &Observation, request: &ReplayRequest) -> ControlFlow<Decision, OffsetResetPlan> {
    match plan(obs, request) {
        Ok(Some(plan)) => ControlFlow::Continue(plan),
        Ok(None) => ControlFlow::Break(Step::new(obs).after(POLL).done()),
        Err((reason, message)) => ControlFlow::Break(fail(obs, reason, message)),
    }
}

fn plan_records(plan: &OffsetResetPlan) -> i64 {
    plan.partitions.iter().map(|p| p.records()).sum()
}

/// Keeps the plan and the records it re-reads in status.
fn hold_plan(status: &mut ReplayStatus, plan: &OffsetResetPlan) {
    status.plan = plan.partitions.iter().map(to_status_plan).collect();
    status.records_total = Some(plan_records(plan));
}

/// The plan from the observed offsets; `Ok(None)` if they were not read.
fn plan(
    obs: &Observation,
    request: &ReplayRequest,
) -> Result<Option<OffsetResetPlan>, (&'static str, String)> {
    let inputs: &PlanInputs = match &obs.plan_inputs {
        None => return Ok(None),
        Some(Err(problem)) => return Err(("OffsetsUnavailable", problem.clone())),
        Some(Ok(inputs)) => inputs,
    };
    let lookup = |l: &Option<BTreeMap<i32, Option<i64>>>| l.clone().unwrap_or_default();
    let from = match &request.from {
        Start::Earliest => StartPosition::Earliest,
        Start::Latest => StartPosition::Latest,
        Start::TimestampMs(_) => StartPosition::Timestamp(lookup(&inputs.from_lookup)),
        Start::Offsets(map) => StartPosition::Offsets(map.clone()),
        Start::ShiftBy(n) => StartPosition::ShiftBy(*n),
    };
    let to = match &request.to {
        End::LogEnd => EndPosition::LogEnd,
        End::TimestampMs(_) => EndPosition::Timestamp(lookup(&inputs.to_lookup)),
        End::Offsets(map) => EndPosition::Offsets(map.clone()),
    };
    OffsetResetPlan::compute(&inputs.partitions, &from, &to)
        .map(Some)
        .map_err(|e| ("InvalidOffsetPlan", format!("topic {}: {e}", request.topic)))
}

fn deployment_gone(obs: &Observation, name: &str) -> Decision {
    fail(
        obs,
        "ConsumerDeploymentNotFound",
        format!("Deployment {name} no longer exists"),
    )
}

fn target_deployment(obs: &Observation) -> String {
    obs.replay
        .status
        .target
        .as_ref()
        .map_or_else(|| "?".into(), |t| t.deployment.clone())
}

fn describe_duration(d: Duration) -> String {
    match d.as_secs() {
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{:?}", d),
    }
}

fn describe_members(group: &offsets::GroupDescription) -> String {
    let clients: Vec<String> = group
        .members
        .iter()
        .map(|m| format!("{}@{}", m.client_id, m.host))
        .collect();
    match clients.len() {
        0 => format!("no members but state {}", group.state),
        1 => format!("1 member ({})", clients[0]),
        n => format!("{n} members ({})", clients.join(", ")),
    }
}

/// Fails the Replay; if it holds the consumers down, the same step restores them.
fn fail(obs: &Observation, reason: &'static str, message: String) -> Decision {
    let mut step = Step::new(obs);
    let mut message = message;
    if let Some((actions, replicas)) = restore(obs) {
        step.actions = actions;
        message.push_str(&format!("; consumers restored to {replicas} replicas"));
    }
    let mut step = step.to(ReplayPhase::Failed, message);
    step.requeue = None;
    step.status.common.reason = Some(reason.into());
    step.status.common.completed_at = Some(Time(obs.now));
    if let Some(event) = &mut step.event {
        event.warning = true;
        reason.clone_into(&mut event.reason);
    }
    step.done()
}

/// The actions that give the consumers back their replicas and autoscalers, if this Replay holds them.
fn restore(obs: &Observation) -> Option<(Vec<Action>, i32)> {
    let status = &obs.replay.status;
    let phase = status.common.phase.unwrap_or(ReplayPhase::Pending);
    let saved = status.saved.as_ref()?;
    if !(phase.consumers_held_down() || phase == ReplayPhase::ScalingUp) {
        return None;
    }
    let mut actions = Vec::new();
    if let Some(deployment) = &obs.deployment {
        actions.push(Action::Scale {
            deployment: deployment.name.clone(),
            replicas: saved.replicas,
        });
    }
    actions.push(Action::RestoreAutoscalers { saved: saved.clone() });
    Some((actions, saved.replicas))
}

fn to_status_plan(p: &offsets::PartitionPlan) -> PartitionPlan {
    PartitionPlan {
        partition: p.partition,
        committed: p.committed,
        new_offset: p.new_offset,
        end_offset: p.end_offset,
        clamped: p.clamped,
    }
}

fn from_status_plan(p: &PartitionPlan) -> offsets::PartitionPlan {
    offsets::PartitionPlan {
        partition: p.partition,
        committed: p.committed,
        new_offset: p.new_offset,
        end_offset: p.end_offset,
        clamped: p.clamped,
    }
}

/// The decision under construction.
struct Step<'a> {
    obs: &'a Observation,
    status: ReplayStatus,
    actions: Vec<Action>,
    requeue: Option<Duration>,
    event: Option<Note>,
}

impl<'a> Step<'a> {
    fn new(obs: &'a Observation) -> Self {
        let mut status = obs.replay.status.clone();
        status.common.phase.get_or_insert(ReplayPhase::Pending);
        Self {
            obs,
            status,
            actions: Vec::new(),
            requeue: None,
            event: None,
        }
    }

    /// Moves to `phase`; a real change restarts the phase clock and becomes an Event.
    fn to(mut self, phase: ReplayPhase, message: String) -> Self {
        if self.obs.replay.status.common.phase != Some(phase) {
            self.status.phase_since = Some(Time(self.obs.now));
            self.event = Some(Note {
                warning: false,
                reason: phase.as_str().into(),
                message: message.clone(),
            });
        }
        self.status.common.phase = Some(phase);
        self.status.common.message = Some(message);
        self
    }

    fn stay(mut self, message: String) -> Self {
        self.status.common.message = Some(message);
        self
    }

    fn act(mut self, action: Action) -> Self {
        self.actions.push(action);
        self
    }

    fn after(mut self, requeue: Duration) -> Self {
        self.requeue = Some(requeue);
        self
    }

    fn done(mut self) -> Decision {
        let generation = self.obs.replay.generation;
        self.status.common.observed_generation = generation;
        set_conditions(&mut self.status, self.obs);
        Decision {
            status: self.status,
            actions: self.actions,
            requeue: self.requeue,
            event: self.event,
        }
    }
}

fn set_conditions(status: &mut ReplayStatus, obs: &Observation) {
    let (now, generation) = (obs.now, obs.replay.generation);
    let phase = status.common.phase.unwrap_or(ReplayPhase::Pending);
    let held = phase.consumers_held_down();
    let (scaled, scaled_reason) = match (held, &status.saved) {
        (true, _) => (ConditionStatus::True, phase.as_str()),
        (false, Some(_)) if !matches!(phase, ReplayPhase::Pending | ReplayPhase::Queued) => {
            (ConditionStatus::False, "Restored")
        }
        _ => (ConditionStatus::False, "NotScaledDown"),
    };
    let replicas = status.saved.as_ref().map_or(0, |s| s.replicas);
    let scaled_message = match (held, &status.saved) {
        (true, _) => "held at 0 replicas".to_owned(),
        (false, Some(_)) => format!("{replicas} replicas"),
        (false, None) => String::new(),
    };
    let conditions = &mut status.common.conditions;
    set_condition(
        conditions,
        "ConsumersScaledDown",
        scaled,
        scaled_reason,
        &scaled_message,
        generation,
        now,
    );
    let (reset, reset_reason) = match (&status.offsets_reset_at, obs.replay.spec.dry_run) {
        (Some(_), _) => (ConditionStatus::True, "Committed"),
        (None, true) => (ConditionStatus::False, "DryRun"),
        (None, false) => (ConditionStatus::False, "NotReset"),
    };
    set_condition(
        conditions,
        "OffsetsReset",
        reset,
        reset_reason,
        "",
        generation,
        now,
    );
    let message = status.common.message.clone().unwrap_or_default();
    let (complete, reason) = match phase {
        ReplayPhase::Succeeded => (ConditionStatus::True, "Succeeded"),
        ReplayPhase::Failed => (
            ConditionStatus::False,
            status.common.reason.as_deref().unwrap_or("Failed"),
        ),
        other => (ConditionStatus::Unknown, other.as_str()),
    };
    set_condition(
        conditions, "Complete", complete, reason, &message, generation, now,
    );
}

#[cfg(test)]
mod tests;
