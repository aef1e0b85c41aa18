"""Create, find and delete StreamLake resources through the cncf-kubernetes provider's KubernetesHook
(the custom objects API), with create-or-attach so a retry never makes a duplicate."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from kubernetes.client.exceptions import ApiException

from streamlake_airflow.kinds import API_VERSION, GROUP, VERSION, ResourceKind
from streamlake_airflow.naming import RUN_ANNOTATION


class ResourceError(Exception):
    """The API server refused or the existing object cannot be adopted; the text says what to do.
    `retryable`: a later attempt may succeed (API server trouble, an object still being deleted)."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


def _retryable(error: ApiException) -> bool:
    return error.status is None or error.status == 429 or error.status >= 500


@dataclass(frozen=True)
class Attached:
    obj: dict[str, Any]
    created: bool


def api_message(error: ApiException) -> str:
    """The API server's own explanation (e.g. a CEL rule's message), not the whole HTTP dump."""
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return body.get("message") or f"HTTP {error.status} {error.reason}"


def is_subset(wanted: Any, actual: Any) -> bool:
    """True if `actual` holds everything in `wanted`; extra fields are the API server's defaults."""
    if isinstance(wanted, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and is_subset(v, actual[k]) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(actual, list) and len(wanted) == len(actual) and all(map(is_subset, wanted, actual))
    return wanted == actual


class StreamLakeResources:
    def __init__(self, hook: KubernetesHook):
        self.hook = hook

    def manifest(
        self,
        kind: ResourceKind,
        name: str,
        spec: dict[str, Any],
        labels: dict[str, str],
        annotations: dict[str, str],
    ) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": kind.kind,
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": spec,
        }

    def create_or_attach(self, kind: ResourceKind, namespace: str, manifest: dict[str, Any]) -> Attached:
        name = manifest["metadata"]["name"]
        try:
            obj = self.hook.create_custom_object(GROUP, VERSION, kind.plural, manifest, namespace)
            return Attached(obj=obj, created=True)
        except ApiException as e:
            if e.status != 409:
                raise ResourceError(
                    f"the API server refused {kind.kind} {namespace}/{name}: {api_message(e)}",
                    retryable=_retryable(e),
                ) from e
        existing = self.get(kind, namespace, name)
        if existing is None:
            raise ResourceError(
                f"{kind.kind} {namespace}/{name} already existed but vanished; retry the task"
            )
        self._check_adoptable(kind, namespace, manifest, existing)
        return Attached(obj=existing, created=False)

    @staticmethod
    def _check_adoptable(
        kind: ResourceKind, namespace: str, manifest: dict[str, Any], existing: dict[str, Any]
    ) -> None:
        name = manifest["metadata"]["name"]
        if (existing.get("metadata") or {}).get("deletionTimestamp"):
            raise ResourceError(
                f"{kind.kind} {namespace}/{name} from an earlier attempt is being deleted; "
                "the next try creates it again once it is gone",
                retryable=True,
            )
        wanted_run = manifest["metadata"]["annotations"].get(RUN_ANNOTATION)
        found_run = ((existing.get("metadata") or {}).get("annotations") or {}).get(RUN_ANNOTATION)
        if found_run != wanted_run:
            raise ResourceError(
                f"{kind.kind} {namespace}/{name} exists but was not made by DAG run {wanted_run} "
                f"(its {RUN_ANNOTATION} is {found_run!r}); delete it or trigger a new run"
            )
        if not is_subset(manifest["spec"], existing.get("spec") or {}):
            raise ResourceError(
                f"{kind.kind} {namespace}/{name} from this DAG run exists with a different spec "
                f"({json.dumps(existing.get('spec'), sort_keys=True)}; this run asks for "
                f"{json.dumps(manifest['spec'], sort_keys=True)}); "
                "specs are immutable: delete it or trigger a new run"
            )

    def get(self, kind: ResourceKind, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.hook.get_custom_object(GROUP, VERSION, kind.plural, name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise ResourceError(
                f"reading {kind.kind} {namespace}/{name}: {api_message(e)}", retryable=_retryable(e)
            ) from e

    def delete(self, kind: ResourceKind, namespace: str, name: str) -> bool:
        """Deletes in the background (the operator's finalizer undoes what it did); False if already gone."""
        try:
            self.hook.delete_custom_object(
                GROUP, VERSION, kind.plural, name, namespace, propagation_policy="Background"
            )
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise ResourceError(
                f"deleting {kind.kind} {namespace}/{name}: {api_message(e)}", retryable=_retryable(e)
            ) from e
