//! Status conditions that only move `lastTransitionTime` when their status really changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

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
}
