"""Resource names: deterministic per DAG run, valid Kubernetes names, distinct across runs."""

import re

import pytest

from streamlake_airflow.naming import label_value, ownership, resource_name

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def test_same_run_same_name():
    run = "manual__2026-01-15T10:00:00.123456+00:00"
    assert resource_name("streamlake_replay", run) == resource_name("streamlake_replay", run)


def test_name_is_readable_and_fits():
    name = resource_name("streamlake_replay", "manual__2026-01-15T10:00:00.123456+00:00")
    assert name.startswith("streamlake-replay-manual-2026-01-15t10-00-00")
    assert DNS_LABEL.match(name) and len(name) <= 63


@pytest.mark.parametrize(
    "run_id",
    ["x" * 300, "___", "9999", "scheduled__2026-01-15T00:00:00+00:00", "Ünïcode run ✓", "a--b..c"],
)
def test_any_run_id_gives_a_valid_name(run_id):
    name = resource_name("dag", run_id)
    assert DNS_LABEL.match(name), name
    assert len(name) <= 63


def test_runs_differing_only_after_the_cut_get_different_names():
    long = "manual__" + "x" * 80
    assert resource_name("streamlake_replay", long + "1") != resource_name("streamlake_replay", long + "2")
    # Same slug, different raw text: the hash of the exact pair keeps them apart.
    assert resource_name("d", "run.1") != resource_name("d", "run_1")
    assert resource_name("a_b", "c") != resource_name("a", "b_c")


def test_ownership_marks_the_exact_run():
    labels, annotations = ownership("streamlake_replay", "manual__2026-01-15T10:00:00+00:00", "create_replay")
    assert labels == {
        "app.kubernetes.io/managed-by": "airflow",
        "streamlake.io/airflow-dag-id": "streamlake_replay",
    }
    assert annotations["streamlake.io/airflow-run"] == "streamlake_replay/manual__2026-01-15T10:00:00+00:00"
    assert annotations["streamlake.io/airflow-task"] == "create_replay"


def test_label_values_are_valid():
    assert label_value("my dag/ü") == "my-dag"
    assert len(label_value("d" * 100)) == 63
