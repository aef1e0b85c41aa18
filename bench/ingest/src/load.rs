//! HTTP load against a running ingest API: closed-loop batches for throughput, open-loop single events
//! at a fixed rate for latency (timed from the scheduled send, so a slow server cannot hide its queue).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::records;

#[derive(Debug)]
pub struct BatchResult {
    pub records: u64,
    pub elapsed: Duration,
}

/// Posts `total` records as NDJSON batches of `batch` records from `clients` concurrent connections.
pub async fn batches(
    url: &str,
    total: u64,
    batch: u64,
    clients: u64,
    size: usize,
) -> anyhow::Result<BatchResult> {
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    // Made once, as the perf test reads its payload file once: the generator must not compete for the CPU.
    let lines: Arc<Vec<String>> = Arc::new((0..1000).map(|n| records::order(n, size) + "\n").collect());
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, next, url, lines) = (http.clone(), next.clone(), url.to_owned(), lines.clone());
            tokio::spawn(async move {
                let mut sent = 0u64;
                loop {
                    let first = next.fetch_add(batch, Ordering::SeqCst);
                    if first >= total {
                        return Ok::<u64, anyhow::Error>(sent);
                    }
                    let last = (first + batch).min(total);
                    let body: String = (first..last)
                        .map(|n| lines[(n % 1000) as usize].as_str())
                        .collect();
                    let response = http
                        .post(&url)
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await
                        .context("posting a batch")?;
                    let status = response.status();
                    let answer: serde_json::Value = response.json().await.context("batch answer")?;
                    if !status.is_success() || answer["accepted"].as_u64() != Some(last - first) {
                        bail!(
                            "batch {first}..{last} not fully accepted ({status}): {}",
                            answer["results"][0]
                        );
                    }
                    sent += last - first;
                }
            })
        })
        .collect();
    let mut records = 0;
    for worker in workers {
        records += worker.await.context("batch worker")??;
    }
    Ok(BatchResult {
        records,
        elapsed: started.elapsed(),
    })
}

#[derive(Debug)]
pub struct SingleResult {
    pub offered_rate: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Sends single events at `rate` per second for `duration`, each on its own task.
pub async fn single_events(
    url: &str,
    rate: u64,
    duration: Duration,
    size: usize,
) -> anyhow::Result<SingleResult> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .context("http client")?;
    let total = rate * duration.as_secs();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let bodies: Arc<Vec<String>> =
        Arc::new((0..1000).map(|n| records::order(10_000_000 + n, size)).collect());
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (http, url, bodies) = (http.clone(), url.to_owned(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let body = bodies[(i % 1000) as usize].clone();
            let ok = matches!(http.post(&url).header("content-type", "application/json").body(body).send().await,
                Ok(r) if r.status().is_success());
            (ok, scheduled.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let (mut ok, mut errors) = (0, 0);
    for task in tasks {
        let (success, latency) = task.await.context("request task")?;
        if success {
            ok += 1
        } else {
            errors += 1
        }
        latencies.push(latency);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Ok(SingleResult {
        offered_rate: rate,
        sent: total,
        ok,
        errors,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    })
}
