//! process-kubelet: a Kubernetes node whose pods run as local processes (see dev/kubelet/README.md).

mod backoff;
mod command;
mod container;
mod context;
mod credentials;
mod env;
mod events;
mod image_map;
mod ipam;
mod node;
mod pod_manager;
mod pod_worker;
mod probe;
mod process;
mod restore;
mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::context::KubeletContext;
use crate::credentials::ClusterAccess;
use crate::events::EventSink;
use crate::image_map::ImageMap;
use crate::ipam::{PodCidr, PodIpAllocator};
use crate::node::{NodeAgent, NodeConfig};

// The doc comments are clap's --help text, where `<dataset>` is a placeholder, not an HTML tag.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Runs the pods bound to one Kubernetes Node as local processes"
)]
struct Args {
    /// Kubeconfig with the node's identity (system:node:<name>).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    #[arg(long, default_value = "streamlake-dev")]
    node_name: String,
    /// YAML map from image repository to a program or `host: true` (dev/kubelet/images.yaml).
    #[arg(long, env = "STREAMLAKE_IMAGE_MAP")]
    image_map: PathBuf,
    /// State directory; pods live under <state-dir>/pods/.
    #[arg(long, env = "STREAMLAKE_STATE", default_value = ".streamlake")]
    state_dir: PathBuf,
    /// Loopback block from which each pod gets its own IP.
    #[arg(long, default_value = "127.42.0.0/16")]
    pod_cidr: PodCidr,
    /// Address of this host as the node reports it (status.hostIP).
    #[arg(long, default_value = "127.0.0.1")]
    host_ip: String,
    /// Cap of the crash-loop backoff (10 s doubling); small values keep tests quick.
    #[arg(long, default_value_t = 300)]
    max_backoff_seconds: u64,
    /// Longest time a pod gets to stop when the kubelet itself receives SIGTERM.
    #[arg(long, default_value_t = 20)]
    shutdown_grace_seconds: u64,
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Reported as nodeInfo.kubeletVersion.
    #[arg(long, default_value = "v1.36.0")]
    kubelet_version: String,
    /// Host environment variables passed on to every container (nothing else from the host is).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "PATH,HOME,LANG,LC_ALL,TZ,TMPDIR,USER,RUST_BACKTRACE"
    )]
    host_env: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn")),
        )
        .init();
    let args = Args::parse();

    let images = ImageMap::load(&args.image_map)?;
    tracing::info!(images = images.len(), path = %args.image_map.display(), "image map loaded");
    let kubeconfig = Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", args.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", args.kubeconfig.display()))?;
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    let cluster = ClusterAccess::from_kubeconfig(&args.kubeconfig)?;

    let state_dir = std::path::absolute(&args.state_dir).context("resolving --state-dir")?;
    let pods_dir = state_dir.join("pods");
    std::fs::create_dir_all(&pods_dir).with_context(|| format!("creating {}", pods_dir.display()))?;
    let host_env: BTreeMap<String, String> = args
        .host_env
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
        .collect();

    let agent = NodeAgent::new(
        client.clone(),
        NodeConfig {
            name: args.node_name.clone(),
            max_pods: args.max_pods,
            kubelet_version: args.kubelet_version.clone(),
            host_ip: args.host_ip.clone(),
        },
    );
    let node_uid = register_with_retry(&agent).await?;
    agent.renew_lease(&node_uid).await?;
    tracing::info!(node = %args.node_name, "node registered and Ready");

    let ctx = Arc::new(KubeletContext {
        events: EventSink::new(client.clone(), &args.node_name),
        client,
        node_name: args.node_name.clone(),
        host_ip: args.host_ip.clone(),
        images,
        pods_dir,
        ipam: Mutex::new(PodIpAllocator::new(args.pod_cidr)),
        cluster,
        max_backoff: Duration::from_secs(args.max_backoff_seconds.max(1)),
        shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
        host_env,
    });

    let stop = CancellationToken::new();
    let heartbeat_stop = CancellationToken::new();
    let heartbeat = tokio::spawn(agent.clone().heartbeat(node_uid, heartbeat_stop.clone()));
    let stop_on_signal = stop.clone();
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping all pods"),
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping all pods"),
        }
        stop_on_signal.cancel();
    });

    let stop_timeout = Duration::from_secs(args.shutdown_grace_seconds + 10);
    pod_manager::run(ctx, stop, stop_timeout).await;
    heartbeat_stop.cancel();
    let _ = heartbeat.await;
    if let Err(e) = agent.write_status(false).await {
        tracing::warn!(error = %e, "could not mark the node NotReady");
    }
    tracing::info!("process-kubelet stopped");
    Ok(())
}

/// The API server may still be starting: retry registration for a minute before giving up.
async fn register_with_retry(agent: &NodeAgent) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match agent.register().await {
            Ok(uid) => return Ok(uid),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "node registration failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e).context("registering the node"),
        }
    }
}
