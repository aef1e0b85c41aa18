//! `bench-consumer-floor`: the fetch floor of the consumer benchmark. Reads a dataset's raw topic with the
//! consumer's own Kafka client (same flags, same settings, the ranges of its bounded mode) and lands
//! nothing, so its records/s and CPU per record are what the Kafka client alone costs the consumer.
//! In `check` mode it also runs the consumer's contract check on every record, on as many threads as the
//! consumer has landing threads: the least work the consumer must do per record before it writes anything.
//! A measurement, not a test: it prints numbers.

mod usage;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::ensure;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use streamlake_consumer::bounded::{self, PartitionRange};
use streamlake_consumer::classify::Classifier;
use streamlake_consumer::config::Config;
use streamlake_consumer::record::{PartitionArenas, RecordHeaders, SourceRecord};
use streamlake_core::contract::ContractRegistry;
use streamlake_core::names::DatasetName;

/// The consumer's poll timeout (`run.rs`).
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Only count records and their key + payload bytes.
    Count,
    /// Count, and copy each record's headers out as the consumer does (librdkafka parses them on the first
    /// ask), nothing else: with `count`, what headers cost the Kafka client.
    Headers,
    /// Also copy each record out of librdkafka's buffers as the consumer does, then drop it.
    Copy,
    /// Copy, then check each record against its contract (the consumer's `Classifier`) on one thread per
    /// core, as the consumer's landing threads do; writes nothing. Needs `--contracts-dir`.
    Check,
}

/// Reads the whole range of `consumer --bounded` with its Kafka client; prints records/s, CPU µs per record
/// and peak RSS.
#[derive(Debug, Parser)]
#[command(name = "bench-consumer-floor")]
struct Args {
    mode: Mode,
    /// The consumer's own flags (`--dataset NAME --bounded ...`, extra `--kafka-property key=value` to try
    /// other client settings); the Kafka client is configured from them exactly as the consumer does.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    consumer_args: Vec<String>,
}

#[derive(Debug, Default)]
struct Read {
    records: u64,
    bytes: u64,
    /// Records the contract check rejected (check mode); the bench's topic has none.
    rejected: u64,
}

fn main() -> anyhow::Result<()> {
    // The consumer's glibc settings (it re-executes itself with them, as the consumer does).
    streamlake_consumer::malloc::with_malloc_settings();
    let args = Args::parse();
    let config = Config::try_parse_from(std::iter::once("consumer".to_owned()).chain(args.consumer_args))?;
    ensure!(
        config.bounded.bounded,
        "pass --bounded: the floor reads the ranges of the consumer's bounded mode"
    );
    let dataset = DatasetName::new(config.dataset.clone())?;
    let topic = dataset.raw_topic();
    // Like the consumer's wall time, from before the client exists to the last record.
    let started = Instant::now();
    let consumer: BaseConsumer = streamlake_consumer::run::consumer_config(&config, &dataset)?.create()?;
    let ranges: Vec<PartitionRange> = bounded::resolve(&consumer, &topic, &config.bounded)?
        .into_iter()
        .filter(|r| r.start < r.end)
        .collect();
    consumer.assign(&bounded::assignment(&topic, &ranges)?)?;
    let checkers = match args.mode {
        Mode::Check => Some(Checkers::start(&config, dataset.clone())?),
        Mode::Count | Mode::Headers | Mode::Copy => None,
    };
    let mut read = read_to_end(&consumer, &ranges, args.mode, checkers.as_ref());
    if let Some(checkers) = checkers {
        read.rejected = checkers.finish()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let usage = usage::own()?;
    let expected: i64 = ranges.iter().map(|r| r.end - r.start).sum();
    println!(
        "mode={mode} records={records} expected={expected} bytes={bytes} rejected={rejected} seconds={seconds:.3} \
         records_per_s={rate:.0} cpu_us_per_record={cpu:.2} peak_rss_mib={rss}",
        mode = args
            .mode
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned()),
        records = read.records,
        bytes = read.bytes,
        rejected = read.rejected,
        rate = read.records as f64 / seconds,
        cpu = usage.cpu.as_secs_f64() * 1e6 / read.records.max(1) as f64,
        rss = usage.max_rss_kib / 1024,
    );
    Ok(())
}

/// Polls until every partition has delivered the record before its end offset (or reported its end).
fn read_to_end(
    consumer: &BaseConsumer,
    ranges: &[PartitionRange],
    mode: Mode,
    checkers: Option<&Checkers>,
) -> Read {
    let mut ends: BTreeMap<i32, i64> = ranges.iter().map(|r| (r.partition, r.end)).collect();
    let mut read = Read::default();
    let mut arenas = PartitionArenas::default();
    let mut batch = Vec::with_capacity(CHECK_BATCH);
    while !ends.is_empty() {
        match consumer.poll(POLL_TIMEOUT) {
            None => {}
            Some(Ok(message)) => {
                let (partition, offset) = (message.partition(), message.offset());
                let Some(&end) = ends.get(&partition).filter(|end| offset < **end) else {
                    continue; // prefetched beyond the range: the consumer does not land it either
                };
                read.records += 1;
                match checkers {
                    Some(checkers) => {
                        let record = arenas.copy_out(&message);
                        read.bytes += record_len(&record);
                        batch.push(record);
                        if batch.len() == CHECK_BATCH {
                            checkers.check(std::mem::replace(&mut batch, Vec::with_capacity(CHECK_BATCH)));
                        }
                    }
                    None => read.bytes += record_bytes(&message, mode, &mut arenas),
                }
                if offset + 1 >= end {
                    ends.remove(&partition);
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ends.remove(&partition);
            }
            // As the consumer does: librdkafka retries by itself, the loop goes on.
            Some(Err(e)) => eprintln!("Kafka: {e}"),
        }
    }
    if let Some(checkers) = checkers.filter(|_| !batch.is_empty()) {
        checkers.check(batch);
    }
    read
}

/// Key + payload bytes; in copy mode after copying the record out as `SourceRecord` (into its
/// partition's arena, as the consumer does; then dropping it), in headers mode after copying only its
/// headers there.
fn record_bytes(message: &BorrowedMessage<'_>, mode: Mode, arenas: &mut PartitionArenas) -> u64 {
    let (key, payload) = match mode {
        Mode::Count => (message.key().map_or(0, <[u8]>::len), message.payload_len()),
        Mode::Headers => {
            let arena = arenas.arena(message.partition());
            black_box(
                message
                    .headers()
                    .map(|headers| RecordHeaders::copy(headers, arena)),
            );
            (message.key().map_or(0, <[u8]>::len), message.payload_len())
        }
        Mode::Copy | Mode::Check => return record_len(&black_box(arenas.copy_out(message))),
    };
    (key + payload) as u64
}

fn record_len(record: &SourceRecord) -> u64 {
    (record.key.as_ref().map_or(0, Bytes::len) + record.payload.as_ref().map_or(0, Bytes::len)) as u64
}

/// Records handed to a checking thread at a time (about what a landing unit holds under memory pressure).
const CHECK_BATCH: usize = 4096;
/// Batches waiting for a checking thread; the poll loop waits when they are all taken, as it holds at the
/// consumer's memory budget.
const CHECK_QUEUE: usize = 4;

/// Threads checking batches of records against the contract, one per core like the consumer's runtime.
struct Checkers {
    batches: mpsc::SyncSender<Vec<SourceRecord>>,
    threads: Vec<thread::JoinHandle<u64>>,
}

impl Checkers {
    fn start(config: &Config, dataset: DatasetName) -> anyhow::Result<Self> {
        let contracts = Arc::new(ContractRegistry::load_dir(&config.contracts_dir)?);
        let classifier = Classifier::new(dataset, contracts, config.limits.max_record_bytes)
            .map_err(anyhow::Error::msg)?;
        let (batches, receiver) = mpsc::sync_channel::<Vec<SourceRecord>>(CHECK_QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let cores = thread::available_parallelism().map_or(1, usize::from);
        let threads = (0..cores)
            .map(|_| {
                let (classifier, receiver) = (classifier.clone(), Arc::clone(&receiver));
                thread::spawn(move || {
                    let mut rejected = 0;
                    loop {
                        let next = receiver.lock().map(|r| r.recv());
                        let Ok(Ok(batch)) = next else { return rejected };
                        rejected += batch.iter().filter(|r| classifier.classify(r).is_err()).count() as u64;
                    }
                })
            })
            .collect();
        Ok(Self { batches, threads })
    }

    fn check(&self, batch: Vec<SourceRecord>) {
        // The threads only stop once `batches` is dropped, in `finish`.
        self.batches
            .send(batch)
            .expect("checking threads run until finish");
    }

    /// Waits for every batch to be checked; the number of records rejected.
    fn finish(self) -> anyhow::Result<u64> {
        drop(self.batches);
        self.threads.into_iter().try_fold(0, |sum, t| {
            t.join()
                .map(|rejected| sum + rejected)
                .map_err(|_| anyhow::anyhow!("a checking thread panicked"))
        })
    }
}
