"""The four StreamLake custom resources as the DAGs see them: API coordinates, terminal phases (from the
CRDs in crds/), the DAG params and spec builder, and what to log about a run of each."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk import Param

from streamlake_airflow import specs

GROUP = "streamlake.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class ResourceKind:
    kind: str
    plural: str
    # Short snake name for task ids: create_<snake>, wait_for_<snake>.
    snake: str
    succeeded: frozenset[str]
    failed: frozenset[str]
    params: Callable[[], dict[str, Param]]
    build_spec: Callable[[Mapping[str, Any]], dict[str, Any]]
    # Which topic suffix the resource reads when the spec names a dataset, not a topic.
    topic_suffix: str

    def topic(self, spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
        target = status.get("target") or {}
        if target.get("topic"):
            return target["topic"]
        if spec.get("topic"):
            return spec["topic"]
        return f"streamlake.{spec.get('dataset', '?')}.{self.topic_suffix}"


REPLAY = ResourceKind(
    kind="Replay",
    plural="replays",
    snake="replay",
    succeeded=frozenset({"Succeeded"}),
    failed=frozenset({"Failed"}),
    params=specs.replay_params,
    build_spec=specs.replay_spec,
    topic_suffix="raw",
)
BACKFILL = ResourceKind(
    kind="Backfill",
    plural="backfills",
    snake="backfill",
    succeeded=frozenset({"Succeeded"}),
    failed=frozenset({"Failed"}),
    params=specs.backfill_params,
    build_spec=specs.backfill_spec,
    topic_suffix="raw",
)
DLQ_INSPECTION = ResourceKind(
    kind="DlqInspection",
    plural="dlqinspections",
    snake="dlq_inspection",
    succeeded=frozenset({"Succeeded"}),
    failed=frozenset({"Failed"}),
    params=specs.dlq_inspection_params,
    build_spec=specs.dlq_inspection_spec,
    topic_suffix="dlq",
)
DQ_CHECK = ResourceKind(
    kind="DqCheck",
    plural="dqchecks",
    snake="dq_check",
    succeeded=frozenset({"Passed"}),
    failed=frozenset({"Failed"}),
    params=specs.dq_check_params,
    build_spec=specs.dq_check_spec,
    topic_suffix="raw",
)

ALL = (REPLAY, BACKFILL, DLQ_INSPECTION, DQ_CHECK)
BY_NAME = {k.kind: k for k in ALL}


def by_name(kind: str) -> ResourceKind:
    try:
        return BY_NAME[kind]
    except KeyError:
        raise ValueError(f"unknown StreamLake kind {kind!r}: one of {', '.join(BY_NAME)}") from None
