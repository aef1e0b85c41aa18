"""Reading a resource: terminal phases per kind, the failure text, and the logged facts."""

from datetime import UTC, datetime

import pytest

from streamlake_airflow.kinds import BACKFILL, DLQ_INSPECTION, DQ_CHECK, REPLAY, by_name
from streamlake_airflow.outcome import describe, details, failure_text, outcome, summary


def obj(spec, status=None, name="r1"):
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2026-01-15T10:00:00Z"},
        "spec": spec,
        "status": status,
    }


@pytest.mark.parametrize(
    ("kind", "phase", "state"),
    [
        (REPLAY, None, "pending"),
        (REPLAY, "ScalingDown", "pending"),
        (REPLAY, "Queued", "pending"),
        (REPLAY, "Succeeded", "succeeded"),
        (REPLAY, "Failed", "failed"),
        (BACKFILL, "Running", "pending"),
        (BACKFILL, "Succeeded", "succeeded"),
        (DLQ_INSPECTION, "Succeeded", "succeeded"),
        (DQ_CHECK, "Succeeded", "pending"),
        (DQ_CHECK, "Passed", "succeeded"),
        (DQ_CHECK, "Failed", "failed"),
    ],
)
def test_terminal_phases_follow_each_crd(kind, phase, state):
    assert outcome(kind, obj({}, {"phase": phase} if phase else None)).state == state


def test_failure_text_carries_the_resource_message_and_reason():
    o = obj(
        {"dataset": "orders"},
        {"phase": "Failed", "reason": "GroupNotEmptyTimeout", "message": "group still has 2 members"},
    )
    assert failure_text(REPLAY, o) == "Replay ns/r1 Failed (GroupNotEmptyTimeout): group still has 2 members"


def test_message_falls_back_to_the_complete_condition():
    o = obj(
        {},
        {
            "phase": "Failed",
            "conditions": [{"type": "Complete", "status": "False", "message": "why it failed"}],
        },
    )
    assert outcome(REPLAY, o).message == "why it failed"
    assert "no message" in failure_text(REPLAY, obj({}, {"phase": "Failed"}))


def test_replay_summary_uses_the_resolved_plan_and_target():
    status = {
        "phase": "Succeeded",
        "message": "done",
        "startedAt": "2026-01-15T10:00:01Z",
        "completedAt": "2026-01-15T10:00:43.5Z",
        "target": {"topic": "streamlake.orders.raw", "consumerGroup": "g", "deployment": "d"},
        "plan": [
            {"partition": 0, "newOffset": 8, "endOffset": 10},
            {"partition": 1, "newOffset": 0, "endOffset": 4},
        ],
        "recordsReplayed": 6,
        "recordsTotal": 6,
    }
    s = summary(REPLAY, obj({"dataset": "orders", "from": {"position": "earliest"}}, status))
    assert s["dataset"] == "orders"
    assert s["topic"] == "streamlake.orders.raw"
    assert s["offsets"] == "p0 8..10, p1 0..4"
    assert s["execution_time"] == "42.5s"
    assert s["outcome"] == "success"
    assert details(REPLAY, status) == ["records replayed 6 of 6"]


def test_replay_summary_before_the_plan_describes_the_request():
    spec = {
        "dataset": "orders",
        "topic": "t",
        "from": {"offsets": [{"partition": 0, "offset": 5}]},
        "to": {"timestamp": "2026-01-16T00:00:00Z"},
    }
    s = summary(REPLAY, obj(spec), now=datetime(2026, 1, 15, 10, 0, 30, tzinfo=UTC))
    assert s["offsets"] == "from p0 5 to 2026-01-16T00:00:00Z"
    assert s["topic"] == "t"
    assert s["execution_time"] == "30.0s"
    assert s["outcome"] == "in progress"


def test_other_kinds_summaries():
    assert (
        summary(BACKFILL, obj({"dataset": "orders", "startDate": "2026-01-15", "endDate": "2026-01-16"}))[
            "offsets"
        ]
        == "days 2026-01-15..2026-01-16"
    )
    ranges = {"ranges": [{"partition": 2, "start": 0, "end": 3}]}
    assert (
        summary(BACKFILL, obj({"dataset": "orders", "startDate": "x", "endDate": "y"}, ranges))["offsets"]
        == "p2 0..3"
    )
    dlq = summary(DLQ_INSPECTION, obj({"dataset": "orders", "lastRecords": 10}))
    assert (dlq["topic"], dlq["offsets"]) == ("streamlake.orders.dlq", "last 10 records")
    assert summary(DQ_CHECK, obj({"dataset": "orders", "date": "2026-01-15"}))["offsets"] == "day 2026-01-15"


def test_details_of_dlq_and_dq_results():
    lines = details(
        DLQ_INSPECTION,
        {
            "byErrorType": {"schema_violation": 3, "bad_json": 1},
            "byErrorStage": {"api": 4},
            "report": "reports/dlq/x.json",
        },
    )
    assert lines == [
        "DLQ error.type bad_json: 1 records",
        "DLQ error.type schema_violation: 3 records",
        "DLQ error.stage api: 4 records",
        "report reports/dlq/x.json",
    ]
    checks = [{"name": "minRowCount", "passed": False, "observed": "0 rows", "expected": ">= 1"}]
    assert details(DQ_CHECK, {"checks": checks}) == [
        "check minRowCount: FAILED, observed 0 rows (expected >= 1)"
    ]


def test_describe_quotes_values_with_spaces():
    assert describe({"a": "x", "b": "two words", "c": ""}) == "a=x b='two words' c=''"


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown StreamLake kind 'Replays'"):
        by_name("Replays")
