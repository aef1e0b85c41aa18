"""The Backfill, DLQ-inspection and data-quality DAGs against the local environment. Until the operator
reconciles a kind (issue 6), its tests fail with "operator does not reconcile <Kind> yet" after the
resource they created went without a status for RECONCILE_GRACE_SECONDS."""

import uuid
from datetime import UTC, datetime

import pytest

from dag_runs import load_dag, run_dag
from e2e_env import create_consumer_deployment, unique_dataset, wait_for
from streamlake_airflow.kinds import BACKFILL, DLQ_INSPECTION, DQ_CHECK

pytestmark = pytest.mark.e2e


def assert_failed_with_resource_message(result, create_task: str, wait_task: str) -> None:
    assert result.task_states == {create_task: "success", wait_task: "failed"}
    status = result.resource["status"]
    assert status["message"], status
    assert status["message"] in result.output
    assert "AirflowFailException" in result.output and "outcome=failure" in result.output


# --- Backfill ------------------------------------------------------------------------------------------


def test_backfill_of_an_offset_range_succeeds(kube, capfd, kafka, raw_zone, namespace, operator):
    """An isolated Backfill: a Job from the consumer Deployment's pod template (0 replicas: nothing else
    reads the topic) lands offsets [0, 3) of partition 0."""
    dataset = unique_dataset("bf")
    raw_zone.add_contract(dataset)
    kafka.create_topic(f"streamlake.{dataset}.raw", partitions=1)
    kafka.produce_orders(f"streamlake.{dataset}.raw", 3)
    create_consumer_deployment(kube, namespace, dataset, raw_zone, replicas=0)
    conf = {"dataset": dataset, "start_offset": 0, "end_offset": 3, "partitions": [0]}
    result = run_dag(kube, capfd, BACKFILL, load_dag("streamlake_backfill"), namespace, conf)

    assert result.task_states == {"create_backfill": "success", "wait_for_backfill": "success"}, (
        result.resource
    )
    assert result.resource["spec"]["offsets"] == [{"partition": 0, "start": 0, "end": 3}]
    status = result.resource["status"]
    assert status["phase"] == "Succeeded" and status.get("recordsWritten") == 3, status
    assert "offsets='p0 0..3'" in result.output and "outcome=success" in result.output


def test_backfill_without_a_consumer_deployment_fails_with_its_message(
    kube, capfd, kafka, namespace, operator
):
    dataset = unique_dataset("nobf")
    kafka.create_topic(f"streamlake.{dataset}.raw", partitions=1)
    conf = {"dataset": dataset, "start_date": "2020-01-01", "end_date": "2020-01-02"}
    result = run_dag(kube, capfd, BACKFILL, load_dag("streamlake_backfill"), namespace, conf)

    assert_failed_with_resource_message(result, "create_backfill", "wait_for_backfill")


# --- DlqInspection -------------------------------------------------------------------------------------


def dlq_headers(error_type: str, stage: str) -> dict[str, str]:
    return {
        "error.stage": stage,
        "error.type": error_type,
        "error.message": f"test record rejected as {error_type}",
        "source.topic": "streamlake.x.raw",
        "failed_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def test_dlq_inspection_counts_error_types(kube, capfd, kafka, namespace, operator):
    dataset = unique_dataset("dlq")
    topic = f"streamlake.{dataset}.dlq"
    kafka.create_topic(topic, partitions=1)
    headers = [
        dlq_headers("schema_violation", "api"),
        dlq_headers("schema_violation", "api"),
        dlq_headers("invalid_json", "consumer"),
    ]
    kafka.produce(topic, ['{"bad": 1}', '{"bad": 2}', "not json"], headers=headers)
    result = run_dag(
        kube,
        capfd,
        DLQ_INSPECTION,
        load_dag("streamlake_dlq_inspection"),
        namespace,
        {"dataset": dataset, "last_records": 3},
    )

    assert result.task_states == {"create_dlq_inspection": "success", "wait_for_dlq_inspection": "success"}, (
        result.resource
    )
    status = result.resource["status"]
    assert status["byErrorType"] == {"schema_violation": 2, "invalid_json": 1}
    assert status["byErrorStage"] == {"api": 2, "consumer": 1}
    assert "DLQ error.type schema_violation: 2 records" in result.output
    assert f"topic={topic}" in result.output


def test_dlq_inspection_of_a_missing_topic_fails_with_its_message(kube, capfd, namespace, operator):
    conf = {"topic": f"streamlake.missing-{uuid.uuid4().hex[:8]}.dlq", "last_records": 10}
    result = run_dag(kube, capfd, DLQ_INSPECTION, load_dag("streamlake_dlq_inspection"), namespace, conf)

    assert_failed_with_resource_message(result, "create_dlq_inspection", "wait_for_dlq_inspection")


# --- DqCheck -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def landed_dataset(kube, kafka, raw_zone, namespace, operator) -> tuple[str, str]:
    """A dataset whose records the real consumer landed in the raw zone today: (dataset, UTC date)."""
    dataset = unique_dataset("dq")
    raw_zone.add_contract(dataset)
    topic = f"streamlake.{dataset}.raw"
    kafka.create_topic(topic, partitions=1)
    day = datetime.now(UTC).date().isoformat()
    kafka.produce_orders(topic, 5)
    create_consumer_deployment(kube, namespace, dataset, raw_zone)
    wait_for(
        f"the consumer to commit all 5 records of {topic}",
        120,
        lambda: kafka.committed(f"streamlake-{dataset}-sink") == {0: 5},
    )
    return dataset, day


def test_dq_check_of_a_landed_day_passes(kube, capfd, namespace, landed_dataset):
    dataset, day = landed_dataset
    result = run_dag(
        kube,
        capfd,
        DQ_CHECK,
        load_dag("streamlake_data_quality"),
        namespace,
        {"dataset": dataset, "date": day},
    )

    assert result.task_states == {"create_dq_check": "success", "wait_for_dq_check": "success"}, (
        result.resource
    )
    status = result.resource["status"]
    assert status["phase"] == "Passed"
    assert {c["name"] for c in status["checks"]} >= {
        "filesExist",
        "minRowCount",
        "metadataConsistent",
        "offsetContinuity",
    }
    assert all(c["passed"] for c in status["checks"])
    assert "outcome=success" in result.output and f"offsets='day {day}'" in result.output


def test_dq_check_with_too_few_rows_fails_with_its_message(kube, capfd, namespace, landed_dataset):
    dataset, day = landed_dataset
    conf = {"dataset": dataset, "date": day, "min_row_count": 1_000_000}
    result = run_dag(kube, capfd, DQ_CHECK, load_dag("streamlake_data_quality"), namespace, conf)

    assert_failed_with_resource_message(result, "create_dq_check", "wait_for_dq_check")
    failed = [c for c in result.resource["status"]["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["minRowCount"], failed


def test_dq_check_of_an_empty_day_fails_with_its_message(kube, capfd, kafka, namespace, operator):
    """A dataset that exists (its raw topic does) but landed nothing on the day checked."""
    dataset = unique_dataset("dq")
    kafka.create_topic(f"streamlake.{dataset}.raw", partitions=1)
    conf = {"dataset": dataset, "date": "2020-01-01"}
    result = run_dag(kube, capfd, DQ_CHECK, load_dag("streamlake_data_quality"), namespace, conf)

    assert_failed_with_resource_message(result, "create_dq_check", "wait_for_dq_check")
    assert result.resource["status"]["phase"] == "Failed"
    assert any(not c["passed"] for c in result.resource["status"].get("checks", [])), result.resource[
        "status"
    ]
