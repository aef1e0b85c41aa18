//! Helpers for tests that run against the real local environment (`dev/up`).
//!
//! Tests read where Kafka, the API server and the GCS emulator are from the variables that
//! `source .streamlake/env` sets. A missing variable fails the test with a hint; it never passes silently.
//! [`bench_orders`] gives the examples that measure costs the consumer benchmark's own records.

pub mod bench_orders;

use std::future::Future;
use std::path::PathBuf;
use std::process::{Command, Stdio};
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

/// A Kafka broker of a test's own: `dev/kafka/up` with a state directory and ports of its own, for a test
/// that stops its broker. Stopping the shared one would disturb everything else the environment runs — the
/// deployed consumer's group session, for one, outlives only a short outage. Stopped and removed on drop.
#[derive(Debug)]
pub struct PrivateBroker {
    state: PathBuf,
    port: u16,
    controller_port: u16,
}

impl PrivateBroker {
    /// Starts it and waits until it answers (blocking: tens of seconds on a busy machine).
    pub fn start(label: &str) -> Self {
        let state = std::env::temp_dir().join(format!("streamlake-broker-{}", unique_name(label)));
        let broker = Self {
            state,
            port: free_port(),
            controller_port: free_port(),
        };
        broker.up();
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker as `dev/down` would (SIGTERM, then SIGKILL after 30 s).
    pub fn stop(&self) {
        self.dev("source \"$DEV/lib.sh\" && sl_stop kafka 30");
    }

    /// Starts it again (or the first time) and waits until it answers.
    pub fn up(&self) {
        self.dev("\"$DEV/kafka/up\"");
    }

    fn dev(&self, script: &str) {
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("DEV", concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .env("STREAMLAKE_STATE", &self.state)
            .env("SL_KAFKA_PORT", self.port.to_string())
            .env("SL_KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .env("SL_KAFKA_HEAP_OPTS", "-Xms128m -Xmx384m")
            .stdin(Stdio::null())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "`{script}` for the broker under {} failed: {}\n{}{}(the broker's log: {}/logs/kafka.log)",
            self.state.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.state.display()
        );
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.stop()));
        if stopped.is_ok() {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
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
