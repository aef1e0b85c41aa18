//! The generated CRDs on the real API server: the examples are accepted, malformed specs are rejected at
//! create time with a message that says what is wrong, specs are immutable, and `kubectl get` shows the
//! printer columns.

mod common;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use common::{TestNamespace, admin, install_crds, kubectl};

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("streamlake.io", "v1alpha1", kind), plural)
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "streamlake.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec
    }))
    .expect("object")
}

/// Creates the object for real; returns the API server's refusal message, if any.
async fn create(api: &Api<DynamicObject>, kind: &str, name: &str, spec: Value) -> Result<(), String> {
    match api
        .create(&PostParams::default(), &object(kind, name, spec))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "a malformed spec is Invalid (422): {status:?}");
            Err(status.message)
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Creates each spec for real (as `bad-<i>`): the API server must refuse it, saying the expected words.
async fn assert_refused(api: &Api<DynamicObject>, kind: &str, cases: &[(Value, &str)]) {
    for (i, (spec, expected)) in cases.iter().enumerate() {
        let refused = create(api, kind, &format!("bad-{i}"), spec.clone()).await;
        let message = refused.expect_err(&format!("{spec} must be refused"));
        assert!(
            message.contains(expected),
            "{spec}: {message:?} should say {expected:?}"
        );
    }
}

#[tokio::test]
async fn examples_are_accepted_and_malformed_replays_are_rejected_with_the_reason() {
    let client = admin().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crds").await;
    let replays: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns.name, &resource("Replay", "replays"));

    let mut accepted = 0;
    for (path, value) in common::examples("Replay") {
        let name = value["metadata"]["name"].as_str().expect("name").to_owned();
        let result = create(&replays, "Replay", &name, value["spec"].clone()).await;
        assert_eq!(result, Ok(()), "{} is accepted", path.display());
        accepted += 1;
    }
    assert!(accepted >= 4, "the examples hold Replay manifests ({accepted})");

    let cases = [
        (
            json!({"dataset": "orders", "from": {}}),
            "from must set exactly one of",
        ),
        (
            json!({"dataset": "orders", "from": {"position": "earliest", "shiftBy": -10}}),
            "from must set exactly one of position (earliest or latest), timestamp, offsets or shiftBy",
        ),
        (
            json!({"dataset": "orders", "from": {"timestamp": "2025-01-02T00:00:00Z"},
                   "to": {"timestamp": "2025-01-01T00:00:00Z"}}),
            "to.timestamp must be after from.timestamp",
        ),
        (
            json!({"dataset": "orders", "from": {"offsets": [{"partition": 0, "offset": 50}]},
                   "to": {"offsets": [{"partition": 0, "offset": 10}]}}),
            "each to.offsets entry must be greater than the from.offsets entry of the same partition",
        ),
        (
            json!({"dataset": "orders", "from": {"timestamp": "last tuesday"}}),
            "must be of type date-time",
        ),
        (
            json!({"dataset": "Orders.V1", "from": {"position": "latest"}}),
            "spec.dataset in body should match",
        ),
        (
            json!({"dataset": "orders", "from": {"position": "middle"}}),
            "Unsupported value: \"middle\"",
        ),
        (
            json!({"dataset": "orders", "from": {"shiftBy": 0}}),
            "shiftBy must not be 0",
        ),
        (
            json!({"dataset": "orders", "from": {"offsets": [{"partition": 1, "offset": 1}, {"partition": 1, "offset": 2}]}}),
            "Duplicate value: {\"partition\":1}",
        ),
        (
            json!({"dataset": "orders", "from": {"offsets": [{"partition": 0, "offset": -1}]}}),
            "should be greater than or equal to 0",
        ),
        (
            json!({"dataset": "orders", "from": {"position": "earliest"}, "to": {}}),
            "to must set exactly one of timestamp or offsets",
        ),
        (
            json!({"dataset": "orders", "from": {"position": "earliest"}, "groupEmptyTimeout": "five minutes"}),
            "spec.groupEmptyTimeout in body should match",
        ),
        (
            json!({"from": {"position": "earliest"}}),
            "spec.dataset: Required value",
        ),
    ];
    assert_refused(&replays, "Replay", &cases).await;
    ns.delete().await;
}

#[tokio::test]
async fn a_replay_spec_cannot_change_after_creation() {
    let client = admin().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crds-immutable").await;
    let replays: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns.name, &resource("Replay", "replays"));
    let spec = json!({"dataset": "orders", "dryRun": true, "from": {"position": "earliest"}});
    create(&replays, "Replay", "fixed", spec).await.expect("created");
    let patch = json!({"spec": {"from": {"position": "latest"}}});
    let err = replays
        .patch("fixed", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("a spec change is refused");
    assert!(
        err.to_string()
            .contains("spec is immutable: delete this Replay and create a new one"),
        "{err}"
    );
    let labels = json!({"metadata": {"labels": {"team": "data"}}});
    replays
        .patch("fixed", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .expect("metadata may change");
    ns.delete().await;
}

#[tokio::test]
async fn the_other_three_kinds_reject_malformed_specs_too() {
    let client = admin().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crds-others").await;
    let api = |kind: &str, plural: &str| -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), &ns.name, &resource(kind, plural))
    };
    let backfills = api("Backfill", "backfills");
    let dlq = api("DlqInspection", "dlqinspections");
    let dq = api("DqCheck", "dqchecks");

    create(
        &backfills,
        "Backfill",
        "ok",
        json!({"dataset": "orders", "startDate": "2025-01-01", "endDate": "2025-01-02"}),
    )
    .await
    .expect("a valid Backfill");
    let backfill_cases = [
        (json!({"dataset": "orders"}), "set exactly one range"),
        (
            json!({"dataset": "orders", "startDate": "2025-01-03", "endDate": "2025-01-01"}),
            "endDate must not be before startDate",
        ),
        (
            json!({"dataset": "orders", "startDate": "2025-01-03"}),
            "startDate and endDate go together",
        ),
        (
            json!({"dataset": "orders", "startTime": "2025-01-01T10:00:00Z", "endTime": "2025-01-01T09:00:00Z"}),
            "endTime must be after startTime",
        ),
        (
            json!({"dataset": "orders", "offsets": [{"partition": 0, "start": 10, "end": 10}]}),
            "end must be greater than start",
        ),
        (
            json!({"dataset": "orders", "startDate": "2025-01-01", "endDate": "2025-01-01", "mode": "Fast"}),
            "Unsupported value",
        ),
    ];
    assert_refused(&backfills, "Backfill", &backfill_cases).await;

    create(
        &dlq,
        "DlqInspection",
        "ok",
        json!({"dataset": "orders", "lastRecords": 100}),
    )
    .await
    .expect("valid");
    let dlq_cases = [
        (
            json!({"dataset": "orders", "topic": "streamlake.orders.dlq", "lastRecords": 5}),
            "set exactly one of dataset or topic",
        ),
        (json!({"dataset": "orders"}), "set exactly one window"),
        (
            json!({"dataset": "orders", "lastRecords": 5, "until": "2025-01-01T00:00:00Z"}),
            "until needs since",
        ),
        (
            json!({"dataset": "orders", "lastRecords": 5, "sampleSize": 1000}),
            "should be less than or equal to 100",
        ),
    ];
    assert_refused(&dlq, "DlqInspection", &dlq_cases).await;

    create(
        &dq,
        "DqCheck",
        "ok",
        json!({"dataset": "orders", "date": "2025-01-01", "checks": {"filesExist": true}}),
    )
    .await
    .expect("valid");
    let dq_cases = [
        (
            json!({"dataset": "orders", "date": "2025-01-01", "checks": {}}),
            "select at least one check",
        ),
        (
            json!({"dataset": "orders", "date": "2025-01-01", "checks": {"filesExist": false}}),
            "select at least one check",
        ),
        (
            json!({"dataset": "orders", "date": "2025-01-01", "startDate": "2025-01-01", "endDate": "2025-01-02",
                   "checks": {"filesExist": true}}),
            "set exactly one of date, or startDate and endDate",
        ),
        (
            json!({"dataset": "orders", "date": "2025-01-01", "checks": {"freshness": {"maxAge": "a while"}}}),
            "should match",
        ),
    ];
    assert_refused(&dq, "DqCheck", &dq_cases).await;
    ns.delete().await;
}

#[tokio::test]
async fn kubectl_get_shows_dataset_phase_progress_and_age() {
    let client = admin().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crds-columns").await;
    let replays: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns.name, &resource("Replay", "replays"));
    create(
        &replays,
        "Replay",
        "shown",
        json!({"dataset": "orders", "dryRun": true, "from": {"position": "earliest"}}),
    )
    .await
    .expect("created");
    let status = json!({"apiVersion": "streamlake.io/v1alpha1", "kind": "Replay",
                        "status": {"phase": "Replaying", "progress": "42%"}});
    replays
        .patch_status(
            "shown",
            &PatchParams::apply("streamlake-tests").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("status written");
    let table = kubectl(&["get", "rpl", "-n", &ns.name]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAME", "DATASET", "PHASE", "PROGRESS", "AGE"]);
    let row: Vec<&str> = lines.next().expect("row").split_whitespace().collect();
    assert_eq!(&row[..4], ["shown", "orders", "Replaying", "42%"]);
    let all = kubectl(&["get", "streamlake", "-n", &ns.name]);
    assert!(
        all.contains("replay.streamlake.io/shown"),
        "the streamlake category lists it: {all}"
    );
    ns.delete().await;
}
