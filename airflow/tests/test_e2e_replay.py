"""The Replay DAG against the local environment: the Replay is created in the real API server, the real
operator reconciles it against the real broker, and the tasks end as it does. One test goes through the
`airflow dags test` CLI; the others use `dag.test()`, the same run loop, in this process."""

import pytest

from dag_runs import load_dag, reschedules, run_dag, run_dag_cli
from e2e_env import create_sleeper_deployment, deployment_replicas, list_resources, unique_dataset
from streamlake_airflow.kinds import REPLAY
from streamlake_airflow.naming import RUN_ANNOTATION, resource_name

pytestmark = pytest.mark.e2e
DAG = "streamlake_replay"


@pytest.fixture
def dataset(kube, kafka, namespace, operator) -> str:
    """A dataset with a two-partition raw topic holding 3 records."""
    name = unique_dataset("rpl")
    kafka.create_topic(f"streamlake.{name}.raw", partitions=2)
    kafka.produce(f"streamlake.{name}.raw", ["a", "b", "c"])
    return name


def test_cli_dry_run_succeeds_with_the_plan(kube, namespace, dataset):
    create_sleeper_deployment(kube, namespace, dataset, replicas=0)
    result = run_dag_cli(
        kube, REPLAY, DAG, namespace, {"dataset": dataset, "position": "earliest", "dry_run": True}
    )

    assert result.returncode == 0, result.output[-3000:]
    assert result.task_states == {"create_replay": "success", "wait_for_replay": "success"}
    replay = result.resource
    assert replay["metadata"]["name"] == resource_name(DAG, result.run_id)
    assert replay["metadata"]["annotations"][RUN_ANNOTATION] == f"{DAG}/{result.run_id}"
    assert replay["spec"]["dryRun"] is True and replay["spec"]["from"] == {"position": "earliest"}
    status = replay["status"]
    assert status["phase"] == "Succeeded" and status["recordsTotal"] >= 1
    # The outcome line: dataset, topic, the resolved offset range, execution time, outcome.
    line = next(x for x in result.output.splitlines() if "StreamLake resource=" in x and "outcome=" in x)
    assert f"dataset={dataset}" in line and f"topic=streamlake.{dataset}.raw" in line
    plan = ", ".join(f"p{p['partition']} {p['newOffset']}..{p['endOffset']}" for p in status["plan"])
    assert f"offsets='{plan}'" in line
    assert "execution_time=" in line and "outcome=success" in line


def test_replay_scales_down_resets_and_restores(kube, capfd, namespace, dataset):
    """A real (not dry) replay from `latest`: nothing to re-read, but the consumers really go to 0 and
    back, and the wait outlives the first poll (deferred to the trigger)."""
    deployment = create_sleeper_deployment(kube, namespace, dataset, replicas=1)
    result = run_dag(
        kube, capfd, REPLAY, load_dag(DAG), namespace, {"dataset": dataset, "position": "latest"}
    )

    assert result.task_states == {"create_replay": "success", "wait_for_replay": "success"}
    status = result.resource["status"]
    assert status["phase"] == "Succeeded"
    assert status["saved"]["replicas"] == 1 and status.get("offsetsResetAt")
    assert deployment_replicas(kube, namespace, deployment) == 1
    assert "outcome=success" in result.output
    # The scale-down takes seconds, so the first read found the Replay unfinished and the wait deferred.
    assert "Pausing task as DEFERRED" in result.output


def test_reschedule_mode_waits_without_a_triggerer(kube, capfd, namespace, dataset, monkeypatch):
    monkeypatch.setenv("STREAMLAKE_AIRFLOW_DEFERRABLE", "false")
    dag = load_dag(DAG)
    assert dag.get_task("wait_for_replay").mode == "reschedule"
    create_sleeper_deployment(kube, namespace, dataset, replicas=1)
    result = run_dag(kube, capfd, REPLAY, dag, namespace, {"dataset": dataset, "position": "latest"})

    assert result.task_states == {"create_replay": "success", "wait_for_replay": "success"}
    assert "Pausing task as DEFERRED" not in result.output
    # The scale-down takes seconds, so the first poke found the Replay unfinished and gave the slot back.
    assert reschedules(DAG, result.run_id, "wait_for_replay") >= 1
    assert result.resource["status"]["phase"] == "Succeeded"


def test_failed_replay_fails_the_task_with_its_message(kube, capfd, namespace, operator):
    """No consumer Deployment for the dataset: the operator fails the Replay, the wait task fails with
    the Replay's own status.message, and the create task (which did its job) succeeded."""
    dataset = unique_dataset("nodeploy")
    result = run_dag(
        kube, capfd, REPLAY, load_dag(DAG), namespace, {"dataset": dataset, "position": "earliest"}
    )

    assert result.task_states == {"create_replay": "success", "wait_for_replay": "failed"}
    status = result.resource["status"]
    assert status["phase"] == "Failed" and status["reason"] == "ConsumerDeploymentNotFound"
    name = result.resource["metadata"]["name"]
    expected = f"Replay {namespace}/{name} Failed (ConsumerDeploymentNotFound): {status['message']}"
    assert f"AirflowFailException: {expected}" in result.output
    assert "outcome=failure" in result.output


def test_invalid_params_fail_before_anything_is_created(kube, capfd, namespace, operator):
    before = len(list_resources(kube, REPLAY, namespace))
    result = run_dag(
        kube,
        capfd,
        REPLAY,
        load_dag(DAG),
        namespace,
        {"dataset": "orders", "start_offset": 10, "end_offset": 5, "partitions": [0]},
    )

    assert result.task_states["create_replay"] == "failed"
    assert result.task_states.get("wait_for_replay") in ("upstream_failed", None)
    assert "Replay not created: invalid params: end_offset must be greater than start_offset" in result.output
    assert len(list_resources(kube, REPLAY, namespace)) == before


def test_unknown_conf_keys_are_refused(kube, capfd, namespace, operator):
    result = run_dag(
        kube,
        capfd,
        REPLAY,
        load_dag(DAG),
        namespace,
        {"dataset": "orders", "position": "earliest", "start_ofset": 3},
    )

    assert result.task_states["create_replay"] == "failed"
    assert "unknown param 'start_ofset'" in result.output
