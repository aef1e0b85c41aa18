//! Command line and environment of the `consumer` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use streamlake_core::kafka::{KafkaArgs, ProducerArgs};
use streamlake_core::rawzone::{FileFormat, StoreLocation};

use crate::encode::ParquetCompression;

/// Lands a dataset's raw topic in the raw zone. Runs until SIGTERM, or with --bounded until the given
/// ranges are landed (exit 0).
// The doc comments are clap's --help text, where `<dataset>` is a placeholder, not an HTML tag.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Clone, Parser)]
#[command(name = "consumer", version)]
pub struct Config {
    /// Dataset to land: reads streamlake.<dataset>.raw in group streamlake-<dataset>-sink.
    #[arg(long, env = "STREAMLAKE_DATASET")]
    pub dataset: String,

    /// Raw zone: file:///path (or a plain path) or gs://bucket/prefix.
    #[arg(
        long,
        env = "STREAMLAKE_RAW_ZONE",
        default_value = "file:///var/lib/streamlake/lake"
    )]
    pub raw_zone: StoreLocation,

    /// Directory of the dataset contracts (<dataset>.v<N>.json).
    #[arg(long, env = "STREAMLAKE_CONTRACTS_DIR", default_value = "contracts")]
    pub contracts_dir: PathBuf,

    /// File format: jsonl, jsonl.gz, jsonl.zst or parquet.
    #[arg(long, env = "STREAMLAKE_FORMAT", default_value = "jsonl")]
    pub format: FileFormat,

    /// Codec of Parquet pages: snappy, zstd (smaller files, more CPU), lz4 (Parquet's LZ4_RAW) or none.
    #[arg(long, env = "STREAMLAKE_PARQUET_COMPRESSION", value_enum, default_value_t = ParquetCompression::default())]
    pub parquet_compression: ParquetCompression,

    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "STREAMLAKE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub rotation: RotationArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub gcs: GcsArgs,

    #[command(flatten)]
    pub bounded: BoundedArgs,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub producer: ProducerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RotationArgs {
    /// A file is closed after this many records...
    #[arg(long, env = "STREAMLAKE_MAX_FILE_RECORDS", default_value_t = 100_000)]
    pub max_file_records: usize,
    /// ...or this many bytes of records (e.g. 32MiB)...
    #[arg(long, env = "STREAMLAKE_MAX_FILE_BYTES", default_value = "32MiB", value_parser = parse_bytes)]
    pub max_file_bytes: usize,
    /// ...or when its first record is this old (e.g. 60s, 500ms, 5m).
    #[arg(long, env = "STREAMLAKE_MAX_FILE_AGE", default_value = "60s", value_parser = parse_nonzero_duration)]
    pub max_file_age: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Memory for records: open files, plus files being landed counted with their encoded form (JSON lines
    /// to a file:// raw zone with their streaming buffer, up to ~2 MiB). At it the sink stops taking
    /// records (and pauses the partitions if that lasts). With the defaults a backlog of ~1 KiB records
    /// peaked at 177-209 MiB RSS, up to 256 MiB when its batches compress 39x (bench/README.md).
    #[arg(long, env = "STREAMLAKE_MAX_BUFFERED_BYTES", default_value = "128MiB", value_parser = parse_nonzero_bytes)]
    pub max_buffered_bytes: usize,
    /// Larger record values are poison pills (record_too_large).
    #[arg(long, env = "STREAMLAKE_MAX_RECORD_BYTES", default_value = "1MiB", value_parser = parse_bytes)]
    pub max_record_bytes: usize,
    /// Files landed at the same time.
    #[arg(long, env = "STREAMLAKE_MAX_CONCURRENT_LANDINGS", default_value_t = 4)]
    pub max_concurrent_landings: usize,
    /// Record bytes librdkafka may prefetch (queued.max.messages.kbytes, at least 1MiB; counted
    /// decompressed). Each fetch asks for 2MiB of compressed batches, decompressed whole on arrival.
    #[arg(long, env = "STREAMLAKE_FETCH_BUFFER_BYTES", default_value = "8MiB", value_parser = parse_bytes)]
    pub fetch_buffer_bytes: usize,
    /// How often durable offsets are committed.
    #[arg(long, env = "STREAMLAKE_COMMIT_INTERVAL", default_value = "1s", value_parser = parse_nonzero_duration)]
    pub commit_interval: Duration,
    /// How long a revoke or SIGTERM waits for in-flight files before committing what is durable.
    #[arg(long, env = "STREAMLAKE_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// How long the consumer may be out of its group (joining, rebalancing, or lost after a broker outage)
    /// before it replaces its Kafka client: librdkafka has been seen to never rejoin after its session
    /// timed out while the broker was down.
    #[arg(long, env = "STREAMLAKE_MAX_OUT_OF_GROUP", default_value = "2m", value_parser = parse_nonzero_duration)]
    pub max_out_of_group: Duration,
    /// How long the poll loop may go without a turn before `/healthz` fails. It turns at least every 100 ms
    /// except while a revoke drains (up to --drain-timeout), so keep it above that.
    #[arg(long, env = "STREAMLAKE_MAX_POLL_STALL", default_value = "60s", value_parser = parse_nonzero_duration)]
    pub max_poll_stall: Duration,
    /// How long records that name a contract version newer than any in --contracts-dir are held (their
    /// partitions paused, nothing committed past them) for a consumer that has the version to take over
    /// (a rollout), counted from the first such record; then they go to the DLQ (unknown_schema_version).
    /// 0 dead-letters them at once.
    #[arg(long, env = "STREAMLAKE_NEWER_CONTRACT_WAIT", default_value = "10m", value_parser = parse_duration)]
    pub newer_contract_wait: Duration,
    /// First delay between landing retries.
    #[arg(long, env = "STREAMLAKE_RETRY_INITIAL", default_value = "200ms", value_parser = parse_duration)]
    pub retry_initial: Duration,
    /// Longest delay between landing retries.
    #[arg(long, env = "STREAMLAKE_RETRY_MAX", default_value = "30s", value_parser = parse_duration)]
    pub retry_max: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct GcsArgs {
    /// GCS endpoint override; defaults to STORAGE_EMULATOR_HOST when that is set.
    #[arg(long, env = "STREAMLAKE_GCS_ENDPOINT")]
    pub gcs_endpoint: Option<String>,
    /// Send no credentials (implied when the endpoint comes from STORAGE_EMULATOR_HOST).
    #[arg(long, env = "STREAMLAKE_GCS_ANONYMOUS")]
    pub gcs_anonymous: bool,
    /// Chunk size of resumable uploads; files at least this large use one (default 16MiB). Unset with an
    /// endpoint on a non-default port (an emulator), every file goes up in one request: the storage crate
    /// drops the port from the Host header, so the emulator's resumable-session URLs would miss it.
    #[arg(long, env = "STREAMLAKE_GCS_UPLOAD_CHUNK", value_parser = parse_bytes)]
    pub gcs_upload_chunk: Option<usize>,
}

impl GcsArgs {
    pub fn options(&self) -> streamlake_core::rawzone::store::GcsOptions {
        let emulator = std::env::var("STORAGE_EMULATOR_HOST")
            .ok()
            .filter(|h| !h.is_empty());
        let endpoint = self.gcs_endpoint.clone().or(emulator.clone());
        let defaults = streamlake_core::rawzone::store::GcsOptions::default();
        let chunk = self.gcs_upload_chunk.unwrap_or(defaults.upload_chunk);
        let threshold = match (self.gcs_upload_chunk, &endpoint) {
            (None, Some(endpoint)) if has_custom_port(endpoint) => usize::MAX,
            _ => chunk,
        };
        streamlake_core::rawzone::store::GcsOptions {
            anonymous: self.gcs_anonymous || (self.gcs_endpoint.is_none() && emulator.is_some()),
            endpoint,
            resumable_threshold: threshold,
            upload_chunk: chunk,
            ..defaults
        }
    }
}

/// `http://127.0.0.1:14443` has one; `https://storage.googleapis.com` and `http://127.0.0.9` do not.
fn has_custom_port(endpoint: &str) -> bool {
    let authority = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split('/')
        .next()
        .unwrap_or_default();
    authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port != "80" && port != "443")
}

#[derive(Debug, Clone, Args)]
pub struct BoundedArgs {
    /// Read fixed ranges with assigned partitions and no group, land them, exit 0 (backfill Jobs).
    #[arg(long, env = "STREAMLAKE_BOUNDED")]
    pub bounded: bool,
    /// Partitions to read (default: all).
    #[arg(
        long,
        env = "STREAMLAKE_PARTITIONS",
        value_delimiter = ',',
        requires = "bounded"
    )]
    pub partitions: Vec<i32>,
    /// PARTITION=OFFSET to start at (inclusive); repeat or separate with commas. Default: earliest.
    #[arg(long = "start-offset", value_delimiter = ',', value_parser = parse_partition_offset, requires = "bounded")]
    pub start_offsets: Vec<(i32, i64)>,
    /// PARTITION=OFFSET to stop before (exclusive). Default: the high watermark at start.
    #[arg(long = "end-offset", value_delimiter = ',', value_parser = parse_partition_offset, requires = "bounded")]
    pub end_offsets: Vec<(i32, i64)>,
    /// Start every partition at its first record at or after this time (RFC 3339 or epoch milliseconds).
    #[arg(long, value_parser = parse_time_millis, requires = "bounded", conflicts_with = "start_offsets")]
    pub start_time: Option<i64>,
    /// Stop every partition before its first record at or after this time.
    #[arg(long, value_parser = parse_time_millis, requires = "bounded", conflicts_with = "end_offsets")]
    pub end_time: Option<i64>,
    /// Raw-zone key to write the run's JSON summary to once every range is landed (records written,
    /// already landed, files): how a Backfill Job tells the operator what it wrote.
    #[arg(long, requires = "bounded")]
    pub bounded_summary: Option<String>,
}

/// `64MiB`, `512KiB`, `1GiB`, `10MB`, `1000`.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 64MiB"))?;
    let factor: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// `500ms`, `30s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(number.saturating_mul(3600))),
        _ => Err(format!("{text:?} needs a unit: ms, s, m or h")),
    }
}

/// A duration that must not be zero (a file age, a commit interval, a liveness limit: zero would mean
/// a file per record, a commit per turn of the loop, a pod that is never live).
pub fn parse_nonzero_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!("{text:?} must be more than zero")),
        duration => Ok(duration),
    }
}

/// A size that must not be zero (a memory budget of nothing takes no record at all).
pub fn parse_nonzero_bytes(text: &str) -> Result<usize, String> {
    match parse_bytes(text)? {
        0 => Err(format!("{text:?} must be more than zero")),
        bytes => Ok(bytes),
    }
}

impl Config {
    /// Settings that contradict each other, said at start rather than found out by a restarted pod.
    pub fn check(&self) -> Result<(), String> {
        let (stall, drain) = (self.limits.max_poll_stall, self.limits.drain_timeout);
        if stall <= drain {
            return Err(format!(
                "--max-poll-stall ({stall:?}) must exceed --drain-timeout ({drain:?}): the poll loop does not \
                 turn while a revoke drains, and /healthz would fail meanwhile"
            ));
        }
        Ok(())
    }
}

/// `3=1200`: partition 3, offset 1200.
pub fn parse_partition_offset(text: &str) -> Result<(i32, i64), String> {
    let (partition, offset) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not PARTITION=OFFSET, e.g. 3=1200"))?;
    let partition: i32 = partition
        .trim()
        .parse()
        .map_err(|_| format!("partition in {text:?} is not a number"))?;
    let offset: i64 = offset
        .trim()
        .parse()
        .map_err(|_| format!("offset in {text:?} is not a number"))?;
    if partition < 0 || offset < 0 {
        return Err(format!("{text:?}: partition and offset must not be negative"));
    }
    Ok((partition, offset))
}

/// RFC 3339 (`2025-01-02T00:00:00Z`) or milliseconds since the epoch.
pub fn parse_time_millis(text: &str) -> Result<i64, String> {
    if let Ok(millis) = text.trim().parse::<i64>() {
        return Ok(millis);
    }
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{text:?} is neither RFC 3339 nor epoch milliseconds: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_with_units() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("10MB"), Ok(10_000_000));
        assert!(parse_bytes("10 parsecs").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5").is_err());
        assert_eq!(parse_nonzero_duration("1ms"), Ok(Duration::from_millis(1)));
        assert_eq!(
            parse_nonzero_duration("0s"),
            Err(r#""0s" must be more than zero"#.into())
        );
        assert_eq!(parse_nonzero_bytes("1KiB"), Ok(1024));
        assert_eq!(
            parse_nonzero_bytes("0MiB"),
            Err(r#""0MiB" must be more than zero"#.into())
        );
    }

    #[test]
    fn ranges_and_times_parse() {
        assert_eq!(parse_partition_offset("3=1200"), Ok((3, 1200)));
        assert!(parse_partition_offset("3:1200").is_err());
        assert!(parse_partition_offset("-1=5").is_err());
        assert_eq!(parse_time_millis("2025-01-02T00:00:00Z"), Ok(1_735_776_000_000));
        assert_eq!(parse_time_millis("1735776000000"), Ok(1_735_776_000_000));
        assert!(parse_time_millis("yesterday").is_err());
    }

    #[test]
    fn the_command_line_parses_with_defaults() {
        let config = Config::try_parse_from([
            "consumer",
            "--dataset",
            "orders",
            "--kafka-bootstrap-servers",
            "127.0.0.1:19092",
            "--raw-zone",
            "gs://bucket/lake",
        ])
        .expect("parse");
        assert_eq!(config.format, FileFormat::Jsonl);
        assert_eq!(config.parquet_compression, ParquetCompression::Snappy);
        assert_eq!(config.rotation.max_file_bytes, 32 << 20);
        assert!(matches!(config.raw_zone, StoreLocation::Gcs { .. }));
        assert!(!config.bounded.bounded);
    }

    #[test]
    fn emulators_on_custom_ports_get_single_request_uploads_unless_asked() {
        let gcs = |chunk: Option<usize>, endpoint: &str| {
            GcsArgs {
                gcs_endpoint: Some(endpoint.into()),
                gcs_anonymous: true,
                gcs_upload_chunk: chunk,
            }
            .options()
        };
        assert_eq!(
            gcs(None, "http://127.0.0.1:14443").resumable_threshold,
            usize::MAX
        );
        assert_eq!(
            gcs(None, "https://storage.googleapis.com").resumable_threshold,
            16 << 20
        );
        assert_eq!(gcs(None, "http://127.0.0.9").resumable_threshold, 16 << 20);
        let asked = gcs(Some(256 << 10), "http://127.0.0.1:14443");
        assert_eq!(
            (asked.resumable_threshold, asked.upload_chunk),
            (256 << 10, 256 << 10)
        );
    }

    #[test]
    fn zero_limits_are_refused_with_the_flag_named() {
        for flag in [
            "--max-file-age",
            "--commit-interval",
            "--max-out-of-group",
            "--max-poll-stall",
            "--max-buffered-bytes",
        ] {
            let zero = if flag == "--max-buffered-bytes" { "0" } else { "0s" };
            let args = ["consumer", "--dataset", "o", flag, zero];
            let error = Config::try_parse_from(args).expect_err(flag).to_string();
            assert!(
                error.contains(flag) && error.contains("more than zero"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_liveness_limit_under_the_drain_deadline_is_refused() {
        let parse = |args: &[&str]| {
            let base = ["consumer", "--dataset", "o", "--kafka-bootstrap-servers", "x:1"];
            Config::try_parse_from(base.iter().chain(args)).expect("parses")
        };
        assert_eq!(parse(&[]).check(), Ok(()));
        let error = parse(&["--max-poll-stall", "10s", "--drain-timeout", "10s"])
            .check()
            .expect_err("refused");
        assert!(
            error.contains("--max-poll-stall (10s) must exceed --drain-timeout (10s)"),
            "{error}"
        );
        assert_eq!(
            parse(&["--max-poll-stall", "3s", "--drain-timeout", "2s"]).check(),
            Ok(())
        );
    }

    #[test]
    fn range_flags_need_bounded_mode() {
        let args = [
            "consumer",
            "--dataset",
            "o",
            "--kafka-bootstrap-servers",
            "x:1",
            "--start-offset",
            "0=5",
        ];
        assert!(Config::try_parse_from(args).is_err());
        let mut bounded = args.to_vec();
        bounded.push("--bounded");
        let config = Config::try_parse_from(bounded).expect("parse");
        assert_eq!(config.bounded.start_offsets, vec![(0, 5)]);
    }
}
