//! Status conditions that only move `lastTransitionTime` when their status really changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::CommonStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// Sets condition `type_` in `conditions`. Reason, message and generation are always updated; the
/// transition time only when the status differs from the current one (or the condition is new).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = status.as_str();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.status = status.to_owned();
                c.last_transition_time = Time(now);
            }
            reason.clone_into(&mut c.reason);
            message.clone_into(&mut c.message);
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// How a run ended: the phase it entered, whether that is a success, and why.
#[derive(Debug, Clone, Copy)]
pub struct Ending<'a, P> {
    pub phase: P,
    pub succeeded: bool,
    pub reason: &'a str,
    pub message: &'a str,
}

impl<'a, P> Ending<'a, P> {
    /// The ending of a run whose outcome is its message: phase and reason `succeeded` on success, else
    /// phase `failed` with reason `Failed`.
    pub fn of(outcome: &'a Result<String, String>, succeeded: (P, &'a str), failed: P) -> Self {
        match outcome {
            Ok(message) => Self {
                phase: succeeded.0,
                succeeded: true,
                reason: succeeded.1,
                message,
            },
            Err(message) => Self {
                phase: failed,
                succeeded: false,
                reason: "Failed",
                message,
            },
        }
    }
}

impl<P: Copy> Ending<'_, P> {
    /// Writes the ending into `status`: phase, reason, message, generation, completion time, and
    /// condition `condition` (True on success, False otherwise).
    pub fn record(
        &self,
        status: &mut CommonStatus<P>,
        condition: &str,
        generation: Option<i64>,
        now: Timestamp,
    ) {
        status.phase = Some(self.phase);
        status.reason = Some(self.reason.to_owned());
        status.message = Some(self.message.to_owned());
        status.observed_generation = generation;
        status.completed_at = Some(Time(now));
        let done = if self.succeeded {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        set_condition(
            &mut status.conditions,
            condition,
            done,
            self.reason,
            self.message,
            generation,
            now,
        );
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::SignedDuration;

    use super::*;

    fn t(seconds: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_secs(seconds)
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            "Complete",
            ConditionStatus::Unknown,
            "Pending",
            "",
            Some(1),
            t(10),
        );
        assert_eq!(conditions[0].last_transition_time, Time(t(10)));

        set_condition(
            &mut conditions,
            "Complete",
            ConditionStatus::Unknown,
            "Replaying",
            "50%",
            Some(2),
            t(20),
        );
        assert_eq!(
            conditions[0].last_transition_time,
            Time(t(10)),
            "same status: time kept"
        );
        assert_eq!(
            (conditions[0].reason.as_str(), conditions[0].message.as_str()),
            ("Replaying", "50%")
        );
        assert_eq!(conditions[0].observed_generation, Some(2));

        set_condition(
            &mut conditions,
            "Complete",
            ConditionStatus::True,
            "Succeeded",
            "",
            Some(2),
            t(30),
        );
        assert_eq!(conditions[0].last_transition_time, Time(t(30)));
        assert_eq!(conditions[0].status, "True");
    }

    #[test]
    fn conditions_of_different_types_are_independent() {
        let mut conditions = Vec::new();
        set_condition(&mut conditions, "A", ConditionStatus::True, "R", "", None, t(1));
        set_condition(&mut conditions, "B", ConditionStatus::False, "R", "", None, t(2));
        set_condition(&mut conditions, "A", ConditionStatus::True, "R", "", None, t(3));
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0].last_transition_time, Time(t(1)));
        assert_eq!(conditions[1].last_transition_time, Time(t(2)));
    }

    #[test]
    fn an_outcome_becomes_its_ending() {
        let passed = Ok("all good".to_owned());
        let ending = Ending::of(&passed, (1, "Passed"), 2);
        assert_eq!(
            (ending.phase, ending.succeeded, ending.reason, ending.message),
            (1, true, "Passed", "all good")
        );
        let failed = Err("broken".to_owned());
        let ending = Ending::of(&failed, (1, "Passed"), 2);
        assert_eq!(
            (ending.phase, ending.succeeded, ending.reason, ending.message),
            (2, false, "Failed", "broken")
        );
    }

    #[test]
    fn an_ending_is_recorded_with_its_condition() {
        let mut status = CommonStatus::<u8>::default();
        let ending = Ending {
            phase: 3,
            succeeded: false,
            reason: "TopicNotFound",
            message: "topic t does not exist",
        };
        ending.record(&mut status, "Complete", Some(4), t(50));
        assert_eq!(status.phase, Some(3));
        assert_eq!(status.reason.as_deref(), Some("TopicNotFound"));
        assert_eq!(status.message.as_deref(), Some("topic t does not exist"));
        assert_eq!(
            (status.observed_generation, status.completed_at),
            (Some(4), Some(Time(t(50))))
        );
        let condition = &status.conditions[0];
        assert_eq!(
            (condition.type_.as_str(), condition.status.as_str()),
            ("Complete", "False")
        );
        assert_eq!(condition.reason, "TopicNotFound");
    }
}
