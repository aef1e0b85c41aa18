//! Picking up a pod after a kubelet restart: what its status says each container did, and what runs next.
//!
//! Choice: a process left running by a previous kubelet is killed (its group, after checking pid and start
//! time), never adopted: its exit code could not be observed. Its container is reported terminated with
//! exit code 137 and reason ContainerStatusUnknown, then restarted as its restartPolicy says.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus};
use k8s_openapi::jiff::Timestamp;

use crate::status::{ContainerRecord, ContainerState, RestartPolicy, Termination};

/// Whether a container that stopped with `exit_code` runs again.
pub fn restarts(policy: RestartPolicy, init: bool, sidecar: bool, exit_code: i32) -> bool {
    if sidecar {
        return true;
    }
    if init {
        return exit_code != 0 && policy != RestartPolicy::Never;
    }
    policy.restarts(exit_code)
}

pub fn termination_from_k8s(t: &ContainerStateTerminated, now: Timestamp) -> Termination {
    Termination {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t
            .reason
            .clone()
            .unwrap_or_else(|| if t.exit_code == 0 { "Completed" } else { "Error" }.into()),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().map(|s| s.0),
        finished_at: t.finished_at.as_ref().map_or(now, |f| f.0),
        container_id: t.container_id.clone(),
    }
}

/// The restored record, whether it must be (re)started now, and whether it ever ran before.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    pub record: ContainerRecord,
    pub start: bool,
    pub ran_before: bool,
}

pub fn restore(
    fresh: ContainerRecord,
    previous: Option<&ContainerStatus>,
    policy: RestartPolicy,
    init: bool,
    now: Timestamp,
) -> Restored {
    let Some(previous) = previous else {
        return Restored {
            record: fresh,
            start: true,
            ran_before: false,
        };
    };
    let state = previous.state.clone().unwrap_or_default();
    let last = previous
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| termination_from_k8s(t, now));
    let base = ContainerRecord {
        restart_count: previous.restart_count,
        last_termination: last.clone(),
        ..fresh
    };
    let sidecar = base.sidecar;
    if let Some(t) = &state.terminated {
        let termination = termination_from_k8s(t, now);
        let start = restarts(policy, init, sidecar, termination.exit_code);
        return Restored {
            record: ContainerRecord {
                state: ContainerState::Terminated(termination),
                ..base
            },
            start,
            ran_before: true,
        };
    }
    if let Some(running) = &state.running {
        let termination = Termination {
            exit_code: 137,
            signal: None,
            reason: "ContainerStatusUnknown".into(),
            message: Some("The container could not be located when the process kubelet restarted".into()),
            started_at: running.started_at.as_ref().map(|s| s.0),
            finished_at: now,
            container_id: previous.container_id.clone(),
        };
        let start = restarts(policy, init, sidecar, termination.exit_code);
        return Restored {
            record: ContainerRecord {
                state: ContainerState::Terminated(termination),
                ..base
            },
            start,
            ran_before: true,
        };
    }
    // Waiting: either never ran (fresh start) or was backing off before a restart.
    let ran_before = last.is_some();
    Restored {
        record: base,
        start: true,
        ran_before,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("valid")
    }

    fn fresh() -> ContainerRecord {
        ContainerRecord::waiting("main", "busybox", "ContainerCreating", false)
    }

    fn status(value: serde_json::Value) -> ContainerStatus {
        let mut v =
            json!({"name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 2});
        if let (Some(obj), Some(extra)) = (v.as_object_mut(), value.as_object()) {
            obj.extend(extra.clone());
        }
        serde_json::from_value(v).expect("valid status")
    }

    #[test]
    fn unknown_containers_start_fresh() {
        let r = restore(fresh(), None, RestartPolicy::Always, false, now());
        assert_eq!(
            r,
            Restored {
                record: fresh(),
                start: true,
                ran_before: false
            }
        );
    }

    #[test]
    fn a_running_container_whose_process_is_gone_is_terminated_and_restarted_per_policy() {
        let s = status(json!({"state": {"running": {"startedAt": "2027-01-15T08:00:00Z"}}}));
        let r = restore(fresh(), Some(&s), RestartPolicy::Always, false, now());
        assert!(r.start && r.ran_before);
        assert_eq!(r.record.restart_count, 2);
        match &r.record.state {
            ContainerState::Terminated(t) => {
                assert_eq!((t.exit_code, t.reason.as_str()), (137, "ContainerStatusUnknown"));
            }
            other => panic!("expected terminated, got {other:?}"),
        }
        let r = restore(fresh(), Some(&s), RestartPolicy::Never, false, now());
        assert!(!r.start, "Never: stays terminated, the pod fails");
    }

    #[test]
    fn finished_containers_stay_finished_unless_the_policy_restarts_them() {
        let done = status(json!({"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}));
        assert!(!restore(fresh(), Some(&done), RestartPolicy::OnFailure, false, now()).start);
        assert!(restore(fresh(), Some(&done), RestartPolicy::Always, false, now()).start);
        assert!(
            !restore(fresh(), Some(&done), RestartPolicy::Always, true, now()).start,
            "init done"
        );
        let failed = status(json!({"state": {"terminated": {"exitCode": 1}}}));
        let r = restore(fresh(), Some(&failed), RestartPolicy::OnFailure, true, now());
        assert!(r.start);
        assert!(matches!(r.record.state, ContainerState::Terminated(ref t) if t.reason == "Error"));
    }

    #[test]
    fn backing_off_containers_restart_with_their_last_state() {
        let s = status(json!({"state": {"waiting": {"reason": "CrashLoopBackOff"}},
                              "lastState": {"terminated": {"exitCode": 3}}}));
        let r = restore(fresh(), Some(&s), RestartPolicy::Always, false, now());
        assert!(r.start && r.ran_before);
        assert_eq!(r.record.last_termination.map(|t| t.exit_code), Some(3));
        let never_ran =
            status(json!({"state": {"waiting": {"reason": "ContainerCreating"}}, "restartCount": 0}));
        let r = restore(fresh(), Some(&never_ran), RestartPolicy::Always, false, now());
        assert!(r.start && !r.ran_before);
    }
}
