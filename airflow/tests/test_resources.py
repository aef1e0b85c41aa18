"""The shared create/wait/kill machinery against the real API server (with the operator running, so any
finalizer is honoured): retries re-attach, foreign or changed objects are refused, the API server's own
validation message reaches the user, and a killed task deletes what it stands for."""

import asyncio
import contextlib
import uuid
from types import SimpleNamespace

import pytest
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes import client

from dag_runs import load_dag
from e2e_env import get_resource, list_resources, wait_for
from streamlake_airflow.kinds import DQ_CHECK
from streamlake_airflow.naming import RUN_ANNOTATION, ownership, resource_name
from streamlake_airflow.operators import CreateStreamLakeResourceOperator, StreamLakeResourceSensor
from streamlake_airflow.resources import ResourceError, StreamLakeResources
from streamlake_airflow.triggers import StreamLakePhaseTrigger

pytestmark = pytest.mark.e2e
DAG = "streamlake_data_quality"


@pytest.fixture
def run(namespace, operator):
    """A task context as Airflow hands it over, for a fresh DAG run of the data-quality DAG."""
    dag = load_dag(DAG)
    conf = {"namespace": namespace, "dataset": f"res-{uuid.uuid4().hex[:6]}", "date": "2020-01-01"}
    params = {name: param.value for name, param in dag.params.items() if param.has_value} | conf
    run_id = f"manual__test-{uuid.uuid4().hex[:8]}"
    return {"dag": dag, "run_id": run_id, "dag_run": SimpleNamespace(conf=conf), "params": params}


def resources() -> StreamLakeResources:
    return StreamLakeResources(KubernetesHook())


def gone(kube, ns, name) -> bool:
    return get_resource(kube, DQ_CHECK, ns, name) is None


def test_a_retried_create_reattaches_instead_of_duplicating(kube, namespace, run):
    first = CreateStreamLakeResourceOperator(task_id="create_dq_check", kind="DqCheck").execute(run)
    retry = CreateStreamLakeResourceOperator(task_id="create_dq_check", kind="DqCheck").execute(run)

    assert first == {"namespace": namespace, "name": resource_name(DAG, run["run_id"]), "created": True}
    assert retry == first | {"created": False}
    mine = [
        o
        for o in list_resources(kube, DQ_CHECK, namespace)
        if o["metadata"]["annotations"].get(RUN_ANNOTATION) == f"{DAG}/{run['run_id']}"
    ]
    assert len(mine) == 1
    assert mine[0]["spec"]["date"] == "2020-01-01"


def test_a_changed_spec_is_not_adopted(namespace, run):
    name = resource_name(DAG, run["run_id"])
    labels, annotations = ownership(DAG, run["run_id"], "create_dq_check")
    r = resources()
    spec = {"dataset": "orders", "date": "2020-01-01", "checks": {"filesExist": True}}
    assert r.create_or_attach(
        DQ_CHECK, namespace, r.manifest(DQ_CHECK, name, spec, labels, annotations)
    ).created
    changed = r.manifest(DQ_CHECK, name, spec | {"date": "2020-01-02"}, labels, annotations)
    with pytest.raises(ResourceError, match=r"exists with a different spec.*specs are immutable"):
        r.create_or_attach(DQ_CHECK, namespace, changed)


def test_an_object_not_made_by_this_run_is_not_adopted(namespace, run):
    name = resource_name(DAG, run["run_id"])
    r = resources()
    spec = {"dataset": "orders", "date": "2020-01-01", "checks": {"filesExist": True}}
    r.create_or_attach(DQ_CHECK, namespace, r.manifest(DQ_CHECK, name, spec, {}, {"note": "made by hand"}))
    labels, annotations = ownership(DAG, run["run_id"], "create_dq_check")
    with pytest.raises(ResourceError, match="was not made by DAG run"):
        r.create_or_attach(DQ_CHECK, namespace, r.manifest(DQ_CHECK, name, spec, labels, annotations))


def test_the_api_servers_validation_message_reaches_the_user(namespace, run):
    """Specs that bypass our param checks are still refused, by the CRD's CEL rules, with their message."""
    r = resources()
    spec = {
        "dataset": "orders",
        "date": "2020-01-01",
        "startDate": "2020-01-01",
        "endDate": "2020-01-02",
        "checks": {"filesExist": True},
    }
    with pytest.raises(ResourceError, match="set exactly one of date, or startDate and endDate"):
        r.create_or_attach(DQ_CHECK, namespace, r.manifest(DQ_CHECK, "cel-refused", spec, {}, {}))


def test_killing_the_create_task_deletes_what_it_created(kube, namespace, run):
    task = CreateStreamLakeResourceOperator(task_id="create_dq_check", kind="DqCheck")
    name = task.execute(run)["name"]
    assert not gone(kube, namespace, name)
    task.on_kill()
    wait_for(f"DqCheck {name} to be deleted", 30, lambda: gone(kube, namespace, name))


def test_a_reattaching_task_does_not_delete_on_kill(kube, namespace, run):
    """Only the attempt that created the object deletes it; a retry that found it leaves it to the wait."""
    name = CreateStreamLakeResourceOperator(task_id="create_dq_check", kind="DqCheck").execute(run)["name"]
    retry = CreateStreamLakeResourceOperator(task_id="create_dq_check", kind="DqCheck")
    retry.execute(run)
    retry.on_kill()
    assert not gone(kube, namespace, name)


def test_killing_the_wait_deletes_the_resource(kube, namespace, run):
    name = CreateStreamLakeResourceOperator(task_id="create_dq_check", kind="DqCheck").execute(run)["name"]
    sensor = StreamLakeResourceSensor(task_id="wait_for_dq_check", kind="DqCheck", deferrable=False)
    # With a DqCheck controller running this one may already have failed (no data for 2020-01-01).
    with contextlib.suppress(AirflowFailException):
        sensor.poke(run)
    sensor.on_kill()
    wait_for(f"DqCheck {name} to be deleted", 30, lambda: gone(kube, namespace, name))


def test_killing_the_deferred_wait_deletes_the_resource(kube, namespace, run):
    """What the triggerer calls when a user marks or clears a deferred task."""
    name = CreateStreamLakeResourceOperator(task_id="create_dq_check", kind="DqCheck").execute(run)["name"]
    trigger = StreamLakePhaseTrigger(
        kind="DqCheck",
        name=name,
        namespace=namespace,
        kubernetes_conn_id="kubernetes_default",
        poll_interval=1,
    )
    asyncio.run(trigger.on_kill())
    wait_for(f"DqCheck {name} to be deleted", 30, lambda: gone(kube, namespace, name))


def test_a_wait_on_a_deleted_resource_fails_clearly(namespace, run):
    name = resource_name(DAG, run["run_id"])
    sensor = StreamLakeResourceSensor(task_id="wait_for_dq_check", kind="DqCheck", deferrable=False)
    with pytest.raises(AirflowFailException, match=f"DqCheck {namespace}/{name} is gone"):
        sensor.poke(run)

    async def first_event():
        trigger = StreamLakePhaseTrigger(
            kind="DqCheck",
            name=name,
            namespace=namespace,
            kubernetes_conn_id="kubernetes_default",
            poll_interval=1,
        )
        async for event in trigger.run():
            return event.payload

    assert asyncio.run(first_event()) == {"state": "gone"}


def test_trigger_serializes_to_its_own_arguments():
    trigger = StreamLakePhaseTrigger(
        kind="Replay",
        name="n",
        namespace="ns",
        kubernetes_conn_id="c",
        poll_interval=2.5,
        delete_on_kill=False,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "streamlake_airflow.triggers.StreamLakePhaseTrigger"
    assert StreamLakePhaseTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_an_object_still_being_deleted_is_retried_not_adopted(kube, namespace, run):
    """A retry right after a kill finds the old object terminating: retry later, do not wait on it."""
    name = resource_name(DAG, run["run_id"])
    spec = {"dataset": "orders", "date": "2020-01-01", "checks": {"filesExist": True}}
    held = {"apiVersion": "streamlake.io/v1alpha1", "kind": "DqCheck", "spec": spec}
    held["metadata"] = {"name": name, "finalizers": ["airflow-tests.streamlake.io/hold"]}
    api = client.CustomObjectsApi(kube)
    api.create_namespaced_custom_object("streamlake.io", "v1alpha1", namespace, "dqchecks", held)
    api.delete_namespaced_custom_object("streamlake.io", "v1alpha1", namespace, "dqchecks", name)
    try:
        task = CreateStreamLakeResourceOperator(task_id="create_dq_check", kind="DqCheck")
        with pytest.raises(AirflowException, match="is being deleted") as refused:
            task.execute(run)
        assert not isinstance(refused.value, AirflowFailException)
    finally:
        patch = {"metadata": {"finalizers": None}}
        api.patch_namespaced_custom_object("streamlake.io", "v1alpha1", namespace, "dqchecks", name, patch)
