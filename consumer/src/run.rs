//! Wiring: from a [`Config`] to a running sink, until SIGTERM (or, bounded, until the ranges are landed).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use streamlake_core::bounded_summary::BoundedSummary;
use streamlake_core::contract::ContractRegistry;
use streamlake_core::names::DatasetName;
use streamlake_core::rawzone::{RawZoneLayout, RawZoneStore};
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::bounded::{self, PartitionRange};
use crate::buffer::RotationPolicy;
use crate::classify::Classifier;
use crate::config::Config;
use crate::context::SinkContext;
use crate::dlq::DlqWriter;
use crate::encode::{Encoder, STREAMED_FILE_MEMORY};
use crate::health::Health;
use crate::http::{HttpState, app};
use crate::landing::LandingContext;
use crate::metacache::MetadataCache;
use crate::metrics::Metrics;
use crate::newer::NewerContracts;
use crate::sink::{Bounds, FileMemory, SinkCore, SinkSettings, lock};

const POLL_TIMEOUT: Duration = Duration::from_millis(100);
const TICK_EVERY: Duration = Duration::from_millis(20);
const HOLD_STEP: Duration = Duration::from_millis(5);
/// The program and version written into every file entry and Parquet footer.
pub const WRITER_VERSION: &str = concat!("streamlake-consumer/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Dataset(#[from] streamlake_core::names::InvalidDatasetName),
    #[error("loading contracts: {0}")]
    Contracts(#[from] streamlake_core::contract::ContractError),
    #[error("{0}")]
    Contract(String),
    #[error(transparent)]
    KafkaConfig(#[from] streamlake_core::kafka::KafkaConfigError),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("opening the raw zone: {0}")]
    Store(#[from] streamlake_core::rawzone::StoreError),
    #[error("mapping the contract to columns: {0}")]
    Encode(#[from] crate::encode::EncodeError),
    #[error("bounded mode: {0}")]
    Bounded(#[from] bounded::BoundedError),
    #[error("serving HTTP on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the poll thread panicked")]
    PollThread,
}

/// Runs the consumer; returns when stopped by SIGTERM/SIGINT or, bounded, when every range is landed.
pub async fn run(config: Config) -> Result<(), RunError> {
    let dataset = DatasetName::new(config.dataset.clone())?;
    let topic = dataset.raw_topic();
    let contracts = Arc::new(ContractRegistry::load_dir(&config.contracts_dir)?);
    let classifier = Classifier::new(dataset.clone(), contracts, config.limits.max_record_bytes)
        .map_err(RunError::Contract)?;
    let contract = classifier.latest_contract().clone();
    // Kept file buffers are memory outside the budget the poll loop holds to: half of it at most.
    let encoder = Encoder::new(
        config.format,
        &contract,
        WRITER_VERSION.to_owned(),
        config.limits.max_buffered_bytes / 2,
    )?
    .with_parquet_compression(config.parquet_compression);
    let store = RawZoneStore::open(&config.raw_zone, &config.gcs.options()).await?;
    let layout = RawZoneLayout::new(dataset.clone());
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new());
    let producer = streamlake_core::kafka::producer_config(&config.kafka, &config.producer)?;
    let dlq = DlqWriter::new(
        &producer,
        dataset.dlq_topic(),
        topic.clone(),
        Duration::from_millis(u64::from(config.producer.message_timeout_ms)),
        metrics.dlq_producer_replacements.clone(),
    )?;
    let summary_to = config
        .bounded
        .bounded_summary
        .clone()
        .map(|key| (store.clone(), key));
    let landing = Arc::new(LandingContext {
        metadata: MetadataCache::new(store.clone(), layout.clone()),
        store,
        layout,
        classifier,
        encoder,
        dlq,
        metrics: metrics.clone(),
        health: health.clone(),
        backoff: Backoff {
            initial: config.limits.retry_initial,
            max: config.limits.retry_max,
        },
        newer_contracts: NewerContracts::new(config.limits.newer_contract_wait),
    });
    // JSON lines to a `file://` store stream their files; the others hold each file whole until uploaded.
    let landing_file_memory = if landing.encoder.streams_to(&landing.store) {
        FileMemory::Streamed(STREAMED_FILE_MEMORY)
    } else {
        FileMemory::AsLargeAsTheRecords
    };
    let settings = SinkSettings {
        rotation: RotationPolicy {
            max_records: config.rotation.max_file_records.max(1),
            max_bytes: config.rotation.max_file_bytes.max(1),
            max_age: config.rotation.max_file_age,
        },
        max_buffered_bytes: config.limits.max_buffered_bytes,
        max_concurrent_landings: config.limits.max_concurrent_landings,
        commit_interval: config.limits.commit_interval,
        drain_timeout: config.limits.drain_timeout,
        landing_file_memory,
    };

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: config.listen,
            source,
        })?;
    info!(addr = %listener.local_addr().map_err(|source| RunError::Listen { addr: config.listen, source })?, "serving /healthz, /readyz, /metrics");
    let http_state = HttpState {
        health: health.clone(),
        metrics: metrics.clone(),
        max_poll_stall: config.limits.max_poll_stall,
    };
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app(http_state)).await {
            warn!("HTTP server stopped: {e}");
        }
    });

    let stop = Arc::new(AtomicBool::new(false));
    tokio::spawn(watch_signals(stop.clone()));

    let runtime = tokio::runtime::Handle::current();
    let poll = std::thread::Builder::new()
        .name("kafka-poll".into())
        .spawn(move || poll_thread(config, dataset, topic, settings, landing, runtime, stop))
        .map_err(|_| RunError::PollThread)?;
    let finished = tokio::task::spawn_blocking(move || poll.join())
        .await
        .map_err(|_| RunError::PollThread)?
        .map_err(|_| RunError::PollThread)??;
    if let (Some((store, key)), PollEnd::RangesLanded) = (summary_to, finished) {
        write_summary(&store, &key, &metrics).await;
    }
    Ok(())
}

/// Why the poll loop ended: only a bounded run that landed every range has a summary to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PollEnd {
    Stopped,
    RangesLanded,
}

/// Closes a replaced client on a thread of its own: closing may wait on a group handler that is stuck, and
/// the poll loop must not.
fn close_in_background(old: BaseConsumer<SinkContext>) {
    let closing = std::thread::Builder::new()
        .name("kafka-retired".into())
        .spawn(move || {
            let started = Instant::now();
            drop(old);
            info!(
                seconds = started.elapsed().as_secs(),
                "the replaced Kafka client is closed"
            );
        });
    if let Err(e) = closing {
        warn!("cannot close the replaced Kafka client on a thread of its own: {e}");
    }
}

/// Leaves the run's counts for the operator. A failed write is logged, not fatal: the records are landed,
/// and the operator reports the summary as missing rather than failing a complete Backfill.
async fn write_summary(store: &RawZoneStore, key: &str, metrics: &Metrics) {
    let summary = BoundedSummary {
        records_written: metrics.records_written.get(),
        records_already_landed: metrics.records_already_landed.get(),
        files_written: metrics.files_written.get(),
    };
    let written = match serde_json::to_vec(&summary) {
        Ok(json) => store
            .put_immutable(key, json.into(), "application/json")
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match written {
        Ok(()) => info!(key, ?summary, "bounded mode: run summary written"),
        Err(e) => warn!(key, "bounded mode: cannot write the run summary: {e}"),
    }
}

async fn watch_signals(stop: Arc<AtomicBool>) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            warn!("cannot watch SIGTERM: {e}");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: draining and committing"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT: draining and committing"),
    }
    stop.store(true, Ordering::SeqCst);
}

/// What one fetch asks for (librdkafka's floor is message.max.bytes, 1 MB by default). The broker's CPU
/// per record falls with bigger fetches (1M varied records: 1.3 s at 1 MiB, 0.4-0.6 s at 2 MiB, 0.3 s at
/// 4 MiB, on the two cores it shares with the consumer); the memory a fetch takes grows with them.
pub const FETCH_REQUEST_BYTES: usize = 2 << 20;

/// librdkafka decompresses an LZ4 batch (whose frame does not state its size, as the Java producer's do
/// not) into a buffer four times the batch's size, capped at message.max.bytes (1 MB by default), and grows
/// it 1.75x at a time with a copy: the bench's 512 KiB batches (~1.7 MB of JSON) were each copied once onto
/// a fresh mapping. Set to this, such a buffer is big enough at once and stays below the process's fixed
/// mmap threshold ([`crate::malloc`]), so it comes from the heap and is reused instead of being mapped,
/// faulted in page by page and unmapped for every batch. (For a consumer, message.max.bytes is only this
/// cap and the floor of fetch.max.bytes; the size of a record the consumer accepts is its own
/// --max-record-bytes.)
pub const DECOMPRESSION_BUFFER_BYTES: usize = FETCH_REQUEST_BYTES - (64 << 10);

/// The largest fetch response librdkafka reads into one buffer, with room to spare: the records asked for
/// ([`FETCH_REQUEST_BYTES`]) plus the response's own fields and the buffer's header. Below the process's
/// mmap threshold ([`crate::malloc`]) such a buffer comes from the heap and is reused; at a 2 MiB threshold
/// every full response (2 MiB of batches and a few hundred bytes more) was mapped, faulted in page by page
/// and unmapped — on an uncompressed topic, whose records librdkafka leaves in that buffer, 0.2–1M page
/// faults per 2M records and ~1.4 s of system time in a bounded JSON-lines run of ~5.5 s.
pub const FETCH_RESPONSE_BYTES: usize = FETCH_REQUEST_BYTES + (256 << 10);

/// The Kafka client configuration of the sink (public for the fetch-floor benchmark, which measures it).
pub fn consumer_config(config: &Config, dataset: &DatasetName) -> Result<ClientConfig, RunError> {
    let fetch_kib = (config.limits.fetch_buffer_bytes / 1024).max(1024);
    let mut client = ClientConfig::new();
    client
        .set("group.id", dataset.consumer_group())
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000")
        .set("queued.max.messages.kbytes", fetch_kib.to_string())
        // A fetch response is counted in compressed bytes and decompressed whole before its records are
        // queued (2 MiB of batches compressed 39x is ~80 MiB), so it stays at 2 MiB whatever the queue
        // size; the queue (queued.max.messages.kbytes) counts decompressed record bytes.
        .set("fetch.max.bytes", FETCH_REQUEST_BYTES.to_string())
        .set("message.max.bytes", DECOMPRESSION_BUFFER_BYTES.to_string())
        // librdkafka waits this long (default 1s) to fetch again once its queue was full: with a small
        // queue the loop sat idle for most of a backlog (500k records: 7.3s, 3.3s at 10ms). At 10ms an
        // 8 MiB queue read at ~650 MB/s ran dry before the next fetch: 1ms took a 1M-record JSON-lines
        // backlog from 1.50 to 1.39 s (median of five alternating runs; Parquet, bound by encoding, the
        // same), for a wake-up of librdkafka's fetcher per millisecond while its queue stays full.
        .set("fetch.queue.backoff.ms", "1")
        .set(
            "enable.partition.eof",
            if config.bounded.bounded { "true" } else { "false" },
        );
    // Connection settings and the user's extra properties come last; the guarantees above are re-applied.
    for (key, value) in config.kafka.properties()? {
        client.set(key, value);
    }
    client
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    Ok(client)
}

fn poll_thread(
    config: Config,
    dataset: DatasetName,
    topic: String,
    settings: SinkSettings,
    landing: Arc<LandingContext>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) -> Result<PollEnd, RunError> {
    let metrics = landing.metrics.clone();
    let health = landing.health.clone();
    let client = consumer_config(&config, &dataset)?;
    // The core exists before the consumer: the rebalance callbacks need it from the first poll.
    let core = Arc::new(Mutex::new(SinkCore::new(
        settings,
        topic.clone(),
        landing,
        runtime,
        None,
    )));
    let cooperative = client.get("partition.assignment.strategy") == Some("cooperative-sticky");
    let new_client = || -> Result<BaseConsumer<SinkContext>, KafkaError> {
        client.create_with_context(SinkContext::new(
            core.clone(),
            metrics.clone(),
            topic.clone(),
            cooperative,
        ))
    };
    let mut consumer = new_client()?;

    if config.bounded.bounded {
        let ranges = bounded::resolve(&consumer, &topic, &config.bounded)?;
        info!(?ranges, "bounded mode: landing these ranges");
        let mut bounds = Bounds::new(
            ranges
                .iter()
                .map(|r| (r.partition, r.end))
                .collect::<BTreeMap<_, _>>(),
        );
        ranges
            .iter()
            .filter(|r| r.start >= r.end)
            .for_each(|r: &PartitionRange| {
                bounds.reached(r.partition);
            });
        lock(&core).set_bounds(bounds);
        let open: Vec<PartitionRange> = ranges.into_iter().filter(|r| r.start < r.end).collect();
        consumer.assign(&bounded::assignment(&topic, &open)?)?;
        lock(&core).assign(&consumer, &open.iter().map(|r| r.partition).collect::<Vec<_>>());
    } else {
        consumer.subscribe(&[&topic])?;
        info!(%topic, group = %dataset.consumer_group(), "subscribed");
    }

    let mut next_tick = Instant::now();
    let mut ticked_at = None;
    let mut end = PollEnd::Stopped;
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (holding, all_read) = {
            let guard = lock(&core);
            (!guard.wants_records(), guard.all_read())
        };
        let mut guard = if holding || all_read {
            // Memory is full (librdkafka's queue is bounded by its own limit), or a bounded run read every
            // range: wait for landings, not for Kafka, so the end is seen as soon as the last one lands.
            let mut guard = lock(&core);
            if holding {
                guard.await_landing(HOLD_STEP);
            }
            let now = Instant::now();
            guard.tick(&consumer, now);
            health.polled(now);
            next_tick = now + TICK_EVERY;
            ticked_at = Some(now);
            guard
        } else {
            // No lock is held while polling: rebalance callbacks inside `poll` take it.
            let polled = consumer.poll(POLL_TIMEOUT);
            let mut guard = lock(&core);
            // One clock read per record: at hundreds of thousands of records a second, each read shows.
            let now = Instant::now();
            health.polled(now);
            match polled {
                None => {}
                Some(Ok(message)) => {
                    let record = guard.copy_out(&message);
                    guard.accept(&consumer, record, now);
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => guard.partition_eof(&consumer, partition),
                Some(Err(e)) => warn!("Kafka: {e}"),
            }
            if now >= next_tick {
                guard.tick(&consumer, now);
                next_tick = now + TICK_EVERY;
                ticked_at = Some(now);
            }
            guard
        };
        if let Some(now) = ticked_at.take()
            && !config.bounded.bounded
            && let Some(reason) = consumer
                .context()
                .out_of_group(now, config.limits.max_out_of_group)
        {
            warn!("{reason}: replacing the Kafka client");
            match new_client().and_then(|fresh| fresh.subscribe(&[&topic]).map(|()| fresh)) {
                Ok(fresh) => {
                    let old = std::mem::replace(&mut consumer, fresh);
                    old.context().retire();
                    guard.abandon_all();
                    metrics.kafka_client_replacements.inc();
                    close_in_background(old);
                }
                Err(e) => warn!("cannot create a new Kafka client (trying again): {e}"),
            }
        }
        if guard.bounded_done() {
            info!("bounded mode: every range is landed");
            end = PollEnd::RangesLanded;
            break;
        }
        if all_read {
            // Every range is read, not all of it landed: the next landing, not Kafka, moves the run on.
            guard.await_landing(POLL_TIMEOUT);
        }
    }
    let committed = lock(&core).shutdown(&consumer);
    if end == PollEnd::RangesLanded {
        // Everything is durable, a bounded run has no group to leave, and the process exits next: closing
        // the client (and, through the landing context its callbacks hold, the DLQ producer) would only
        // wait out their 100 ms poll steps.
        std::mem::forget(consumer);
    } else if !committed {
        // Closing waits for the unconfirmed commit, until the group session times out when the broker is
        // away: past a pod's grace period. The group forgets this member when its session ends.
        warn!("exiting without closing the Kafka client: the broker did not confirm the final commit");
        std::mem::forget(consumer);
    } else {
        // Dropping the consumer leaves the group; its revoke callback finds nothing left to drain.
        drop(consumer);
    }
    info!("stopped");
    Ok(end)
}
