"""The one shape of every StreamLake DAG: manual trigger only, typed params, `create_<kind>` then
`wait_for_<kind>`. The DAG files only choose the kind and describe it."""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from streamlake_airflow.kinds import ResourceKind
from streamlake_airflow.operators import (
    DEFAULT_CONN_ID,
    CreateStreamLakeResourceOperator,
    StreamLakeResourceSensor,
)
from streamlake_airflow.params import namespace_param


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def streamlake_dag(
    kind: ResourceKind,
    *,
    dag_id: str,
    description: str,
    doc_md: str | None,
    wait_timeout: timedelta,
    poll_interval: timedelta = timedelta(seconds=15),
) -> DAG:
    """Deferrable waits by default (needs a triggerer); STREAMLAKE_AIRFLOW_DEFERRABLE=false waits in
    reschedule mode instead. STREAMLAKE_AIRFLOW_POLL_SECONDS overrides the status poll interval."""
    deferrable = _env_flag("STREAMLAKE_AIRFLOW_DEFERRABLE", True)
    poll = float(os.environ.get("STREAMLAKE_AIRFLOW_POLL_SECONDS") or poll_interval.total_seconds())
    conn_id = os.environ.get("STREAMLAKE_KUBERNETES_CONN_ID") or DEFAULT_CONN_ID
    with DAG(
        dag_id=dag_id,
        description=description,
        doc_md=doc_md,
        schedule=None,
        catchup=False,
        max_active_runs=4,
        params={"namespace": namespace_param(), **kind.params()},
        tags=["streamlake", kind.kind],
        default_args={"owner": "streamlake", "retries": 2, "retry_delay": timedelta(seconds=30)},
    ) as dag:
        create = CreateStreamLakeResourceOperator(
            task_id=f"create_{kind.snake}", kind=kind.kind, kubernetes_conn_id=conn_id
        )
        wait = StreamLakeResourceSensor(
            task_id=f"wait_for_{kind.snake}",
            kind=kind.kind,
            kubernetes_conn_id=conn_id,
            deferrable=deferrable,
            poke_interval=poll,
            timeout=wait_timeout,
        )
        create >> wait
    return dag
