//! Capped exponential backoff with jitter, for storage and DLQ retries.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (0 = first retry), given `jitter` in [0, 1).
    ///
    /// The exponential step is capped at `max`; the delay is drawn from the upper half of the step
    /// ("equal jitter"), so replicas hitting the same outage spread out but never retry in a tight loop.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let step = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max);
        let jitter = jitter.clamp(0.0, 1.0);
        step.div_f64(2.0) + step.div_f64(2.0).mul_f64(jitter)
    }

    /// [`Backoff::delay`] with fresh randomness.
    pub fn next_delay(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }

    #[test]
    fn grows_exponentially_then_caps() {
        let b = backoff();
        let top: Vec<u128> = (0..9).map(|a| b.delay(a, 1.0).as_millis()).collect();
        assert_eq!(top, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(
            b.delay(u32::MAX, 1.0),
            Duration::from_secs(5),
            "huge attempt counts must not overflow"
        );
    }

    #[test]
    fn jitter_stays_in_the_upper_half_of_the_step() {
        let b = backoff();
        assert_eq!(b.delay(3, 0.0), Duration::from_millis(400));
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(600));
        for attempt in 0..20 {
            let d = b.next_delay(attempt);
            let step = b.delay(attempt, 1.0);
            assert!(
                d >= step / 2 && d <= step,
                "attempt {attempt}: {d:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
    }
}
