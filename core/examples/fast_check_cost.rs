//! What the contract fast check costs per event, on the consumer benchmark's orders.
//!
//! The events are those bench/consumer/run produces (1,000 valid orders padded with line items to about
//! 1 KB: its default varied ones, or with `repetitive` its old ones whose line items are all alike),
//! checked against contracts/orders.v1.json with the consumer's reserved fields, on one thread and on two
//! threads sharing one contract as the consumer's landing does.
//! Both of the consumer's calls are measured: `certainly_valid` (JSON lines) and
//! `certainly_valid_members` (Parquet, which also reads the top-level members).
//! Run: `cargo run --release -p streamlake-core --example fast_check_cost [ROUNDS [valid|members|both|dump
//! [varied|repetitive]]]`; with `valid` or `members` only that one runs, on one thread, ROUNDS times (for
//! instruction counts under cachegrind); `dump` prints the events, one a line (to compare with the bench's).

use std::error::Error;
use std::io::Write;
use std::time::Instant;

use serde_json::Value;
use streamlake_core::contract::Contract;
use streamlake_core::names::DatasetName;
use streamlake_core::rawzone::columns::SINK_COLUMNS as RESERVED;
use streamlake_testkit::bench_orders::{RECORD_BYTES, varied_orders};

/// Runs of each measurement; the best is printed.
const REPEATS: usize = 5;

/// The repetitive orders of bench/consumer/run (`PAYLOAD=repetitive`; `json.dumps`, compact), byte for
/// byte: they differ only in their ids and share their line items.
fn repetitive() -> Vec<Vec<u8>> {
    (0..1000)
        .map(|i| {
            let head = format!(
                r#"{{"order_id":"o-{i}","customer_id":"c-{}","amount":"9.99","currency":"EUR","created_at":"2025-01-02T10:00:00Z","line_items":["#,
                i % 97
            );
            let mut items = vec![r#"{"sku":"sku-1","quantity":1,"unit_price":"9.99"}"#.to_owned()];
            while event(&head, &items).len() < RECORD_BYTES - 60 {
                items.push(format!(r#"{{"sku":"sku-{:05}","quantity":2,"unit_price":"0.01"}}"#, items.len()));
            }
            event(&head, &items).into_bytes()
        })
        .collect()
}

/// An order from its text up to the line items' bracket and its line items.
fn event(head: &str, items: &[String]) -> String {
    format!("{head}{}]}}", items.join(","))
}

/// The consumer's two calls: JSON lines mode's and Parquet mode's (which reads the members too).
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Valid,
    Members,
}

/// Checks every event `rounds` times; returns the nanoseconds per event.
fn run(contract: &Contract, events: &[Vec<u8>], rounds: usize, variant: Variant) -> f64 {
    let start = Instant::now();
    let mut valid = 0usize;
    let mut members = Vec::new();
    for _ in 0..rounds {
        for event in events {
            let ok = match variant {
                Variant::Valid => contract.certainly_valid(event, &RESERVED),
                Variant::Members => contract.certainly_valid_members(event, &RESERVED, &mut members),
            };
            valid += usize::from(ok);
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(valid, rounds * events.len(), "every benchmark order is valid");
    elapsed.as_nanos() as f64 / (rounds * events.len()) as f64
}

fn main() -> Result<(), Box<dyn Error>> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(100), |r| r.parse())?;
    let only = match std::env::args().nth(2).as_deref() {
        None | Some("both" | "dump") => None,
        Some("valid") => Some(Variant::Valid),
        Some("members") => Some(Variant::Members),
        Some(other) => return Err(format!("unknown variant {other} (valid, members or both)").into()),
    };
    let events = match std::env::args().nth(3).as_deref() {
        // The bench's first 1,000, byte for byte: its Python generator replayed (streamlake-testkit).
        None | Some("varied") => varied_orders(1000),
        Some("repetitive") => repetitive(),
        Some(other) => return Err(format!("unknown payload {other} (varied or repetitive)").into()),
    };
    if std::env::args().nth(2).as_deref() == Some("dump") {
        let mut out = std::io::stdout().lock();
        for event in &events {
            out.write_all(event)?;
            out.write_all(b"\n")?;
        }
        return Ok(());
    }
    let mean = events.iter().map(Vec::len).sum::<usize>() / events.len();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../contracts/orders.v1.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let contract = Contract::from_schema(DatasetName::new("orders")?, 1, schema)?;
    if let Some(why) = contract.fast_check_unsupported() {
        return Err(format!("the orders contract has no fast check: {why}").into());
    }
    if let Some(variant) = only {
        let ns = run(&contract, &events, rounds, variant);
        println!(
            "{} events of {mean} bytes, {rounds} rounds: {ns:.0} ns/event",
            events.len()
        );
        return Ok(());
    }
    println!(
        "{} events of {mean} bytes on average, best of {REPEATS} runs of {rounds} rounds",
        events.len()
    );
    for (name, variant) in [
        ("certainly_valid", Variant::Valid),
        ("certainly_valid_members", Variant::Members),
    ] {
        run(&contract, &events, rounds / 10 + 1, variant); // warm up
        // The machine is shared: the best of several runs is the one least disturbed by other work.
        let (mut single, mut a, mut b) = (f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..REPEATS {
            single = single.min(run(&contract, &events, rounds, variant));
            let (one, two) = std::thread::scope(|s| {
                let one = s.spawn(|| run(&contract, &events, rounds, variant));
                let two = s.spawn(|| run(&contract, &events, rounds, variant));
                (one.join(), two.join())
            });
            a = a.min(one.map_err(|_| "thread panicked")?);
            b = b.min(two.map_err(|_| "thread panicked")?);
        }
        println!("{name}, 1 thread:  {single:.0} ns/event");
        println!("{name}, 2 threads: {a:.0} / {b:.0} ns/event (each thread, one shared contract)");
    }
    Ok(())
}
