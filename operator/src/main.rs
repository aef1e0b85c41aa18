//! The StreamLake operator: checks its CRDs, serves `/metrics`, waits to lead, then reconciles.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube::runtime::events::Reporter;
use streamlake_core::kafka::KafkaArgs;
use streamlake_core::offsets::OffsetClient;
use streamlake_core::rawzone::StoreLocation;
use streamlake_operator::backfill::{self, BackfillContext};
use streamlake_operator::dlqinspection::{self, DlqContext};
use streamlake_operator::dqcheck::{self, DqContext};
use streamlake_operator::lake::{self, GcsArgs};
use streamlake_operator::leader::LeaderElection;
use streamlake_operator::metrics::Metrics;
use streamlake_operator::{http, replay, startup};
use tokio_util::sync::CancellationToken;

// The doc comments are clap's --help text, where `<dataset>` is a placeholder, not an HTML tag.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Parser)]
#[command(about = "Reconciles StreamLake Replay, Backfill, DlqInspection and DqCheck resources")]
struct Cli {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "STREAMLAKE_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of the /metrics and /healthz endpoint.
    #[arg(long, env = "STREAMLAKE_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    metrics_addr: SocketAddr,
    /// Namespace of the leader-election Lease (normally the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "streamlake")]
    lease_namespace: String,
    #[arg(long, default_value = "streamlake-operator")]
    lease_name: String,
    /// Seconds a leader may go without renewing before another replica takes over.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// This replica's name in the Lease and in Events (normally the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Time limit of each Kafka call, in milliseconds.
    #[arg(long, env = "STREAMLAKE_KAFKA_TIMEOUT_MS", default_value_t = 10_000)]
    kafka_timeout_ms: u64,
    /// The raw zone DqChecks and DlqInspections read and write reports to: file:///path, a directory or
    /// gs://bucket/prefix.
    #[arg(long, env = "STREAMLAKE_RAW_ZONE")]
    raw_zone: Option<StoreLocation>,
    /// Directory of the dataset contracts (<dataset>.v<N>.json), for the DqCheck contract sample.
    #[arg(long, env = "STREAMLAKE_CONTRACTS_DIR", default_value = "contracts")]
    contracts_dir: PathBuf,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    gcs: GcsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_runtime=warn,rdkafka=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let identity = cli.identity.clone().unwrap_or_else(default_identity);
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster, or the kubeconfig in KUBECONFIG)")?;
    if let Err(e) = startup::require_crds(&client, cli.namespace.as_deref()).await {
        tracing::error!("{e}");
        std::process::exit(2);
    }

    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind(cli.metrics_addr)
        .await
        .with_context(|| format!("binding the metrics endpoint {}", cli.metrics_addr))?;
    tracing::info!(addr = %cli.metrics_addr, "serving /metrics and /healthz");
    let served = metrics.clone();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, http::app(served)).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });

    let kafka = cli.kafka.client_config().context("Kafka settings")?;
    let offsets = Arc::new(
        OffsetClient::new(kafka, Duration::from_millis(cli.kafka_timeout_ms))
            .context("creating the Kafka client")?,
    );

    let stop = CancellationToken::new();
    tokio::spawn(cancel_on_signal(stop.clone()));
    let election = LeaderElection::new(
        client.clone(),
        &cli.lease_namespace,
        &cli.lease_name,
        &identity,
        Duration::from_secs(cli.lease_seconds),
    );
    tracing::info!(identity = %identity, lease = %format!("{}/{}", cli.lease_namespace, cli.lease_name), "waiting to lead");
    tokio::select! {
        () = election.acquire() => {}
        () = stop.cancelled() => return Ok(()),
    }
    metrics.set_leader(true);
    tracing::info!(identity = %identity, "leading");

    let lost = CancellationToken::new();
    let holder = {
        let (election, stop, lost) = (election.clone(), stop.clone(), lost.clone());
        tokio::spawn(async move {
            tokio::select! {
                reason = election.hold() => {
                    tracing::error!(%reason, "lost the leader Lease; stopping");
                    lost.cancel();
                    stop.cancel();
                }
                () = stop.cancelled() => {}
            }
        })
    };
    let reporter = Reporter {
        controller: "streamlake-operator".into(),
        instance: Some(identity),
    };
    let lake = lake::open(cli.raw_zone.as_ref(), &cli.gcs.options()).await;
    if let Err(problem) = &lake {
        tracing::warn!(%problem, "no usable raw zone: DqChecks and DlqInspections will fail and Backfills report no counts, saying why");
    }
    let dq = DqContext {
        client: client.clone(),
        offsets: offsets.clone(),
        metrics: metrics.clone(),
        recorder: kube::runtime::events::Recorder::new(client.clone(), reporter.clone()),
        store: lake.clone(),
        contracts_dir: cli.contracts_dir.clone(),
    };
    let dlq = DlqContext {
        client: client.clone(),
        offsets: offsets.clone(),
        kafka: cli.kafka.clone(),
        kafka_timeout: Duration::from_millis(cli.kafka_timeout_ms),
        metrics: metrics.clone(),
        recorder: kube::runtime::events::Recorder::new(client.clone(), reporter.clone()),
        store: lake.clone(),
    };
    let backfills = BackfillContext {
        client: client.clone(),
        offsets: offsets.clone(),
        metrics: metrics.clone(),
        recorder: kube::runtime::events::Recorder::new(client.clone(), reporter.clone()),
        store: lake.clone(),
    };
    let (replay_stop, dq_stop, backfill_stop) = (stop.clone(), stop.clone(), stop.clone());
    let dlq_stop = stop.clone();
    tokio::join!(
        replay::run(
            client,
            offsets,
            metrics.clone(),
            reporter,
            cli.namespace.clone(),
            async move { replay_stop.cancelled().await },
        ),
        dqcheck::run(
            dq,
            cli.namespace.clone(),
            async move { dq_stop.cancelled().await }
        ),
        dlqinspection::run(
            dlq,
            cli.namespace.clone(),
            async move { dlq_stop.cancelled().await }
        ),
        backfill::run(backfills, cli.namespace, async move {
            backfill_stop.cancelled().await
        }),
    );
    stop.cancel();
    let _ = holder.await;
    metrics.set_leader(false);
    if lost.is_cancelled() {
        anyhow::bail!("lost leadership: exiting so this replica starts over as a standby");
    }
    election.release().await;
    tracing::info!("stopped");
    Ok(())
}

/// `hostname-pid` when no pod name is given: unique per process on one host.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "operator".into());
    format!("{}-{}", host.trim(), std::process::id())
}

/// Cancels `stop` on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn cancel_on_signal(stop: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
    stop.cancel();
}
