//! What `/healthz` and `/readyz` report: the poll loop is alive; the sink can land records.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::tracker::UnitId;

#[derive(Debug)]
pub struct Health {
    started: Instant,
    /// Milliseconds after `started` of the poll loop's last turn.
    last_poll_ms: AtomicU64,
    running: AtomicBool,
    stopping: AtomicBool,
    /// Landings currently failing, with their last error.
    failing: Mutex<BTreeMap<UnitId, String>>,
}

impl Health {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            last_poll_ms: AtomicU64::new(0),
            running: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            failing: Mutex::new(BTreeMap::new()),
        }
    }

    /// The poll loop turned at `now` (passed in: the loop reads the clock once per record).
    pub fn polled(&self, now: Instant) {
        self.running.store(true, Ordering::Relaxed);
        let since = now.saturating_duration_since(self.started);
        let ms = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
        self.last_poll_ms.store(ms, Ordering::Relaxed);
    }

    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Live while the poll loop turned within `max_stall` (it turns at least every poll timeout).
    pub fn liveness(&self, max_stall: Duration) -> Result<(), String> {
        if !self.running.load(Ordering::Relaxed) {
            return Ok(()); // still starting: connecting, loading contracts
        }
        let last = Duration::from_millis(self.last_poll_ms.load(Ordering::Relaxed));
        let stalled = self.started.elapsed().saturating_sub(last);
        if stalled > max_stall {
            return Err(format!("the poll loop has not run for {}s", stalled.as_secs()));
        }
        Ok(())
    }

    /// Ready when the loop runs, is not stopping, and no landing is failing.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.running.load(Ordering::Relaxed) {
            return Err("starting".into());
        }
        if self.stopping.load(Ordering::Relaxed) {
            return Err("shutting down".into());
        }
        let failing = self
            .failing
            .lock()
            .map_err(|_| "health state poisoned".to_string())?;
        if let Some((_, error)) = failing.iter().next_back() {
            return Err(format!(
                "{} landing(s) failing, retrying; last error: {error}",
                failing.len()
            ));
        }
        Ok(())
    }

    pub fn landing_failed(&self, unit: UnitId, error: String) {
        if let Ok(mut failing) = self.failing.lock() {
            failing.insert(unit, error);
        }
    }

    pub fn landing_done(&self, unit: UnitId) {
        if let Ok(mut failing) = self.failing.lock() {
            failing.remove(&unit);
        }
    }

    pub fn storage_failing(&self) -> bool {
        self.failing.lock().map(|f| !f.is_empty()).unwrap_or(true)
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_running_and_no_landing_fails() {
        let h = Health::new();
        assert!(h.readiness().is_err(), "not ready before the loop runs");
        h.polled(Instant::now());
        assert!(h.readiness().is_ok());
        h.landing_failed(3, "GCS write: connection refused".into());
        let err = h.readiness().expect_err("failing");
        assert!(err.contains("connection refused"), "{err}");
        assert!(h.storage_failing());
        h.landing_done(3);
        assert!(h.readiness().is_ok() && !h.storage_failing());
        h.stopping();
        assert!(h.readiness().is_err());
    }

    #[test]
    fn liveness_fails_when_the_loop_stalls() {
        let h = Health::new();
        assert!(h.liveness(Duration::ZERO).is_ok(), "starting is alive");
        h.polled(Instant::now());
        assert!(h.liveness(Duration::from_secs(60)).is_ok());
        std::thread::sleep(Duration::from_millis(20));
        assert!(h.liveness(Duration::from_millis(1)).is_err());
    }
}
