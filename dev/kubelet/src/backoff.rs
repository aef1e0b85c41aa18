//! Crash-loop backoff: 10 s doubling up to a cap, forgotten once a container has run for twice the cap.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct CrashBackoff {
    initial: Duration,
    cap: Duration,
    failures: u32,
}

impl CrashBackoff {
    pub const INITIAL: Duration = Duration::from_secs(10);

    pub fn new(cap: Duration) -> Self {
        Self {
            initial: Self::INITIAL.min(cap),
            cap,
            failures: 0,
        }
    }

    /// The wait before restarting a container that just exited after running for `ran_for`.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        // Kubernetes resets after 10 minutes of good running, which is twice its default 5-minute cap.
        if ran_for >= self.cap.saturating_mul(2) {
            self.failures = 0;
        }
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.failures = self.failures.saturating_add(1);
        self.initial.saturating_mul(factor).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT_RUN: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_from_ten_seconds_up_to_the_cap() {
        let mut backoff = CrashBackoff::new(Duration::from_secs(300));
        let delays: Vec<u64> = (0..7).map(|_| backoff.next_delay(SHORT_RUN).as_secs()).collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn a_small_cap_keeps_tests_quick() {
        let mut backoff = CrashBackoff::new(Duration::from_secs(2));
        let delays: Vec<u64> = (0..3)
            .map(|_| backoff.next_delay(Duration::ZERO).as_secs())
            .collect();
        assert_eq!(delays, vec![2, 2, 2]);
    }

    #[test]
    fn a_long_healthy_run_resets_the_backoff() {
        let mut backoff = CrashBackoff::new(Duration::from_secs(300));
        backoff.next_delay(SHORT_RUN);
        backoff.next_delay(SHORT_RUN);
        assert_eq!(
            backoff.next_delay(Duration::from_secs(600)),
            Duration::from_secs(10)
        );
        assert_eq!(backoff.next_delay(SHORT_RUN), Duration::from_secs(20));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = CrashBackoff::new(Duration::from_secs(300));
        for _ in 0..100 {
            assert!(backoff.next_delay(SHORT_RUN) <= Duration::from_secs(300));
        }
    }
}
