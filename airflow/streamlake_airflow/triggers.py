"""The triggerer side of the wait: polls a resource's status asynchronously until a terminal phase, so a
long replay holds no worker slot. A user killing the deferred task deletes the resource (`on_kill`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook
from airflow.triggers.base import BaseTrigger, TriggerEvent
from kubernetes_asyncio.client import CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from streamlake_airflow.kinds import GROUP, VERSION, by_name
from streamlake_airflow.outcome import outcome
from streamlake_airflow.resources import api_message

# Consecutive failed reads before the wait gives up (an API server restart is survived).
MAX_READ_FAILURES = 10


class StreamLakePhaseTrigger(BaseTrigger):
    def __init__(
        self,
        *,
        kind: str,
        name: str,
        namespace: str,
        kubernetes_conn_id: str,
        poll_interval: float,
        delete_on_kill: bool = True,
    ):
        super().__init__()
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.poll_interval = poll_interval
        self.delete_on_kill = delete_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kind": self.kind,
                "name": self.name,
                "namespace": self.namespace,
                "kubernetes_conn_id": self.kubernetes_conn_id,
                "poll_interval": self.poll_interval,
                "delete_on_kill": self.delete_on_kill,
            },
        )

    def _hook(self) -> AsyncKubernetesHook:
        return AsyncKubernetesHook(conn_id=self.kubernetes_conn_id)

    async def _read(self, hook: AsyncKubernetesHook) -> dict[str, Any]:
        kind = by_name(self.kind)
        async with hook.get_conn() as api_client:
            return await CustomObjectsApi(api_client).get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, kind.plural, self.name
            )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        kind = by_name(self.kind)
        hook = self._hook()
        failures = 0
        last_phase: str | None = "<unread>"
        while True:
            try:
                obj = await self._read(hook)
            except ApiException as e:
                if e.status == 404:
                    yield TriggerEvent({"state": "gone"})
                    return
                failures += 1
                self.log.warning(
                    "reading %s %s/%s failed (%d): %s",
                    self.kind,
                    self.namespace,
                    self.name,
                    failures,
                    api_message(e),
                )
                if failures >= MAX_READ_FAILURES:
                    yield TriggerEvent({"state": "error", "message": api_message(e)})
                    return
            except (TimeoutError, OSError) as e:
                failures += 1
                self.log.warning(
                    "reading %s %s/%s failed (%d): %s", self.kind, self.namespace, self.name, failures, e
                )
                if failures >= MAX_READ_FAILURES:
                    yield TriggerEvent({"state": "error", "message": str(e)})
                    return
            else:
                failures = 0
                result = outcome(kind, obj)
                if result.phase != last_phase:
                    self.log.info(
                        "%s %s/%s phase %s: %s",
                        self.kind,
                        self.namespace,
                        self.name,
                        result.phase or "(not reconciled yet)",
                        result.message,
                    )
                    last_phase = result.phase
                if result.terminal:
                    yield TriggerEvent({"state": "terminal", "object": obj})
                    return
            await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        """The user marked or cleared the waiting task: stop the work it stood for."""
        if not self.delete_on_kill:
            return
        kind = by_name(self.kind)
        hook = self._hook()
        try:
            async with hook.get_conn() as api_client:
                await CustomObjectsApi(api_client).delete_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, kind.plural, self.name, propagation_policy="Background"
                )
            self.log.info("task killed: deleted %s %s/%s", self.kind, self.namespace, self.name)
        except ApiException as e:
            if e.status != 404:
                self.log.warning(
                    "task killed, but deleting %s %s/%s failed: %s",
                    self.kind,
                    self.namespace,
                    self.name,
                    api_message(e),
                )
