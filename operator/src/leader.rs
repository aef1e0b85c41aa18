//! Leader election on a `coordination.k8s.io` Lease, so two operator replicas never reconcile at once.
//! Every write carries the Lease's resourceVersion: of two replicas racing for it, one gets a conflict.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

#[derive(Debug, Clone)]
pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// A holder that has not renewed for this long has lost the Lease.
    lease_duration: Duration,
    /// How often to renew, and to retry while another replica holds it.
    retry: Duration,
}

/// What to do with a Lease as found.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseClaim {
    /// Write this spec: the Lease is free, expired, or ours.
    Take(LeaseSpec),
    /// Someone else holds it until about `until`.
    HeldBy { holder: String, until: Timestamp },
}

/// Pure: whether `me` may take or renew `current` at `now`.
pub fn claim(current: Option<&LeaseSpec>, me: &str, now: Timestamp, duration: Duration) -> LeaseClaim {
    let seconds = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
    let holder = current
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty());
    let renewed = current
        .and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()))
        .map(|t| t.0);
    let held_for = current
        .and_then(|s| s.lease_duration_seconds)
        .map_or(seconds, |s| s.max(1));
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    match (holder, renewed) {
        (Some(holder), Some(renewed)) if holder != me => {
            let until = renewed + SignedDuration::from_secs(i64::from(held_for));
            if until > now {
                return LeaseClaim::HeldBy { holder, until };
            }
        }
        _ => {}
    }
    let ours = current.and_then(|s| s.holder_identity.as_deref()) == Some(me);
    LeaseClaim::Take(LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(seconds),
        acquire_time: if ours {
            current.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
        ..LeaseSpec::default()
    })
}

impl LeaderElection {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration,
            retry: lease_duration / 3,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        let mut last_holder = None;
        loop {
            match self.try_take().await {
                Ok(None) => return,
                Ok(Some(holder)) => {
                    if last_holder.as_ref() != Some(&holder) {
                        tracing::info!(lease = %self.name, %holder, "another replica leads; standing by");
                        last_holder = Some(holder);
                    }
                }
                Err(e) => tracing::warn!(lease = %self.name, error = %e, "could not read or take the Lease"),
            }
            tokio::time::sleep(self.retry).await;
        }
    }

    /// Renews the Lease until it is lost; returns why. The caller must stop leading at once.
    pub async fn hold(&self) -> String {
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.retry).await;
            match self.try_take().await {
                Ok(None) => renewed = tokio::time::Instant::now(),
                Ok(Some(holder)) => return format!("the Lease is now held by {holder}"),
                Err(e) if renewed.elapsed() >= self.lease_duration => {
                    return format!(
                        "the Lease could not be renewed for {:?}: {e}",
                        self.lease_duration
                    );
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "renewing the Lease failed; retrying")
                }
            }
        }
    }

    /// Gives the Lease up so a standby takes over without waiting for it to expire.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(e) = self.api.replace(&self.name, &PostParams::default(), &lease).await {
            tracing::warn!(lease = %self.name, error = %e, "could not release the Lease");
        }
    }

    /// `Ok(None)`: we hold it now; `Ok(Some(holder))`: someone else does.
    async fn try_take(&self) -> Result<Option<String>, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let spec = match claim(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            Timestamp::now(),
            self.lease_duration,
        ) {
            LeaseClaim::HeldBy { holder, .. } => return Ok(Some(holder)),
            LeaseClaim::Take(spec) => spec,
        };
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => Ok(None),
            // Another replica wrote it first (409 on replace or create): it holds it.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Some("another replica".into())),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1_700_000_000 + seconds)
    }

    fn held(by: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(by.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(t(0))),
            renew_time: Some(MicroTime(t(renewed))),
            lease_transitions: Some(2),
            ..LeaseSpec::default()
        }
    }

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn a_free_lease_is_taken() {
        let LeaseClaim::Take(spec) = claim(None, "a", t(5), D) else {
            panic!("free lease must be taken")
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(1));
        assert_eq!(spec.acquire_time, Some(MicroTime(t(5))));
    }

    #[test]
    fn a_live_lease_of_another_replica_is_respected_until_it_expires() {
        assert_eq!(
            claim(Some(&held("b", 10)), "a", t(24), D),
            LeaseClaim::HeldBy {
                holder: "b".into(),
                until: t(25)
            }
        );
        let LeaseClaim::Take(spec) = claim(Some(&held("b", 10)), "a", t(25), D) else {
            panic!("expired")
        };
        assert_eq!(spec.lease_transitions, Some(3));
    }

    #[test]
    fn our_own_lease_is_renewed_without_a_transition() {
        let LeaseClaim::Take(spec) = claim(Some(&held("a", 10)), "a", t(12), D) else {
            panic!("ours")
        };
        assert_eq!(spec.renew_time, Some(MicroTime(t(12))));
        assert_eq!(spec.acquire_time, Some(MicroTime(t(0))));
        assert_eq!(spec.lease_transitions, Some(2));
    }

    #[test]
    fn a_released_lease_is_free() {
        let mut released = held("b", 10);
        released.holder_identity = None;
        assert!(matches!(
            claim(Some(&released), "a", t(11), D),
            LeaseClaim::Take(_)
        ));
    }
}
