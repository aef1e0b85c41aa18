//! Command line and environment: `ingest-api serve` (the default) and `ingest-api topics`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use streamlake_core::kafka::topics::TopicArgs;
use streamlake_core::kafka::{KafkaArgs, ProducerArgs};

use crate::state::IngestSettings;

#[derive(Debug, Parser)]
#[command(
    name = "ingest-api",
    version,
    about = "StreamLake ingest API: HTTP events in, acknowledged Kafka records out"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API.
    Serve(Box<ServeArgs>),
    /// Create every contract's raw and DLQ topics that do not exist yet, then exit.
    Topics(Box<TopicsCommand>),
}

#[derive(Debug, Args)]
pub struct ContractArgs {
    /// Directory of `<dataset>.v<N>.json` contracts.
    #[arg(long, env = "STREAMLAKE_CONTRACTS_DIR", default_value = "contracts")]
    pub contracts_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct TopicsCommand {
    #[command(flatten)]
    pub contracts: ContractArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Admin request timeout.
    #[arg(long, env = "STREAMLAKE_ADMIN_TIMEOUT_MS", default_value_t = 30_000)]
    pub admin_timeout_ms: u64,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; in a pod, the pod IP (e.g. INGEST_LISTEN_ADDR=$(POD_IP):8080).
    #[arg(long, env = "INGEST_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,
    #[command(flatten)]
    pub contracts: ContractArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub producer: ProducerArgs,
    /// Create missing raw and DLQ topics at start-up (as `ingest-api topics` does).
    #[arg(long, env = "INGEST_CREATE_TOPICS")]
    pub create_topics: bool,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// `source` header value when a client sends no X-StreamLake-Source.
    #[arg(long, env = "INGEST_DEFAULT_SOURCE", default_value = "ingest-api")]
    pub default_source: String,
    /// Write rejected events to `streamlake.<dataset>.dlq` (true or false).
    #[arg(long, env = "INGEST_DEAD_LETTER_INVALID", default_value_t = true, action = clap::ArgAction::Set)]
    pub dead_letter_invalid: bool,
    /// Largest single event (and largest record in a batch), in bytes.
    #[arg(long, env = "INGEST_MAX_EVENT_BYTES", default_value_t = 1_000_000)]
    pub max_event_bytes: usize,
    /// Largest batch body, in bytes.
    #[arg(long, env = "INGEST_MAX_BATCH_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_batch_bytes: usize,
    #[arg(long, env = "INGEST_MAX_BATCH_RECORDS", default_value_t = 10_000)]
    pub max_batch_records: usize,
    /// Deadline of one ingest request; keep it above --kafka-message-timeout-ms.
    #[arg(long, env = "INGEST_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Ingest requests handled at once; more are shed with 503 and Retry-After.
    #[arg(long, env = "INGEST_CONCURRENCY_LIMIT", default_value_t = 1024)]
    pub concurrency_limit: usize,
    #[arg(long, env = "INGEST_RETRY_AFTER_SECS", default_value_t = 1)]
    pub retry_after_secs: u64,
    /// How long /readyz waits for Kafka metadata.
    #[arg(long, env = "INGEST_READINESS_TIMEOUT_MS", default_value_t = 2_000)]
    pub readiness_timeout_ms: u64,
    /// On SIGTERM: how long to drain in-flight requests, then how long to flush the producer.
    #[arg(long, env = "INGEST_DRAIN_TIMEOUT_MS", default_value_t = 30_000)]
    pub drain_timeout_ms: u64,
}

impl ServeArgs {
    pub fn settings(&self) -> IngestSettings {
        IngestSettings {
            default_source: self.default_source.clone(),
            dead_letter_invalid: self.dead_letter_invalid,
            max_event_bytes: self.max_event_bytes,
            max_batch_bytes: self.max_batch_bytes,
            max_batch_records: self.max_batch_records,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            concurrency_limit: self.concurrency_limit,
            retry_after_secs: self.retry_after_secs,
            readiness_timeout: Duration::from_millis(self.readiness_timeout_ms),
        }
    }

    /// Settings that contradict each other, said before serving rather than discovered under load.
    pub fn check(&self) -> Result<(), String> {
        if self.request_timeout_ms <= u64::from(self.producer.message_timeout_ms) {
            return Err(format!(
                "--request-timeout-ms ({}) must exceed --kafka-message-timeout-ms ({}), or requests would time \
                 out while their records are still being delivered",
                self.request_timeout_ms, self.producer.message_timeout_ms
            ));
        }
        if self.max_event_bytes == 0 || self.max_batch_bytes < self.max_event_bytes {
            return Err(
                "--max-batch-bytes must be at least --max-event-bytes, which must be positive".into(),
            );
        }
        if self.concurrency_limit == 0 || self.max_batch_records == 0 {
            return Err("--concurrency-limit and --max-batch-records must be positive".into());
        }
        Ok(())
    }
}
