"""The DAGs under a real multi-process Airflow (airflow_stack.py): runs triggered with `airflow dags trigger
--conf`, executed by the scheduler's LocalExecutor, the deferred wait run by a separate triggerer, and a
user marking the deferred task failed through the REST API (the trigger's on_kill deletes the resource).

A Replay is held in WaitingForGroupEmpty by a real member of its consumer group (kafka-console-consumer),
so the wait finds it unfinished and defers every time, for as long as the test needs."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import uuid

import pytest

from airflow_stack import AirflowStack, airflow_stack
from e2e_env import (
    create_sleeper_deployment,
    deployment_replicas,
    get_resource,
    tool,
    unique_dataset,
    wait_for,
)
from streamlake_airflow.kinds import DQ_CHECK, REPLAY
from streamlake_airflow.naming import resource_name

pytestmark = pytest.mark.e2e
TRIGGER_CLASSPATH = "streamlake_airflow.triggers.StreamLakePhaseTrigger"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, operator) -> AirflowStack:
    with airflow_stack(tmp_path_factory.mktemp("airflow-home")) as s:
        yield s


def new_run_id() -> str:
    return f"e2e__{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def group_member(kafka, topic: str, group: str):
    """A live member of `group` until the block ends (or `stop()` is called): the Replay cannot pass
    WaitingForGroupEmpty meanwhile. SIGTERM makes it leave the group at once."""
    proc = subprocess.Popen(
        [
            tool("kafka-console-consumer"),
            "--bootstrap-server",
            kafka.bootstrap,
            "--topic",
            topic,
            "--group",
            group,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )

    def members() -> int:
        out = subprocess.run(
            [
                tool("kafka-consumer-groups"),
                "--bootstrap-server",
                kafka.bootstrap,
                "--describe",
                "--group",
                group,
                "--members",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        return sum(1 for line in out.splitlines() if line.split()[:1] == [group])

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    try:
        wait_for(f"kafka-console-consumer to join {group}", 60, lambda: proc.poll() is None and members() > 0)
        yield stop
    finally:
        stop()


def held_replay_run(stack, kube, namespace, dataset) -> tuple[str, str]:
    """Triggers the Replay DAG and waits until its wait task is deferred, picked up by the triggerer,
    while the Replay waits for the group: (run_id, Replay name)."""
    run_id = new_run_id()
    conf = {"namespace": namespace, "dataset": dataset, "position": "latest", "group_empty_timeout": "3m"}
    stack.trigger("streamlake_replay", run_id, conf)
    name = resource_name("streamlake_replay", run_id)

    ti = stack.wait_task_state("streamlake_replay", run_id, "wait_for_replay", "deferred")
    assert ti["trigger"]["classpath"] == TRIGGER_CLASSPATH, ti["trigger"]
    # The triggerer, not the worker, reads the held phase: its lines go to the task's trigger log.
    held = f"Replay {namespace}/{name} phase WaitingForGroupEmpty"
    wait_for(
        f"the triggerer to log {held!r}",
        90,
        lambda: held in stack.task_log("streamlake_replay", run_id, "wait_for_replay", trigger=True),
    )
    assert stack.task_instance("streamlake_replay", run_id, "wait_for_replay")["state"] == "deferred"
    return run_id, name


def test_data_quality_run_on_an_empty_day_fails_with_the_dq_checks_message(stack, kube, kafka, namespace):
    """`airflow dags trigger` → the scheduler runs both tasks → the DqCheck fails → so does the run."""
    dataset = unique_dataset("sdq")
    kafka.create_topic(f"streamlake.{dataset}.raw", partitions=1)
    run_id = new_run_id()
    stack.trigger(
        "streamlake_data_quality", run_id, {"namespace": namespace, "dataset": dataset, "date": "2020-01-01"}
    )

    assert stack.wait_run_done("streamlake_data_quality", run_id) == "failed"
    assert stack.task_states("streamlake_data_quality", run_id) == {
        "create_dq_check": "success",
        "wait_for_dq_check": "failed",
    }
    dq = get_resource(kube, DQ_CHECK, namespace, resource_name("streamlake_data_quality", run_id))
    assert dq is not None and dq["status"]["phase"] == "Failed", dq
    log = stack.task_log("streamlake_data_quality", run_id, "wait_for_dq_check")
    assert dq["status"]["message"] and dq["status"]["message"] in log, log[-3000:]
    assert "outcome=failure" in log and "AirflowFailException" in log


def test_a_deferred_wait_resumes_through_the_triggerer_to_success(stack, kube, kafka, namespace):
    dataset = unique_dataset("srpl")
    topic = f"streamlake.{dataset}.raw"
    kafka.create_topic(topic, partitions=2)
    kafka.produce(topic, ["a", "b", "c"])
    deployment = create_sleeper_deployment(kube, namespace, dataset, replicas=1)
    with group_member(kafka, topic, f"streamlake-{dataset}-sink") as member_stop:
        run_id, name = held_replay_run(stack, kube, namespace, dataset)
        # Held: the run stays running with its wait deferred, holding no worker slot.
        assert stack.run_state("streamlake_replay", run_id) == "running"
        member_stop()

        assert stack.wait_run_done("streamlake_replay", run_id) == "success"
    assert stack.task_states("streamlake_replay", run_id) == {
        "create_replay": "success",
        "wait_for_replay": "success",
    }
    replay = get_resource(kube, REPLAY, namespace, name)
    assert replay["status"]["phase"] == "Succeeded", replay["status"]
    assert deployment_replicas(kube, namespace, deployment) == 1
    # The triggerer followed the phases; the worker resumed the task after the trigger's event.
    trigger_log = stack.task_log("streamlake_replay", run_id, "wait_for_replay", trigger=True)
    assert f"Replay {namespace}/{name} phase Succeeded" in trigger_log, trigger_log[-3000:]
    assert "Trigger fired event" in trigger_log
    log = stack.task_log("streamlake_replay", run_id, "wait_for_replay")
    assert "Pausing task as DEFERRED" in log and "outcome=success" in log, log[-3000:]


def test_marking_the_deferred_wait_failed_deletes_the_replay(stack, kube, kafka, namespace):
    """The UI's "mark failed" through the REST API: the triggerer cancels the trigger as a user action,
    its on_kill deletes the Replay, and the operator's finalizer gives the consumers back."""
    dataset = unique_dataset("skill")
    topic = f"streamlake.{dataset}.raw"
    kafka.create_topic(topic, partitions=1)
    deployment = create_sleeper_deployment(kube, namespace, dataset, replicas=1)
    with group_member(kafka, topic, f"streamlake-{dataset}-sink"):
        run_id, name = held_replay_run(stack, kube, namespace, dataset)
        wait_for(
            "the operator to scale the consumers down",
            60,
            lambda: deployment_replicas(kube, namespace, deployment) == 0,
        )

        stack.mark_task("streamlake_replay", run_id, "wait_for_replay", "failed")

        wait_for(
            f"Replay {name} to be deleted", 90, lambda: get_resource(kube, REPLAY, namespace, name) is None
        )
    assert deployment_replicas(kube, namespace, deployment) == 1
    assert stack.wait_run_done("streamlake_replay", run_id) == "failed"
    trigger_log = stack.task_log("streamlake_replay", run_id, "wait_for_replay", trigger=True)
    assert "Trigger cancelled by user action, invoking on_kill" in trigger_log, trigger_log[-3000:]
    assert f"task killed: deleted Replay {namespace}/{name}" in trigger_log
