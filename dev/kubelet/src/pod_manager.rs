//! Watches the pods bound to this node and keeps one worker task per pod, fed with the pod's latest version.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context::KubeletContext;
use crate::pod_worker::{PodSignal, PodWorker};

#[derive(Debug)]
struct WorkerHandle {
    signals: watch::Sender<PodSignal>,
    task: JoinHandle<()>,
}

/// Runs until `stop` is cancelled, then stops every pod's processes (keeping the pod objects) and returns.
pub async fn run(ctx: Arc<KubeletContext>, stop: CancellationToken, stop_timeout: Duration) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut stream = watcher::watcher(pods, config).default_backoff().boxed();
    let mut workers: HashMap<String, WorkerHandle> = HashMap::new();
    // Workers that finished (their pod deleted) while the API may still show the pod for a moment.
    let mut finished: HashSet<String> = HashSet::new();
    let mut listed: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
                finished.insert(uid);
            }
            event = stream.next() => match event {
                None => break,
                Some(Err(e)) => tracing::warn!(error = %e, "pod watch failed; retrying with backoff"),
                Some(Ok(Event::Init)) => listed.clear(),
                Some(Ok(Event::InitApply(pod))) => {
                    listed.insert(pod.metadata.uid.clone().unwrap_or_default());
                    apply(&ctx, &mut workers, &finished, &done_tx, pod);
                }
                Some(Ok(Event::Apply(pod))) => apply(&ctx, &mut workers, &finished, &done_tx, pod),
                Some(Ok(Event::Delete(pod))) => {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    if let Some(worker) = workers.get(&uid) {
                        worker.signals.send_replace(PodSignal::Gone);
                    }
                    finished.remove(&uid);
                }
                Some(Ok(Event::InitDone)) => {
                    // Anything not listed again was deleted while the watch was down.
                    for (uid, worker) in &workers {
                        if !listed.contains(uid) {
                            worker.signals.send_replace(PodSignal::Gone);
                        }
                    }
                    finished.retain(|uid| listed.contains(uid));
                }
            },
        }
    }
    tracing::info!(pods = workers.len(), "stopping all pods");
    for worker in workers.values() {
        worker.signals.send_replace(PodSignal::Shutdown);
    }
    let all = futures::future::join_all(workers.into_values().map(|w| w.task));
    if tokio::time::timeout(stop_timeout, all).await.is_err() {
        tracing::warn!("some pods did not stop in time");
    }
}

fn apply(
    ctx: &Arc<KubeletContext>,
    workers: &mut HashMap<String, WorkerHandle>,
    finished: &HashSet<String>,
    done_tx: &mpsc::UnboundedSender<String>,
    pod: Pod,
) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if let Some(worker) = workers.get(&uid) {
        worker.signals.send_replace(PodSignal::Update(Box::new(pod)));
        return;
    }
    if finished.contains(&uid) {
        return;
    }
    tracing::info!(
        pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or("")),
        uid = %uid,
        "new pod"
    );
    let (signals, receiver) = watch::channel(PodSignal::Update(Box::new(pod.clone())));
    let worker = PodWorker::new(ctx.clone(), pod);
    let done = done_tx.clone();
    let worker_uid = uid.clone();
    let task = tokio::spawn(async move {
        worker.run(receiver).await;
        let _ = done.send(worker_uid);
    });
    workers.insert(uid, WorkerHandle { signals, task });
}
