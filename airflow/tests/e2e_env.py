"""Fixtures for tests against the local environment (dev/up): the real API server through the admin
kubeconfig, the real Kafka broker through the upstream CLI tools, the StreamLake operator, and
`airflow dags test` run as a subprocess exactly as a user would run it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from streamlake_airflow.kinds import GROUP, VERSION, ResourceKind

# How long a created resource may go without any status before we conclude no controller handles it.
RECONCILE_GRACE_SECONDS = 20
_unreconciled: dict[str, str] = {}


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run dev/up and `source .streamlake/env` (dev/test.d/airflow does this)")
    return value


def state_dir() -> Path:
    return Path(os.environ.get("STREAMLAKE_STATE") or Path(require_env("KUBECONFIG")).parent)


def tool(name: str) -> str:
    """An upstream CLI of the local environment: on PATH, or in $STREAMLAKE_STATE/bin."""
    found = shutil.which(name) or str(state_dir() / "bin" / name)
    if not Path(found).is_file():
        pytest.fail(f"{name} not found on PATH or in {state_dir() / 'bin'}: run dev/up")
    return found


# --- Kubernetes ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kube() -> client.ApiClient:
    return config.new_client_from_config(config_file=require_env("KUBECONFIG"))


@pytest.fixture(scope="session")
def namespace(kube) -> str:
    """One namespace for the whole session, removed at the end (the operator is stopped after it)."""
    name = f"airflow-e2e-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(kube).create_namespace({"metadata": {"name": name}})
    yield name
    try:
        client.CoreV1Api(kube).delete_namespace(name)
    except ApiException as e:
        print(f"could not delete namespace {name}: {e.reason}")


def custom(kube) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube)


def list_resources(kube, kind: ResourceKind, ns: str) -> list[dict]:
    return custom(kube).list_namespaced_custom_object(GROUP, VERSION, ns, kind.plural)["items"]


def get_resource(kube, kind: ResourceKind, ns: str, name: str) -> dict | None:
    try:
        return custom(kube).get_namespaced_custom_object(GROUP, VERSION, ns, kind.plural, name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def create_sleeper_deployment(kube, ns: str, dataset: str, replicas: int) -> str:
    """A consumer Deployment as the operator finds it (labels from DESIGN.md) whose pods only sleep."""
    name = f"{dataset}-consumer"
    client.AppsV1Api(kube).create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": name, "labels": {"streamlake.io/dataset": dataset, "streamlake.io/component": "consumer"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "terminationGracePeriodSeconds": 5,
                        "containers": [{"name": "consumer", "image": "busybox", "command": ["sleep", "3600"]}],
                    },
                },
            },
        },
    )
    return name


def deployment_replicas(kube, ns: str, name: str) -> int | None:
    return client.AppsV1Api(kube).read_namespaced_deployment(name, ns).spec.replicas


def wait_for(desc: str, timeout: float, check) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {desc}")
        time.sleep(0.5)


# --- Kafka ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka() -> "Kafka":
    k = Kafka(require_env("KAFKA_BOOTSTRAP_SERVERS"))
    yield k
    k.delete_created()


@dataclass
class Kafka:
    bootstrap: str
    created: list[str] = field(default_factory=list)

    def _run(self, name: str, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run([tool(name), "--bootstrap-server", self.bootstrap, *args], input=stdin, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            pytest.fail(f"{name} {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def create_topic(self, topic: str, partitions: int) -> None:
        self._run("kafka-topics", "--create", "--topic", topic, "--partitions", str(partitions), "--replication-factor", "1")
        self.created.append(topic)

    def produce(
        self, topic: str, values: list[str], *, headers: list[dict[str, str]] | None = None, keys: list[str] | None = None
    ) -> None:
        """One record per value, with its headers and key if given (the producer picks the partitions).
        A line is `k1=v1;k2=v2<TAB>key<TAB>value`: header values (RFC 3339 times) hold ':', the tool's default."""
        extra: list[str] = []
        lines = list(values)
        if keys is not None:
            extra += ["--property", "parse.key=true", "--property", "key.separator=\t"]
            lines = [f"{k}\t{v}" for k, v in zip(keys, lines, strict=True)]
        if headers is not None:
            extra += ["--property", "parse.headers=true", "--property", "headers.delimiter=\t",
                      "--property", "headers.separator=;", "--property", "headers.key.separator=="]
            lines = [";".join(f"{k}={v}" for k, v in h.items()) + "\t" + line for h, line in zip(headers, lines, strict=True)]
        self._run("kafka-console-producer", "--topic", topic, "--producer-property", "acks=all", *extra, stdin="\n".join(lines) + "\n")

    def produce_orders(self, topic: str, count: int) -> None:
        """Valid `orders` events (contracts/orders.v1.json) with the headers the ingest API sets."""
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        ids = [f"o-{uuid.uuid4().hex[:12]}" for _ in range(count)]
        values = [
            json.dumps({"order_id": i, "customer_id": "c-1", "line_items": [{"sku": "sku-1", "quantity": 2, "unit_price": "1.25"}],
                        "amount": "2.50", "currency": "EUR", "created_at": now})
            for i in ids
        ]
        headers = [
            {"event_id": str(uuid.uuid4()), "schema_version": "1", "ingested_at": now, "source": "airflow-tests", "content-type": "application/json"}
            for _ in ids
        ]
        self.produce(topic, values, headers=headers, keys=ids)

    def committed(self, group: str) -> dict[int, int]:
        """The group's committed offset per partition, as kafka-consumer-groups reports it."""
        out = subprocess.run([tool("kafka-consumer-groups"), "--bootstrap-server", self.bootstrap, "--describe", "--group", group],
                             capture_output=True, text=True, timeout=120).stdout
        offsets = {}
        for line in out.splitlines():
            cols = line.split()
            if len(cols) >= 4 and cols[0] == group and cols[2].isdigit() and cols[3].isdigit():
                offsets[int(cols[2])] = int(cols[3])
        return offsets

    def delete_created(self) -> None:
        for topic in self.created:
            subprocess.run([tool("kafka-topics"), "--bootstrap-server", self.bootstrap, "--delete", "--topic", topic], capture_output=True, timeout=120)


# --- The raw zone and the consumer ---------------------------------------------------------------------


@dataclass
class RawZone:
    """A local raw zone (file://) and the contracts directory the consumer and the operator read."""

    root: Path
    contracts: Path

    @property
    def url(self) -> str:
        return f"file://{self.root}"

    def add_contract(self, dataset: str) -> None:
        """The shipped orders contract under the test dataset's name."""
        shipped = Path(__file__).resolve().parents[2] / "contracts" / "orders.v1.json"
        shutil.copy(shipped, self.contracts / f"{dataset}.v1.json")


@pytest.fixture(scope="session")
def raw_zone(namespace) -> RawZone:
    if _shared_operator_running():
        root = os.environ.get("STREAMLAKE_RAW_ZONE", "").removeprefix("file://")
        contracts = os.environ.get("STREAMLAKE_CONTRACTS_DIR", "")
        if not root or not contracts:
            pytest.fail("dev/up runs the operator: record its STREAMLAKE_RAW_ZONE and STREAMLAKE_CONTRACTS_DIR in .streamlake/env")
        return RawZone(Path(root), Path(contracts))
    base = state_dir() / "airflow" / "e2e" / namespace
    zone = RawZone(base / "lake", base / "contracts")
    zone.root.mkdir(parents=True, exist_ok=True)
    zone.contracts.mkdir(parents=True, exist_ok=True)
    return zone


def create_consumer_deployment(kube, ns: str, dataset: str, zone: RawZone) -> str:
    """The real consumer (image streamlake/consumer, run by the process kubelet) landing the dataset."""
    name = f"{dataset}-consumer"
    env = [
        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": require_env("KAFKA_BOOTSTRAP_SERVERS")},
        {"name": "STREAMLAKE_DATASET", "value": dataset},
        {"name": "STREAMLAKE_RAW_ZONE", "value": zone.url},
        {"name": "STREAMLAKE_CONTRACTS_DIR", "value": str(zone.contracts)},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "STREAMLAKE_LISTEN", "value": "$(POD_IP):8080"},
        {"name": "STREAMLAKE_MAX_FILE_AGE", "value": "1s"},
        {"name": "STREAMLAKE_COMMIT_INTERVAL", "value": "500ms"},
        {"name": "RUST_LOG", "value": "info"},
    ]
    client.AppsV1Api(kube).create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": name, "labels": {"streamlake.io/dataset": dataset, "streamlake.io/component": "consumer"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"terminationGracePeriodSeconds": 20, "containers": [{"name": "consumer", "image": "streamlake/consumer", "env": env}]},
                },
            },
        },
    )
    return name


# --- The operator --------------------------------------------------------------------------------------


def _shared_operator_running() -> bool:
    """An operator that dev/up started (recorded like every dev/ process: `pid start-time`)."""
    pid_file = state_dir() / "pids" / "operator.pid"
    try:
        pid, start = pid_file.read_text().split()[:2]
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return False
    return stat.rsplit(")", 1)[1].split()[19] == start


@pytest.fixture(scope="session")
def operator(kube, namespace, raw_zone) -> str:
    """The operator reconciling the test namespace: dev/up's if it runs one, else the operator binary
    started here, watching only this namespace (its Lease there too), with the admin kubeconfig."""
    if _shared_operator_running():
        yield "the operator started by dev/up"
        _delete_all_resources(kube, namespace)
        return
    binary = os.environ.get("STREAMLAKE_OPERATOR_BIN") or str(Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/streamlake/target")) / "debug" / "operator")
    if not Path(binary).is_file():
        pytest.fail(f"no operator binary at {binary}: build it with `cargo build -p streamlake-operator --bin operator` (dev/test.d/airflow does)")
    log_path = state_dir() / "logs" / f"airflow-tests-operator-{namespace}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    args = [binary, "--namespace", namespace, "--lease-namespace", namespace, "--identity", f"airflow-tests-{os.getpid()}",
            "--lease-seconds", "6", "--metrics-addr", "127.0.0.1:0"]
    env = os.environ | {
        "RUST_LOG": "info,kube_runtime=warn,rdkafka=warn",
        "STREAMLAKE_RAW_ZONE": raw_zone.url,
        "STREAMLAKE_CONTRACTS_DIR": str(raw_zone.contracts),
    }
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while b"leading" not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the operator did not start leading (exit {proc.poll()}); log {log_path}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    yield f"{' '.join(args)} (pid {proc.pid}, log {log_path})"
    _delete_all_resources(kube, namespace)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def _delete_all_resources(kube, ns: str) -> None:
    """While the operator still runs, so its finalizers restore what they must and let go."""
    from streamlake_airflow.kinds import ALL

    for kind in ALL:
        for obj in list_resources(kube, kind, ns):
            try:
                custom(kube).delete_namespaced_custom_object(GROUP, VERSION, ns, kind.plural, obj["metadata"]["name"])
            except ApiException:
                pass
    deadline = time.monotonic() + 30
    while any(list_resources(kube, kind, ns) for kind in ALL) and time.monotonic() < deadline:
        time.sleep(0.5)


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
            row = db.execute("select run_id from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)).fetchone()
            if row is None:
                return None, {}
            run_id = row[0]
        states = db.execute("select task_id, state from task_instance where dag_id = ? and run_id = ?", (dag_id, run_id)).fetchall()
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

    def __enter__(self) -> "ReconcileWatch":
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
            new = [o["metadata"]["name"] for o in list_resources(self.kube, self.kind, self.ns) if o["metadata"]["name"] not in self.before]
            if new:
                self.name, self.seen_at = new[0], now
        elif now - self.seen_at > RECONCILE_GRACE_SECONDS:
            obj = get_resource(self.kube, self.kind, self.ns, self.name)
            if obj is not None and not (obj.get("status") or {}).get("phase"):
                where = f"{self.kind.kind} {self.ns}/{self.name}, created by {self.dag_id}"
                others = [o for o in list_resources(self.kube, self.kind, self.ns) if (o.get("status") or {}).get("phase")]
                if others:
                    self.verdict = (
                        f"the operator reconciles {self.kind.kind}s but left {where} without a status.phase for "
                        f"{RECONCILE_GRACE_SECONDS}s: see its log"
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
            try:
                custom(self.kube).delete_namespaced_custom_object(GROUP, VERSION, self.ns, self.kind.plural, self.name)
            except ApiException:
                pass

    def resource(self) -> dict | None:
        if self.verdict is not None:
            pytest.fail(self.verdict)
        if self.name is None:
            new = [o for o in list_resources(self.kube, self.kind, self.ns) if o["metadata"]["name"] not in self.before]
            return new[0] if new else None
        return get_resource(self.kube, self.kind, self.ns, self.name)


def run_dag(kube, capfd, kind: ResourceKind, dag, ns: str, conf: dict, *, timeout: float = 180) -> DagRunResult:
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


def run_dag_cli(kube, kind: ResourceKind, dag_id: str, ns: str, conf: dict, *, timeout: float = 240) -> DagRunResult:
    """`airflow dags test <dag_id> --conf ...` as a user runs it."""
    cmd = ["airflow", "dags", "test", dag_id, "--conf", json.dumps({"namespace": ns} | conf)]
    with ReconcileWatch(kube, kind, ns, dag_id, timeout) as watch:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
    output = result.stdout + result.stderr
    print(output[-20000:])
    run_id, states = _task_states(dag_id)
    return DagRunResult(result.returncode, output, run_id, states, watch.resource())


def unique_dataset(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


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
