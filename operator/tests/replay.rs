//! The Replay controller end to end on the local environment: the operator binary runs with its
//! ServiceAccount's token; the consumer Deployment runs pods on the process kubelet; offsets live in
//! the real broker. The pods here are not Kafka members (they only sleep): the group's membership is
//! played by real rdkafka members the test controls, so each path (empty, never empty, deleted,
//! restarted) can be forced. `replay_consumer.rs` runs the real consumer.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::api::{Api, DeleteParams};
use serde_json::json;
use streamlake_core::names;
use streamlake_operator::crd::{Replay, ReplayPhase};
use streamlake_testkit::{unique_name, wait_until};

use common::kafka::{self, GroupMember};
use common::*;

const PARTITIONS: i32 = 3;
const PER_PARTITION: i64 = 10;

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("fits")
}

/// A dataset whose topic holds 10 records per partition (record i at base + i s), fully consumed by its
/// group, and a two-replica consumer Deployment; a namespace with the operator running in it.
struct Setup {
    ns: TestNamespace,
    operator: Operator,
    kubeconfig: std::path::PathBuf,
    dataset: String,
    topic: String,
    group: String,
    deployment: String,
    base_ms: i64,
}

impl Setup {
    async fn new(prefix: &str) -> Self {
        let client = admin().await;
        install_crds(&client).await;
        let ns = TestNamespace::create(&client, prefix).await;
        let dataset = unique_name("ds");
        let (topic, group) = (names::raw_topic(&dataset), names::consumer_group(&dataset));
        let base_ms = now_ms() - 3_600_000;
        kafka::create_topic(&topic, PARTITIONS).await;
        kafka::produce_timed(&topic, PARTITIONS, PER_PARTITION, base_ms).await;
        kafka::commit(&group, &topic, ends()).await;
        let deployment = format!("{dataset}-consumer");
        create_deployment(&ns, &sleeper(&deployment, &dataset, 2)).await;
        wait_replicas(&ns, &deployment, 2, Duration::from_secs(60)).await;
        let kubeconfig = operator_kubeconfig(&client, &ns.name).await;
        let operator = Operator::start(&kubeconfig, &ns.name, "first");
        Self {
            ns,
            operator,
            kubeconfig,
            dataset,
            topic,
            group,
            deployment,
            base_ms,
        }
    }

    fn replay_spec(&self, from: serde_json::Value) -> serde_json::Value {
        json!({"dataset": self.dataset, "from": from})
    }

    /// The consumers are back at their 2 replicas, no offset was touched, and the Replay `replay`
    /// published an Event with `reason`.
    async fn assert_given_back_untouched(&self, replay: &str, reason: &str) {
        wait_replicas(&self.ns, &self.deployment, 2, Duration::from_secs(60)).await;
        assert_eq!(
            kafka::committed(&self.group, &self.topic).await,
            ends(),
            "no offset was touched"
        );
        let reasons = event_reasons(&self.ns, replay).await;
        assert!(reasons.iter().any(|r| r == reason), "{reason} in {reasons:?}");
    }

    /// Deletes the Replays while the operator still runs (it holds finalizers on unfinished ones).
    async fn finish(self) {
        remove_replays(&self.ns).await;
        drop(self.operator);
        self.ns.delete().await;
    }
}

fn ends() -> BTreeMap<i32, i64> {
    (0..PARTITIONS).map(|p| (p, PER_PARTITION)).collect()
}

fn all(offset: i64) -> BTreeMap<i32, i64> {
    (0..PARTITIONS).map(|p| (p, offset)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_group_is_reset_the_cli_shows_it_and_progress_reaches_100_percent() {
    let s = Setup::new("replay-reset").await;
    let before = pod_uids(&s.ns, &s.deployment).await;
    let from = json!({"timestamp": ts(s.base_ms + 4_000)});
    create_replay(&s.ns, "from-4s", s.replay_spec(from)).await;

    // Nobody consumes here, so the Replay stays Replaying with the reset offsets committed.
    let replay = wait_phase(&s.ns, "from-4s", ReplayPhase::Replaying, Duration::from_secs(90)).await;
    let status = replay.status.clone().expect("status");
    assert_eq!(
        plan_rows(&status),
        (0..PARTITIONS)
            .map(|p| (p, Some(PER_PARTITION), 4, PER_PARTITION))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        kafka::cli_offsets(&s.group),
        all(4),
        "kafka-consumer-groups shows the reset offsets"
    );
    assert_eq!(status.records_total, Some(18));
    assert_eq!(status.progress.as_deref(), Some("0%"));
    assert_eq!(status.saved.as_ref().map(|saved| saved.replicas), Some(2));

    // The consumers were stopped (their pods are gone) and came back as new pods.
    wait_replicas(&s.ns, &s.deployment, 2, Duration::from_secs(60)).await;
    let after = pod_uids(&s.ns, &s.deployment).await;
    assert!(
        before.iter().all(|uid| !after.contains(uid)),
        "the old pods were stopped: {before:?} vs {after:?}"
    );

    // The group catches up half way, then to the end: progress follows, then Succeeded at 100%.
    kafka::commit(&s.group, &s.topic, all(7)).await;
    wait_replay(&s.ns, "from-4s", "50% progress", Duration::from_secs(30), |r| {
        r.status.as_ref().and_then(|st| st.progress.as_deref()) == Some("50%")
    })
    .await;
    kafka::commit(&s.group, &s.topic, ends()).await;
    let done = wait_phase(&s.ns, "from-4s", ReplayPhase::Succeeded, Duration::from_secs(30)).await;
    wait_replay(
        &s.ns,
        "from-4s",
        "its finalizer is released",
        Duration::from_secs(30),
        |r| r.metadata.finalizers.as_ref().is_none_or(Vec::is_empty),
    )
    .await;
    let status = done.status.expect("status");
    assert_eq!(
        (status.progress.as_deref(), status.records_replayed),
        (Some("100%"), Some(18))
    );
    let reasons = event_reasons(&s.ns, "from-4s").await;
    for expected in [
        "ScalingDown",
        "WaitingForGroupEmpty",
        "ResettingOffsets",
        "ScalingUp",
        "Replaying",
        "Succeeded",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "Event {expected} in {reasons:?}"
        );
    }
    let table = kubectl(&["get", "replays", "-n", &s.ns.name]);
    assert!(
        table
            .lines()
            .any(|l| l.contains("from-4s") && l.contains("Succeeded") && l.contains("100%")),
        "{table}"
    );
    let metrics = s.operator.metrics_text().await.expect("metrics endpoint");
    assert!(
        metrics
            .contains("streamlake_operator_phase_transitions_total{kind=\"Replay\",phase=\"Succeeded\"} 1")
    );
    assert!(metrics.contains("streamlake_operator_reconcile_duration_seconds_count{kind=\"Replay\"}"));
    assert!(metrics.contains("streamlake_operator_leader 1"));
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_never_empties_fails_after_the_timeout_with_the_consumers_restored() {
    let s = Setup::new("replay-timeout").await;
    let member = GroupMember::join(&s.group, &s.topic).await;
    let spec = json!({"dataset": s.dataset, "from": {"position": "earliest"}, "groupEmptyTimeout": "8s"});
    create_replay(&s.ns, "never-empty", spec).await;
    wait_phase(
        &s.ns,
        "never-empty",
        ReplayPhase::WaitingForGroupEmpty,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        spec_replicas(&s.ns, &s.deployment).await,
        Some(0),
        "consumers are held at zero meanwhile"
    );

    let failed = wait_phase(&s.ns, "never-empty", ReplayPhase::Failed, Duration::from_secs(60)).await;
    let status = failed.status.expect("status");
    assert_eq!(status.common.reason.as_deref(), Some("GroupNotEmptyTimeout"));
    let message = status.common.message.unwrap_or_default();
    assert!(
        message.contains("still had 1 member") && message.contains("after 8s"),
        "{message}"
    );
    assert!(message.ends_with("consumers restored to 2 replicas"), "{message}");
    s.assert_given_back_untouched("never-empty", "GroupNotEmptyTimeout")
        .await;
    member.leave();
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_replay_mid_way_restores_the_consumers() {
    let s = Setup::new("replay-delete").await;
    let member = GroupMember::join(&s.group, &s.topic).await;
    create_replay(&s.ns, "deleted", s.replay_spec(json!({"position": "earliest"}))).await;
    wait_phase(
        &s.ns,
        "deleted",
        ReplayPhase::WaitingForGroupEmpty,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(spec_replicas(&s.ns, &s.deployment).await, Some(0));

    let replays: Api<Replay> = s.ns.api();
    replays
        .delete("deleted", &DeleteParams::default())
        .await
        .expect("delete");
    wait_until(
        "the Replay is gone (finalizer released)",
        Duration::from_secs(60),
        || {
            let replays = replays.clone();
            async move { replays.get_opt("deleted").await.is_ok_and(|r| r.is_none()) }
        },
    )
    .await;
    s.assert_given_back_untouched("deleted", "Restored").await;
    member.leave();
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_mid_way_is_resumed_by_its_successor() {
    let mut s = Setup::new("replay-restart").await;
    let member = GroupMember::join(&s.group, &s.topic).await;
    create_replay(
        &s.ns,
        "resumed",
        s.replay_spec(json!({"offsets": [{"partition": 1, "offset": 2}]})),
    )
    .await;
    wait_phase(
        &s.ns,
        "resumed",
        ReplayPhase::WaitingForGroupEmpty,
        Duration::from_secs(60),
    )
    .await;
    s.operator.kill();
    assert_eq!(
        spec_replicas(&s.ns, &s.deployment).await,
        Some(0),
        "the crash left the consumers at zero"
    );

    // While no operator runs, the group empties. A new replica takes the Lease once it expires.
    member.leave();
    let mut successor = Operator::start(&s.kubeconfig, &s.ns.name, "second");
    let replay = wait_phase(&s.ns, "resumed", ReplayPhase::Replaying, Duration::from_secs(90)).await;
    let status = replay.status.expect("status");
    assert_eq!(
        status.saved.map(|saved| saved.replicas),
        Some(2),
        "the replicas remembered before the crash"
    );
    wait_replicas(&s.ns, &s.deployment, 2, Duration::from_secs(60)).await;
    let expected = BTreeMap::from([(0, PER_PARTITION), (1, 2), (2, PER_PARTITION)]);
    assert_eq!(
        kafka::cli_offsets(&s.group),
        expected,
        "only partition 1 was moved"
    );
    kafka::commit(&s.group, &s.topic, ends()).await;
    wait_phase(&s.ns, "resumed", ReplayPhase::Succeeded, Duration::from_secs(30)).await;
    assert!(successor.log_text().contains("leading"), "the successor led");
    assert!(successor.exited().is_none());
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replay_of_the_same_group_waits_in_the_queue() {
    let s = Setup::new("replay-queue").await;
    let member = GroupMember::join(&s.group, &s.topic).await;
    create_replay(&s.ns, "first", s.replay_spec(json!({"position": "earliest"}))).await;
    wait_phase(
        &s.ns,
        "first",
        ReplayPhase::WaitingForGroupEmpty,
        Duration::from_secs(60),
    )
    .await;
    create_replay(&s.ns, "second", s.replay_spec(json!({"shiftBy": -1}))).await;
    let queued = wait_phase(&s.ns, "second", ReplayPhase::Queued, Duration::from_secs(30)).await;
    let waiting_for = queued.status.and_then(|st| st.waiting_for);
    assert_eq!(waiting_for, Some(format!("{}/first", s.ns.name)));

    member.leave();
    wait_phase(&s.ns, "first", ReplayPhase::Replaying, Duration::from_secs(60)).await;
    let second = s.ns.api::<Replay>().get("second").await.expect("second");
    assert_eq!(
        phase(&second),
        Some(ReplayPhase::Queued),
        "still waiting while the first replays"
    );
    kafka::commit(&s.group, &s.topic, ends()).await;
    wait_phase(&s.ns, "first", ReplayPhase::Succeeded, Duration::from_secs(30)).await;
    // Now the second one runs: shift by -1 from the committed end.
    wait_phase(&s.ns, "second", ReplayPhase::Replaying, Duration::from_secs(60)).await;
    assert_eq!(kafka::cli_offsets(&s.group), all(PER_PARTITION - 1));
    kafka::commit(&s.group, &s.topic, ends()).await;
    wait_phase(&s.ns, "second", ReplayPhase::Succeeded, Duration::from_secs(30)).await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_and_a_keda_scaled_object_are_paused_and_restored() {
    let s = Setup::new("replay-autoscalers").await;
    let client = admin().await;
    common::autoscalers::install_scaled_object_crd(&client).await;
    common::autoscalers::create_hpa(&s.ns, "consumer-hpa", &s.deployment).await;
    common::autoscalers::create_scaled_object(&s.ns, "consumer-lag", &s.deployment, Some("3")).await;
    let member = GroupMember::join(&s.group, &s.topic).await;
    create_replay(&s.ns, "paused", s.replay_spec(json!({"position": "earliest"}))).await;
    wait_phase(
        &s.ns,
        "paused",
        ReplayPhase::WaitingForGroupEmpty,
        Duration::from_secs(60),
    )
    .await;

    let key = format!("{}/paused", s.ns.name);
    let hpa = common::autoscalers::hpa_annotations(&s.ns, "consumer-hpa").await;
    assert_eq!(hpa.get("streamlake.io/paused-by"), Some(&key));
    let so = common::autoscalers::scaled_object_annotations(&s.ns, "consumer-lag").await;
    assert_eq!(
        so.get("autoscaling.keda.sh/paused-replicas").map(String::as_str),
        Some("0")
    );
    assert_eq!(so.get("streamlake.io/paused-by"), Some(&key));

    member.leave();
    let replay = wait_phase(&s.ns, "paused", ReplayPhase::Replaying, Duration::from_secs(60)).await;
    let saved = replay.status.and_then(|st| st.saved).expect("saved");
    assert_eq!(saved.hpas, ["consumer-hpa"]);
    assert_eq!(saved.scaled_objects[0].paused_replicas.as_deref(), Some("3"));
    let hpa = common::autoscalers::hpa_annotations(&s.ns, "consumer-hpa").await;
    assert!(!hpa.contains_key("streamlake.io/paused-by"), "{hpa:?}");
    let so = common::autoscalers::scaled_object_annotations(&s.ns, "consumer-lag").await;
    assert_eq!(
        so.get("autoscaling.keda.sh/paused-replicas").map(String::as_str),
        Some("3"),
        "put back as it was"
    );
    assert!(!so.contains_key("streamlake.io/paused-by"));
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_consumers_and_a_dry_run_change_nothing() {
    let s = Setup::new("replay-dry").await;
    let spec = json!({"dataset": s.dataset, "dryRun": true, "from": {"timestamp": ts(s.base_ms + 8_000)}});
    create_replay(&s.ns, "dry", spec).await;
    let dry = wait_phase(&s.ns, "dry", ReplayPhase::Succeeded, Duration::from_secs(60)).await;
    let status = dry.status.expect("status");
    assert!(
        status
            .plan
            .iter()
            .all(|p| p.new_offset == 8 && p.end_offset == PER_PARTITION),
        "{:?}",
        status.plan
    );
    assert!(status.common.message.is_some_and(|m| m.starts_with("dry run")));
    assert_eq!(status.saved, None);
    assert_eq!(kafka::cli_offsets(&s.group), ends(), "a dry run commits nothing");
    assert_eq!(spec_replicas(&s.ns, &s.deployment).await, Some(2));

    let spec = json!({"dataset": "nobody-consumes-this", "from": {"position": "earliest"}});
    create_replay(&s.ns, "orphan", spec).await;
    let failed = wait_phase(&s.ns, "orphan", ReplayPhase::Failed, Duration::from_secs(60)).await;
    let status = failed.status.expect("status");
    assert_eq!(
        status.common.reason.as_deref(),
        Some("ConsumerDeploymentNotFound")
    );
    assert!(message_says(
        &status.common,
        "streamlake.io/dataset=nobody-consumes-this"
    ));

    // Consumers, but no topic: the Replay fails before it stops them.
    let lonely = unique_name("no-topic");
    create_deployment(&s.ns, &sleeper("lonely", &lonely, 1)).await;
    wait_replicas(&s.ns, "lonely", 1, Duration::from_secs(60)).await;
    let pods = pod_uids(&s.ns, "lonely").await;
    create_replay(
        &s.ns,
        "no-topic",
        json!({"dataset": lonely, "from": {"position": "earliest"}}),
    )
    .await;
    let failed = wait_phase(&s.ns, "no-topic", ReplayPhase::Failed, Duration::from_secs(60)).await;
    let status = failed.status.expect("status");
    assert_eq!(status.common.reason.as_deref(), Some("OffsetsUnavailable"));
    assert!(message_says(&status.common, "does not exist"));
    assert_eq!(
        pod_uids(&s.ns, "lonely").await,
        pods,
        "the consumers were never stopped"
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_the_operator_cannot_read_is_reported_and_others_still_reconcile() {
    let s = Setup::new("replay-malformed").await;
    create_replay(
        &s.ns,
        "unreadable",
        json!({"dataset": "nobody", "dryRun": true, "from": {"position": "latest"}}),
    )
    .await;
    wait_phase(&s.ns, "unreadable", ReplayPhase::Failed, Duration::from_secs(60)).await;
    // A hand-written status the API server accepts (10 fractional digits) but no Rust client can
    // read: the object must not break the watcher for the others.
    let resource = kube::core::ApiResource::erase::<Replay>(&());
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(s.ns.client(), &s.ns.name, &resource);
    let status = json!({"apiVersion": "streamlake.io/v1alpha1", "kind": "Replay",
                        "status": {"startedAt": "2025-01-31T12:00:00.1234567891Z"}});
    let by_hand = kube::api::PatchParams::apply("someone-by-hand");
    api.patch_status("unreadable", &by_hand, &kube::api::Patch::Apply(&status))
        .await
        .expect("accepted");
    wait_until(
        "the unreadable Replay is reported on its status",
        Duration::from_secs(60),
        || async { raw_replay(&s.ns, "unreadable").await["status"]["reason"] == "MalformedObject" },
    )
    .await;
    let status = raw_replay(&s.ns, "unreadable").await["status"].clone();
    assert_eq!(status["phase"], "Failed");
    let message = status["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("cannot be read"), "{message}");

    create_replay(
        &s.ns,
        "fine",
        json!({"dataset": s.dataset, "dryRun": true, "from": {"position": "latest"}}),
    )
    .await;
    wait_phase(&s.ns, "fine", ReplayPhase::Succeeded, Duration::from_secs(60)).await;
    assert!(s.operator.log_text().contains("malformed Replay"));
    // Deleting it works too: the operator releases its finalizer.
    let replays: Api<Replay> = s.ns.api();
    let _ = replays.delete("unreadable", &DeleteParams::default()).await;
    wait_until(
        "the unreadable Replay is gone",
        Duration::from_secs(60),
        || async { api.get_opt("unreadable").await.is_ok_and(|r| r.is_none()) },
    )
    .await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_operators_one_leads_and_the_other_takes_over_when_it_dies() {
    let s = Setup::new("replay-leader").await;
    let (mut a, mut b) = (s.operator, Operator::start(&s.kubeconfig, &s.ns.name, "second"));
    let leaders = |a: f64, b: f64| (a, b) == (1.0, 0.0) || (a, b) == (0.0, 1.0);
    wait_until(
        "exactly one of the two leads",
        Duration::from_secs(30),
        || async {
            let (x, y) = (
                a.metric("streamlake_operator_leader").await,
                b.metric("streamlake_operator_leader").await,
            );
            x.zip(y).is_some_and(|(x, y)| leaders(x, y))
        },
    )
    .await;
    let a_leads = a.metric("streamlake_operator_leader").await == Some(1.0);
    let (leader, standby) = if a_leads {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    // The standby stays idle: two replicas never reconcile at once.
    create_replay(
        &s.ns,
        "before-failover",
        json!({"dataset": s.dataset, "dryRun": true, "from": {"position": "latest"}}),
    )
    .await;
    wait_phase(
        &s.ns,
        "before-failover",
        ReplayPhase::Succeeded,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        !standby.log_text().contains("transition"),
        "the standby reconciled: {}",
        standby.log_text()
    );

    leader.kill();
    wait_until("the standby leads", Duration::from_secs(30), || async {
        standby.metric("streamlake_operator_leader").await == Some(1.0)
    })
    .await;
    let spec = json!({"dataset": s.dataset, "from": {"position": "latest"}});
    create_replay(&s.ns, "after-failover", spec).await;
    wait_phase(
        &s.ns,
        "after-failover",
        ReplayPhase::Succeeded,
        Duration::from_secs(90),
    )
    .await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = s.ns.api();
    let lease = leases.get("streamlake-operator").await.expect("lease");
    assert_eq!(
        lease.spec.and_then(|sp| sp.holder_identity),
        Some(standby.identity.clone())
    );
    remove_replays(&s.ns).await;
    drop((a, b));
    s.ns.delete().await;
}

fn ts(ms: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_millisecond(ms)
        .expect("valid")
        .to_string()
}
