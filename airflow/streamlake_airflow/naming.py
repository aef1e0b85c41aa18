"""Deterministic names and ownership marks: a DAG run always names its resource the same way, so a
retried or re-run task finds the one it made instead of creating a second."""

from __future__ import annotations

import hashlib
import re

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "airflow"
DAG_LABEL = "streamlake.io/airflow-dag-id"
RUN_ANNOTATION = "streamlake.io/airflow-run"
TASK_ANNOTATION = "streamlake.io/airflow-task"

# Kubernetes object names here stay within 63 characters, so they also fit label values and Job names.
MAX_NAME = 63
_HASH_LEN = 10


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def resource_name(dag_id: str, run_id: str) -> str:
    """`<dag>-<run>` made DNS-safe and cut to fit, plus a hash of the exact pair so cuts never collide."""
    digest = hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:_HASH_LEN]
    readable = _slug(f"{dag_id}-{run_id}")[: MAX_NAME - _HASH_LEN - 1].strip("-")
    if not readable or not readable[0].isalpha():
        readable = ("sl-" + readable).strip("-")[: MAX_NAME - _HASH_LEN - 1].strip("-")
    return f"{readable}-{digest}"


def label_value(text: str) -> str:
    """A label value (<= 63 chars of [A-Za-z0-9._-], alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:MAX_NAME]
    return value.strip("-._")


def run_key(dag_id: str, run_id: str) -> str:
    return f"{dag_id}/{run_id}"


def ownership(dag_id: str, run_id: str, task_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """Labels (to list a DAG's resources) and annotations (the exact run, which a label cannot hold)."""
    labels = {MANAGED_BY_LABEL: MANAGED_BY, DAG_LABEL: label_value(dag_id)}
    annotations = {RUN_ANNOTATION: run_key(dag_id, run_id), TASK_ANNOTATION: task_id}
    return labels, annotations
