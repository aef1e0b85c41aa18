//! `bench-ingest`: in one run on one broker, with the same ~1 KiB order records and acks=all, measures
//! kafka-producer-perf-test's records/s, the batch endpoint's records/s (and their ratio), single-event
//! latency at a fixed offered load, and the API's peak RSS. A measurement, not a test: it prints numbers.

mod cpu;
mod load;
mod records;
mod server;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use streamlake_core::kafka::KafkaArgs;
use streamlake_core::kafka::topics::{TopicArgs, TopicSpec, ensure_topics};
use streamlake_core::names::DatasetName;

#[derive(Debug, Parser)]
struct Args {
    /// The ingest-api binary to measure (a release build).
    #[arg(long)]
    ingest_api: PathBuf,
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    bootstrap: String,
    /// Directory of the kafka-* wrappers (dev/kafka/up installs them).
    #[arg(long, env = "SL_KAFKA_BIN")]
    kafka_bin: PathBuf,
    /// Records per round, for the perf test and the batch endpoint alike.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    #[arg(long, default_value_t = 500)]
    batch: u64,
    /// Concurrent HTTP clients; each waits for its batch's answer before sending the next.
    #[arg(long, default_value_t = 8)]
    clients: u64,
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Offered load of the single-event phase, requests per second.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// linger.ms of both producers (the API's default is 1).
    #[arg(long, default_value_t = 1)]
    linger_ms: u32,
    /// Alternating perf-test / batch-endpoint rounds; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// Producer settings shared by the perf test and the API (the API's defaults).
const PRODUCER_PROPS: [&str; 4] = [
    "acks=all",
    "enable.idempotence=true",
    "compression.type=lz4",
    "linger.ms=5",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dataset = DatasetName::new(format!(
        "bench-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))?;
    let work = std::env::temp_dir().join(dataset.as_str());
    std::fs::create_dir_all(&work)?;
    let contract = include_str!("../../../contracts/orders.v1.json");
    std::fs::write(work.join(format!("{dataset}.v1.json")), contract)?;
    let payloads = work.join("payloads.ndjson");
    std::fs::write(
        &payloads,
        (0..1000)
            .map(|n| records::order(n, args.record_size) + "\n")
            .collect::<String>(),
    )?;

    let topics = TopicArgs {
        raw_partitions: args.partitions,
        dlq_partitions: 1,
        replication_factor: 1,
        raw_retention_ms: 3_600_000,
        dlq_retention_ms: 3_600_000,
    };
    let perf_topic = format!("streamlake.{dataset}-perf.raw");
    let mut specs = topics.specs_for(&dataset).to_vec();
    specs.push(TopicSpec {
        name: perf_topic.clone(),
        ..specs[0].clone()
    });
    let client = KafkaArgs::for_bootstrap(&args.bootstrap).client_config()?;
    ensure_topics(&client, &specs, Duration::from_secs(30)).await?;

    println!(
        "# dataset {dataset}, {} records of {} bytes, {} partitions",
        args.records,
        records::order(0, args.record_size).len(),
        args.partitions
    );
    let port = free_port()?;
    let mut api = ApiProcess::start(&args, &work, port)?;
    wait_ready(port).await?;
    let batch_url = format!("http://127.0.0.1:{port}/ingest/{dataset}/batch");
    // Alternating rounds on the same broker: the machine is shared, so one pair of runs says little.
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let children_before = cpu::waited_children()?;
        let perf = perf_test(&args, &perf_topic, &payloads)?;
        let perf_cpu = cpu::waited_children()? - children_before;
        let (api_before, own_before) = (cpu::of_process(api.pid())?, cpu::own()?);
        let batch = load::batches(
            &batch_url,
            args.records,
            args.batch,
            args.clients,
            args.record_size,
        )
        .await?;
        let (api_cpu, own_cpu) = (cpu::of_process(api.pid())? - api_before, cpu::own()? - own_before);
        let batch_rate = batch.records as f64 / batch.elapsed.as_secs_f64();
        let per_record = |d: Duration| d.as_secs_f64() * 1e6 / args.records as f64;
        println!(
            "round {round}: perf-test {perf:.0} records/s ({:.1} CPU-µs/record incl. JVM start); batch endpoint \
             {batch_rate:.0} records/s (API {:.1} + load generator {:.1} CPU-µs/record); ratio {:.2}",
            per_record(perf_cpu),
            per_record(api_cpu),
            per_record(own_cpu),
            batch_rate / perf
        );
        rounds.push((perf, batch_rate, per_record(perf_cpu), per_record(api_cpu)));
    }
    let perf = median(rounds.iter().map(|r| r.0).collect());
    let batch_rate = median(rounds.iter().map(|r| r.1).collect());
    let ratio = median(rounds.iter().map(|r| r.1 / r.0).collect());
    let perf_cpu = median(rounds.iter().map(|r| r.2).collect());
    let api_cpu = median(rounds.iter().map(|r| r.3).collect());

    let single_url = format!("http://127.0.0.1:{port}/ingest/{dataset}");
    let single = load::single_events(
        &single_url,
        args.rate,
        Duration::from_secs(args.seconds),
        args.record_size,
    )
    .await?;
    // The reference for latency: the Java producer at the same rate on the same broker, warm.
    let reference = latency_reference(&args, &perf_topic, &payloads)?;
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?;
    let inside = server::latency_bounds(&metrics, "/ingest/{dataset}", &[0.5, 0.99])?;
    let peak_rss_kib = api.peak_rss_kib()?;
    api.stop()?;

    let achieved = single.ok as f64 / single.elapsed.as_secs_f64();
    println!();
    println!("| measure | result |");
    println!("| --- | --- |");
    println!(
        "| kafka-producer-perf-test (acks=all, idempotent, lz4, linger {} ms) | {perf:.0} records/s |",
        args.linger_ms
    );
    println!(
        "| batch endpoint ({} records/batch, {} clients) | {batch_rate:.0} records/s |",
        args.batch, args.clients
    );
    println!("| ratio batch / perf-test (median of the rounds' ratios) | {ratio:.2} |");
    println!(
        "| CPU per record: perf-test JVM (incl. start) / ingest-api | {perf_cpu:.1} µs / {api_cpu:.1} µs |"
    );
    println!(
        "| single events offered at {} req/s for {} s | {achieved:.0} ok/s, {} errors, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms |",
        single.offered_rate,
        args.seconds,
        single.errors,
        ms(single.p50),
        ms(single.p99),
        ms(single.max)
    );
    println!(
        "| kafka-producer-perf-test at {} records/s for {} s after {REFERENCE_WARMUP_SECONDS} s of warm-up (steady state, whole ms) | p50 {:.0} ms, p99 {:.0} ms |",
        args.rate, args.seconds, reference.0, reference.1
    );
    println!(
        "| p99 single event / p99 perf-test record | {:.2} |",
        ms(single.p99) / reference.1.max(1.0)
    );
    println!(
        "| the same inside the API (its latency histogram: bucket bounds) | p50 ≤ {:.1} ms, p99 ≤ {:.1} ms |",
        inside[0] * 1000.0,
        inside[1] * 1000.0
    );
    println!(
        "| ingest-api peak RSS (VmHWM) | {:.1} MiB |",
        peak_rss_kib as f64 / 1024.0
    );
    if single.sent != single.ok + single.errors {
        bail!("lost track of requests");
    }
    let _ = Command::new(args.kafka_bin.join("kafka-topics"))
        .args([
            "--bootstrap-server",
            &args.bootstrap,
            "--delete",
            "--topic",
            &format!("streamlake\\.{dataset}.*"),
        ])
        .stdout(Stdio::null())
        .status();
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Seconds of the latency reference run left out of its statistics (JVM start and JIT).
const REFERENCE_WARMUP_SECONDS: u64 = 3;

/// kafka-producer-perf-test offering `--rate` records/s for `--seconds` after a warm-up: its steady-state
/// (p50, p99) send-to-acknowledgement latency in ms, the same span the API's client sees minus HTTP.
fn latency_reference(args: &Args, topic: &str, payloads: &std::path::Path) -> anyhow::Result<(f64, f64)> {
    let warmup = args.rate * REFERENCE_WARMUP_SECONDS;
    let records = warmup + args.rate * args.seconds;
    let stdout = run_perf_test(args, topic, payloads, records, args.rate as i64, warmup)?;
    // "N steady state records sent, X records/sec (Y MB/sec), A ms avg latency, ..., P ms 50th, ..., Q ms 99th, ..."
    let summary = stdout
        .lines()
        .rfind(|l| l.contains("steady state records sent"))
        .context("no steady-state summary from kafka-producer-perf-test")?;
    let quantile = |suffix: &str| -> anyhow::Result<f64> {
        let field = summary
            .split(", ")
            .find(|f| f.trim_end_matches('.').ends_with(suffix))
            .with_context(|| format!("no {suffix} in {summary:?}"))?;
        let value = field.split(' ').next().unwrap_or_default();
        value.parse().with_context(|| format!("{suffix} in {summary:?}"))
    };
    Ok((quantile(" ms 50th")?, quantile(" ms 99th")?))
}

/// Runs the perf test on its own topic as fast as it can and returns its records/s.
fn perf_test(args: &Args, topic: &str, payloads: &std::path::Path) -> anyhow::Result<f64> {
    let stdout = run_perf_test(args, topic, payloads, args.records, -1, 0)?;
    // Final line: "N records sent, X records/sec (Y MB/sec), ..."
    let summary = stdout
        .lines()
        .rfind(|l| l.contains(" records sent, "))
        .context("no perf-test summary")?;
    let rate = summary
        .split(", ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .context("no rate in summary")?;
    rate.parse().with_context(|| format!("rate in {summary:?}"))
}

/// kafka-producer-perf-test with the bench's records and producer settings (`throughput` -1: unthrottled);
/// returns its standard output.
fn run_perf_test(
    args: &Args,
    topic: &str,
    payloads: &std::path::Path,
    records: u64,
    throughput: i64,
    warmup: u64,
) -> anyhow::Result<String> {
    let mut command = Command::new(args.kafka_bin.join("kafka-producer-perf-test"));
    command
        .args(["--topic", topic, "--num-records", &records.to_string()])
        .args(["--throughput", &throughput.to_string()]);
    if warmup > 0 {
        command.args(["--warmup-records", &warmup.to_string()]);
    }
    let output = command
        .arg("--payload-file")
        .arg(payloads)
        .arg("--producer-props")
        .arg(format!("bootstrap.servers={}", args.bootstrap))
        .args(PRODUCER_PROPS)
        .arg(format!("linger.ms={}", args.linger_ms))
        .output()
        .context("running kafka-producer-perf-test")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "kafka-producer-perf-test failed: {}\n{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct ApiProcess(Child);

impl ApiProcess {
    fn start(args: &Args, contracts: &std::path::Path, port: u16) -> anyhow::Result<Self> {
        let child = Command::new(&args.ingest_api)
            .arg("serve")
            .arg(format!("--listen-addr=127.0.0.1:{port}"))
            .arg("--contracts-dir")
            .arg(contracts)
            .env("KAFKA_BOOTSTRAP_SERVERS", &args.bootstrap)
            .env("RUST_LOG", "warn")
            .env("KAFKA_LINGER_MS", args.linger_ms.to_string())
            .spawn()
            .context("starting ingest-api")?;
        Ok(Self(child))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .context("no VmHWM")?;
        line.split_whitespace()
            .nth(1)
            .context("VmHWM value")?
            .parse()
            .context("VmHWM number")
    }

    /// SIGTERM, as a kubelet would, and wait for the drain.
    fn stop(&mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()?;
        let status = self.0.wait()?;
        if !status.success() {
            bail!("ingest-api exited with {status} after SIGTERM");
        }
        Ok(())
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

async fn wait_ready(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://127.0.0.1:{port}/readyz");
    while Instant::now() < deadline {
        if matches!(reqwest::get(&url).await, Ok(r) if r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("ingest-api did not become ready on port {port}")
}
