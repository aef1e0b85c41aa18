//! Pod status from what the kubelet knows about its containers: phase, conditions and container statuses.
//! Pure: no client, no clock (the caller passes `now`), so every rule is unit-tested.

use k8s_openapi::api::core::v1::{
    ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("Never") => Self::Never,
            Some("OnFailure") => Self::OnFailure,
            _ => Self::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Termination {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

impl Termination {
    /// Exit by code or by signal, reported as a shell would: a signal N becomes exit code 128+N.
    pub fn of_exit(
        code: Option<i32>,
        signal: Option<i32>,
        started_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Self {
        let exit_code = code.unwrap_or_else(|| 128 + signal.unwrap_or(0));
        Self {
            exit_code,
            signal: if code.is_none() { signal } else { None },
            reason: if exit_code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            message: None,
            started_at,
            finished_at: now,
            container_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContainerState {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: Timestamp },
    Terminated(Termination),
}

/// Everything the status reports about one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub last_termination: Option<Termination>,
    pub restart_count: i32,
    pub ready: bool,
    pub started: bool,
    pub container_id: Option<String>,
    /// An init container with `restartPolicy: Always` (a native sidecar): it runs alongside the others.
    pub sidecar: bool,
}

impl ContainerRecord {
    pub fn waiting(name: &str, image: &str, reason: &str, sidecar: bool) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            state: ContainerState::Waiting {
                reason: reason.to_owned(),
                message: None,
            },
            last_termination: None,
            restart_count: 0,
            ready: false,
            started: false,
            container_id: None,
            sidecar,
        }
    }

    /// An init container has done its part: exited 0, or (a sidecar) has started.
    pub fn init_done(&self) -> bool {
        if self.sidecar {
            return self.started;
        }
        matches!(&self.state, ContainerState::Terminated(t) if t.exit_code == 0)
    }
}

/// The inputs of a pod's status besides its containers.
#[derive(Debug, Clone)]
pub struct PodFacts<'a> {
    pub restart_policy: RestartPolicy,
    /// The pod is being torn down (deleted or the kubelet stops): nothing will be restarted.
    pub terminal: bool,
    pub sandbox_ready: bool,
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub start_time: Timestamp,
    /// All `spec.readinessGates` conditions are True.
    pub readiness_gates_ok: bool,
    pub previous_conditions: &'a [PodCondition],
    pub generation: Option<i64>,
    pub now: Timestamp,
}

pub fn pod_status(
    facts: &PodFacts<'_>,
    init: &[ContainerRecord],
    containers: &[ContainerRecord],
) -> PodStatus {
    let phase = phase(facts.restart_policy, facts.terminal, init, containers);
    let completed = phase == "Succeeded" || phase == "Failed";
    let pending_init: Vec<&str> = init
        .iter()
        .filter(|c| !c.init_done())
        .map(|c| c.name.as_str())
        .collect();
    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let mut conditions = vec![
        condition(facts, "PodScheduled", true, None, None),
        condition(
            facts,
            "PodReadyToStartContainers",
            facts.sandbox_ready,
            None,
            None,
        ),
    ];
    conditions.push(if completed && phase == "Succeeded" {
        condition(facts, "Initialized", true, Some("PodCompleted"), None)
    } else if pending_init.is_empty() {
        condition(facts, "Initialized", true, None, None)
    } else {
        let message = format!("containers with incomplete status: [{}]", pending_init.join(" "));
        condition(
            facts,
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(message),
        )
    });
    let (ready, reason, message) = if completed {
        (false, Some("PodCompleted"), None)
    } else if !unready.is_empty() {
        let message = format!("containers with unready status: [{}]", unready.join(" "));
        (false, Some("ContainersNotReady"), Some(message))
    } else {
        (true, None, None)
    };
    conditions.push(condition(
        facts,
        "ContainersReady",
        ready,
        reason,
        message.clone(),
    ));
    conditions.push(if ready && !facts.readiness_gates_ok {
        let message = "corresponding condition of pod readiness gate is not true".to_string();
        condition(
            facts,
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some(message),
        )
    } else {
        condition(facts, "Ready", ready, reason, message)
    });
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(facts.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: facts.host_ip.clone(),
        }]),
        pod_ip: facts.pod_ip.clone(),
        pod_ips: facts.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        start_time: Some(Time(facts.start_time)),
        init_container_statuses: Some(init.iter().map(container_status).collect()),
        container_statuses: Some(containers.iter().map(container_status).collect()),
        observed_generation: facts.generation,
        ..PodStatus::default()
    }
}

/// Kubernetes' getPhase: containers waiting after a run count as stopped, so a crash-looping pod stays Running.
pub fn phase(
    policy: RestartPolicy,
    terminal: bool,
    init: &[ContainerRecord],
    containers: &[ContainerRecord],
) -> &'static str {
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in init {
        if c.sidecar {
            pending_init += usize::from(!c.started);
            continue;
        }
        match (&c.state, &c.last_termination) {
            (ContainerState::Terminated(t), _) => failed_init += usize::from(t.exit_code != 0),
            (ContainerState::Waiting { .. }, Some(last)) => failed_init += usize::from(last.exit_code != 0),
            _ => pending_init += 1,
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match (&c.state, &c.last_termination) {
            (ContainerState::Running { .. }, _) => running += 1,
            (ContainerState::Terminated(t), _) => {
                stopped += 1;
                succeeded += usize::from(t.exit_code == 0);
            }
            (ContainerState::Waiting { .. }, Some(_)) => stopped += 1,
            (ContainerState::Waiting { .. }, None) => waiting += 1,
        }
    }
    if failed_init > 0 && (policy == RestartPolicy::Never || terminal) {
        return "Failed";
    }
    if terminal && running == 0 && (pending_init > 0 || waiting > 0) {
        // Torn down before its containers ever ran: nothing will run now.
        return if stopped > 0 && stopped == succeeded && waiting == 0 {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    if pending_init > 0 || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    if terminal {
        return if stopped == succeeded {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    match policy {
        RestartPolicy::Always => "Running",
        _ if stopped == succeeded => "Succeeded",
        RestartPolicy::Never => "Failed",
        RestartPolicy::OnFailure => "Running",
    }
}

/// A condition whose lastTransitionTime moves only when its status really changes.
fn condition(
    facts: &PodFacts<'_>,
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    let status = if status { "True" } else { "False" }.to_string();
    let since = facts
        .previous_conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(facts.now));
    PodCondition {
        type_: type_.to_owned(),
        status,
        reason: reason.map(str::to_owned),
        message,
        last_transition_time: Some(since),
        observed_generation: facts.generation,
        ..PodCondition::default()
    }
}

fn k8s_state(state: &ContainerState) -> K8sState {
    match state {
        ContainerState::Waiting { reason, message } => K8sState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..K8sState::default()
        },
        ContainerState::Running { started_at } => K8sState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..K8sState::default()
        },
        ContainerState::Terminated(t) => K8sState {
            terminated: Some(terminated(t)),
            ..K8sState::default()
        },
    }
}

fn terminated(t: &Termination) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(Time),
        finished_at: Some(Time(t.finished_at)),
        container_id: t.container_id.clone(),
    }
}

pub fn container_status(c: &ContainerRecord) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: String::new(),
        container_id: c.container_id.clone(),
        state: Some(k8s_state(&c.state)),
        last_state: Some(match &c.last_termination {
            Some(t) => K8sState {
                terminated: Some(terminated(t)),
                ..K8sState::default()
            },
            None => K8sState::default(),
        }),
        ready: c.ready,
        started: Some(c.started),
        restart_count: c.restart_count,
        ..ContainerStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("valid time")
    }

    fn running(name: &str, ready: bool) -> ContainerRecord {
        ContainerRecord {
            state: ContainerState::Running { started_at: now() },
            ready,
            started: true,
            ..ContainerRecord::waiting(name, "busybox", "ContainerCreating", false)
        }
    }

    fn exited(name: &str, code: i32) -> ContainerRecord {
        ContainerRecord {
            state: ContainerState::Terminated(Termination::of_exit(Some(code), None, Some(now()), now())),
            ..ContainerRecord::waiting(name, "busybox", "ContainerCreating", false)
        }
    }

    fn backing_off(name: &str, last_code: i32) -> ContainerRecord {
        ContainerRecord {
            state: ContainerState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: None,
            },
            last_termination: Some(Termination::of_exit(Some(last_code), None, Some(now()), now())),
            restart_count: 1,
            ..ContainerRecord::waiting(name, "busybox", "ContainerCreating", false)
        }
    }

    fn waiting(name: &str) -> ContainerRecord {
        ContainerRecord::waiting(name, "busybox", "ContainerCreating", false)
    }

    fn facts(previous: &[PodCondition]) -> PodFacts<'_> {
        PodFacts {
            restart_policy: RestartPolicy::Always,
            terminal: false,
            sandbox_ready: true,
            pod_ip: Some("127.42.0.5".into()),
            host_ip: "127.0.0.1".into(),
            start_time: now(),
            readiness_gates_ok: true,
            previous_conditions: previous,
            generation: Some(1),
            now: now(),
        }
    }

    fn cond<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    use RestartPolicy::{Always, Never, OnFailure};

    #[test]
    fn phases_follow_the_kubelet() {
        assert_eq!(phase(Always, false, &[], &[waiting("a")]), "Pending");
        assert_eq!(
            phase(Always, false, &[], &[running("a", false), waiting("b")]),
            "Pending"
        );
        assert_eq!(
            phase(Always, false, &[], &[running("a", false), exited("b", 0)]),
            "Running"
        );
        assert_eq!(phase(Always, false, &[], &[backing_off("a", 1)]), "Running");
        assert_eq!(phase(Always, false, &[], &[exited("a", 0)]), "Running");
        assert_eq!(
            phase(OnFailure, false, &[], &[exited("a", 0), exited("b", 0)]),
            "Succeeded"
        );
        assert_eq!(phase(OnFailure, false, &[], &[exited("a", 1)]), "Running");
        assert_eq!(phase(Never, false, &[], &[exited("a", 0)]), "Succeeded");
        assert_eq!(
            phase(Never, false, &[], &[exited("a", 0), exited("b", 2)]),
            "Failed"
        );
        assert_eq!(
            phase(Never, false, &[], &[running("a", true), exited("b", 2)]),
            "Running"
        );
    }

    #[test]
    fn init_containers_gate_the_phase() {
        assert_eq!(
            phase(Always, false, &[running("i", false)], &[waiting("a")]),
            "Pending"
        );
        assert_eq!(phase(Never, false, &[exited("i", 3)], &[waiting("a")]), "Failed");
        assert_eq!(
            phase(OnFailure, false, &[backing_off("i", 3)], &[waiting("a")]),
            "Pending"
        );
        assert_eq!(
            phase(Never, false, &[exited("i", 0)], &[running("a", true)]),
            "Running"
        );
        let sidecar = ContainerRecord {
            sidecar: true,
            ..running("side", true)
        };
        assert_eq!(phase(Never, false, &[sidecar], &[exited("a", 0)]), "Succeeded");
    }

    #[test]
    fn torn_down_pods_end_in_a_terminal_phase() {
        assert_eq!(phase(Always, true, &[], &[exited("a", 0)]), "Succeeded");
        assert_eq!(phase(Always, true, &[], &[exited("a", 143)]), "Failed");
        assert_eq!(phase(Always, true, &[], &[waiting("a")]), "Failed");
        assert_eq!(
            phase(Always, true, &[running("i", false)], &[waiting("a")]),
            "Failed"
        );
    }

    #[test]
    fn readiness_requires_every_container_ready_and_the_gates() {
        let status = pod_status(&facts(&[]), &[], &[running("a", true), running("b", false)]);
        assert_eq!(cond(&status, "Ready").status, "False");
        assert_eq!(
            cond(&status, "Ready").message.as_deref(),
            Some("containers with unready status: [b]")
        );
        assert_eq!(
            cond(&status, "ContainersReady").reason.as_deref(),
            Some("ContainersNotReady")
        );

        let status = pod_status(&facts(&[]), &[], &[running("a", true), running("b", true)]);
        assert_eq!(cond(&status, "Ready").status, "True");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("127.42.0.5"));

        let gated = PodFacts {
            readiness_gates_ok: false,
            ..facts(&[])
        };
        let status = pod_status(&gated, &[], &[running("a", true)]);
        assert_eq!(cond(&status, "ContainersReady").status, "True");
        assert_eq!(
            cond(&status, "Ready").reason.as_deref(),
            Some("ReadinessGatesNotReady")
        );
    }

    #[test]
    fn initialized_lists_unfinished_init_containers() {
        let status = pod_status(
            &facts(&[]),
            &[exited("one", 0), running("two", false)],
            &[waiting("a")],
        );
        let init = cond(&status, "Initialized");
        assert_eq!(init.status, "False");
        assert_eq!(
            init.message.as_deref(),
            Some("containers with incomplete status: [two]")
        );
        let status = pod_status(&facts(&[]), &[exited("one", 0)], &[running("a", true)]);
        assert_eq!(cond(&status, "Initialized").status, "True");
    }

    #[test]
    fn completed_pods_are_not_ready_with_reason_pod_completed() {
        let f = PodFacts {
            restart_policy: Never,
            ..facts(&[])
        };
        let status = pod_status(&f, &[], &[exited("a", 0)]);
        assert_eq!(status.phase.as_deref(), Some("Succeeded"));
        assert_eq!(cond(&status, "Ready").reason.as_deref(), Some("PodCompleted"));
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let earlier = Time(Timestamp::from_second(1_700_000_000).expect("valid time"));
        let previous = vec![
            PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(earlier.clone()),
                ..PodCondition::default()
            },
            PodCondition {
                type_: "ContainersReady".into(),
                status: "False".into(),
                last_transition_time: Some(earlier.clone()),
                ..PodCondition::default()
            },
        ];
        let status = pod_status(&facts(&previous), &[], &[running("a", true)]);
        assert_eq!(cond(&status, "Ready").last_transition_time, Some(earlier));
        assert_eq!(
            cond(&status, "ContainersReady").last_transition_time,
            Some(Time(now()))
        );
    }

    #[test]
    fn container_statuses_carry_state_last_state_and_counts() {
        let s = container_status(&backing_off("a", 137));
        let waiting = s.state.and_then(|st| st.waiting).expect("waiting");
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        let last = s
            .last_state
            .and_then(|st| st.terminated)
            .expect("last terminated");
        assert_eq!(last.exit_code, 137);
        assert_eq!(last.reason.as_deref(), Some("Error"));
        assert_eq!(s.restart_count, 1);
        assert_eq!(s.started, Some(false));
    }

    #[test]
    fn signals_become_exit_codes() {
        let t = Termination::of_exit(None, Some(9), None, now());
        assert_eq!(
            (t.exit_code, t.signal, t.reason.as_str()),
            (137, Some(9), "Error")
        );
        let t = Termination::of_exit(Some(0), None, None, now());
        assert_eq!((t.exit_code, t.signal, t.reason.as_str()), (0, None, "Completed"));
    }
}
