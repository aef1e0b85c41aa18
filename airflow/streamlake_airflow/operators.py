"""The two tasks every StreamLake DAG runs: create (or re-attach to) the run's resource, then wait for
its terminal phase, deferred to the triggerer or in reschedule mode."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.sdk import BaseOperator, BaseSensorOperator, Context, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from streamlake_airflow.kinds import ResourceKind, by_name
from streamlake_airflow.naming import ownership, resource_name
from streamlake_airflow.outcome import describe, details, failure_text, outcome, summary
from streamlake_airflow.params import Checker, ParamError, unknown_keys
from streamlake_airflow.resources import ResourceError, StreamLakeResources
from streamlake_airflow.triggers import StreamLakePhaseTrigger

DEFAULT_CONN_ID = "kubernetes_default"


class _StreamLakeTask:
    """What both tasks derive from a run: the kind, the namespace and the resource's deterministic name."""

    kind: str
    kubernetes_conn_id: str
    log: Any

    def _resources(self) -> StreamLakeResources:
        return StreamLakeResources(KubernetesHook(conn_id=self.kubernetes_conn_id))

    def _target(self, context: Context) -> tuple[ResourceKind, str, str]:
        checker = Checker(context["params"])
        namespace = checker.namespace()
        try:
            checker.done()
        except ParamError as e:
            raise AirflowFailException(str(e)) from e
        return by_name(self.kind), namespace, resource_name(context["dag"].dag_id, context["run_id"])

    def _delete(self, kind: ResourceKind, namespace: str, name: str, why: str) -> None:
        try:
            if self._resources().delete(kind, namespace, name):
                self.log.info("%s: deleted %s %s/%s", why, kind.kind, namespace, name)
        except ResourceError as e:
            self.log.warning("%s, but %s", why, e)


class CreateStreamLakeResourceOperator(_StreamLakeTask, BaseOperator):
    """Validates the run's params into a spec and creates the resource, or re-attaches to the one this
    DAG run already created. Returns `{"namespace", "name", "created"}`."""

    ui_color = "#d8e9f7"

    def __init__(self, *, kind: str, kubernetes_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any):
        super().__init__(**kwargs)
        by_name(kind)
        self.kind = kind
        self.kubernetes_conn_id = kubernetes_conn_id
        self._created: tuple[ResourceKind, str, str] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        kind, namespace, name = self._target(context)
        conf = context["dag_run"].conf or {}
        try:
            unknown = unknown_keys(conf, context["dag"].params.keys())
            if unknown:
                known = ", ".join(sorted(context["dag"].params.keys()))
                raise ParamError([f"unknown param {k!r} (this DAG takes: {known})" for k in unknown])
            spec = kind.build_spec(context["params"])
        except ParamError as e:
            raise AirflowFailException(f"{kind.kind} not created: {e}") from e

        labels, annotations = ownership(context["dag"].dag_id, context["run_id"], self.task_id)
        resources = self._resources()
        manifest = resources.manifest(kind, name, spec, labels, annotations)
        wanted = summary(kind, {"metadata": {"namespace": namespace, "name": name}, "spec": spec})
        self.log.info(
            "StreamLake %s", describe({k: wanted[k] for k in ("resource", "dataset", "topic", "offsets")})
        )
        try:
            attached = resources.create_or_attach(kind, namespace, manifest)
        except ResourceError as e:
            # A refusal stays a refusal: only API trouble and a still-terminating object are retried.
            raise (AirflowException if e.retryable else AirflowFailException)(str(e)) from e
        if attached.created:
            self._created = (kind, namespace, name)
            self.log.info("created %s %s/%s", kind.kind, namespace, name)
        else:
            phase = outcome(kind, attached.obj).phase
            self.log.info(
                "re-attached to %s %s/%s made earlier by this DAG run (phase %s)",
                kind.kind,
                namespace,
                name,
                phase,
            )
        return {"namespace": namespace, "name": name, "created": attached.created}

    def on_kill(self) -> None:
        if self._created is not None:
            self._delete(*self._created, why="task killed while creating")


class StreamLakeResourceSensor(_StreamLakeTask, BaseSensorOperator):
    """Waits for the run's resource to reach a terminal phase. Succeeds with a summary (XCom), fails with
    the resource's status.message; a killed wait deletes the resource."""

    ui_color = "#e8f4d9"

    def __init__(
        self,
        *,
        kind: str,
        kubernetes_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = True,
        delete_on_kill: bool = True,
        **kwargs: Any,
    ):
        kwargs.setdefault("mode", "poke" if deferrable else "reschedule")
        super().__init__(**kwargs)
        by_name(kind)
        self.kind = kind
        self.kubernetes_conn_id = kubernetes_conn_id
        self.deferrable = deferrable
        self.delete_on_kill = delete_on_kill
        self._last_phase: str | None = "<unread>"
        self._running_target: tuple[ResourceKind, str, str] | None = None

    def _read(self, context: Context) -> tuple[ResourceKind, dict[str, Any]]:
        kind, namespace, name = self._target(context)
        self._running_target = (kind, namespace, name)
        try:
            obj = self._resources().get(kind, namespace, name)
        except ResourceError as e:
            raise AirflowException(str(e)) from e
        if obj is None:
            raise AirflowFailException(
                f"{kind.kind} {namespace}/{name} is gone: it was deleted before it finished"
            )
        return kind, obj

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        kind, obj = self._read(context)
        if outcome(kind, obj).terminal:
            return self._finish(kind, obj)
        self._log_progress(kind, obj)
        _, namespace, name = self._target(context)
        self.defer(
            trigger=StreamLakePhaseTrigger(
                kind=self.kind,
                name=name,
                namespace=namespace,
                kubernetes_conn_id=self.kubernetes_conn_id,
                poll_interval=self.poke_interval,
                delete_on_kill=self.delete_on_kill,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        kind, obj = self._read(context)
        if not outcome(kind, obj).terminal:
            self._log_progress(kind, obj)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(kind, obj))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, str]:
        kind, namespace, name = self._target(context)
        if event.get("state") == "gone":
            raise AirflowFailException(
                f"{kind.kind} {namespace}/{name} is gone: it was deleted before it finished"
            )
        if event.get("state") != "terminal":
            raise AirflowException(f"lost track of {kind.kind} {namespace}/{name}: {event.get('message')}")
        return self._finish(kind, event["object"])

    def _log_progress(self, kind: ResourceKind, obj: dict[str, Any]) -> None:
        result = outcome(kind, obj)
        if result.phase != self._last_phase:
            progress = (obj.get("status") or {}).get("progress")
            self.log.info(
                "%s phase %s%s: %s",
                kind.kind,
                result.phase or "(not reconciled yet)",
                f" ({progress})" if progress else "",
                result.message or "-",
            )
            self._last_phase = result.phase

    def _finish(self, kind: ResourceKind, obj: dict[str, Any]) -> dict[str, str]:
        fields = summary(kind, obj)
        self.log.info("StreamLake %s", describe(fields))
        for line in details(kind, obj.get("status") or {}):
            self.log.info("  %s", line)
        if outcome(kind, obj).state == "failed":
            # A terminal resource cannot change: retrying the wait would fail the same way.
            raise AirflowFailException(failure_text(kind, obj))
        return fields

    def on_kill(self) -> None:
        if not self.delete_on_kill:
            return
        # on_kill gets no context: the target was fixed by the first read.
        if self._running_target is not None:
            self._delete(*self._running_target, why="task killed while waiting")
