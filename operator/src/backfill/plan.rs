//! Pure pieces of a Backfill: the time bounds of its spec, the offset ranges they resolve to, the
//! Job that lands them, and what a finished Job means. No client here; unit-tested.

use std::collections::BTreeMap;
use std::str::FromStr;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use streamlake_core::offsets::Watermarks;
use streamlake_core::rawzone::IngestionDate;

use crate::crd::PartitionRange;
use crate::crd::backfill::BackfillSpec;

/// What a spec asks for: offsets given outright, or a `[start, end)` window of record timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounds {
    Offsets(Vec<PartitionRange>),
    Window { start_ms: i64, end_ms: i64 },
}

fn day_start_ms(text: &str, field: &str) -> Result<i64, String> {
    let date: IngestionDate = text.parse().map_err(|e| format!("{field}: {e}"))?;
    date.date()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| format!("{field}: out of range"))
}

fn timestamp_ms(text: &str, field: &str) -> Result<i64, String> {
    Timestamp::from_str(text)
        .map(|t| t.as_millisecond())
        .map_err(|e| format!("{field}: {e}"))
}

impl Bounds {
    pub fn from_spec(spec: &BackfillSpec) -> Result<Self, String> {
        if let Some(offsets) = &spec.offsets {
            return Ok(Self::Offsets(offsets.clone()));
        }
        let (start_ms, end_ms) = match (&spec.start_date, &spec.end_date, &spec.start_time, &spec.end_time) {
            (Some(a), Some(b), None, None) => (
                day_start_ms(a, "startDate")?,
                day_start_ms(b, "endDate")? + 86_400_000,
            ),
            (None, None, Some(a), Some(b)) => (timestamp_ms(a, "startTime")?, timestamp_ms(b, "endTime")?),
            _ => {
                return Err(
                    "set exactly one range: startDate and endDate, startTime and endTime, or offsets".into(),
                );
            }
        };
        if end_ms <= start_ms {
            return Err("the range is empty: its end is not after its start".into());
        }
        Ok(Self::Window { start_ms, end_ms })
    }
}

/// Per partition, `[first offset at or after start, first offset at or after end)`; a partition with
/// no record that recent uses its high watermark. Empty ranges are left out.
pub fn window_ranges(
    watermarks: &BTreeMap<i32, Watermarks>,
    starts: &BTreeMap<i32, Option<i64>>,
    ends: &BTreeMap<i32, Option<i64>>,
) -> Vec<PartitionRange> {
    watermarks
        .iter()
        .filter_map(|(partition, w)| {
            let at = |m: &BTreeMap<i32, Option<i64>>| m.get(partition).copied().flatten().unwrap_or(w.high);
            let end = at(ends);
            let start = at(starts).min(end);
            (end > start).then_some(PartitionRange {
                partition: *partition,
                start,
                end,
            })
        })
        .collect()
}

fn joined(ranges: &[PartitionRange], pick: fn(&PartitionRange) -> String) -> String {
    ranges.iter().map(pick).collect::<Vec<_>>().join(",")
}

/// The consumer's bounded-mode flags for `ranges`.
pub fn bounded_args(ranges: &[PartitionRange]) -> Vec<String> {
    vec![
        "--bounded".into(),
        "--partitions".into(),
        joined(ranges, |r| r.partition.to_string()),
        "--start-offset".into(),
        joined(ranges, |r| format!("{}={}", r.partition, r.start)),
        "--end-offset".into(),
        joined(ranges, |r| format!("{}={}", r.partition, r.end)),
    ]
}

/// The Job: the consumer Deployment's pod template (same image, raw zone, contracts and Kafka
/// settings), run once in bounded mode. It joins no group, so the live consumers are untouched.
pub fn job(
    name: &str,
    backfill: &str,
    dataset: &str,
    owner: serde_json::Value,
    template: &PodTemplateSpec,
    ranges: &[PartitionRange],
    summary_key: &str,
) -> Result<Job, String> {
    let mut pod = template
        .spec
        .clone()
        .ok_or("the consumer Deployment has no pod spec")?;
    pod.restart_policy = Some("Never".into());
    let container = pod
        .containers
        .iter_mut()
        .find(|c| c.name == "consumer")
        .ok_or("the consumer Deployment has no container named `consumer`")?;
    container
        .args
        .get_or_insert_with(Vec::new)
        .extend(bounded_args(ranges));
    container
        .args
        .get_or_insert_with(Vec::new)
        .extend(["--bounded-summary".into(), summary_key.to_owned()]);
    // A bounded run exits on its own; a readiness or liveness probe would only restart it.
    container.readiness_probe = None;
    container.liveness_probe = None;
    container.startup_probe = None;
    let labels = json!({
        "streamlake.io/dataset": dataset,
        "streamlake.io/component": "backfill",
        "streamlake.io/backfill": backfill,
    });
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        }
    }))
    .map_err(|e| format!("building the Job: {e}"))
}

/// `Some(Ok)` once the Job completed, `Some(Err(reason))` once it failed, `None` while it runs.
pub fn job_outcome(job: &Job) -> Option<Result<(), String>> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let holds = |type_: &str| conditions.iter().find(|c| c.type_ == type_ && c.status == "True");
    if holds("Complete").is_some() {
        return Some(Ok(()));
    }
    holds("Failed").map(|c| {
        let reason = c.reason.clone().unwrap_or_else(|| "Failed".into());
        Err(match c.message.as_deref() {
            Some(message) if !message.is_empty() => format!("{reason}: {message}"),
            _ => reason,
        })
    })
}

/// A Job name from the Backfill's (63 characters at most, as labels and pod names need).
pub fn job_name(backfill: &str) -> String {
    let name: String = format!("backfill-{backfill}").chars().take(57).collect();
    name.trim_end_matches(['-', '.']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(low: i64, high: i64) -> Watermarks {
        Watermarks { low, high }
    }

    #[test]
    fn a_day_range_covers_whole_utc_days() {
        let spec: BackfillSpec = serde_json::from_value(json!({
            "dataset": "orders", "startDate": "2026-11-01", "endDate": "2026-11-02"
        }))
        .expect("spec");
        let start = 1_793_491_200_000; // 2026-11-01T00:00:00Z
        assert_eq!(
            Bounds::from_spec(&spec),
            Ok(Bounds::Window {
                start_ms: start,
                end_ms: start + 2 * 86_400_000
            })
        );
    }

    #[test]
    fn windows_resolve_per_partition_and_drop_empty_ones() {
        let watermarks = BTreeMap::from([(0, w(0, 100)), (1, w(0, 50)), (2, w(0, 10))]);
        let starts = BTreeMap::from([(0, Some(10)), (1, Some(20)), (2, None)]);
        let ends = BTreeMap::from([(0, Some(30)), (1, None), (2, None)]);
        let ranges = window_ranges(&watermarks, &starts, &ends);
        assert_eq!(
            ranges,
            [
                PartitionRange {
                    partition: 0,
                    start: 10,
                    end: 30
                },
                PartitionRange {
                    partition: 1,
                    start: 20,
                    end: 50
                },
            ]
        );
        assert_eq!(
            bounded_args(&ranges)[1..],
            [
                "--partitions",
                "0,1",
                "--start-offset",
                "0=10,1=20",
                "--end-offset",
                "0=30,1=50"
            ]
        );
    }

    #[test]
    fn a_failed_job_gives_its_reason() {
        let job: Job = serde_json::from_value(json!({
            "status": {"conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}
            ]}
        }))
        .expect("job");
        assert_eq!(
            job_outcome(&job),
            Some(Err(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            ))
        );
        let running: Job = serde_json::from_value(json!({"status": {"active": 1}})).expect("job");
        assert_eq!(job_outcome(&running), None);
    }

    #[test]
    fn the_job_runs_the_consumer_bounded_and_names_its_summary_key() {
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "spec": {"containers": [{"name": "consumer", "image": "streamlake/consumer", "args": ["--x"]}]}
        }))
        .expect("template");
        let ranges = [PartitionRange {
            partition: 0,
            start: 1,
            end: 4,
        }];
        let job = job(
            "backfill-a",
            "a",
            "orders",
            json!({}),
            &template,
            &ranges,
            "reports/backfill/k.json",
        )
        .expect("job");
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
        let args = pod.containers[0].args.clone().expect("args");
        assert_eq!(
            args.first().map(String::as_str),
            Some("--x"),
            "the template's own args stay"
        );
        assert!(args.contains(&"--bounded".to_owned()), "{args:?}");
        assert_eq!(
            args[args.len() - 2..],
            ["--bounded-summary", "reports/backfill/k.json"],
            "{args:?}"
        );
    }

    #[test]
    fn job_names_fit() {
        assert_eq!(job_name("orders-day"), "backfill-orders-day");
        assert!(job_name(&"x".repeat(253)).len() <= 57);
    }
}
