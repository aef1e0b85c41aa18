"""All four DAGs import under the pinned Airflow, manual-trigger only, built from the shared plugin."""

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from streamlake_airflow.kinds import ALL
from streamlake_airflow.operators import CreateStreamLakeResourceOperator, StreamLakeResourceSensor

DAGS = Path(__file__).resolve().parent.parent / "dags"
EXPECTED = {
    "streamlake_replay": "Replay",
    "streamlake_backfill": "Backfill",
    "streamlake_dlq_inspection": "DlqInspection",
    "streamlake_data_quality": "DqCheck",
}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_exactly_the_four_dags(dagbag):
    assert set(dagbag.dags) == set(EXPECTED)


@pytest.mark.parametrize(("dag_id", "kind"), EXPECTED.items())
def test_dag_shape(dagbag, dag_id, kind):
    dag = dagbag.dags[dag_id]
    assert dag.schedule is None and dag.timetable.can_be_scheduled is False
    assert dag.catchup is False
    create = next(t for t in dag.tasks if isinstance(t, CreateStreamLakeResourceOperator))
    wait = next(t for t in dag.tasks if isinstance(t, StreamLakeResourceSensor))
    assert len(dag.tasks) == 2
    assert create.kind == wait.kind == kind
    assert wait.upstream_task_ids == {create.task_id}
    assert wait.deferrable is True and wait.mode == "poke"
    assert "namespace" in dag.params and "dataset" in dag.params
    assert dag.doc_md and kind in dag.doc_md


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.kind)
def test_each_dag_declares_exactly_its_kinds_params(dagbag, kind):
    dag = next(d for d_id, d in dagbag.dags.items() if EXPECTED[d_id] == kind.kind)
    assert set(dag.params) == {"namespace", *kind.params()}


def test_reschedule_mode_when_no_triggerer(monkeypatch):
    monkeypatch.setenv("STREAMLAKE_AIRFLOW_DEFERRABLE", "false")
    bag = DagBag(dag_folder=str(DAGS / "replay_dag.py"))
    wait = bag.dags["streamlake_replay"].get_task("wait_for_replay")
    assert wait.deferrable is False and wait.mode == "reschedule"


def test_a_bad_switch_is_an_import_error(monkeypatch):
    monkeypatch.setenv("STREAMLAKE_AIRFLOW_DEFERRABLE", "maybe")
    bag = DagBag(dag_folder=str(DAGS / "replay_dag.py"))
    assert any("STREAMLAKE_AIRFLOW_DEFERRABLE must be true or false" in e for e in bag.import_errors.values())
