//! Records that name a contract version newer than every one this consumer has.
//!
//! The ingest API stamps each event with the newest contract version it has. When a dataset gets a new
//! version, the API's pods may run it before the consumers' do (one `kubectl apply` rolls both), and a
//! consumer that dead-lettered those records at once would send every event of the rollout to the DLQ,
//! to be redriven by hand. Instead a landing that meets such a record fails and is retried, as in a
//! storage outage: nothing is committed past it, the partitions pause, `/readyz` says why. The rollout
//! replaces this consumer with one that has the version, which lands the records from the last commit.
//! If none comes within `--newer-contract-wait` of this process first meeting the version, the records
//! are poison pills like those of any unknown version (`unknown_schema_version`), and later records of
//! that version go to the DLQ at once: a producer stamping versions that do not exist cannot stop a
//! partition for longer than that.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct NewerContracts {
    wait: Duration,
    /// When this process first met each newer version.
    first_met: Mutex<BTreeMap<u32, Instant>>,
}

/// Records of `version` are held: `waited` of `wait` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub version: u32,
    pub waited: Duration,
    pub wait: Duration,
}

impl NewerContracts {
    pub fn new(wait: Duration) -> Self {
        Self {
            wait,
            first_met: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether records of `version` met at `now` are still held rather than dead-lettered; the first
    /// call for a version starts its wait.
    pub fn hold(&self, version: u32, now: Instant) -> Option<Held> {
        let mut first_met = self.first_met.lock().unwrap_or_else(|e| e.into_inner());
        let first = *first_met.entry(version).or_insert(now);
        let waited = now.saturating_duration_since(first);
        (waited < self.wait).then_some(Held {
            version,
            waited,
            wait: self.wait,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_held_from_its_first_meeting_until_the_wait_has_passed() {
        let newer = NewerContracts::new(Duration::from_secs(600));
        let t0 = Instant::now();
        let held = newer.hold(2, t0 + Duration::from_secs(5)).expect("held at first");
        assert_eq!((held.version, held.waited), (2, Duration::ZERO));
        let later = newer.hold(2, t0 + Duration::from_secs(305)).expect("still held");
        assert_eq!(later.waited, Duration::from_secs(300));
        assert_eq!(
            newer.hold(2, t0 + Duration::from_secs(605)),
            None,
            "the wait is over"
        );
        assert_eq!(
            newer.hold(2, t0 + Duration::from_secs(606)),
            None,
            "later records of that version are not held again"
        );
        // Each version has its own wait.
        let v3 = newer.hold(3, t0 + Duration::from_secs(606)).expect("v3 held");
        assert_eq!(v3.waited, Duration::ZERO);
    }

    #[test]
    fn a_zero_wait_holds_nothing() {
        let newer = NewerContracts::new(Duration::ZERO);
        assert_eq!(newer.hold(2, Instant::now()), None);
    }
}
