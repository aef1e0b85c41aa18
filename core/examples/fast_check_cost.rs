//! What the contract fast check costs per event, on the consumer benchmark's orders.
//!
//! The events are those bench/consumer/run produces (1,000 valid orders padded with line items to about
//! 1 KB: its default varied ones, or with `repetitive` its old ones whose line items are all alike),
//! checked against contracts/orders.v1.json with the consumer's reserved fields, on one thread and on two threads sharing one contract as the consumer's landing does.
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

/// The consumer's reserved fields (consumer/src/classify.rs).
const RESERVED: [&str; 6] = [
    "_partition",
    "_offset",
    "_timestamp",
    "_key",
    "_event_id",
    "_schema_version",
];
/// bench/consumer/run's default RECORD_BYTES.
const RECORD_BYTES: usize = 1024;
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

/// The first 1,000 varied orders of bench/consumer/run (its default payload), byte for byte: the same
/// seeded draws as its Python generator (`random.Random(7)`), through the same Mersenne Twister.
fn varied() -> Vec<Vec<u8>> {
    let mut rng = PythonRandom::new(7);
    (0..1000)
        .map(|_| {
            let order = rng.below(1_000_000_000);
            let customer = rng.below(1_000_000);
            let amount = (1 + rng.below(99_999), rng.below(100));
            let currency = ["EUR", "USD", "GBP", "JPY", "CHF"][rng.below(5) as usize];
            let time = (rng.below(24), rng.below(60), rng.below(60));
            let head = format!(
                r#"{{"order_id":"o-{order}","customer_id":"c-{customer}","amount":"{}.{:02}","currency":"{currency}","created_at":"2025-01-02T{:02}:{:02}:{:02}Z","line_items":["#,
                amount.0, amount.1, time.0, time.1, time.2
            );
            let mut items = Vec::new();
            while event(&head, &items).len() < RECORD_BYTES - 60 {
                let sku = rng.below(1_000_000);
                let quantity = 1 + rng.below(19);
                let price = (rng.below(1000), rng.below(100));
                items.push(format!(
                    r#"{{"sku":"sku-{sku:06}","quantity":{quantity},"unit_price":"{}.{:02}"}}"#,
                    price.0, price.1
                ));
            }
            event(&head, &items).into_bytes()
        })
        .collect()
}

/// An order from its text up to the line items' bracket and its line items.
fn event(head: &str, items: &[String]) -> String {
    format!("{head}{}]}}", items.join(","))
}

/// CPython's `random.Random(seed)` for a small seed, as far as `randrange` below 2^32 goes: MT19937
/// seeded by `init_by_array([seed])`, and `_randbelow` drawing the bound's bit length until below it.
struct PythonRandom {
    state: [u32; 624],
    next: usize,
}

impl PythonRandom {
    fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = 19_650_218;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        // init_by_array with a key of one word.
        let (mut i, n) = (1usize, 624usize);
        for _ in 0..n {
            let prev = state[i - 1];
            state[i] = (state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525)).wrapping_add(seed);
            i += 1;
            if i >= n {
                state[0] = state[n - 1];
                i = 1;
            }
        }
        for _ in 0..n - 1 {
            let prev = state[i - 1];
            state[i] = (state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= n {
                state[0] = state[n - 1];
                i = 1;
            }
        }
        state[0] = 0x8000_0000;
        Self { state, next: n }
    }

    fn next_u32(&mut self) -> u32 {
        if self.next >= 624 {
            for i in 0..624 {
                let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
                let odd = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.state[i] = self.state[(i + 397) % 624] ^ (y >> 1) ^ odd;
            }
            self.next = 0;
        }
        let mut y = self.state[self.next];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `randrange(n)` for 0 < n < 2^32.
    fn below(&mut self, n: u32) -> u32 {
        let bits = 32 - n.leading_zeros();
        loop {
            let r = self.next_u32() >> (32 - bits);
            if r < n {
                return r;
            }
        }
    }
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
        None | Some("varied") => varied(),
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
