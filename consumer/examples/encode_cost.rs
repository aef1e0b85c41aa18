//! What encoding a run costs per record, through the consumer's own `Encoder::encode_run`.
//!
//! The records are bench/consumer/run's varied ones: its 10,000 distinct orders of ~985 bytes, byte for
//! byte (its Python generator replayed by `streamlake_testkit::bench_orders`), each record one of them
//! picked at random, as `kafka-producer-perf-test --payload-file` does, with no key and no headers. With
//! `ingest`, records carry a key (the order id) and an `event_id` header, as the ingest API produces.
//! The contract is contracts/orders.v1.json. Each round encodes the same run into one file.
//!
//! Run: `cargo run --release -p streamlake-consumer --example encode_cost [ROUNDS [parquet|jsonl
//! [RECORDS [bench|ingest]]]]`; `parquet:zstd` (or `:snappy`, `:lz4`, `:none`) picks the page codec.
//! Instructions per record: run it under `valgrind --tool=cachegrind --cache-sim=no` at two round counts
//! and divide the difference by the records encoded in between. The printed digest is over the rows read
//! back from the file, so two versions of the encoder can be compared for the same content.

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::ValueEnum;
use rdkafka::message::{Header, OwnedHeaders};
use serde_json::Value;
use streamlake_consumer::classify::Classifier;
use streamlake_consumer::encode::{Encoder, ParquetCompression};
use streamlake_consumer::record::SourceRecord;
use streamlake_core::contract::{Contract, ContractRegistry};
use streamlake_core::names::DatasetName;
use streamlake_core::rawzone::FileFormat;
use streamlake_core::rawzone::readback::read_rows;
use streamlake_testkit::bench_orders::{self, PythonRandom, varied_order};

const DISTINCT_ORDERS: usize = 10_000;

fn records(count: usize, ingest: bool) -> Vec<SourceRecord> {
    // The picks and event ids come from the same generator, after the orders.
    let mut rng = PythonRandom::new(bench_orders::SEED);
    let orders: Vec<Bytes> = (0..DISTINCT_ORDERS)
        .map(|_| Bytes::from(varied_order(&mut rng)))
        .collect();
    (0..count)
        .map(|i| {
            let payload = orders[rng.below(DISTINCT_ORDERS as u32) as usize].clone();
            let (key, headers) = if ingest {
                let event: Value = serde_json::from_slice(&payload).expect("an order");
                let key = event["order_id"].as_str().expect("an order id").to_owned();
                let id: String = (0..4).map(|_| format!("{:08x}", rng.next_u32())).collect();
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "event_id",
                        value: Some(&id),
                    })
                    .insert(Header {
                        key: "schema_version",
                        value: Some("1"),
                    });
                (Some(Bytes::from(key)), Some(headers.into()))
            } else {
                (None, None)
            };
            SourceRecord {
                partition: 0,
                offset: 1_000_000 + i as i64,
                // About 50k records a second, as a busy partition is read.
                timestamp: Some(1_735_787_309_000 + i as i64 / 50),
                key,
                payload: Some(payload),
                headers,
            }
        })
        .collect()
}

/// FNV-1a over the rows read back, to compare encoders by content rather than bytes.
fn digest(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(Ok(20), |r| r.parse())?;
    let (format, compression) = match args
        .next()
        .as_deref()
        .map(|f| f.split_once(':').unwrap_or((f, "")))
    {
        None | Some(("parquet", "")) => (FileFormat::Parquet, ParquetCompression::default()),
        Some(("parquet", codec)) => (FileFormat::Parquet, ParquetCompression::from_str(codec, false)?),
        Some(("jsonl", "")) => (FileFormat::Jsonl, ParquetCompression::default()),
        Some((other, _)) => {
            return Err(format!("unknown format {other} (parquet, parquet:CODEC or jsonl)").into());
        }
    };
    let count: usize = args.next().map_or(Ok(16_384), |n| n.parse())?;
    let ingest = match args.next().as_deref() {
        None | Some("bench") => false,
        Some("ingest") => true,
        Some(other) => return Err(format!("unknown records {other} (bench or ingest)").into()),
    };

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../contracts/orders.v1.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let dataset = DatasetName::new("orders")?;
    let mut registry = ContractRegistry::default();
    registry.insert(Contract::from_schema(dataset.clone(), 1, schema)?)?;
    let registry = Arc::new(registry);
    let contract = registry.latest(dataset.as_str()).ok_or("no contract")?.clone();
    let classifier = Classifier::new(dataset, registry, 1 << 20)?;
    let encoder = Encoder::new(format, &contract, "encode_cost".into(), 64 << 20)?
        .with_parquet_compression(compression);

    let records = records(count, ingest);
    let refs: Vec<&SourceRecord> = records.iter().collect();
    let json_bytes: usize = records
        .iter()
        .map(|r| r.payload.as_ref().map_or(0, Bytes::len))
        .sum();
    let mut last = None;
    let started = Instant::now();
    for _ in 0..rounds {
        let run = encoder.encode_run(0, &refs, &classifier)?;
        if !run.rejected.is_empty() {
            return Err(format!("{} records rejected", run.rejected.len()).into());
        }
        last = run.file;
    }
    let elapsed = started.elapsed();
    let file = last.ok_or("no rounds, no file")?;
    let data = file.data.clone().ok_or("the file was streamed")?;
    let rows = read_rows(format, data.clone())?;
    if rows.len() != count {
        return Err(format!("{} rows read back, {count} written", rows.len()).into());
    }
    println!(
        "{format:?}: {count} records ({} JSON bytes each on average), {rounds} rounds: {:.0} ns/record, \
         file {} bytes, rows digest {:016x}",
        json_bytes / count,
        elapsed.as_nanos() as f64 / (rounds * count) as f64,
        data.len(),
        digest(&serde_json::to_string(&rows)?),
    );
    Ok(())
}
