//! What the read step saw, as plain data: the input of the pure `decide` step.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use streamlake_core::offsets::{GroupDescription, PartitionOffsets};

use crate::crd::replay::{ReplayPhase, ReplaySpec, ReplayStatus};

/// Which reads a reconcile needs, from the phase it is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Find the consumer Deployment from the spec (before it is recorded in status).
    pub candidates: bool,
    /// The Deployment recorded in `status.target`.
    pub deployment: bool,
    /// Other Replays claiming the same consumer group.
    pub claims: bool,
    /// The consumer group's state and members.
    pub group: bool,
    /// Watermarks, committed offsets and timestamp lookups: the input of a plan.
    pub plan_inputs: bool,
    /// The group's committed offsets, for progress.
    pub committed: bool,
}

impl Needs {
    pub fn of(status: &ReplayStatus, dry_run: bool) -> Self {
        let phase = status.common.phase.unwrap_or(ReplayPhase::Pending);
        let none = Self::default();
        match phase {
            // The plan inputs also check, before any consumer is touched, that a plan can be made.
            ReplayPhase::Pending | ReplayPhase::Queued => Self {
                candidates: true,
                claims: !dry_run,
                plan_inputs: true,
                ..none
            },
            ReplayPhase::ScalingDown | ReplayPhase::ScalingUp => Self {
                deployment: true,
                ..none
            },
            ReplayPhase::WaitingForGroupEmpty => Self {
                deployment: true,
                group: true,
                ..none
            },
            ReplayPhase::ResettingOffsets => Self {
                deployment: true,
                group: true,
                plan_inputs: status.plan.is_empty(),
                ..none
            },
            ReplayPhase::Replaying => Self {
                committed: true,
                ..none
            },
            ReplayPhase::Succeeded | ReplayPhase::Failed => none,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub now: Timestamp,
    pub replay: ReplayView,
    /// Deployments matching the spec (Pending/Queued only).
    pub candidates: Vec<DeploymentView>,
    /// The Deployment named in `status.target`: `None` if it was not read or does not exist.
    pub deployment: Option<DeploymentView>,
    pub claims: Vec<Claim>,
    pub group: Option<GroupDescription>,
    pub plan_inputs: Option<Result<PlanInputs, String>>,
    /// `Err`: a permanent problem (the topic is gone), described.
    pub committed: Option<Result<BTreeMap<i32, i64>, String>>,
}

impl Observation {
    /// An observation of `replay` with nothing else read yet.
    pub fn of(replay: ReplayView, now: Timestamp) -> Self {
        Self {
            now,
            replay,
            candidates: Vec::new(),
            deployment: None,
            claims: Vec::new(),
            group: None,
            plan_inputs: None,
            committed: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayView {
    pub namespace: String,
    pub name: String,
    pub generation: Option<i64>,
    pub created: Option<Timestamp>,
    pub spec: ReplaySpec,
    pub status: ReplayStatus,
}

impl ReplayView {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentView {
    pub name: String,
    /// `spec.replicas` (Kubernetes defaults it to 1).
    pub replicas: i32,
    pub autoscalers: Autoscalers,
}

/// Autoscalers whose target is the Deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Autoscalers {
    pub hpas: Vec<String>,
    pub scaled_objects: Vec<ScaledObjectView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaledObjectView {
    pub name: String,
    /// Its current `autoscaling.keda.sh/paused-replicas` annotation.
    pub paused_replicas: Option<String>,
}

/// Another live Replay on the same consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub key: String,
    pub created: Option<Timestamp>,
    pub phase: ReplayPhase,
}

/// What an offset plan is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInputs {
    pub partitions: Vec<PartitionOffsets>,
    pub from_lookup: Option<BTreeMap<i32, Option<i64>>>,
    pub to_lookup: Option<BTreeMap<i32, Option<i64>>>,
}
