//! Helpers for tests that run against the real local environment (`dev/up`).
//!
//! Tests read where Kafka, the API server and the GCS emulator are from the variables that
//! `source .streamlake/env` sets. A missing variable fails the test with a hint; it never passes silently.
//! [`bench_orders`] gives the examples that measure costs the consumer benchmark's own records.

pub mod bench_orders;

use std::future::Future;
use std::time::{Duration, Instant};

/// The value of an environment variable the local environment sets, or a panic that says how to get it.
pub fn require_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: this test needs the local environment. Run `dev/up` and \
             `source .streamlake/env` first (or run every test with `dev/test`)."
        ),
    }
}

/// The Kafka bootstrap servers of the local broker.
pub fn kafka_bootstrap() -> String {
    require_env("KAFKA_BOOTSTRAP_SERVERS")
}

/// An HTTP client for talking to the local environment.
///
/// In a workspace-wide build reqwest gets `rustls-no-provider` from the GCS crates, and then refuses to
/// build a client until a rustls crypto provider is installed; this installs ring (as kube uses) first.
pub fn http_client() -> reqwest::Client {
    // Err only means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .expect("an HTTP client with the ring provider")
}

/// A name no other test run uses, safe for topics, groups, datasets and Kubernetes objects:
/// lowercase ASCII letters, digits and dashes, starting with `prefix`.
pub fn unique_name(prefix: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &suffix[..10])
}

/// Polls `check` every 200 ms until it returns true; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_distinct_and_kubernetes_safe() {
        let a = unique_name("orders");
        let b = unique_name("orders");
        assert_ne!(a, b);
        assert!(a.starts_with("orders-"));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert!(a.len() <= 63);
    }

    #[tokio::test]
    async fn wait_until_returns_once_the_check_holds() {
        let mut calls = 0;
        wait_until("the third call", Duration::from_secs(5), || {
            calls += 1;
            let done = calls >= 3;
            async move { done }
        })
        .await;
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out")]
    async fn wait_until_panics_after_the_timeout() {
        wait_until("never", Duration::from_millis(300), || async { false }).await;
    }
}
