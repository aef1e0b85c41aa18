"""Pure reading of a StreamLake resource: is it done, did it work, and the facts a run logs (dataset,
topic, offset range, execution time, outcome)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from streamlake_airflow.kinds import ResourceKind

State = Literal["pending", "succeeded", "failed"]


@dataclass(frozen=True)
class Outcome:
    phase: str | None
    state: State
    message: str
    reason: str | None

    @property
    def terminal(self) -> bool:
        return self.state != "pending"


def outcome(kind: ResourceKind, obj: Mapping[str, Any]) -> Outcome:
    status = obj.get("status") or {}
    phase = status.get("phase")
    if phase in kind.succeeded:
        state: State = "succeeded"
    elif phase in kind.failed:
        state = "failed"
    else:
        state = "pending"
    message = status.get("message") or _complete_condition_message(status) or ""
    return Outcome(phase=phase, state=state, message=message, reason=status.get("reason"))


def _complete_condition_message(status: Mapping[str, Any]) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Complete" and condition.get("message"):
            return condition["message"]
    return None


def failure_text(kind: ResourceKind, obj: Mapping[str, Any]) -> str:
    """The task's error when the resource failed: its own message first, since that says why."""
    o = outcome(kind, obj)
    meta = obj.get("metadata") or {}
    reason = f" ({o.reason})" if o.reason else ""
    message = o.message or "the resource gave no message; see `kubectl describe` and the operator's log"
    return f"{kind.kind} {meta.get('namespace')}/{meta.get('name')} {o.phase or 'failed'}{reason}: {message}"


def offset_range(kind: ResourceKind, spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    """What part of the topic the resource covers, resolved offsets preferred over the request."""
    plan = status.get("plan") or []
    if plan:
        return ", ".join(f"p{e['partition']} {e['newOffset']}..{e['endOffset']}" for e in plan)
    ranges = (status.get("ranges") or spec.get("offsets")) if kind.kind == "Backfill" else None
    if ranges:
        return ", ".join(f"p{r['partition']} {r['start']}..{r['end']}" for r in ranges)
    if kind.kind == "Replay":
        return _replay_request(spec)
    if spec.get("startDate"):
        return f"days {spec['startDate']}..{spec['endDate']}"
    if spec.get("date"):
        return f"day {spec['date']}"
    if spec.get("startTime"):
        return f"time {spec['startTime']}..{spec['endTime']}"
    if spec.get("since"):
        return f"failed {spec['since']}..{spec.get('until', 'now')}"
    if spec.get("lastRecords"):
        return f"last {spec['lastRecords']} records"
    return "n/a"


def _replay_request(spec: Mapping[str, Any]) -> str:
    start = spec.get("from") or {}
    end = spec.get("to") or {}
    if "offsets" in start:
        text = "from " + ", ".join(f"p{o['partition']} {o['offset']}" for o in start["offsets"])
    elif "timestamp" in start:
        text = f"from {start['timestamp']}"
    elif "shiftBy" in start:
        text = f"shift by {start['shiftBy']}"
    else:
        text = f"from {start.get('position', '?')}"
    if "offsets" in end:
        text += " to " + ", ".join(f"p{o['partition']} {o['offset']}" for o in end["offsets"])
    elif "timestamp" in end:
        text += f" to {end['timestamp']}"
    else:
        text += " to the end"
    return text


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def execution_seconds(obj: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """startedAt (else creation) to completedAt (else now): how long the resource has been at work."""
    status = obj.get("status") or {}
    begin = _time(status.get("startedAt")) or _time((obj.get("metadata") or {}).get("creationTimestamp"))
    end = _time(status.get("completedAt")) or now or datetime.now(UTC)
    if begin is None:
        return None
    return max(0.0, (end - begin).total_seconds())


def details(kind: ResourceKind, status: Mapping[str, Any]) -> list[str]:
    """Kind-specific results worth a log line each."""
    lines: list[str] = []
    if status.get("recordsTotal") is not None or status.get("recordsReplayed") is not None:
        lines.append(
            f"records replayed {status.get('recordsReplayed', 0)} of {status.get('recordsTotal', '?')}"
        )
    if status.get("recordsWritten") is not None or status.get("filesWritten") is not None:
        lines.append(
            f"records written {status.get('recordsWritten', 0)}, "
            f"files written {status.get('filesWritten', 0)}"
        )
    if status.get("jobName"):
        lines.append(f"job {status['jobName']}")
    for error_type, count in sorted((status.get("byErrorType") or {}).items()):
        lines.append(f"DLQ error.type {error_type}: {count} records")
    for stage, count in sorted((status.get("byErrorStage") or {}).items()):
        lines.append(f"DLQ error.stage {stage}: {count} records")
    if status.get("redriven") is not None:
        lines.append(f"redriven {status['redriven']} records")
    for check in status.get("checks") or []:
        verdict = "passed" if check.get("passed") else "FAILED"
        expected = f" (expected {check['expected']})" if check.get("expected") else ""
        lines.append(f"check {check.get('name')}: {verdict}, observed {check.get('observed')}{expected}")
    if status.get("report"):
        lines.append(f"report {status['report']}")
    return lines


def summary(kind: ResourceKind, obj: Mapping[str, Any], now: datetime | None = None) -> dict[str, str]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    o = outcome(kind, obj)
    seconds = execution_seconds(obj, now)
    return {
        "resource": f"{kind.kind} {meta.get('namespace')}/{meta.get('name')}",
        "dataset": spec.get("dataset") or "-",
        "topic": kind.topic(spec, status),
        "offsets": offset_range(kind, spec, status),
        "execution_time": "unknown" if seconds is None else f"{seconds:.1f}s",
        "outcome": {"succeeded": "success", "failed": "failure", "pending": "in progress"}[o.state],
        "phase": o.phase or "(none yet)",
        "message": o.message or "-",
    }


def describe(fields: Mapping[str, str]) -> str:
    """One greppable line: `key=value`, values with spaces quoted."""
    parts = []
    for key, value in fields.items():
        text = str(value)
        parts.append(f"{key}={text!r}" if (" " in text or not text) else f"{key}={text}")
    return " ".join(parts)
