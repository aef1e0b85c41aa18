//! What it costs only to parse the consumer bench's orders with general JSON parsers — serde_json
//! (scalar, what the contract's full validator parses with) and two SIMD parsers, sonic-rs and simd-json —
//! to set beside what the contract's fast check costs on the same events (`core/examples/fast_check_cost.rs`,
//! which parses and checks). Reads the events, one a line, from the file given; prints nanoseconds per
//! event, the best of five runs of `ROUNDS` passes over every event, on one thread. Run through
//! `bench/json-parse/run`.

use std::error::Error;
use std::hint::black_box;
use std::time::Instant;

use serde::de::IgnoredAny;

const REPEATS: usize = 5;

/// A parser under test: true if it read the event (a valid JSON text) to its end.
type Parse = fn(&mut [u8]) -> bool;

/// Best nanoseconds per event of `parse` over `events`, each parsed from a fresh copy (simd-json parses
/// in place: every parser gets the same copy, which costs a few tens of nanoseconds an event).
fn cost(events: &[Vec<u8>], rounds: usize, mut parse: impl FnMut(&mut [u8]) -> bool) -> f64 {
    let mut scratch = events.to_vec();
    let mut best = f64::MAX;
    for _ in 0..REPEATS {
        let started = Instant::now();
        let mut parsed = 0;
        for _ in 0..rounds {
            for (event, copy) in events.iter().zip(&mut scratch) {
                copy.copy_from_slice(event);
                parsed += usize::from(parse(black_box(copy)));
            }
        }
        let elapsed = started.elapsed().as_nanos() as f64;
        assert_eq!(parsed, rounds * events.len(), "every event is valid JSON");
        best = best.min(elapsed / (rounds * events.len()) as f64);
    }
    best
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: bench-json-parse EVENTS_FILE [ROUNDS]")?;
    let rounds: usize = args.next().map_or(Ok(100), |r| r.parse())?;
    let text = std::fs::read_to_string(&path)?;
    let events: Vec<Vec<u8>> = text.lines().map(|line| line.as_bytes().to_vec()).collect();
    if events.is_empty() {
        return Err(format!("no events in {path}").into());
    }
    let bytes = events.iter().map(Vec::len).sum::<usize>() / events.len();
    println!(
        "{} events of {bytes} bytes on average, best of {REPEATS} runs of {rounds} rounds",
        events.len()
    );
    let parsers: [(&str, Parse); 6] = [
        ("copy only (in every line below)", |event| !event.is_empty()),
        ("serde_json, skipped (IgnoredAny)", |event| {
            serde_json::from_slice::<IgnoredAny>(event).is_ok()
        }),
        ("serde_json, serde_json::Value", |event| {
            serde_json::from_slice::<serde_json::Value>(event).is_ok()
        }),
        ("sonic-rs, sonic_rs::Value", |event| {
            sonic_rs::from_slice::<sonic_rs::Value>(event).is_ok()
        }),
        ("simd-json, tape", |event| simd_json::to_tape(event).is_ok()),
        ("simd-json, BorrowedValue", |event| {
            simd_json::to_borrowed_value(event).is_ok()
        }),
    ];
    for (name, parse) in parsers {
        println!("{name}: {:.0} ns/event", cost(&events, rounds, parse));
    }
    // simd-json's best case: its working buffers kept from one event to the next.
    let mut buffers = simd_json::Buffers::default();
    let reused = cost(&events, rounds, |event| {
        simd_json::to_tape_with_buffers(event, &mut buffers).is_ok()
    });
    println!("simd-json, tape, buffers reused: {reused:.0} ns/event");
    Ok(())
}
