//! What landing data files in a `file://` raw zone costs, written buffered and with `O_DIRECT`.
//!
//! Writes FILES files of MIB MiB of JSON lines through `RawZoneStore::put_immutable` (temp file, write,
//! fsync, rename, directory fsync), one at a time as one partition's writer does, alternating buffered
//! and direct rounds, and prints MB/s and the process's CPU seconds (getrusage user + sys) per GB.
//! It writes into a new directory `tmp-local-put-cost-<uuid>` inside PARENT, which must be on the disk
//! the raw zone lives on (not /tmp), and deletes it at the end; files go after every round. Run:
//! `cargo run --release -p streamlake-core --example local_put_cost [PARENT] [FILES] [MIB] [ROUNDS]`
//! (defaults: $STREAMLAKE_STATE or .streamlake, 64, 16, 2).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::sys::resource::{UsageWho, getrusage};
use streamlake_core::rawzone::store::{LocalStore, RawZoneStore};

/// One record of about 1 KiB, as the consumer benchmark lands them.
fn json_lines(bytes: usize) -> Bytes {
    let mut out = Vec::with_capacity(bytes + 1024);
    let mut i = 0u64;
    while out.len() < bytes {
        let line = format!(
            r#"{{"order_id":"o-{i}","customer_id":"c-{}","amount":"9.99","_offset":{i},"pad":"{}"}}"#,
            i % 97,
            "x".repeat(900)
        );
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        i += 1;
    }
    out.truncate(bytes);
    out.into()
}

/// User plus system CPU time of the whole process, every thread included.
fn cpu_time() -> Result<Duration, Box<dyn Error>> {
    let usage = getrusage(UsageWho::RUSAGE_SELF)?;
    let micros =
        |t: nix::sys::time::TimeVal| Duration::from_micros((t.tv_sec() * 1_000_000 + t.tv_usec()) as u64);
    Ok(micros(usage.user_time()) + micros(usage.system_time()))
}

struct Round {
    seconds: f64,
    cpu: f64,
    refused: bool,
}

async fn round(dir: &Path, direct: bool, data: &Bytes, files: usize) -> Result<Round, Box<dyn Error>> {
    let local = LocalStore::new(dir.to_owned()).with_direct_io(direct);
    let store = RawZoneStore::Local(local.clone());
    let (start, cpu_start) = (Instant::now(), cpu_time()?);
    for i in 0..files {
        let key = format!("raw/dataset=bench/ingestion_date=2026-11-23/part-0-{i:06}.jsonl");
        store
            .put_immutable(&key, data.clone(), "application/x-ndjson")
            .await?;
    }
    let round = Round {
        seconds: start.elapsed().as_secs_f64(),
        cpu: (cpu_time()? - cpu_start).as_secs_f64(),
        refused: local.direct_io_refused(),
    };
    std::fs::remove_dir_all(dir.join("raw"))?;
    Ok(round)
}

/// Alternates buffered and direct rounds in `dir`, printing each.
async fn compare(dir: &Path, data: &Bytes, files: usize, rounds: usize) -> Result<(), Box<dyn Error>> {
    let gb = (files * data.len()) as f64 / 1e9;
    println!(
        "{files} files of {} MiB ({gb:.2} GB a round) in {}",
        data.len() >> 20,
        dir.display()
    );
    for n in 0..rounds {
        for direct in [false, true] {
            let r = round(dir, direct, data, files).await?;
            println!(
                "round {n} {:<8} {:>7.0} MB/s  {:.3} CPU s/GB{}",
                if direct { "direct" } else { "buffered" },
                gb * 1e3 / r.seconds,
                r.cpu / gb,
                if r.refused {
                    "  (O_DIRECT refused: written buffered)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let parent = args
        .next()
        .or_else(|| std::env::var("STREAMLAKE_STATE").ok())
        .unwrap_or_else(|| ".streamlake".to_owned());
    if parent.is_empty() {
        return Err("PARENT must be a directory".into());
    }
    let mut number = |default: usize| args.next().map_or(Ok(default), |a| a.parse::<usize>());
    let (files, mib, rounds) = (number(64)?, number(16)?, number(2)?);
    let data = json_lines(mib << 20);
    // A directory of its own, so that the clean-up can never remove anything else.
    let dir = PathBuf::from(parent).join(format!("tmp-local-put-cost-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir)?;
    let compared = compare(&dir, &data, files, rounds).await;
    std::fs::remove_dir_all(&dir)?;
    compared
}
