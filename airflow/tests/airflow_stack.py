"""A real multi-process Airflow for end-to-end tests: `airflow db migrate`, then the api-server, scheduler
(LocalExecutor), dag-processor and triggerer as separate processes with their own AIRFLOW_HOME (sqlite:
Airflow 3.3's LocalExecutor accepts it, as `airflow standalone` does), the project's DAGs, the API server on
a free loopback port. Runs are triggered with the CLI (`airflow dags trigger --conf`), watched and acted on
through the REST API, and every process is killed at teardown."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dag_runs import DAG_FILES

AIRFLOW_PROJECT = Path(__file__).resolve().parents[1]
COMPONENTS = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--workers", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
TERMINAL_RUN_STATES = ("success", "failed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AirflowStack:
    home: Path
    port: int
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- processes -------------------------------------------------------------------------------------

    def log_path(self, component: str) -> Path:
        return self.home / f"{component}.log"

    def start(self) -> None:
        migrate = subprocess.run(
            ["airflow", "db", "migrate"], env=self.env, capture_output=True, text=True, timeout=180
        )
        if migrate.returncode != 0:
            pytest.fail(f"airflow db migrate failed:\n{(migrate.stdout + migrate.stderr)[-3000:]}")
        for name, args in COMPONENTS.items():
            with open(self.log_path(name), "ab") as log:  # the child keeps its own descriptor
                self.procs[name] = subprocess.Popen(
                    ["airflow", *args],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(
                    f"airflow {name} exited with {proc.returncode} (log {self.log_path(name)}):\n"
                    + self.tail(name)
                )

    def tail(self, component: str, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path(component).read_text(errors="replace")[-chars:]
        return "(no log)"

    def stop(self) -> None:
        """SIGTERM to each process group, SIGKILL to what is left after a grace period."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            # The group may hold children (executor workers, task supervisors) after its leader left.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def wait_ready(self, dag_ids: list[str], timeout: float = 150) -> None:
        """Every component heartbeating (the API's health endpoint) and the DAGs parsed and unpaused."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                health = self.api("GET", "/api/v2/monitor/health")
                unhealthy = [k for k, v in health.items() if (v or {}).get("status") != "healthy"]
                dags = {d["dag_id"]: d for d in self.api("GET", "/api/v2/dags?limit=100")["dags"]}
                missing = [d for d in dag_ids if d not in dags or dags[d]["is_paused"]]
                if not unhealthy and not missing:
                    return
                last = f"unhealthy {unhealthy}, DAGs not parsed or paused {missing}"
            except OSError as e:
                last = str(e)
            time.sleep(1)
        logs = "\n".join(f"--- {n}:\n{self.tail(n, 1500)}" for n in COMPONENTS)
        pytest.fail(f"Airflow in {self.home} not ready after {timeout}s: {last}\n{logs}")

    # --- runs ------------------------------------------------------------------------------------------

    def trigger(self, dag_id: str, run_id: str, conf: dict) -> None:
        """`airflow dags trigger` as a user runs it."""
        result = subprocess.run(
            ["airflow", "dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            pytest.fail(f"airflow dags trigger failed:\n{(result.stdout + result.stderr)[-3000:]}")

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """The REST API as the simple auth manager's all-admins mode serves it (no login, loopback only)."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def _run_path(self, dag_id: str, run_id: str) -> str:
        return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", self._run_path(dag_id, run_id))["state"]

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict:
        return self.api("GET", f"{self._run_path(dag_id, run_id)}/taskInstances/{task_id}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        tis = self.api("GET", f"{self._run_path(dag_id, run_id)}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def mark_task(self, dag_id: str, run_id: str, task_id: str, state: str) -> dict:
        """What "Mark as failed/success" in the UI sends."""
        path = f"{self._run_path(dag_id, run_id)}/taskInstances/{task_id}"
        return self.api("PATCH", path, {"new_state": state})

    def wait_run_done(self, dag_id: str, run_id: str, timeout: float = 150) -> str:
        deadline = time.monotonic() + timeout
        state = "unknown"
        while time.monotonic() < deadline:
            self.check_alive()
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL_RUN_STATES:
                return state
            time.sleep(1)
        pytest.fail(
            f"{dag_id} run {run_id} still {state} after {timeout}s; task states "
            f"{self.task_states(dag_id, run_id)}\n--- {self.log_path('scheduler')}:\n{self.tail('scheduler')}"
        )

    def wait_task_state(
        self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 90
    ) -> dict:
        deadline = time.monotonic() + timeout
        ti: dict = {}
        while time.monotonic() < deadline:
            self.check_alive()
            ti = self.task_instance(dag_id, run_id, task_id)
            if ti["state"] == state:
                return ti
            time.sleep(0.5)
        pytest.fail(f"{task_id} of {run_id} never {state} in {timeout}s (last {ti.get('state')})")

    def task_log(self, dag_id: str, run_id: str, task_id: str, *, trigger: bool = False) -> str:
        """The task's log files (the worker's, or the triggerer's for the deferred part), as written."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        pattern = "attempt=*.log.trigger.*.log" if trigger else "attempt=*.log"
        return "\n".join(p.read_text(errors="replace") for p in sorted(folder.glob(pattern)))


@contextlib.contextmanager
def airflow_stack(home: Path):
    """The four components running against a fresh metadata DB in `home`; stopped on exit, whatever
    happened."""
    port = free_port()
    env = os.environ | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_FOLDER": str(AIRFLOW_PROJECT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(AIRFLOW_PROJECT), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    stack = AirflowStack(home=home, port=port, env=env)
    try:
        stack.start()
        stack.wait_ready(list(DAG_FILES))
        yield stack
    finally:
        stack.stop()
