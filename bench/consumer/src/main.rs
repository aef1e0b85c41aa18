//! `bench-consumer-floor`: the fetch floor of the consumer benchmark. Reads a dataset's raw topic with the
//! consumer's own Kafka client (same flags, same settings, the ranges of its bounded mode) and lands
//! nothing, so its records/s and CPU per record are what the Kafka client alone costs the consumer.
//! A measurement, not a test: it prints numbers.

mod usage;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::ensure;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use streamlake_consumer::bounded::{self, PartitionRange};
use streamlake_consumer::config::Config;
use streamlake_consumer::record::PartitionArenas;
use streamlake_core::names::DatasetName;

/// The consumer's poll timeout (`run.rs`).
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Only count records and their key + payload bytes.
    Count,
    /// Also copy each record out of librdkafka's buffers as the consumer does, then drop it.
    Copy,
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
}

fn main() -> anyhow::Result<()> {
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
    let read = read_to_end(&consumer, &ranges, args.mode);
    let seconds = started.elapsed().as_secs_f64();
    let usage = usage::own()?;
    let expected: i64 = ranges.iter().map(|r| r.end - r.start).sum();
    println!(
        "mode={mode} records={records} expected={expected} bytes={bytes} seconds={seconds:.3} \
         records_per_s={rate:.0} cpu_us_per_record={cpu:.2} peak_rss_mib={rss}",
        mode = args
            .mode
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned()),
        records = read.records,
        bytes = read.bytes,
        rate = read.records as f64 / seconds,
        cpu = usage.cpu.as_secs_f64() * 1e6 / read.records.max(1) as f64,
        rss = usage.max_rss_kib / 1024,
    );
    Ok(())
}

/// Polls until every partition has delivered the record before its end offset (or reported its end).
fn read_to_end(consumer: &BaseConsumer, ranges: &[PartitionRange], mode: Mode) -> Read {
    let mut ends: BTreeMap<i32, i64> = ranges.iter().map(|r| (r.partition, r.end)).collect();
    let mut read = Read::default();
    let mut arenas = PartitionArenas::default();
    while !ends.is_empty() {
        match consumer.poll(POLL_TIMEOUT) {
            None => {}
            Some(Ok(message)) => {
                let (partition, offset) = (message.partition(), message.offset());
                let Some(&end) = ends.get(&partition).filter(|end| offset < **end) else {
                    continue; // prefetched beyond the range: the consumer does not land it either
                };
                read.records += 1;
                read.bytes += record_bytes(&message, mode, &mut arenas);
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
    read
}

/// Key + payload bytes; in copy mode after copying the record out as `SourceRecord` (into its
/// partition's arena, as the consumer does; then dropping it).
fn record_bytes(message: &BorrowedMessage<'_>, mode: Mode, arenas: &mut PartitionArenas) -> u64 {
    let (key, payload) = match mode {
        Mode::Count => (message.key().map_or(0, <[u8]>::len), message.payload_len()),
        Mode::Copy => {
            let record = black_box(arenas.copy_out(message));
            (
                record.key.as_ref().map_or(0, Bytes::len),
                record.payload.as_ref().map_or(0, Bytes::len),
            )
        }
    };
    (key + payload) as u64
}
