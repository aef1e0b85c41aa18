//! DlqInspection against the real API server and broker: a DLQ holding API rejects and consumer rejects
//! (written with core's header code, as the ingest API and the consumer write them) is summarised by
//! the operator on its ServiceAccount token; fixed records are redriven to the raw topic exactly once.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use streamlake_core::headers::{DlqError, ErrorStage, RecordMetadata};
use streamlake_core::names::DatasetName;
use streamlake_core::rawzone::store::LocalStore;
use streamlake_operator::crd::DlqInspection;
use streamlake_operator::crd::dlq_inspection::{DlqInspectionPhase, DlqInspectionStatus};
use streamlake_operator::dlqinspection::redrive::{Marker, marker_key};
use streamlake_testkit::{http_client, require_env, unique_name, wait_until};
use uuid::Uuid;

use common::{Operator, TestNamespace, kafka, message_says, operator_kubeconfig, scratch_dir};

/// One record as it sits in the DLQ: key, bytes, and why it is there.
struct Reject {
    key: String,
    payload: String,
    stage: ErrorStage,
    error_type: &'static str,
    attempts: Option<&'static str>,
    /// `payload.original_bytes`: the record is an excerpt of one this long.
    original_bytes: Option<u64>,
}

fn reject(key: &str, stage: ErrorStage, error_type: &'static str) -> Reject {
    let payload = json!({"order_id": key, "customer_id": "c-1", "amount": "2.50"}).to_string();
    Reject {
        key: key.to_owned(),
        payload,
        stage,
        error_type,
        attempts: None,
        original_bytes: None,
    }
}

/// Produces the rejects to the DLQ topic (partition by index), returning each record's event id.
async fn produce_rejects(dataset: &DatasetName, rejects: &[Reject]) -> BTreeMap<String, Uuid> {
    let producer: FutureProducer = kafka::config().set("acks", "all").create().expect("producer");
    let mut ids = BTreeMap::new();
    let topic = dataset.dlq_topic();
    for (i, r) in rejects.iter().enumerate() {
        let event_id = Uuid::new_v4();
        let metadata = RecordMetadata {
            event_id,
            schema_version: 1,
            ingested_at: Utc::now(),
            source: "dlq-tests".into(),
            content_type: "application/json".into(),
        };
        let mut headers = metadata.to_headers();
        if let Some(attempts) = r.attempts {
            headers = headers.insert(Header {
                key: "redrive.attempts",
                value: Some(attempts),
            });
        }
        let consumer = r.stage == ErrorStage::Consumer;
        let error = DlqError {
            stage: r.stage,
            error_type: r.error_type.into(),
            message: format!("rejected as {}", r.error_type),
            source_topic: dataset.raw_topic(),
            source_partition: consumer.then_some(0),
            source_offset: consumer.then_some(i as i64),
            failed_at: Utc::now(),
            original_bytes: r.original_bytes,
        };
        let headers = error.append_to(headers);
        let partition = i32::try_from(i % 2).expect("partition");
        let record = FutureRecord::to(&topic)
            .partition(partition)
            .key(&r.key)
            .payload(&r.payload)
            .headers(headers);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("DLQ record delivered");
        ids.insert(r.key.clone(), event_id);
    }
    ids
}

/// Every record of a topic: (key, payload, headers as text).
fn read_all(topic: &str) -> Vec<(String, String, BTreeMap<String, String>)> {
    let offsets = kafka::offsets();
    let marks = offsets.watermarks(topic).expect("watermarks");
    let consumer: BaseConsumer = kafka::config()
        .set("group.id", unique_name("dlq-test-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    for (p, w) in &marks {
        tpl.add_partition_offset(topic, *p, Offset::Offset(w.low))
            .expect("partition");
        remaining += w.high - w.low;
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while remaining > 0 && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            let message = message.expect("record").detach();
            let text = |b: Option<&[u8]>| String::from_utf8(b.unwrap_or_default().to_vec()).expect("utf-8");
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), text(h.value)))
                        .collect::<BTreeMap<_, _>>()
                })
                .unwrap_or_default();
            out.push((text(message.key()), text(message.payload()), headers));
            remaining -= 1;
        }
    }
    assert_eq!(remaining, 0, "read every record of {topic}");
    out
}

async fn inspect(ns: &TestNamespace, name: &str, spec: Value) -> DlqInspectionStatus {
    let inspection: DlqInspection = common::run_to_end(ns, name, spec, Duration::from_secs(90)).await;
    inspection.status.expect("status")
}

fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dlq_inspection_counts_rejects_and_redrives_fixed_records_once() {
    let client = common::admin().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "dlq").await;
    let kubeconfig = operator_kubeconfig(&client, &ns.name).await;
    let lake = scratch_dir(&ns.name).join("lake");
    std::fs::create_dir_all(&lake).expect("lake dir");

    let dataset = DatasetName::new(unique_name("dlq")).expect("dataset name");
    kafka::create_topic(&dataset.dlq_topic(), 2).await;
    kafka::create_topic(&dataset.raw_topic(), 1).await;
    let mut looping = reject("o-loop", ErrorStage::Consumer, "contract_violation");
    looping.attempts = Some("3");
    // What the API dead-letters of a batch record over its size limit: the first bytes, and the length.
    let mut excerpt = reject("o-big", ErrorStage::Api, "record_too_large");
    excerpt.original_bytes = Some(150_000);
    let rejects = [
        reject("o-1", ErrorStage::Api, "contract_violation"),
        reject("o-2", ErrorStage::Api, "contract_violation"),
        reject("o-3", ErrorStage::Api, "contract_violation"),
        reject("o-4", ErrorStage::Api, "invalid_json"),
        reject("o-5", ErrorStage::Consumer, "invalid_json"),
        looping,
        excerpt,
    ];
    let event_ids = produce_rejects(&dataset, &rejects).await;

    let _operator = Operator::start_with_env(
        &kubeconfig,
        &ns.name,
        "dlq-operator",
        &[("STREAMLAKE_RAW_ZONE", &lake)],
    );

    let summary = inspect(
        &ns,
        "summary",
        json!({"dataset": dataset.as_str(), "lastRecords": 100, "sampleSize": 2}),
    )
    .await;
    assert_eq!(
        summary.common.phase,
        Some(DlqInspectionPhase::Succeeded),
        "{summary:?}"
    );
    assert_eq!(summary.total, Some(7));
    assert_eq!(
        summary.by_error_type,
        counts(&[
            ("contract_violation", 4),
            ("invalid_json", 2),
            ("record_too_large", 1)
        ])
    );
    assert_eq!(summary.by_error_stage, counts(&[("api", 5), ("consumer", 2)]));
    assert_eq!(summary.samples.len(), 2);
    assert_eq!(summary.top_messages[0].message, "rejected as contract_violation");
    assert_eq!(summary.top_messages[0].count, 4);
    assert!(summary.first_timestamp.is_some() && summary.last_timestamp.is_some());
    assert_eq!(summary.redriven, None, "no redrive was asked for");
    let report = summary.report.clone().expect("report location");
    let path = report.strip_prefix("file://").expect("local report");
    assert!(path.contains("/reports/dlq/"), "{report}");
    let report: Value = serde_json::from_slice(&std::fs::read(path).expect("report written")).expect("json");
    assert_eq!(report["total"], 7);
    let listed = report["records"].as_array().expect("records");
    assert_eq!(listed.len(), 7);
    let lengths: Vec<&Value> = listed.iter().filter_map(|r| r.get("originalBytes")).collect();
    assert_eq!(
        lengths,
        [&Value::from(150_000)],
        "the excerpt is listed with its length"
    );
    assert!(
        read_all(&dataset.raw_topic()).is_empty(),
        "an inspection alone changes nothing"
    );

    let redrive = json!({
        "dataset": dataset.as_str(), "lastRecords": 100,
        "redrive": {"errorTypes": ["contract_violation", "record_too_large"], "maxAttempts": 3}
    });
    let first = inspect(&ns, "redrive", redrive.clone()).await;
    assert_eq!(
        first.common.phase,
        Some(DlqInspectionPhase::Succeeded),
        "{first:?}"
    );
    assert_eq!(first.redriven, Some(3), "{first:?}");
    assert_eq!(
        first.redrive_skipped,
        counts(&[("excerpt", 1), ("maxAttempts", 1)]),
        "an excerpt is never redriven"
    );
    let raw = read_all(&dataset.raw_topic());
    let mut keys: Vec<&str> = raw.iter().map(|(k, _, _)| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["o-1", "o-2", "o-3"]);
    for (key, payload, headers) in &raw {
        let original = rejects.iter().find(|r| &r.key == key).expect("a redriven reject");
        assert_eq!(payload, &original.payload, "the original bytes");
        assert_eq!(
            headers["event_id"],
            event_ids[key].to_string(),
            "the metadata headers"
        );
        assert_eq!(headers["redrive.attempts"], "1");
        assert_eq!(headers["redrive.dlq.topic"], dataset.dlq_topic());
        assert!(
            !headers.contains_key("error.type"),
            "no failure headers: {headers:?}"
        );
    }

    let second = inspect(&ns, "redrive-again", redrive).await;
    assert_eq!(
        second.common.phase,
        Some(DlqInspectionPhase::Succeeded),
        "{second:?}"
    );
    assert_eq!(second.redriven, Some(0), "{second:?}");
    assert_eq!(
        second.redrive_skipped,
        counts(&[("alreadyRedriven", 3), ("excerpt", 1), ("maxAttempts", 1)])
    );
    assert_eq!(read_all(&dataset.raw_topic()).len(), 3, "nothing redriven twice");

    ns.delete().await;
}

/// The state an operator killed mid-redrive leaves: the window and the raw topic's start offsets in
/// status, claims on two DLQ records, and only the first of them acknowledged in the raw topic. The
/// restarted operator produces the claimed-but-missing record and the unclaimed one, not the first again.
#[tokio::test(flavor = "multi_thread")]
async fn a_redrive_resumed_after_a_crash_produces_only_what_is_missing() {
    let client = common::admin().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "dlq-resume").await;
    let kubeconfig = operator_kubeconfig(&client, &ns.name).await;
    let lake = scratch_dir(&ns.name).join("lake");
    std::fs::create_dir_all(&lake).expect("lake dir");

    let dataset = DatasetName::new(unique_name("dlqr")).expect("dataset name");
    let (dlq, raw) = (dataset.dlq_topic(), dataset.raw_topic());
    kafka::create_topic(&dlq, 2).await;
    kafka::create_topic(&raw, 1).await;
    let rejects = [
        reject("o-1", ErrorStage::Api, "contract_violation"),
        reject("o-2", ErrorStage::Api, "contract_violation"),
        reject("o-3", ErrorStage::Consumer, "contract_violation"),
    ];
    produce_rejects(&dataset, &rejects).await;

    let api: Api<DlqInspection> = ns.api();
    let inspection: DlqInspection = serde_json::from_value(json!({
        "apiVersion": "streamlake.io/v1alpha1", "kind": "DlqInspection",
        "metadata": {"name": "resumed"},
        "spec": {"dataset": dataset.as_str(), "lastRecords": 10, "redrive": {}}
    }))
    .expect("DlqInspection");
    let created = api
        .create(&PostParams::default(), &inspection)
        .await
        .expect("created");
    let uid = created.metadata.uid.clone().expect("uid");
    let crashed = json!({
        "apiVersion": "streamlake.io/v1alpha1", "kind": "DlqInspection",
        "status": {
            "phase": "Running", "topic": dlq, "windowRecords": 3, "redriveTopic": raw,
            "ranges": [{"partition": 0, "start": 0, "end": 2}, {"partition": 1, "start": 0, "end": 1}],
            "redriveStartOffsets": [{"partition": 0, "offset": 0}],
        }
    });
    api.patch_status(
        "resumed",
        &PatchParams::apply("streamlake-operator").force(),
        &Patch::Apply(&crashed),
    )
    .await
    .expect("status of the crashed run");
    // o-1 is DLQ partition 0 offset 0, o-2 partition 1 offset 0: both claimed, only o-1 acknowledged.
    let store = LocalStore::new(lake.clone());
    for (partition, offset) in [(0, 0), (1, 0)] {
        let marker = Marker {
            redrive_id: uid.clone(),
            inspection: format!("{}/resumed", ns.name),
            dlq_topic: dlq.clone(),
            partition,
            offset,
        };
        store
            .put(
                &marker_key(&dlq, partition, offset),
                serde_json::to_vec(&marker).expect("json").into(),
            )
            .await
            .expect("marker written");
    }
    let producer: FutureProducer = kafka::config().set("acks", "all").create().expect("producer");
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "redrive.id",
            value: Some(uid.as_str()),
        })
        .insert(Header {
            key: "redrive.dlq.topic",
            value: Some(dlq.as_str()),
        })
        .insert(Header {
            key: "redrive.dlq.partition",
            value: Some("0"),
        })
        .insert(Header {
            key: "redrive.dlq.offset",
            value: Some("0"),
        });
    producer
        .send(
            FutureRecord::to(&raw)
                .key("o-1")
                .payload(&rejects[0].payload)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .expect("the record redriven before the crash");

    let _operator = Operator::start_with_env(
        &kubeconfig,
        &ns.name,
        "dlq-resume-operator",
        &[("STREAMLAKE_RAW_ZONE", &lake)],
    );
    let status = common::wait_finished::<DlqInspection>(&ns, "resumed", Duration::from_secs(90))
        .await
        .status
        .expect("status");
    assert_eq!(
        status.common.phase,
        Some(DlqInspectionPhase::Succeeded),
        "{status:?}"
    );
    assert_eq!(status.redriven, Some(3), "{status:?}");
    assert!(status.redrive_skipped.is_empty(), "{status:?}");
    let mut positions: Vec<(String, String, String)> = read_all(&raw)
        .into_iter()
        .map(|(key, _, h)| {
            (
                key,
                h["redrive.dlq.partition"].clone(),
                h["redrive.dlq.offset"].clone(),
            )
        })
        .collect();
    positions.sort();
    let expected = [("o-1", "0", "0"), ("o-2", "1", "0"), ("o-3", "0", "1")]
        .map(|(k, p, o)| (k.to_owned(), p.to_owned(), o.to_owned()));
    assert_eq!(positions, expected, "each DLQ record once in the raw topic");

    ns.delete().await;
}

/// Rejects written to the shared `streamlake.orders.dlq` by the platform dev/up deploys: the ingest API
/// (STREAMLAKE_API_URL) refusing invalid orders, and the orders consumer refusing a record that is not
/// JSON. Other tests may reject orders too, so the check is that each of ours is listed in the report
/// with its stage and type, and the counts include them. Nothing is redriven.
#[tokio::test(flavor = "multi_thread")]
async fn rejects_of_the_deployed_api_and_consumer_are_counted_by_type_and_stage() {
    let api_url = require_env("STREAMLAKE_API_URL");
    let client = common::admin().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "dlq-api").await;
    let kubeconfig = operator_kubeconfig(&client, &ns.name).await;
    let lake = scratch_dir(&ns.name).join("lake");
    std::fs::create_dir_all(&lake).expect("lake dir");

    let since = Utc::now() - chrono::Duration::seconds(2);
    let order_id = unique_name("dlq-api");
    let bad_currency = json!({
        "order_id": order_id, "customer_id": "c-1",
        "line_items": [{"sku": "sku-1", "quantity": 1, "unit_price": "1.00"}],
        "amount": "1.00", "currency": "euros", "created_at": "2026-11-01T10:00:00Z"
    })
    .to_string();
    let http = http_client();
    let mut ours = Vec::new();
    for body in [
        bad_currency.as_str(),
        bad_currency.as_str(),
        "{\"order_id\": not json",
    ] {
        let answer = http
            .post(format!("{api_url}/ingest/orders"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("the deployed ingest API answers");
        let status = answer.status().as_u16();
        let answer: Value = answer.json().await.expect("a JSON error");
        assert!(matches!(status, 400 | 422), "{status}: {answer}");
        let dlq = &answer["error"]["dlq"];
        assert_eq!(
            dlq["topic"], "streamlake.orders.dlq",
            "the reject went to the DLQ: {answer}"
        );
        ours.push((
            dlq["partition"].as_i64().expect("partition"),
            dlq["offset"].as_i64().expect("offset"),
            answer["error"]["code"].as_str().expect("code").to_owned(),
        ));
    }
    // A record the API would have refused, produced past it: the deployed consumer dead-letters it.
    let producer: FutureProducer = kafka::config().set("acks", "all").create().expect("producer");
    let delivered = producer
        .send(
            FutureRecord::to("streamlake.orders.raw")
                .key(&order_id)
                .payload("{not json"),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered to the raw topic");
    let (raw_partition, raw_offset) = (delivered.partition, delivered.offset);
    let (source_partition, source_offset) = (raw_partition.to_string(), raw_offset.to_string());
    wait_until(
        "the deployed orders consumer dead-letters the record (is dev/up's platform running?)",
        Duration::from_secs(60),
        || {
            let (p, o) = (source_partition.clone(), source_offset.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    read_all("streamlake.orders.dlq").iter().any(|(_, _, h)| {
                        h.get("source.topic")
                            .is_some_and(|t| t == "streamlake.orders.raw")
                            && h.get("source.partition") == Some(&p)
                            && h.get("source.offset") == Some(&o)
                    })
                })
                .await
                .expect("reader")
            }
        },
    )
    .await;
    let until = Utc::now() + chrono::Duration::seconds(2);

    let _operator = Operator::start_with_env(
        &kubeconfig,
        &ns.name,
        "dlq-api-operator",
        &[("STREAMLAKE_RAW_ZONE", &lake)],
    );
    let rfc3339 = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let status = inspect(
        &ns,
        "api-rejects",
        json!({"dataset": "orders", "since": rfc3339(since), "until": rfc3339(until), "maxRecords": 100000}),
    )
    .await;
    assert_eq!(
        status.common.phase,
        Some(DlqInspectionPhase::Succeeded),
        "{status:?}"
    );
    let at_least = |counts: &BTreeMap<String, i64>, key: &str, n: i64| {
        assert!(
            counts.get(key).copied().unwrap_or(0) >= n,
            "{key} >= {n}: {status:?}"
        );
    };
    at_least(&status.by_error_stage, "api", 3);
    at_least(&status.by_error_stage, "consumer", 1);
    at_least(&status.by_error_type, "contract_violation", 2);
    at_least(&status.by_error_type, "invalid_json", 2);
    let report = status.report.clone().expect("report location");
    let report: Value = serde_json::from_slice(
        &std::fs::read(report.strip_prefix("file://").expect("local report")).expect("report written"),
    )
    .expect("json");
    let records = report["records"].as_array().expect("listed records");
    for (partition, offset, code) in &ours {
        let listed = records
            .iter()
            .find(|r| r["partition"] == *partition && r["offset"] == *offset)
            .unwrap_or_else(|| panic!("our reject at {partition}/{offset} is in the report"));
        assert_eq!(listed["errorType"], code.as_str(), "{listed}");
        assert_eq!(listed["errorStage"], "api", "{listed}");
    }
    let consumer_reject = records
        .iter()
        .find(|r| r["sourcePartition"] == raw_partition && r["sourceOffset"] == raw_offset)
        .unwrap_or_else(|| panic!("the consumer's reject of {raw_partition}/{raw_offset} is in the report"));
    assert_eq!(consumer_reject["errorStage"], "consumer", "{consumer_reject}");
    assert_eq!(consumer_reject["errorType"], "invalid_json", "{consumer_reject}");

    ns.delete().await;
}

#[tokio::test]
async fn the_dlq_inspection_examples_are_accepted_by_the_api_server() {
    let client = common::admin().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "dlq-examples").await;
    let api: Api<DlqInspection> = ns.api();
    let mut accepted = 0;
    for (path, value) in common::examples("DlqInspection") {
        let inspection: DlqInspection = serde_json::from_value(value).expect("a DlqInspection");
        api.create(&PostParams::default(), &inspection)
            .await
            .unwrap_or_else(|e| panic!("{} is accepted: {e}", path.display()));
        accepted += 1;
    }
    assert!(
        accepted >= 2,
        "the examples hold DlqInspection manifests ({accepted})"
    );
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_dlq_inspections_are_refused_with_the_reason() {
    let client = common::admin().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "dlq-bad").await;
    let kubeconfig = operator_kubeconfig(&client, &ns.name).await;
    let lake = scratch_dir(&ns.name).join("lake");
    std::fs::create_dir_all(&lake).expect("lake dir");
    let api: Api<DlqInspection> = ns.api();

    let refused = [
        (
            json!({"dataset": "orders", "topic": "streamlake.orders.dlq", "lastRecords": 1}),
            "set exactly one of dataset or topic",
        ),
        (
            json!({"dataset": "orders", "until": "2026-01-01T00:00:00Z", "lastRecords": 1}),
            "until needs since",
        ),
        (json!({"dataset": "orders", "lastRecords": 0}), "lastRecords"),
    ];
    for (spec, reason) in refused {
        let inspection: DlqInspection = serde_json::from_value(json!({
            "apiVersion": "streamlake.io/v1alpha1", "kind": "DlqInspection",
            "metadata": {"name": unique_name("bad")}, "spec": spec
        }))
        .expect("typed");
        let err = api
            .create(&PostParams::default(), &inspection)
            .await
            .expect_err("the API server refuses it");
        assert!(err.to_string().contains(reason), "{reason}: {err}");
    }

    let _operator = Operator::start_with_env(
        &kubeconfig,
        &ns.name,
        "dlq-bad-operator",
        &[("STREAMLAKE_RAW_ZONE", &lake)],
    );
    let no_dataset = inspect(
        &ns,
        "no-dataset",
        json!({"topic": "legacy-dead-letters", "lastRecords": 5, "redrive": {}}),
    )
    .await;
    assert_eq!(no_dataset.common.phase, Some(DlqInspectionPhase::Failed));
    assert!(
        message_says(&no_dataset.common, "redrive needs a dataset"),
        "{no_dataset:?}"
    );
    let missing = format!("streamlake.{}.dlq", unique_name("missing"));
    let no_topic = inspect(&ns, "no-topic", json!({"topic": missing, "lastRecords": 5})).await;
    assert_eq!(no_topic.common.phase, Some(DlqInspectionPhase::Failed));
    assert_eq!(
        no_topic.common.message.as_deref(),
        Some(format!("topic {missing} does not exist").as_str())
    );

    ns.delete().await;
}
