"""Fixtures for tests against the local environment (dev/up): the real API server through the admin
kubeconfig, the real Kafka broker through the upstream CLI tools, a local raw zone, the real consumer,
and the StreamLake operator."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from streamlake_airflow.kinds import GROUP, VERSION, ResourceKind


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run dev/up and `source .streamlake/env` (dev/test.d/airflow does this)"
        )
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
            "metadata": {
                "name": name,
                "labels": {"streamlake.io/dataset": dataset, "streamlake.io/component": "consumer"},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "terminationGracePeriodSeconds": 5,
                        "containers": [
                            {"name": "consumer", "image": "busybox", "command": ["sleep", "3600"]}
                        ],
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
def kafka() -> Kafka:
    k = Kafka(require_env("KAFKA_BOOTSTRAP_SERVERS"))
    yield k
    k.delete_created()


@dataclass
class Kafka:
    bootstrap: str
    created: list[str] = field(default_factory=list)

    def _run(self, name: str, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [tool(name), "--bootstrap-server", self.bootstrap, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            pytest.fail(f"{name} {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def create_topic(self, topic: str, partitions: int) -> None:
        self._run(
            "kafka-topics",
            "--create",
            "--topic",
            topic,
            "--partitions",
            str(partitions),
            "--replication-factor",
            "1",
        )
        self.created.append(topic)

    def produce(
        self,
        topic: str,
        values: list[str],
        *,
        headers: list[dict[str, str]] | None = None,
        keys: list[str] | None = None,
    ) -> None:
        """One record per value, with its headers and key if given (the producer picks the partitions).
        A line is `k1=v1;k2=v2<TAB>key<TAB>value`: header values (RFC 3339 times) hold ':', the tool's
        default key separator."""
        extra: list[str] = []
        lines = list(values)
        if keys is not None:
            extra += ["--property", "parse.key=true", "--property", "key.separator=\t"]
            lines = [f"{k}\t{v}" for k, v in zip(keys, lines, strict=True)]
        if headers is not None:
            extra += [
                "--property",
                "parse.headers=true",
                "--property",
                "headers.delimiter=\t",
                "--property",
                "headers.separator=;",
                "--property",
                "headers.key.separator==",
            ]
            lines = [
                ";".join(f"{k}={v}" for k, v in h.items()) + "\t" + line
                for h, line in zip(headers, lines, strict=True)
            ]
        self._run(
            "kafka-console-producer",
            "--topic",
            topic,
            "--producer-property",
            "acks=all",
            *extra,
            stdin="\n".join(lines) + "\n",
        )

    def produce_orders(self, topic: str, count: int) -> None:
        """Valid `orders` events (contracts/orders.v1.json) with the headers the ingest API sets."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        ids = [f"o-{uuid.uuid4().hex[:12]}" for _ in range(count)]
        values = [
            json.dumps(
                {
                    "order_id": i,
                    "customer_id": "c-1",
                    "line_items": [{"sku": "sku-1", "quantity": 2, "unit_price": "1.25"}],
                    "amount": "2.50",
                    "currency": "EUR",
                    "created_at": now,
                }
            )
            for i in ids
        ]
        headers = [
            {
                "event_id": str(uuid.uuid4()),
                "schema_version": "1",
                "ingested_at": now,
                "source": "airflow-tests",
                "content-type": "application/json",
            }
            for _ in ids
        ]
        self.produce(topic, values, headers=headers, keys=ids)

    def committed(self, group: str) -> dict[int, int]:
        """The group's committed offset per partition, as kafka-consumer-groups reports it."""
        out = subprocess.run(
            [
                tool("kafka-consumer-groups"),
                "--bootstrap-server",
                self.bootstrap,
                "--describe",
                "--group",
                group,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        offsets = {}
        for line in out.splitlines():
            cols = line.split()
            if len(cols) >= 4 and cols[0] == group and cols[2].isdigit() and cols[3].isdigit():
                offsets[int(cols[2])] = int(cols[3])
        return offsets

    def delete_created(self) -> None:
        for topic in self.created:
            subprocess.run(
                [tool("kafka-topics"), "--bootstrap-server", self.bootstrap, "--delete", "--topic", topic],
                capture_output=True,
                timeout=120,
            )


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
            pytest.fail(
                "dev/up runs the operator: record its STREAMLAKE_RAW_ZONE and STREAMLAKE_CONTRACTS_DIR "
                "in .streamlake/env"
            )
        return RawZone(Path(root), Path(contracts))
    base = state_dir() / "airflow" / "e2e" / namespace
    zone = RawZone(base / "lake", base / "contracts")
    zone.root.mkdir(parents=True, exist_ok=True)
    zone.contracts.mkdir(parents=True, exist_ok=True)
    return zone


def create_consumer_deployment(kube, ns: str, dataset: str, zone: RawZone, replicas: int = 1) -> str:
    """The real consumer (image streamlake/consumer, run by the process kubelet) landing the dataset; with
    0 replicas only its pod template is there, for a Backfill Job to run."""
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
            "metadata": {
                "name": name,
                "labels": {"streamlake.io/dataset": dataset, "streamlake.io/component": "consumer"},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "terminationGracePeriodSeconds": 20,
                        "containers": [{"name": "consumer", "image": "streamlake/consumer", "env": env}],
                    },
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
    binary = os.environ.get("STREAMLAKE_OPERATOR_BIN") or str(
        Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/streamlake/target"))
        / "debug"
        / "operator"
    )
    if not Path(binary).is_file():
        pytest.fail(
            f"no operator binary at {binary}: build it with "
            "`cargo build -p streamlake-operator --bin operator` (dev/test.d/airflow does)"
        )
    log_path = state_dir() / "logs" / f"airflow-tests-operator-{namespace}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = [binary, "--namespace", namespace, "--lease-namespace", namespace, "--lease-seconds", "6"]
    args += ["--identity", f"airflow-tests-{os.getpid()}", "--metrics-addr", "127.0.0.1:0"]
    env = os.environ | {
        "RUST_LOG": "info,kube_runtime=warn,rdkafka=warn",
        "STREAMLAKE_RAW_ZONE": raw_zone.url,
        "STREAMLAKE_CONTRACTS_DIR": str(raw_zone.contracts),
    }
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while b"leading" not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            tail = log_path.read_text()[-3000:]
            pytest.fail(f"the operator did not start leading (exit {proc.poll()}); log {log_path}:\n{tail}")
        time.sleep(0.2)
    yield f"{' '.join(args)} (pid {proc.pid}, log {log_path})"
    _delete_all_resources(kube, namespace)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _delete_all_resources(kube, ns: str) -> None:
    """While the operator still runs, so its finalizers restore what they must and let go."""
    from streamlake_airflow.kinds import ALL

    for kind in ALL:
        for obj in list_resources(kube, kind, ns):
            with contextlib.suppress(ApiException):
                custom(kube).delete_namespaced_custom_object(
                    GROUP, VERSION, ns, kind.plural, obj["metadata"]["name"]
                )
    deadline = time.monotonic() + 30
    while any(list_resources(kube, kind, ns) for kind in ALL) and time.monotonic() < deadline:
        time.sleep(0.5)


def unique_dataset(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
