"""Typed DAG params: Airflow `Param`s with JSON schemas (checked when a run is triggered) and a `Checker`
for what a per-field schema cannot say (ranges, "exactly one of", unknown keys), run before anything is
created so bad input fails the task with every problem listed and nothing half-made."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from airflow.sdk import Param

DATASET_PATTERN = r"^[a-z][a-z0-9_-]*$"
TOPIC_PATTERN = r"^[a-zA-Z0-9._-]+$"
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# Go-style durations as the CRDs accept them (`5m`, `1h30m`, `90s`).
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"
DEFAULT_NAMESPACE = "streamlake"


class ParamError(ValueError):
    """The run's params cannot make a valid resource; carries every problem found, not just the first."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid params: " + "; ".join(problems))


# --- Param constructors: the typed form fields of the trigger UI -------------------------------------


def namespace_param() -> Param:
    default = os.environ.get("STREAMLAKE_NAMESPACE", DEFAULT_NAMESPACE)
    return Param(
        default,
        type="string",
        pattern=NAMESPACE_PATTERN,
        maxLength=63,
        title="Namespace",
        description="Kubernetes namespace the resource is created in (where the consumers run).",
    )


def dataset_param(*, required: bool = True, description: str = "Dataset name, e.g. `orders`.") -> Param:
    if required:
        return Param(
            type="string", pattern=DATASET_PATTERN, maxLength=63, title="Dataset", description=description
        )
    return Param(
        None,
        type=["null", "string"],
        pattern=DATASET_PATTERN,
        maxLength=63,
        title="Dataset",
        description=description,
    )


def topic_param(description: str) -> Param:
    return Param(
        None,
        type=["null", "string"],
        pattern=TOPIC_PATTERN,
        maxLength=249,
        title="Topic",
        description=description,
    )


def group_param(description: str) -> Param:
    return Param(
        None,
        type=["null", "string"],
        minLength=1,
        maxLength=255,
        title="Consumer group",
        description=description,
    )


def object_name_param(title: str, description: str) -> Param:
    return Param(
        None,
        type=["null", "string"],
        pattern=OBJECT_NAME_PATTERN,
        maxLength=253,
        title=title,
        description=description,
    )


def offset_param(title: str, description: str) -> Param:
    return Param(None, type=["null", "integer"], minimum=0, title=title, description=description)


def timestamp_param(title: str, description: str) -> Param:
    return Param(None, type=["null", "string"], format="date-time", title=title, description=description)


def date_param(title: str, description: str) -> Param:
    return Param(None, type=["null", "string"], format="date", title=title, description=description)


def partitions_param() -> Param:
    return Param(
        None,
        type=["null", "array"],
        items={"type": "integer", "minimum": 0},
        uniqueItems=True,
        title="Partitions",
        description="Partitions the start/end offsets apply to, e.g. [0, 1, 2]. Needed with offsets.",
    )


def integer_param(
    default: int | None,
    title: str,
    description: str,
    *,
    minimum: int,
    maximum: int | None = None,
    nullable: bool = False,
) -> Param:
    schema: dict[str, Any] = {
        "type": ["null", "integer"] if nullable or default is None else "integer",
        "minimum": minimum,
    }
    if maximum is not None:
        schema["maximum"] = maximum
    return Param(default, title=title, description=description, **schema)


def boolean_param(default: bool, title: str, description: str) -> Param:
    return Param(default, type="boolean", title=title, description=description)


def choice_param(default: str | None, values: list[str], title: str, description: str) -> Param:
    if default is None:
        return Param(
            None, type=["null", "string"], enum=[None, *values], title=title, description=description
        )
    return Param(default, type="string", enum=values, title=title, description=description)


def duration_param(title: str, description: str) -> Param:
    return Param(
        None, type=["null", "string"], pattern=DURATION_PATTERN, title=title, description=description
    )


def strings_param(title: str, description: str) -> Param:
    return Param(
        None,
        type=["null", "array"],
        items={"type": "string", "minLength": 1},
        title=title,
        description=description,
    )


# --- Checker: reads params strictly and collects problems --------------------------------------------


class Checker:
    """Reads typed values out of a run's params, noting each problem instead of stopping at the first."""

    def __init__(self, params: Mapping[str, Any]):
        self._params = params
        self.problems: list[str] = []

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def done(self) -> None:
        if self.problems:
            raise ParamError(self.problems)

    def _raw(self, key: str) -> Any:
        value = self._params.get(key)
        # The trigger form sends "" for an optional field left empty.
        return None if value == "" else value

    def dataset(self, key: str = "dataset", *, required: bool = True) -> str | None:
        value = self._raw(key)
        if value is None:
            if required:
                self.problem(f"{key} is required (a dataset name such as `orders`)")
            return None
        return self._matching(
            key, value, DATASET_PATTERN, 63, "lowercase letters, digits, '_' and '-', starting with a letter"
        )

    def topic(self, key: str = "topic") -> str | None:
        value = self._raw(key)
        if value is None:
            return None
        return self._matching(key, value, TOPIC_PATTERN, 249, "letters, digits, '.', '_' and '-'")

    def group(self, key: str) -> str | None:
        value = self._raw(key)
        if value is None:
            return None
        if not isinstance(value, str) or not 1 <= len(value) <= 255:
            self.problem(f"{key} must be a consumer group name of 1 to 255 characters, got {value!r}")
            return None
        return value

    def object_name(self, key: str) -> str | None:
        value = self._raw(key)
        if value is None:
            return None
        return self._matching(key, value, OBJECT_NAME_PATTERN, 253, "a Kubernetes object name")

    def namespace(self, key: str = "namespace") -> str | None:
        value = self._raw(key)
        if value is None:
            self.problem(f"{key} is required")
            return None
        return self._matching(key, value, NAMESPACE_PATTERN, 63, "a Kubernetes namespace name")

    def duration(self, key: str) -> str | None:
        value = self._raw(key)
        if value is None:
            return None
        return self._matching(key, value, DURATION_PATTERN, 32, "a duration such as 90s, 5m or 1h30m")

    def _matching(self, key: str, value: Any, pattern: str, max_len: int, what: str) -> str | None:
        if not isinstance(value, str) or not re.match(pattern, value) or len(value) > max_len:
            self.problem(f"{key} must be {what} (at most {max_len} characters), got {value!r}")
            return None
        return value

    def integer(self, key: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        value = self._raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{key} must be a whole number, got {value!r}")
            return None
        if minimum is not None and value < minimum:
            self.problem(f"{key} must be at least {minimum}, got {value}")
            return None
        if maximum is not None and value > maximum:
            self.problem(f"{key} must be at most {maximum}, got {value}")
            return None
        return value

    def offset(self, key: str) -> int | None:
        return self.integer(key, minimum=0)

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self._raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(f"{key} must be true or false, got {value!r}")
            return default
        return value

    def choice(self, key: str, values: Iterable[str]) -> str | None:
        value = self._raw(key)
        allowed = list(values)
        if value is None:
            return None
        if value not in allowed:
            self.problem(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
            return None
        return value

    def timestamp(self, key: str) -> datetime | None:
        """An RFC 3339 time with a zone; a naive time would be read differently by each machine."""
        value = self._raw(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(f"{key} must be an RFC 3339 timestamp string, got {value!r}")
            return None
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            self.problem(f"{key} must be an RFC 3339 timestamp such as 2026-01-15T00:00:00Z, got {value!r}")
            return None
        if parsed.tzinfo is None:
            self.problem(f"{key} needs a time zone (e.g. 2026-01-15T00:00:00Z), got {value!r}")
            return None
        return parsed.astimezone(UTC)

    def date(self, key: str) -> date | None:
        value = self._raw(key)
        if value is None:
            return None
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            self.problem(f"{key} must be a date as YYYY-MM-DD, got {value!r}")
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.problem(f"{key} is not a real date: {value!r}")
            return None

    def partitions(self, key: str = "partitions") -> list[int] | None:
        value = self._raw(key)
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or not value
            or any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in value)
        ):
            self.problem(
                f"{key} must be a non-empty list of partition numbers (whole numbers >= 0), got {value!r}"
            )
            return None
        if len(set(value)) != len(value):
            self.problem(f"{key} lists a partition twice: {value!r}")
            return None
        return sorted(value)

    def strings(self, key: str) -> list[str] | None:
        value = self._raw(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
            self.problem(f"{key} must be a list of non-empty strings, got {value!r}")
            return None
        return value

    def exactly_one(self, what: str, choices: Mapping[str, bool]) -> str | None:
        """The one choice that is set, or a problem naming all of them."""
        chosen = [name for name, present in choices.items() if present]
        if len(chosen) != 1:
            found = f"got {' and '.join(chosen)}" if chosen else "got none"
            self.problem(f"set exactly one {what}: {', or '.join(choices)} ({found})")
            return None
        return chosen[0]


def unknown_keys(conf: Mapping[str, Any], declared: Iterable[str]) -> list[str]:
    """Conf keys the DAG does not declare: a typo such as `start_ofset` must not be silently ignored."""
    known = set(declared)
    return sorted(k for k in conf if k not in known)


def rfc3339(moment: datetime) -> str:
    """UTC with a `Z`, as the CRDs' date-time fields and `kubectl` show it."""
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")
