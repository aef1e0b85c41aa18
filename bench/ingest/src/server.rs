//! The API's own view of latency, from its Prometheus histogram: how much of what the load generator
//! measured was spent inside the API (HTTP handling, validation, waiting for Kafka's acknowledgement)
//! rather than in the generator, the kernel or waiting for a core on a shared machine.

use anyhow::{Context, bail};

const BUCKET: &str = "streamlake_ingest_http_request_duration_seconds_bucket{";

/// Upper bounds (seconds) of the histogram buckets holding the `quantiles` of `route`'s requests.
pub fn latency_bounds(metrics: &str, route: &str, quantiles: &[f64]) -> anyhow::Result<Vec<f64>> {
    let route_label = format!("route=\"{route}\"");
    // Cumulative counts by upper bound, as the exposition format gives them.
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with(BUCKET) && l.contains(&route_label))
    {
        let le = line
            .split("le=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .with_context(|| format!("no le label in {line:?}"))?;
        let bound = if le == "+Inf" { f64::INFINITY } else { le.parse()? };
        let count: f64 = line
            .rsplit(' ')
            .next()
            .with_context(|| format!("no count in {line:?}"))?
            .parse()?;
        buckets.push((bound, count));
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some(&(_, total)) = buckets.last() else {
        bail!("no latency histogram for route {route} in /metrics");
    };
    Ok(quantiles
        .iter()
        .map(|q| {
            buckets
                .iter()
                .find(|(_, count)| *count >= q * total)
                .map_or(f64::INFINITY, |(bound, _)| *bound)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounds_are_the_first_buckets_reaching_each_quantile() {
        let text = "\
streamlake_ingest_http_request_duration_seconds_bucket{le=\"0.001\",route=\"/a\"} 10
streamlake_ingest_http_request_duration_seconds_bucket{le=\"0.002\",route=\"/a\"} 95
streamlake_ingest_http_request_duration_seconds_bucket{le=\"0.004\",route=\"/a\"} 99
streamlake_ingest_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"/a\"} 100
streamlake_ingest_http_request_duration_seconds_bucket{le=\"0.001\",route=\"/b\"} 100
streamlake_ingest_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"/b\"} 100
";
        let bounds = super::latency_bounds(text, "/a", &[0.5, 0.99, 1.0]).expect("parsed");
        assert_eq!(bounds, vec![0.002, 0.004, f64::INFINITY]);
        assert!(super::latency_bounds(text, "/c", &[0.5]).is_err());
    }
}
