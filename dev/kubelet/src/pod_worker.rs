//! One task per pod: starts its containers in order, restarts them per restartPolicy, follows probes,
//! writes the pod's status, and on deletion stops the processes and removes the pod object.

use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::backoff::CrashBackoff;
use crate::container::{LaunchError, Running, Slot, plan_launch};
use crate::context::{KubeletContext, PodDir};
use crate::credentials;
use crate::node::FIELD_MANAGER;
use crate::probe::{ProbeReport, run_container_probes};
use crate::process;
use crate::restore;
use crate::status::{self, ContainerRecord, ContainerState, PodFacts, RestartPolicy, Termination};

/// What the pod manager tells a worker; the latest value wins.
#[derive(Debug, Clone)]
pub enum PodSignal {
    Update(Box<Pod>),
    /// The pod object no longer exists (force-deleted or lost while we were not watching).
    Gone,
    /// The kubelet is stopping: stop the processes, keep the pod objects.
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SlotRef {
    init: bool,
    index: usize,
}

#[derive(Debug)]
enum WorkerEvent {
    Exited {
        slot: SlotRef,
        instance: u64,
        code: Option<i32>,
        signal: Option<i32>,
    },
    Probe {
        slot: SlotRef,
        instance: u64,
        report: ProbeReport,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Teardown {
    Delete,
    Gone,
    Shutdown,
}

/// How long to wait before retrying a container whose configuration could not be resolved.
const CONFIG_RETRY: Duration = Duration::from_secs(2);
const RESYNC: Duration = Duration::from_secs(30);
const DEFAULT_GRACE_SECONDS: i64 = 30;
const MIN_FORCE_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct PodWorker {
    ctx: Arc<KubeletContext>,
    pod: Pod,
    uid: String,
    dir: PodDir,
    reference: ObjectReference,
    policy: RestartPolicy,
    init: Vec<Slot>,
    main: Vec<Slot>,
    pod_ip: Option<Ipv4Addr>,
    start_time: Timestamp,
    kubeconfig: Option<PathBuf>,
    token_error: Option<String>,
    token_refresh_at: Option<Instant>,
    /// Nothing is (re)started any more: the pod is finishing or being torn down.
    winding_down: bool,
    last_status: Option<serde_json::Value>,
    /// The API answered 404 for this pod: it was removed without us.
    object_gone: bool,
    status_retry_at: Option<Instant>,
    tx: mpsc::UnboundedSender<WorkerEvent>,
    rx: mpsc::UnboundedReceiver<WorkerEvent>,
}

fn is_terminal_phase(phase: Option<&str>) -> bool {
    matches!(phase, Some("Succeeded" | "Failed"))
}

impl PodWorker {
    pub fn new(ctx: Arc<KubeletContext>, pod: Pod) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = RestartPolicy::parse(spec.restart_policy.as_deref());
        let slot = |c: &k8s_openapi::api::core::v1::Container, init: bool| {
            let sidecar = init && c.restart_policy.as_deref() == Some("Always");
            let waiting_reason = if init {
                "PodInitializing"
            } else {
                "ContainerCreating"
            };
            Slot {
                record: ContainerRecord::waiting(
                    &c.name,
                    c.image.as_deref().unwrap_or(""),
                    waiting_reason,
                    sidecar,
                ),
                spec: c.clone(),
                init,
                backoff: CrashBackoff::new(ctx.max_backoff),
                ran_before: false,
                start_at: Some(Instant::now()),
                run: None,
                instance: 0,
                kill_deadline: None,
                killed_for_health: false,
            }
        };
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| slot(c, true))
            .collect();
        let main = spec.containers.iter().map(|c| slot(c, false)).collect();
        Self {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            dir: PodDir::for_pod(&ctx.pods_dir, &pod),
            reference: pod.object_ref(&()),
            start_time: pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map_or_else(Timestamp::now, |t| t.0),
            ctx,
            pod,
            policy,
            init,
            main,
            pod_ip: None,
            kubeconfig: None,
            token_error: None,
            token_refresh_at: None,
            winding_down: false,
            last_status: None,
            object_gone: false,
            status_retry_at: None,
            tx,
            rx,
        }
    }

    fn name(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
            self.pod.metadata.name.as_deref().unwrap_or("")
        )
    }

    pub async fn run(mut self, mut signals: watch::Receiver<PodSignal>) {
        let phase = self.pod.status.as_ref().and_then(|s| s.phase.clone());
        if is_terminal_phase(phase.as_deref()) {
            self.hold_terminal(signals).await;
            return;
        }
        self.prepare();
        let teardown = loop {
            let signal = signals.borrow_and_update().clone();
            match signal {
                PodSignal::Update(pod) => {
                    self.pod = *pod;
                    if self.pod.metadata.deletion_timestamp.is_some() {
                        break Teardown::Delete;
                    }
                }
                PodSignal::Gone => break Teardown::Gone,
                PodSignal::Shutdown => break Teardown::Shutdown,
            }
            self.sync().await;
            let phase = self.write_status(false).await;
            if is_terminal_phase(phase) {
                if self.any_running() {
                    self.stop_all("the pod has completed");
                } else if self.last_status.is_some() {
                    self.release_runtime();
                    self.hold_terminal(signals).await;
                    return;
                }
            }
            let wake = self.next_wakeup();
            let woke = tokio::select! {
                changed = signals.changed() => if changed.is_err() { None } else { Some(None) },
                event = self.rx.recv() => Some(event),
                _ = tokio::time::sleep_until(wake) => Some(None),
            };
            match woke {
                None => break Teardown::Shutdown,
                Some(Some(event)) => self.handle(event),
                Some(None) => {}
            }
        };
        self.teardown(teardown).await;
    }

    /// Pod dir, IP and, after a kubelet restart, what the pod's status says its containers already did.
    fn prepare(&mut self) {
        if let Err(e) = self.dir.create(&self.ctx.pods_dir, &self.pod) {
            tracing::warn!(pod = %self.name(), error = %e, "cannot create the pod directory");
        }
        self.ensure_ip();
        let status = self.pod.status.clone().unwrap_or_default();
        let now = Timestamp::now();
        let policy = self.policy;
        let dir = self.dir.path.clone();
        let pod_name = self.name();
        for (slots, previous) in [
            (&mut self.init, status.init_container_statuses.unwrap_or_default()),
            (&mut self.main, status.container_statuses.unwrap_or_default()),
        ] {
            for slot in slots.iter_mut() {
                if let Some(id) = process::read_checkpoint(&dir, &slot.spec.name) {
                    if id.is_alive() {
                        tracing::warn!(pod = %pod_name, container = %slot.spec.name, pid = id.pid,
                            "killing a process left by a previous process-kubelet (see restore.rs)");
                        let _ = process::signal_group(id.pid, Signal::SIGKILL);
                    }
                    process::remove_checkpoint(&dir, &slot.spec.name);
                }
                let prev = previous.iter().find(|s| s.name == slot.spec.name);
                let restored = restore::restore(slot.record.clone(), prev, policy, slot.init, now);
                slot.record = restored.record;
                slot.ran_before = restored.ran_before;
                slot.start_at = restored.start.then(Instant::now);
            }
        }
    }

    fn ensure_ip(&mut self) -> bool {
        if self.pod_ip.is_some() {
            return true;
        }
        // hostNetwork pods share the host's address, as on a real node.
        if self.pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            self.pod_ip = self.ctx.host_ip.parse().ok();
            return self.pod_ip.is_some();
        }
        let previous = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_ref())
            .and_then(|ip| ip.parse().ok());
        let allocated = match self.ctx.ipam.lock() {
            Ok(mut ipam) => ipam.allocate(&self.uid, previous).map_err(|e| e.to_string()),
            Err(_) => Err("the IP allocator lock is poisoned".to_string()),
        };
        match allocated {
            Ok(ip) => self.pod_ip = Some(ip),
            Err(e) => tracing::warn!(pod = %self.name(), error = %e, "no pod IP"),
        }
        self.pod_ip.is_some()
    }

    fn slot_mut(&mut self, r: SlotRef) -> Option<&mut Slot> {
        if r.init {
            self.init.get_mut(r.index)
        } else {
            self.main.get_mut(r.index)
        }
    }

    fn any_running(&self) -> bool {
        self.init.iter().chain(&self.main).any(|s| s.run.is_some())
    }

    /// Starts what is due: init containers one after another (sidecars stay running), then the rest.
    async fn sync(&mut self) {
        let now = Instant::now();
        for slot in self.init.iter_mut().chain(self.main.iter_mut()) {
            if let (Some(run), Some(deadline)) = (&slot.run, slot.kill_deadline)
                && deadline <= now
            {
                let _ = process::signal_group(run.id.pid, Signal::SIGKILL);
                slot.kill_deadline = None;
            }
        }
        if self.winding_down || !self.ensure_ip() {
            return;
        }
        self.ensure_credentials().await;
        for index in 0..self.init.len() {
            let r = SlotRef { init: true, index };
            let slot = &self.init[index];
            if slot.record.sidecar {
                if slot.due(now) {
                    self.start(r).await;
                }
                if !self.init[index].record.started {
                    return;
                }
                continue;
            }
            if slot.record.init_done() {
                continue;
            }
            if slot.due(now) {
                self.start(r).await;
            }
            return;
        }
        for index in 0..self.main.len() {
            if self.main[index].due(now) {
                self.start(SlotRef { init: false, index }).await;
            }
        }
    }

    /// Requests (or refreshes) the pod's ServiceAccount token and rewrites its kubeconfig.
    async fn ensure_credentials(&mut self) {
        if !credentials::wants_token(&self.pod) || self.token_refresh_at.is_some_and(|at| Instant::now() < at)
        {
            return;
        }
        let namespace = self.pod.metadata.namespace.clone().unwrap_or_default();
        // The node authorizer learns of a newly bound pod a moment after we do: retry briefly before failing.
        let mut attempt = 0;
        let result = loop {
            let issued_at = Timestamp::now();
            let result = credentials::request_token(self.ctx.client.clone(), &self.pod)
                .await
                .and_then(|token| {
                    let path = credentials::write_pod_credentials(
                        &self.dir.path,
                        &self.ctx.cluster,
                        &token.token,
                        &namespace,
                    )?;
                    Ok((path, credentials::refresh_after(issued_at, token.expires_at)))
                });
            attempt += 1;
            if result.is_ok() || attempt >= 5 || self.kubeconfig.is_some() {
                break result;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        match result {
            Ok((path, refresh)) => {
                self.kubeconfig = Some(path);
                self.token_error = None;
                self.token_refresh_at = Some(Instant::now() + refresh);
            }
            Err(e) => {
                tracing::warn!(pod = %self.name(), error = %e, "service account token");
                self.token_error = Some(e.to_string());
                self.token_refresh_at = Some(Instant::now() + CONFIG_RETRY);
            }
        }
    }

    async fn start(&mut self, r: SlotRef) {
        let Some(pod_ip) = self.pod_ip.map(|ip| ip.to_string()) else {
            return;
        };
        let token_missing = if credentials::wants_token(&self.pod) && self.kubeconfig.is_none() {
            Some(
                self.token_error
                    .clone()
                    .unwrap_or_else(|| "not requested yet".into()),
            )
        } else {
            None
        };
        let Some(spec) = self.slot_mut(r).map(|s| s.spec.clone()) else {
            return;
        };
        let plan = plan_launch(
            &self.ctx,
            &self.pod,
            &spec,
            &self.dir,
            &pod_ip,
            self.kubeconfig.as_deref(),
            token_missing.as_deref(),
        )
        .await;
        let plan = match plan {
            Ok(plan) => plan,
            Err(e) => return self.launch_failed(r, e),
        };
        let spawned = process::spawn(&plan.spawn);
        let (child, id) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                let message = e.to_string();
                self.ctx
                    .events
                    .warning(&self.reference, "Failed", format!("Error: {message}"));
                let now = Timestamp::now();
                let mut termination = Termination::of_exit(Some(128), None, Some(now), now);
                termination.reason = "StartError".into();
                termination.message = Some(message);
                return self.record_exit(r, termination, Duration::ZERO);
            }
        };
        if let Err(e) = process::write_checkpoint(&self.dir.path, &spec.name, id) {
            tracing::warn!(pod = %self.name(), container = %spec.name, error = %e, "cannot write pid checkpoint");
        }
        let tx = self.tx.clone();
        let reference = self.reference.clone();
        let events = self.ctx.events.clone();
        let Some(slot) = self.slot_mut(r) else { return };
        slot.instance += 1;
        let instance = slot.instance;
        if slot.ran_before {
            slot.record.restart_count += 1;
        }
        // A container restored as terminated (after a kubelet restart) reports that run as its last state.
        if let ContainerState::Terminated(previous) = &slot.record.state {
            slot.record.last_termination = Some(previous.clone());
        }
        slot.ran_before = true;
        slot.start_at = None;
        let started_at = Timestamp::now();
        slot.record.state = ContainerState::Running { started_at };
        slot.record.container_id = Some(id.container_id());
        slot.record.started = !plan.has_probes();
        slot.record.ready = !plan.has_probes();
        let probes = plan.has_probes().then(|| {
            let (report_tx, mut report_rx) = mpsc::unbounded_channel();
            let forward = tx.clone();
            tokio::spawn(async move {
                while let Some(report) = report_rx.recv().await {
                    if forward
                        .send(WorkerEvent::Probe {
                            slot: r,
                            instance,
                            report,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            });
            tokio::spawn(run_container_probes(
                plan.startup,
                plan.readiness,
                plan.liveness,
                plan.probe_target,
                report_tx,
            ))
        });
        slot.run = Some(Running {
            id,
            since: Instant::now(),
            started_at,
            probes,
        });
        tokio::spawn(async move {
            let mut child = child;
            let (code, signal) = match child.wait().await {
                Ok(status) => (status.code(), status.signal()),
                Err(_) => (None, Some(9)),
            };
            let _ = tx.send(WorkerEvent::Exited {
                slot: r,
                instance,
                code,
                signal,
            });
        });
        events.normal(&reference, "Started", format!("Started container {}", spec.name));
        tracing::info!(pod = %self.name(), container = %spec.name, pid = id.pid, program = %plan.spawn.program, "started");
    }

    fn launch_failed(&mut self, r: SlotRef, error: LaunchError) {
        let pod_name = self.name();
        let events = self.ctx.events.clone();
        let reference = self.reference.clone();
        let Some(slot) = self.slot_mut(r) else { return };
        let image_problem = error.reason == "ErrImagePull";
        let was_pulling = matches!(&slot.record.state,
            ContainerState::Waiting { reason, .. } if reason == "ErrImagePull" || reason == "ImagePullBackOff");
        let reason = if image_problem && was_pulling {
            "ImagePullBackOff"
        } else {
            error.reason
        };
        let delay = if image_problem {
            slot.backoff.next_delay(Duration::ZERO)
        } else {
            CONFIG_RETRY
        };
        let changed = !matches!(&slot.record.state,
            ContainerState::Waiting { message: Some(m), .. } if *m == error.message);
        slot.record.state = ContainerState::Waiting {
            reason: reason.into(),
            message: Some(error.message.clone()),
        };
        slot.start_at = Some(Instant::now() + delay);
        if changed {
            tracing::warn!(pod = %pod_name, container = %slot.spec.name, reason, message = %error.message, "cannot start");
            events.warning(&reference, "Failed", format!("Error: {}", error.message));
        }
    }

    fn handle(&mut self, event: WorkerEvent) {
        match event {
            WorkerEvent::Exited {
                slot,
                instance,
                code,
                signal,
            } => self.on_exit(slot, instance, code, signal),
            WorkerEvent::Probe {
                slot,
                instance,
                report,
            } => self.on_probe(slot, instance, report),
        }
    }

    fn on_exit(&mut self, r: SlotRef, instance: u64, code: Option<i32>, signal: Option<i32>) {
        let dir = self.dir.path.clone();
        let pod_name = self.name();
        let Some(slot) = self.slot_mut(r) else { return };
        if slot.instance != instance {
            return;
        }
        let Some(mut run) = slot.run.take() else { return };
        run.stop_probes();
        // The leader is gone; whatever it left in its group goes with it, as a container's cgroup would.
        let _ = process::signal_group(run.id.pid, Signal::SIGKILL);
        process::remove_checkpoint(&dir, &slot.spec.name);
        let mut termination = Termination::of_exit(code, signal, Some(run.started_at), Timestamp::now());
        termination.container_id = Some(run.id.container_id());
        tracing::info!(pod = %pod_name, container = %slot.spec.name, exit_code = termination.exit_code, "exited");
        self.record_exit(r, termination, run.since.elapsed());
    }

    /// A container stopped (or could not start): restart it after a backoff, or leave it terminated.
    fn record_exit(&mut self, r: SlotRef, termination: Termination, ran_for: Duration) {
        let policy = self.policy;
        let winding_down = self.winding_down;
        let pod_label = format!(
            "{}_{}({})",
            self.pod.metadata.name.as_deref().unwrap_or(""),
            self.pod.metadata.namespace.as_deref().unwrap_or(""),
            self.uid
        );
        let events = self.ctx.events.clone();
        let reference = self.reference.clone();
        let Some(slot) = self.slot_mut(r) else { return };
        slot.record.ready = false;
        slot.record.started = false;
        slot.kill_deadline = None;
        slot.ran_before = true;
        let restart = !winding_down
            && ((slot.killed_for_health && policy != RestartPolicy::Never)
                || restore::restarts(policy, slot.init, slot.record.sidecar, termination.exit_code));
        slot.killed_for_health = false;
        if restart {
            let delay = slot.backoff.next_delay(ran_for);
            let message = format!(
                "back-off {}s restarting failed container={} pod={pod_label}",
                delay.as_secs(),
                slot.spec.name
            );
            slot.record.last_termination = Some(termination);
            slot.record.state = ContainerState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(message),
            };
            slot.start_at = Some(Instant::now() + delay);
            let note = format!(
                "Back-off restarting failed container {} in pod {pod_label}",
                slot.spec.name
            );
            events.warning(&reference, "BackOff", note);
        } else {
            slot.record.state = ContainerState::Terminated(termination);
            slot.start_at = None;
        }
    }

    fn on_probe(&mut self, r: SlotRef, instance: u64, report: ProbeReport) {
        let events = self.ctx.events.clone();
        let reference = self.reference.clone();
        let grace = self.grace_period(Teardown::Delete);
        let Some(slot) = self.slot_mut(r) else { return };
        if slot.instance != instance || slot.run.is_none() {
            return;
        }
        match report {
            ProbeReport::Started => slot.record.started = true,
            ProbeReport::Ready(ready) => slot.record.ready = ready,
            ProbeReport::Failed { kind, message } => {
                events.warning(
                    &reference,
                    "Unhealthy",
                    format!("{} probe failed: {message}", kind.label()),
                );
            }
            ProbeReport::Unhealthy { kind, message } => {
                let note = format!(
                    "Container {} failed {} probe, will be restarted: {message}",
                    slot.spec.name,
                    kind.label().to_lowercase()
                );
                events.normal(&reference, "Killing", note);
                slot.killed_for_health = true;
                slot.record.ready = false;
                if let Some(run) = &mut slot.run {
                    run.stop_probes();
                    let _ = process::signal_group(run.id.pid, Signal::SIGTERM);
                }
                slot.kill_deadline = Some(Instant::now() + grace);
            }
        }
    }

    fn next_wakeup(&self) -> Instant {
        let mut wake = Instant::now() + RESYNC;
        for slot in self.init.iter().chain(&self.main) {
            for at in [slot.start_at.filter(|_| slot.run.is_none()), slot.kill_deadline]
                .into_iter()
                .flatten()
            {
                wake = wake.min(at);
            }
        }
        for at in [self.token_refresh_at, self.status_retry_at]
            .into_iter()
            .flatten()
        {
            wake = wake.min(at);
        }
        wake
    }

    /// Writes the status with server-side apply when it changed; returns the phase it reported.
    async fn write_status(&mut self, terminal: bool) -> Option<&'static str> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let conditions = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let gates_ok = spec.readiness_gates.iter().flatten().all(|gate| {
            conditions
                .iter()
                .any(|c| c.type_ == gate.condition_type && c.status == "True")
        });
        let init: Vec<ContainerRecord> = self.init.iter().map(|s| s.record.clone()).collect();
        let main: Vec<ContainerRecord> = self.main.iter().map(|s| s.record.clone()).collect();
        let facts = PodFacts {
            restart_policy: self.policy,
            terminal,
            sandbox_ready: self.pod_ip.is_some() && !terminal,
            pod_ip: self.pod_ip.map(|ip| ip.to_string()),
            host_ip: self.ctx.host_ip.clone(),
            start_time: self.start_time,
            readiness_gates_ok: gates_ok,
            previous_conditions: &conditions,
            generation: self.pod.metadata.generation,
            now: Timestamp::now(),
        };
        let phase = status::phase(self.policy, terminal, &init, &main);
        let body = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": self.pod.metadata.name, "namespace": self.pod.metadata.namespace },
            "status": status::pod_status(&facts, &init, &main),
        });
        if self.last_status.as_ref() == Some(&body) {
            return Some(phase);
        }
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        match api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
        {
            Ok(updated) => {
                // Keep the conditions' transition times we just wrote, so unchanged ones stay put.
                if let Some(status) = updated.status {
                    self.pod.status = Some(status);
                }
                self.last_status = Some(body);
                self.status_retry_at = None;
                Some(phase)
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                // Force-deleted: there is no status left to write.
                self.object_gone = true;
                None
            }
            Err(e) => {
                tracing::warn!(pod = %self.name(), error = %credentials::api_message(&e), "cannot write pod status; retrying");
                self.status_retry_at = Some(Instant::now() + CONFIG_RETRY);
                None
            }
        }
    }

    fn grace_period(&self, teardown: Teardown) -> Duration {
        let spec_grace = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds);
        let seconds = match teardown {
            Teardown::Delete | Teardown::Gone => {
                self.pod.metadata.deletion_grace_period_seconds.or(spec_grace)
            }
            Teardown::Shutdown => spec_grace,
        }
        .unwrap_or(DEFAULT_GRACE_SECONDS);
        let grace = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        match teardown {
            Teardown::Shutdown => grace.min(self.ctx.shutdown_grace),
            // Even a force-deleted pod gets a moment to handle SIGTERM, as the real kubelet gives it.
            Teardown::Gone | Teardown::Delete => grace.max(MIN_FORCE_GRACE),
        }
    }

    /// SIGTERM to every running container; SIGKILL follows at the grace deadline (checked in `sync`).
    fn stop_all(&mut self, why: &str) {
        self.winding_down = true;
        let grace = self.grace_period(Teardown::Delete);
        let events = self.ctx.events.clone();
        let reference = self.reference.clone();
        for slot in self.init.iter_mut().chain(self.main.iter_mut()) {
            slot.start_at = None;
            if let Some(run) = &mut slot.run
                && slot.kill_deadline.is_none()
            {
                events.normal(
                    &reference,
                    "Killing",
                    format!("Stopping container {}: {why}", slot.spec.name),
                );
                run.stop_probes();
                let _ = process::signal_group(run.id.pid, Signal::SIGTERM);
                slot.kill_deadline = Some(Instant::now() + grace);
            }
        }
    }

    async fn teardown(&mut self, kind: Teardown) {
        self.winding_down = true;
        let grace = self.grace_period(kind);
        tracing::info!(pod = %self.name(), ?kind, grace_seconds = grace.as_secs(), "stopping pod");
        for slot in self.init.iter_mut().chain(self.main.iter_mut()) {
            slot.start_at = None;
            if let Some(run) = &mut slot.run {
                if kind != Teardown::Gone {
                    let note = format!("Stopping container {}", slot.spec.name);
                    self.ctx.events.normal(&self.reference, "Killing", note);
                }
                run.stop_probes();
                let _ = process::signal_group(run.id.pid, Signal::SIGTERM);
            }
        }
        self.wait_for_exits(Instant::now() + grace).await;
        if self.any_running() {
            for slot in self.init.iter().chain(&self.main) {
                if let Some(run) = &slot.run {
                    tracing::warn!(pod = %self.name(), container = %slot.spec.name, "grace period over: SIGKILL");
                    let _ = process::signal_group(run.id.pid, Signal::SIGKILL);
                }
            }
            self.wait_for_exits(Instant::now() + Duration::from_secs(5)).await;
        }
        if kind != Teardown::Gone {
            self.write_status(kind == Teardown::Delete).await;
        }
        if kind == Teardown::Delete && !self.object_gone {
            self.delete_object().await;
        }
        if kind != Teardown::Shutdown {
            self.release_runtime();
        }
    }

    async fn wait_for_exits(&mut self, deadline: Instant) {
        while self.any_running() {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(WorkerEvent::Exited {
                    slot,
                    instance,
                    code,
                    signal,
                })) => {
                    self.on_exit(slot, instance, code, signal);
                }
                Ok(Some(WorkerEvent::Probe { .. })) => {}
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Removes the pod object once its processes are gone (grace 0, only this incarnation of the pod).
    async fn delete_object(&self) {
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &params).await {
            Ok(_) => tracing::info!(pod = %self.name(), "pod object deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(pod = %self.name(), error = %e, "cannot delete pod object"),
        }
    }

    /// Frees the pod's address and token once no process of it runs; logs stay.
    fn release_runtime(&mut self) {
        if let Ok(mut ipam) = self.ctx.ipam.lock() {
            ipam.release(&self.uid);
        }
        credentials::remove_pod_credentials(&self.dir.path);
        for slot in self.init.iter().chain(&self.main) {
            process::remove_checkpoint(&self.dir.path, &slot.spec.name);
        }
    }

    /// A finished pod: nothing runs; wait for its deletion to remove the object.
    async fn hold_terminal(mut self, mut signals: watch::Receiver<PodSignal>) {
        loop {
            let signal = signals.borrow_and_update().clone();
            match signal {
                PodSignal::Update(pod) if pod.metadata.deletion_timestamp.is_some() => {
                    self.pod = *pod;
                    self.delete_object().await;
                    self.release_runtime();
                    return;
                }
                PodSignal::Update(pod) => self.pod = *pod,
                PodSignal::Gone => {
                    self.release_runtime();
                    return;
                }
                PodSignal::Shutdown => return,
            }
            if signals.changed().await.is_err() {
                return;
            }
        }
    }
}
