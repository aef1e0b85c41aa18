//! The DqCheck controller: read → evaluate (pure, [`checks`]) → write the report → write status.
//!
//! The operator runs the checks itself instead of in a Job: they are read-only (the lake's index and
//! files, Kafka offsets by timestamp and the group's committed offsets), bounded (at most
//! [`MAX_DAYS`] days, one file in memory at a time, rows decoded only until the sample is full), and need
//! no credentials the operator lacks. A DqCheck holds nothing outside its own object, so it needs no
//! finalizer; a restarted operator simply runs an unfinished one again. A dataset without a raw topic
//! ends the DqCheck Failed at once, saying so: the spec is immutable, so no retry could fix it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::Recorder;
use serde_json::json;
use streamlake_core::names::DatasetName;
use streamlake_core::offsets::{OffsetClient, OffsetError};
use streamlake_core::rawzone::{IngestionDate, RawZoneStore};

use crate::conditions::Ending;
use crate::controller::{self, Finished, Reporting};
use crate::crd::dq_check::{DqCheckPhase, DqCheckSpec};
use crate::crd::{DqCheck, DqCheckStatus};
use crate::error::CommonError;
use crate::metrics::Metrics;

pub mod checks;
mod error;
mod observe;
mod rows;

pub use error::Error;

pub const KIND: &str = "DqCheck";
/// Largest number of days one DqCheck may cover: bounds the work done inside the operator.
pub const MAX_DAYS: usize = 31;

/// What every DqCheck reconcile shares.
pub struct DqContext {
    pub client: kube::Client,
    /// Blocking calls: use from `spawn_blocking`.
    pub offsets: Arc<OffsetClient>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// The raw zone, or why the operator cannot read it.
    pub store: Result<RawZoneStore, String>,
    pub contracts_dir: PathBuf,
}

impl std::fmt::Debug for DqContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DqContext").finish_non_exhaustive()
    }
}

/// A spec turned into what the checks run over.
#[derive(Debug, Clone, PartialEq)]
pub struct DqRequest {
    pub dataset: DatasetName,
    pub dates: Vec<IngestionDate>,
    pub sample_size: usize,
    pub max_age_ms: Option<i64>,
}

impl DqRequest {
    /// Checks what the schema cannot: the dataset name, the length of the range, the duration.
    pub fn from_spec(spec: &DqCheckSpec) -> Result<Self, String> {
        let dataset = DatasetName::new(spec.dataset.clone()).map_err(|e| format!("dataset: {e}"))?;
        let parse = |field: &str, value: &Option<String>| -> Result<Option<IngestionDate>, String> {
            value
                .as_deref()
                .map(|v| v.parse::<IngestionDate>().map_err(|e| format!("{field}: {e}")))
                .transpose()
        };
        let (first, last) = match (
            parse("date", &spec.date)?,
            parse("startDate", &spec.start_date)?,
            parse("endDate", &spec.end_date)?,
        ) {
            (Some(day), None, None) => (day, day),
            (None, Some(start), Some(end)) if end >= start => (start, end),
            _ => return Err("set date, or startDate and endDate with endDate not before startDate".into()),
        };
        let mut dates = vec![first];
        while let Some(&day) = dates.last().filter(|d| **d < last) {
            if dates.len() == MAX_DAYS {
                return Err(format!("at most {MAX_DAYS} days per DqCheck"));
            }
            let next = day.date().succ_opt().ok_or("endDate is out of range")?;
            dates.push(IngestionDate::new(next));
        }
        let max_age_ms = match &spec.checks.freshness {
            None => None,
            Some(f) => Some(
                f.max_age
                    .parse::<kube::core::Duration>()
                    .ok()
                    .filter(|d| !d.is_negative())
                    .map(|d| i64::try_from(Duration::from(d).as_millis()).unwrap_or(i64::MAX))
                    .ok_or_else(|| format!("freshness.maxAge {:?} is not a duration", f.max_age))?,
            ),
        };
        let sample_size = spec
            .checks
            .contract_sample
            .as_ref()
            .map_or(0, |s| usize::try_from(s.size).unwrap_or(0));
        Ok(Self {
            dataset,
            dates,
            sample_size,
            max_age_ms,
        })
    }

    fn describe(&self) -> String {
        match (self.dates.first(), self.dates.last()) {
            (Some(a), Some(b)) if a != b => format!("{}/{a}..{b}", self.dataset),
            (Some(a), _) => format!("{}/{a}", self.dataset),
            _ => self.dataset.to_string(),
        }
    }
}

/// Runs the DqCheck controller until `shutdown` resolves. `namespace`: watch one namespace, or all.
pub async fn run(
    ctx: DqContext,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let watch = controller::watch::<DqCheck>(&ctx.client, namespace.as_deref());
    controller::run(watch, reconcile, Arc::new(ctx), shutdown).await;
}

async fn reconcile(guard: Arc<DeserializeGuard<DqCheck>>, ctx: Arc<DqContext>) -> Result<Requeue, Error> {
    let work = |check| run_check(check, &ctx);
    controller::run_to_completion(&ctx.client, ctx.reporting(), &guard, work).await
}

impl DqContext {
    fn reporting(&self) -> Reporting<'_> {
        Reporting {
            metrics: &self.metrics,
            recorder: &self.recorder,
            kind: KIND,
            action: "Reconcile",
        }
    }
}

impl Finished for DqCheck {
    fn finished(&self) -> bool {
        let phase = self.status.as_ref().and_then(|s| s.common.phase);
        matches!(phase, Some(DqCheckPhase::Passed | DqCheckPhase::Failed))
    }
}

async fn run_check(check: &DqCheck, ctx: &DqContext) -> Result<Requeue, Error> {
    let (namespace, name) = (check.namespace().unwrap_or_default(), check.name_any());
    let now = Timestamp::now();
    let mut status = check.status.clone().unwrap_or_default();
    status.common.observed_generation = check.metadata.generation;
    status.common.started_at = Some(Time(now));
    let request = match DqRequest::from_spec(&check.spec) {
        Ok(request) => request,
        Err(problem) => return finish(ctx, check, status, Err(format!("invalid spec: {problem}"))).await,
    };
    let store = match &ctx.store {
        Ok(store) => store,
        Err(problem) => return finish(ctx, check, status, Err(problem.clone())).await,
    };
    let observation = match observe::observe(
        store,
        &ctx.offsets,
        &ctx.contracts_dir,
        &request.dataset,
        &request.dates,
        request.sample_size,
        now.as_millisecond(),
    )
    .await
    {
        // No raw topic: nothing to check against, and no retry will make one (the spec is fixed).
        Err(Error::Common(CommonError::ReadKafka(OffsetError::UnknownTopic { topic }))) => {
            let why = format!(
                "topic {topic} does not exist: dataset {} has no raw topic to check against",
                request.dataset
            );
            return finish(ctx, check, status, Err(why)).await;
        }
        other => other?,
    };
    let results = checks::evaluate(&check.spec.checks, request.max_age_ms, &observation);
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name.as_str())
        .collect();
    let key = format!(
        "reports/dq/dataset={}/{namespace}.{name}.{}.json",
        request.dataset,
        check.uid().unwrap_or_default()
    );
    let report = json!({
        "kind": KIND, "namespace": namespace, "name": name, "uid": check.uid(),
        "dataset": request.dataset, "dates": request.dates, "generatedAt": now.to_string(),
        "passed": failed.is_empty(), "checks": results, "group": observation.group,
        "committed": observation.committed, "sample": observation.sample.as_ref().map(|s| json!({
            "checked": s.checked, "invalid": s.invalid,
        })),
        "days": observation.days.iter().map(|d| json!({
            "date": d.date, "metadata": format!("{:?}", d.metadata), "dlq": d.dlq.len(),
            "expectedOffsets": d.expected,
            "files": d.files.iter().map(|f| json!({
                "path": f.path, "partition": f.partition, "firstOffset": f.first_offset,
                "lastOffset": f.last_offset, "records": f.record_count, "present": f.found.is_some(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let body = serde_json::to_vec_pretty(&report).unwrap_or_default();
    store
        .put_immutable(&key, body.into(), "application/json")
        .await
        .map_err(CommonError::WriteReport)?;
    status.report = Some(format!("{}/{key}", store.location()));
    status.progress = Some(format!(
        "{}/{} passed",
        results.len() - failed.len(),
        results.len()
    ));
    let outcome = if failed.is_empty() {
        Ok(format!("{}: every check passed", request.describe()))
    } else {
        Err(format!("{}: failed {}", request.describe(), failed.join(", ")))
    };
    status.checks = results;
    finish(ctx, check, status, outcome).await
}

/// Writes the final status and announces it.
async fn finish(
    ctx: &DqContext,
    check: &DqCheck,
    mut status: DqCheckStatus,
    outcome: Result<String, String>,
) -> Result<Requeue, Error> {
    let ending = Ending::of(&outcome, (DqCheckPhase::Passed, "Passed"), DqCheckPhase::Failed);
    let generation = check.metadata.generation;
    ending.record(&mut status.common, "Passed", generation, Timestamp::now());
    let reporting = Reporting {
        action: "Check",
        ..ctx.reporting()
    };
    Ok(controller::finish(&ctx.client, &reporting, check, &status, &ending, ending.reason).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: serde_json::Value) -> DqCheckSpec {
        serde_json::from_value(value).expect("spec")
    }

    #[test]
    fn a_range_becomes_its_days_and_the_duration_is_parsed() {
        let r = DqRequest::from_spec(&spec(json!({
            "dataset": "orders", "startDate": "2026-02-27", "endDate": "2026-03-01",
            "checks": {"freshness": {"maxAge": "1h30m"}, "contractSample": {"size": 5}}
        })))
        .expect("valid");
        let days: Vec<String> = r.dates.iter().map(ToString::to_string).collect();
        assert_eq!(days, ["2026-02-27", "2026-02-28", "2026-03-01"]);
        assert_eq!(r.max_age_ms, Some(5_400_000));
        assert_eq!(r.sample_size, 5);
    }

    #[test]
    fn long_ranges_and_bad_names_are_refused() {
        let long = DqRequest::from_spec(&spec(json!({
            "dataset": "orders", "startDate": "2026-01-01", "endDate": "2026-03-01",
            "checks": {"filesExist": true}
        })));
        assert!(long.expect_err("too long").contains("at most 31 days"));
        let bad = DqRequest::from_spec(&spec(json!({
            "dataset": "Orders!", "date": "2026-01-01", "checks": {"filesExist": true}
        })));
        assert!(bad.expect_err("bad name").starts_with("dataset"));
    }
}
