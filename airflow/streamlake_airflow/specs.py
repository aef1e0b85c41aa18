"""For each kind: the params its DAG declares, and the pure function turning a run's params into the
resource's `spec` (raising `ParamError` with every problem). Declared and read side by side, so the two
cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param

from streamlake_airflow import params as p
from streamlake_airflow.params import Checker, rfc3339

# --- Replay --------------------------------------------------------------------------------------------


def replay_params() -> dict[str, Param]:
    return {
        "dataset": p.dataset_param(
            description="Dataset to replay: names its raw topic, consumer group and Deployment."
        ),
        "topic": p.topic_param("Topic to replay instead of `streamlake.<dataset>.raw`."),
        "position": p.choice_param(
            None,
            ["earliest", "latest"],
            "Start position",
            "Restart every partition at its first (`earliest`) or next (`latest`) offset.",
        ),
        "start_timestamp": p.timestamp_param(
            "Start timestamp", "Restart at the first record at or after this time (RFC 3339, with a zone)."
        ),
        "start_offset": p.offset_param("Start offset", "Restart the listed `partitions` at this offset."),
        "shift_by": p.integer_param(
            None,
            "Shift by",
            "Move each committed offset by N (negative re-reads the last N records).",
            minimum=-(2**62),
        ),
        "end_timestamp": p.timestamp_param(
            "End timestamp", "Complete once every record before this time is re-read."
        ),
        "end_offset": p.offset_param(
            "End offset", "Complete once the listed `partitions` reach this offset."
        ),
        "partitions": p.partitions_param(),
        "dry_run": p.boolean_param(
            False, "Dry run", "Compute the offset plan into the status and change nothing."
        ),
        "group_empty_timeout": p.duration_param(
            "Group-empty timeout", "How long to wait for the consumer group to empty (operator default 5m)."
        ),
        "consumer_group": p.group_param("Consumer group to reset instead of `streamlake-<dataset>-sink`."),
        "deployment": p.object_name_param(
            "Consumer Deployment", "Consumer Deployment to scale instead of the one found by its labels."
        ),
    }


def replay_spec(params: Mapping[str, Any]) -> dict[str, Any]:
    c = Checker(params)
    dataset = c.dataset()
    topic = c.topic()
    position = c.choice("position", ["earliest", "latest"])
    start_ts, end_ts = c.timestamp("start_timestamp"), c.timestamp("end_timestamp")
    start_offset, end_offset = c.offset("start_offset"), c.offset("end_offset")
    shift_by = c.integer("shift_by")
    partitions = c.partitions()
    dry_run = c.boolean("dry_run")
    timeout = c.duration("group_empty_timeout")
    group = c.group("consumer_group")
    deployment = c.object_name("deployment")

    if shift_by == 0:
        c.problem("shift_by must not be 0")
    start = c.exactly_one(
        "start",
        {
            "position": position is not None,
            "start_timestamp": start_ts is not None,
            "start_offset": start_offset is not None,
            "shift_by": shift_by is not None,
        },
    )
    if end_ts is not None and end_offset is not None:
        c.problem("set at most one end: end_timestamp or end_offset")
    if (start_offset is not None or end_offset is not None) and partitions is None:
        c.problem("start_offset and end_offset need partitions: the partitions they apply to, e.g. [0, 1, 2]")
    if partitions is not None and start_offset is None and end_offset is None:
        c.problem("partitions only applies to start_offset and end_offset")
    if start_ts is not None and end_ts is not None and end_ts <= start_ts:
        c.problem("end_timestamp must be after start_timestamp")
    if start_offset is not None and end_offset is not None and end_offset <= start_offset:
        c.problem("end_offset must be greater than start_offset")
    c.done()

    spec: dict[str, Any] = {"dataset": dataset, "dryRun": dry_run}
    if topic is not None:
        spec["topic"] = topic
    if timeout is not None:
        spec["groupEmptyTimeout"] = timeout
    if group is not None:
        spec["consumerGroup"] = group
    if deployment is not None:
        spec["deployment"] = deployment
    if start == "position":
        spec["from"] = {"position": position}
    elif start == "start_timestamp":
        spec["from"] = {"timestamp": rfc3339(start_ts)}
    elif start == "start_offset":
        spec["from"] = {"offsets": [{"partition": q, "offset": start_offset} for q in partitions]}
    else:
        spec["from"] = {"shiftBy": shift_by}
    if end_ts is not None:
        spec["to"] = {"timestamp": rfc3339(end_ts)}
    elif end_offset is not None:
        spec["to"] = {"offsets": [{"partition": q, "offset": end_offset} for q in partitions]}
    return spec


# --- Backfill ------------------------------------------------------------------------------------------


def backfill_params() -> dict[str, Param]:
    return {
        "dataset": p.dataset_param(description="Dataset to backfill into its raw-zone partitions."),
        "topic": p.topic_param("Topic to read instead of `streamlake.<dataset>.raw`."),
        "start_date": p.date_param("Start date", "First UTC day (by Kafka record timestamp), inclusive."),
        "end_date": p.date_param("End date", "Last UTC day, inclusive."),
        "start_timestamp": p.timestamp_param(
            "Start timestamp", "Records at or after this time (RFC 3339, with a zone)."
        ),
        "end_timestamp": p.timestamp_param("End timestamp", "...and before this time."),
        "start_offset": p.offset_param("Start offset", "First offset of the listed `partitions`."),
        "end_offset": p.offset_param(
            "End offset", "Offset after the last record (the range is [start, end))."
        ),
        "partitions": p.partitions_param(),
        "mode": p.choice_param(
            "Isolated",
            ["Isolated", "Replay"],
            "Mode",
            "`Isolated` runs a bounded consumer Job; `Replay` resets the live group.",
        ),
    }


def backfill_spec(params: Mapping[str, Any]) -> dict[str, Any]:
    c = Checker(params)
    dataset = c.dataset()
    topic = c.topic()
    start_date, end_date = c.date("start_date"), c.date("end_date")
    start_ts, end_ts = c.timestamp("start_timestamp"), c.timestamp("end_timestamp")
    start_offset, end_offset = c.offset("start_offset"), c.offset("end_offset")
    partitions = c.partitions()
    mode = c.choice("mode", ["Isolated", "Replay"]) or "Isolated"

    kind = c.exactly_one(
        "range",
        {
            "start_date/end_date": start_date is not None or end_date is not None,
            "start_timestamp/end_timestamp": start_ts is not None or end_ts is not None,
            "start_offset/end_offset": start_offset is not None or end_offset is not None,
        },
    )
    if (start_date is None) != (end_date is None):
        c.problem("start_date and end_date go together")
    elif start_date is not None and end_date < start_date:
        c.problem("end_date must not be before start_date")
    if (start_ts is None) != (end_ts is None):
        c.problem("start_timestamp and end_timestamp go together")
    elif start_ts is not None and end_ts <= start_ts:
        c.problem("end_timestamp must be after start_timestamp")
    if (start_offset is None) != (end_offset is None):
        c.problem("start_offset and end_offset go together")
    elif start_offset is not None and end_offset <= start_offset:
        c.problem("end_offset must be greater than start_offset (the range is [start, end))")
    if kind == "start_offset/end_offset" and partitions is None:
        c.problem("start_offset and end_offset need partitions: the partitions they apply to, e.g. [0, 1, 2]")
    if partitions is not None and kind != "start_offset/end_offset":
        c.problem("partitions only applies to start_offset and end_offset")
    c.done()

    spec: dict[str, Any] = {"dataset": dataset, "mode": mode}
    if topic is not None:
        spec["topic"] = topic
    if kind == "start_date/end_date":
        spec |= {"startDate": start_date.isoformat(), "endDate": end_date.isoformat()}
    elif kind == "start_timestamp/end_timestamp":
        spec |= {"startTime": rfc3339(start_ts), "endTime": rfc3339(end_ts)}
    else:
        spec["offsets"] = [{"partition": q, "start": start_offset, "end": end_offset} for q in partitions]
    return spec


# --- DlqInspection -------------------------------------------------------------------------------------


def dlq_inspection_params() -> dict[str, Param]:
    return {
        "dataset": p.dataset_param(
            required=False, description="Dataset whose DLQ (`streamlake.<dataset>.dlq`) is read."
        ),
        "topic": p.topic_param("A DLQ topic named directly, instead of a dataset."),
        "start_timestamp": p.timestamp_param(
            "Since", "Records that failed at or after this time (RFC 3339, with a zone)."
        ),
        "end_timestamp": p.timestamp_param("Until", "...and before this time (default: now)."),
        "last_records": p.integer_param(
            None, "Last records", "Or the last N records of the topic.", minimum=1
        ),
        "max_records": p.integer_param(
            10000, "Max records", "Upper bound on records read.", minimum=1, maximum=1_000_000
        ),
        "sample_size": p.integer_param(
            5, "Sample size", "Records kept as samples in the status.", minimum=0, maximum=100
        ),
        "redrive": p.boolean_param(
            False, "Redrive", "Re-produce the selected records to the raw topic (after a fix)."
        ),
        "redrive_error_types": p.strings_param(
            "Redrive error types", "Only redrive records with these `error.type` values."
        ),
        "redrive_error_stages": p.strings_param(
            "Redrive error stages", "Only redrive records rejected at these stages: `api`, `consumer`."
        ),
        "redrive_max_attempts": p.integer_param(
            None,
            "Redrive max attempts",
            "Loop guard: records redriven this many times already are skipped (operator default 3).",
            minimum=1,
            maximum=10,
        ),
    }


def dlq_inspection_spec(params: Mapping[str, Any]) -> dict[str, Any]:
    c = Checker(params)
    dataset = c.dataset(required=False)
    topic = c.topic()
    since, until = c.timestamp("start_timestamp"), c.timestamp("end_timestamp")
    last = c.integer("last_records", minimum=1)
    max_records = c.integer("max_records", minimum=1, maximum=1_000_000)
    sample_size = c.integer("sample_size", minimum=0, maximum=100)
    redrive = c.boolean("redrive")
    error_types = c.strings("redrive_error_types")
    error_stages = c.strings("redrive_error_stages")
    max_attempts = c.integer("redrive_max_attempts", minimum=1, maximum=10)

    c.exactly_one("source", {"dataset": dataset is not None, "topic": topic is not None})
    window = c.exactly_one("window", {"start_timestamp": since is not None, "last_records": last is not None})
    if until is not None and since is None:
        c.problem("end_timestamp needs start_timestamp")
    elif until is not None and until <= since:
        c.problem("end_timestamp must be after start_timestamp")
    if error_types is not None and not redrive:
        c.problem("redrive_error_types only applies with redrive: true")
    if error_types is not None and len(error_types) > 64:
        c.problem("redrive_error_types lists at most 64 types")
    if error_stages is not None:
        unknown = sorted(set(error_stages) - {"api", "consumer"})
        if unknown:
            c.problem(f"redrive_error_stages takes api and consumer, got {unknown}")
        elif len(set(error_stages)) != len(error_stages):
            c.problem("redrive_error_stages lists a stage twice")
    for key, value in (("redrive_error_stages", error_stages), ("redrive_max_attempts", max_attempts)):
        if value is not None and not redrive:
            c.problem(f"{key} only applies with redrive: true")
    c.done()

    spec: dict[str, Any] = {"dataset": dataset} if dataset is not None else {"topic": topic}
    if window == "start_timestamp":
        spec["since"] = rfc3339(since)
        if until is not None:
            spec["until"] = rfc3339(until)
    else:
        spec["lastRecords"] = last
    if max_records is not None:
        spec["maxRecords"] = max_records
    if sample_size is not None:
        spec["sampleSize"] = sample_size
    if redrive:
        spec["redrive"] = {}
        if error_types:
            spec["redrive"]["errorTypes"] = error_types
        if error_stages:
            spec["redrive"]["errorStages"] = error_stages
        if max_attempts is not None:
            spec["redrive"]["maxAttempts"] = max_attempts
    return spec


# --- DqCheck -------------------------------------------------------------------------------------------


def dq_check_params() -> dict[str, Param]:
    return {
        "dataset": p.dataset_param(description="Dataset whose raw zone is checked."),
        "date": p.date_param("Date", "One UTC day (`ingestion_date`) to check."),
        "start_date": p.date_param("Start date", "Or the first day of a range, inclusive."),
        "end_date": p.date_param("End date", "Last day of the range, inclusive."),
        "files_exist": p.boolean_param(True, "Files exist", "Every day in the range has data files."),
        "min_row_count": p.integer_param(
            1,
            "Minimum rows",
            "At least this many rows in the range (null: no check).",
            minimum=1,
            nullable=True,
        ),
        "metadata_consistent": p.boolean_param(
            True, "Metadata consistent", "`_metadata.json` is present and agrees with the files."
        ),
        "no_empty_partitions": p.boolean_param(
            True, "No empty partitions", "No day in the range is unexpectedly empty."
        ),
        "offset_continuity": p.boolean_param(
            True, "Offset continuity", "File offset ranges have no gaps or overlaps."
        ),
        "freshness_max_age": p.duration_param(
            "Freshness", "The newest record is no older than this, e.g. `2h`."
        ),
        "contract_sample_size": p.integer_param(
            None,
            "Contract sample",
            "Validate this many rows against the contract.",
            minimum=1,
            maximum=100_000,
        ),
    }


def dq_check_spec(params: Mapping[str, Any]) -> dict[str, Any]:
    c = Checker(params)
    dataset = c.dataset()
    day = c.date("date")
    start_date, end_date = c.date("start_date"), c.date("end_date")
    flags = {
        name: c.boolean(name)
        for name in ("files_exist", "metadata_consistent", "no_empty_partitions", "offset_continuity")
    }
    min_rows = c.integer("min_row_count", minimum=1)
    max_age = c.duration("freshness_max_age")
    sample = c.integer("contract_sample_size", minimum=1, maximum=100_000)

    which = c.exactly_one(
        "day",
        {"date": day is not None, "start_date/end_date": start_date is not None or end_date is not None},
    )
    if (start_date is None) != (end_date is None):
        c.problem("start_date and end_date go together")
    elif start_date is not None and end_date < start_date:
        c.problem("end_date must not be before start_date")
    if not any(flags.values()) and min_rows is None and max_age is None and sample is None:
        c.problem("select at least one check")
    c.done()

    names = {
        "files_exist": "filesExist",
        "metadata_consistent": "metadataConsistent",
        "no_empty_partitions": "noEmptyPartitions",
        "offset_continuity": "offsetContinuity",
    }
    checks: dict[str, Any] = {names[k]: True for k, on in flags.items() if on}
    if min_rows is not None:
        checks["minRowCount"] = min_rows
    if max_age is not None:
        checks["freshness"] = {"maxAge": max_age}
    if sample is not None:
        checks["contractSample"] = {"size": sample}
    spec: dict[str, Any] = {"dataset": dataset, "checks": checks}
    if which == "date":
        spec["date"] = day.isoformat()
    else:
        spec |= {"startDate": start_date.isoformat(), "endDate": end_date.isoformat()}
    return spec
