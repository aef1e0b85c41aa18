"""deploy/airflow/rbac.yaml is enough, and no more than needed: a DAG run authenticated as the chart's
scheduler ServiceAccount (a real token from the TokenRequest API) creates and waits for its Replay, and
the same account cannot touch Secrets nor StreamLake resources outside the bound namespace."""

import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from dag_runs import load_dag, run_dag
from e2e_env import create_sleeper_deployment, unique_dataset
from streamlake_airflow.kinds import REPLAY

pytestmark = pytest.mark.e2e
RBAC = Path(__file__).resolve().parents[2] / "deploy" / "airflow" / "rbac.yaml"


@pytest.fixture(scope="module")
def scheduler_kubeconfig(kube, namespace, tmp_path_factory) -> Path:
    """rbac.yaml applied with its namespaces set to the test namespace, and a kubeconfig for the
    airflow-scheduler ServiceAccount."""
    core, rbac = client.CoreV1Api(kube), client.RbacAuthorizationV1Api(kube)
    for name in ("airflow-scheduler", "airflow-triggerer", "airflow-worker"):
        core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    for doc in yaml.safe_load_all(RBAC.read_text()):
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "Role":
            rbac.create_namespaced_role(namespace, doc)
        else:
            for subject in doc["subjects"]:
                subject["namespace"] = namespace
            rbac.create_namespaced_role_binding(namespace, doc)
    token = core.create_namespaced_service_account_token(
        "airflow-scheduler", namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    host = kube.configuration.host
    ca = kube.configuration.ssl_ca_cert
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": host, "certificate-authority": ca}}],
        "users": [{"name": "airflow-scheduler", "user": {"token": token}}],
        "contexts": [
            {
                "name": "airflow",
                "context": {"cluster": "local", "user": "airflow-scheduler", "namespace": namespace},
            }
        ],
        "current-context": "airflow",
    }
    path = tmp_path_factory.mktemp("rbac") / "scheduler.kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    return path


def test_a_dag_run_needs_only_the_shipped_role(
    kube, capfd, namespace, kafka, operator, scheduler_kubeconfig, monkeypatch
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_DEFAULT",
        json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(scheduler_kubeconfig)}}),
    )
    dataset = unique_dataset("rbac")
    kafka.create_topic(f"streamlake.{dataset}.raw", partitions=1)
    create_sleeper_deployment(kube, namespace, dataset, replicas=0)
    result = run_dag(
        kube,
        capfd,
        REPLAY,
        load_dag("streamlake_replay"),
        namespace,
        {"dataset": dataset, "position": "earliest", "dry_run": True},
    )

    assert result.task_states == {"create_replay": "success", "wait_for_replay": "success"}, result.output[
        -3000:
    ]
    assert result.resource["status"]["phase"] == "Succeeded"


def test_the_role_grants_nothing_else(namespace, scheduler_kubeconfig):
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(scheduler_kubeconfig))
    with pytest.raises(ApiException) as secrets:
        client.CoreV1Api(api).list_namespaced_secret(namespace)
    assert secrets.value.status == 403
    with pytest.raises(ApiException) as elsewhere:
        client.CustomObjectsApi(api).list_namespaced_custom_object(
            "streamlake.io", "v1alpha1", "default", "replays"
        )
    assert elsewhere.value.status == 403
    with pytest.raises(ApiException) as status_write:
        client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
            "streamlake.io", "v1alpha1", namespace, "replays", "any", {"status": {"phase": "Succeeded"}}
        )
    assert status_write.value.status == 403


def test_a_dag_run_outside_the_bound_namespace_is_refused_clearly(
    kube, capfd, namespace, operator, scheduler_kubeconfig, monkeypatch
):
    """Also proves the runs above really authenticated as the ServiceAccount, not as the admin."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_DEFAULT",
        json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(scheduler_kubeconfig)}}),
    )
    result = run_dag(
        kube,
        capfd,
        REPLAY,
        load_dag("streamlake_replay"),
        "default",
        {"dataset": "orders", "position": "earliest", "dry_run": True},
    )

    assert result.task_states["create_replay"] == "failed"
    assert "the API server refused Replay default/" in result.output
    assert (
        f"system:serviceaccount:{namespace}:airflow-scheduler" in result.output
        and "forbidden" in result.output
    )
    assert result.resource is None
