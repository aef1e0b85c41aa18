"""Running a DAG against the local environment and reading what happened: `dag.test()` in this process or
`airflow dags test` as a subprocess, the run's task states from the metadata DB, and a watch that turns a
resource nobody reconciles into a clear test failure instead of a hang."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from e2e_env import custom, get_resource, list_resources, require_env
from streamlake_airflow.kinds import GROUP, VERSION, ResourceKind

# How long a created resource may go without any status before we conclude no controller handles it.
RECONCILE_GRACE_SECONDS = 20
_unreconciled: dict[str, str] = {}


# --- Running a DAG ------------------------------------------------------------------------------------


@dataclass
class DagRunResult:
    returncode: int | None
    output: str
    run_id: str | None
    task_states: dict[str, str]
    resource: dict | None


def _metadata_db() -> Path:
    url = require_env("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if not url.startswith("sqlite:///"):
        pytest.fail(f"the tests read task states from the sqlite metadata DB, not {url}")
    return Path(url.removeprefix("sqlite:///"))


def _task_states(dag_id: str, run_id: str | None = None) -> tuple[str | None, dict[str, str]]:
    """The run's task states (the latest run of the DAG if no run id is given)."""
    with sqlite3.connect(_metadata_db()) as db:
        if run_id is None:
            row = db.execute(
                "select run_id from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
            ).fetchone()
            if row is None:
                return None, {}
            run_id = row[0]
        states = db.execute(
            "select task_id, state from task_instance where dag_id = ? and run_id = ?", (dag_id, run_id)
        ).fetchall()
    return run_id, dict(states)


def reschedules(dag_id: str, run_id: str, task_id: str) -> int:
    """How often a reschedule-mode sensor gave its slot back before it was done."""
    with sqlite3.connect(_metadata_db()) as db:
        row = db.execute(
            "select count(*) from task_reschedule r join task_instance t on r.ti_id = t.id "
            "where t.dag_id = ? and t.run_id = ? and t.task_id = ?",
            (dag_id, run_id, task_id),
        ).fetchone()
    return row[0]


class ReconcileWatch:
    """Watches for the resource a run creates. If it has no status.phase RECONCILE_GRACE_SECONDS after
    creation, no controller handles its kind: the watch deletes it, which ends the run's wait (the task
    fails with "is gone"), and the test then fails saying so. Same after the overall time limit."""

    def __init__(self, kube, kind: ResourceKind, ns: str, dag_id: str, timeout: float):
        if kind.kind in _unreconciled:
            pytest.fail(_unreconciled[kind.kind] + " (found earlier in this session)")
        self.kube, self.kind, self.ns, self.dag_id, self.timeout = kube, kind, ns, dag_id, timeout
        self.before = {o["metadata"]["name"] for o in list_resources(kube, kind, ns)}
        self.started = time.monotonic()
        self.name: str | None = None
        self.seen_at = 0.0
        self.verdict: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ReconcileWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(0.5) and self.verdict is None:
            try:
                self._check()
            except ApiException as e:
                print(f"watch: reading {self.kind.plural} failed: {e.reason}")

    def _check(self) -> None:
        now = time.monotonic()
        if self.name is None:
            new = [
                o["metadata"]["name"]
                for o in list_resources(self.kube, self.kind, self.ns)
                if o["metadata"]["name"] not in self.before
            ]
            if new:
                self.name, self.seen_at = new[0], now
        elif now - self.seen_at > RECONCILE_GRACE_SECONDS:
            obj = get_resource(self.kube, self.kind, self.ns, self.name)
            if obj is not None and not (obj.get("status") or {}).get("phase"):
                where = f"{self.kind.kind} {self.ns}/{self.name}, created by {self.dag_id}"
                others = [
                    o
                    for o in list_resources(self.kube, self.kind, self.ns)
                    if (o.get("status") or {}).get("phase")
                ]
                if others:
                    self.verdict = (
                        f"the operator reconciles {self.kind.kind}s but left {where} without a "
                        f"status.phase for {RECONCILE_GRACE_SECONDS}s: see its log"
                    )
                else:
                    self.verdict = (
                        f"operator does not reconcile {self.kind.kind} yet: {where}, had no status.phase "
                        f"{RECONCILE_GRACE_SECONDS}s later (the controller is issue 6)"
                    )
                    _unreconciled[self.kind.kind] = self.verdict
                self._delete()
        if self.verdict is None and now - self.started > self.timeout:
            self.verdict = f"{self.dag_id} still running after {self.timeout}s"
            self._delete()

    def _delete(self) -> None:
        if self.name is not None:
            with contextlib.suppress(ApiException):
                custom(self.kube).delete_namespaced_custom_object(
                    GROUP, VERSION, self.ns, self.kind.plural, self.name
                )

    def resource(self) -> dict | None:
        if self.verdict is not None:
            pytest.fail(self.verdict)
        if self.name is None:
            new = [
                o
                for o in list_resources(self.kube, self.kind, self.ns)
                if o["metadata"]["name"] not in self.before
            ]
            return new[0] if new else None
        return get_resource(self.kube, self.kind, self.ns, self.name)


def run_dag(
    kube, capfd, kind: ResourceKind, dag, ns: str, conf: dict, *, timeout: float = 180
) -> DagRunResult:
    """`dag.test()` in this process: the same run loop as `airflow dags test`, without paying Airflow's
    start-up (about 10 s) for every run. Output is what the tasks logged."""
    capfd.readouterr()
    with ReconcileWatch(kube, kind, ns, dag.dag_id, timeout) as watch:
        dag_run = dag.test(run_conf={"namespace": ns} | conf)
    captured = capfd.readouterr()
    output = captured.out + captured.err
    print(output[-20000:])  # shown by pytest when the test fails
    _, states = _task_states(dag.dag_id, dag_run.run_id)
    return DagRunResult(None, output, dag_run.run_id, states, watch.resource())


def run_dag_cli(
    kube, kind: ResourceKind, dag_id: str, ns: str, conf: dict, *, timeout: float = 240
) -> DagRunResult:
    """`airflow dags test <dag_id> --conf ...` as a user runs it."""
    cmd = ["airflow", "dags", "test", dag_id, "--conf", json.dumps({"namespace": ns} | conf)]
    with ReconcileWatch(kube, kind, ns, dag_id, timeout) as watch:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
    output = result.stdout + result.stderr
    print(output[-20000:])
    run_id, states = _task_states(dag_id)
    return DagRunResult(result.returncode, output, run_id, states, watch.resource())


DAG_FILES = {
    "streamlake_replay": "replay_dag.py",
    "streamlake_backfill": "backfill_dag.py",
    "streamlake_dlq_inspection": "dlq_inspection_dag.py",
    "streamlake_data_quality": "data_quality_dag.py",
}


def load_dag(dag_id: str):
    """A freshly parsed DAG, as each worker process parses it: a run resolves its conf into the DAG's
    Param objects, so reusing one DAG object in-process would carry one run's params into the next."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parent.parent / "dags" / DAG_FILES[dag_id]))
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags[dag_id]
