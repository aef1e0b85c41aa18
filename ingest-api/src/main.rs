//! `ingest-api serve | topics`.

use std::future::IntoFuture;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::serve::ListenerExt;
use clap::Parser;
use streamlake_core::contract::ContractRegistry;
use streamlake_core::kafka::producer_config;
use streamlake_core::kafka::topics::{TopicOutcome, ensure_topics};
use streamlake_ingest_api::config::{Cli, Command, ServeArgs, TopicsCommand};
use streamlake_ingest_api::producer::KafkaSink;
use streamlake_ingest_api::{AppState, app};
use tracing_subscriber::EnvFilter;

/// Every event is parsed into a JSON tree (~100 small allocations per 1 KiB order): glibc malloc spent ~18%
/// of the API's CPU on them; mimalloc takes ~18% off the CPU per record, for ~10 MiB more peak RSS.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::Topics(args) => topics(&args).await,
    }
}

fn load_contracts(dir: &std::path::Path) -> anyhow::Result<ContractRegistry> {
    let registry = ContractRegistry::load_dir(dir)
        .with_context(|| format!("loading contracts from {}", dir.display()))?;
    if registry.is_empty() {
        bail!(
            "no contracts in {}: add <dataset>.v<N>.json files or set --contracts-dir",
            dir.display()
        );
    }
    Ok(registry)
}

async fn topics(args: &TopicsCommand) -> anyhow::Result<()> {
    let contracts = load_contracts(&args.contracts.contracts_dir)?;
    let client = args.kafka.client_config()?;
    create_topics(
        &contracts,
        &client,
        &args.topics,
        Duration::from_millis(args.admin_timeout_ms),
    )
    .await
}

async fn create_topics(
    contracts: &ContractRegistry,
    client: &rdkafka::ClientConfig,
    topic_args: &streamlake_core::kafka::topics::TopicArgs,
    timeout: Duration,
) -> anyhow::Result<()> {
    let specs: Vec<_> = contracts
        .datasets()
        .flat_map(|d| topic_args.specs_for(d))
        .collect();
    for (spec, outcome) in ensure_topics(client, &specs, timeout).await? {
        match outcome {
            TopicOutcome::Created => {
                tracing::info!(topic = %spec.name, partitions = spec.partitions, "created topic");
            }
            TopicOutcome::Existed { partitions } if partitions != spec.partitions as usize => tracing::warn!(
                topic = %spec.name, partitions, configured = spec.partitions,
                "topic exists with another partition count; left unchanged"
            ),
            TopicOutcome::Existed { partitions } => {
                tracing::info!(topic = %spec.name, partitions, "topic exists")
            }
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    args.check().map_err(anyhow::Error::msg)?;
    let contracts = load_contracts(&args.contracts.contracts_dir)?;
    if args.create_topics {
        let client = args.kafka.client_config()?;
        create_topics(&contracts, &client, &args.topics, Duration::from_secs(30)).await?;
    }
    let sink = KafkaSink::new(&producer_config(&args.kafka, &args.producer)?)
        .context("creating the Kafka producer")?;
    let state = AppState::new(contracts, sink.clone(), args.settings());
    let listener = tokio::net::TcpListener::bind(args.listen_addr)
        .await
        .with_context(|| format!("listening on {}", args.listen_addr))?;
    tracing::info!(addr = %args.listen_addr, datasets = ?state.contracts.datasets().collect::<Vec<_>>(), "serving");

    let drain = Duration::from_millis(args.drain_timeout_ms);
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown_state = state.clone();
    // Answers go out at once rather than waiting for the client's ACK of an earlier segment (Nagle).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: no new connections, draining in-flight requests");
        shutdown_state.begin_shutdown();
        let _ = signalled_tx.send(());
    });
    let mut served = tokio::spawn(server.into_future());
    tokio::select! {
        result = &mut served => result.context("server task")?.context("serving HTTP")?,
        _ = signalled_rx => match tokio::time::timeout(drain, &mut served).await {
            Ok(result) => result.context("server task")?.context("serving HTTP")?,
            // Those requests get no answer, so nothing unacknowledged was reported as accepted.
            Err(_) => {
                tracing::warn!(?drain, "in-flight requests outlived the drain deadline; closing them");
                served.abort();
            }
        },
    }
    tracing::info!(
        in_flight = sink.in_flight(),
        "HTTP drained; flushing the producer"
    );
    match sink.flush(drain).await {
        Ok(()) => tracing::info!("producer flushed; bye"),
        Err(e) => bail!("producer flush incomplete: {e}"),
    }
    Ok(())
}

/// SIGTERM (a kubelet stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
